//! Boot-time options from the kernel command line of a netbooted Pi: each
//! Pi's `cmdline.txt` on the TFTP server says which muxer it serves
//! (`muxid=N`) and whether to decode in hardware (`muxhwdec=1`), so one
//! shared root filesystem image serves every Pi.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The hlsmux options found on a kernel command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootOptions {
    pub muxer_id: Option<u16>,
    pub hw_decode: Option<bool>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootOptionError {
    #[error(
        "kernel command line {path}: muxid={value:?} is not a muxer ID (a whole number from 1 to 65535); fix cmdline.txt"
    )]
    MuxerId { path: PathBuf, value: String },
    #[error("kernel command line {path}: muxhwdec={value:?} must be 0 or 1; fix cmdline.txt")]
    HwDecode { path: PathBuf, value: String },
    #[error("cannot read the kernel command line {path}: {detail}")]
    Unreadable { path: PathBuf, detail: String },
}

impl BootOptions {
    /// Reads the options from `path`; a missing file (not a Linux boot, or a
    /// container) means no options.
    pub fn read(path: &Path) -> Result<Self, BootOptionError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(BootOptionError::Unreadable {
                path: path.to_owned(),
                detail: error.to_string(),
            }),
        }
    }

    /// Parses a command line; the last occurrence of an option wins, as in
    /// the kernel's own parameter handling.
    pub fn parse(cmdline: &str, path: &Path) -> Result<Self, BootOptionError> {
        let mut options = Self::default();
        for word in cmdline.split_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            match key {
                "muxid" => {
                    let id = value
                        .parse::<u16>()
                        .ok()
                        .filter(|id| *id > 0)
                        .ok_or_else(|| BootOptionError::MuxerId {
                            path: path.to_owned(),
                            value: value.to_owned(),
                        })?;
                    options.muxer_id = Some(id);
                }
                "muxhwdec" => {
                    options.hw_decode = Some(match value {
                        "1" => true,
                        "0" => false,
                        _ => {
                            return Err(BootOptionError::HwDecode {
                                path: path.to_owned(),
                                value: value.to_owned(),
                            });
                        }
                    });
                }
                _ => {}
            }
        }
        Ok(options)
    }

    /// The options as a TOML layer for the configuration.
    pub fn as_toml(&self) -> String {
        let mut toml = String::new();
        if let Some(id) = self.muxer_id {
            toml.push_str(&format!("muxer_id = \"{id}\"\n"));
        }
        if let Some(on) = self.hw_decode {
            toml.push_str(&format!("hw_decode = {on}\n"));
        }
        toml
    }

    pub fn sets(&self, key: &str) -> bool {
        match key {
            "muxer_id" => self.muxer_id.is_some(),
            "hw_decode" => self.hw_decode.is_some(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PI_CMDLINE: &str = "console=serial0,115200 console=tty1 root=/dev/nfs \
        nfsroot=192.168.1.2:/srv/nfs/HLSPi2,vers=3 rw ip=dhcp rootwait elevator=deadline muxid=2 muxhwdec=1\n";

    #[test]
    fn reads_muxid_and_muxhwdec_from_a_pi_cmdline() {
        let options = BootOptions::parse(PI_CMDLINE, Path::new("/proc/cmdline")).expect("parses");
        assert_eq!(
            options,
            BootOptions {
                muxer_id: Some(2),
                hw_decode: Some(true)
            }
        );
        assert_eq!(options.as_toml(), "muxer_id = \"2\"\nhw_decode = true\n");
    }

    #[test]
    fn a_cmdline_without_options_sets_nothing() {
        let options = BootOptions::parse("root=/dev/sda1 quiet", Path::new("c")).expect("parses");
        assert_eq!(options, BootOptions::default());
        assert!(options.as_toml().is_empty());
    }

    #[test]
    fn a_non_numeric_muxid_is_an_error_not_a_default() {
        let error =
            BootOptions::parse("muxid=two", Path::new("/proc/cmdline")).expect_err("bad muxid");
        assert!(error.to_string().contains("muxid=\"two\""), "{error}");
        assert!(BootOptions::parse("muxid=0", Path::new("c")).is_err());
        assert!(BootOptions::parse("muxhwdec=yes", Path::new("c")).is_err());
    }

    #[test]
    fn a_missing_cmdline_file_means_no_options() {
        let options =
            BootOptions::read(Path::new("/nonexistent/cmdline")).expect("missing is fine");
        assert_eq!(options, BootOptions::default());
    }
}
