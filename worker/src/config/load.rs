//! Loading the worker's settings: the layers, lowest to highest, and where
//! each effective value came from.

use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use hlsmux_amqp::AmqpUrls;

use super::error::ConfigError;
use super::raw::{DEFAULTS, RawSettings};
use super::sections::Settings;
use crate::boot::BootOptions;

/// Prefix of the environment variables that override settings.
const ENV_PREFIX: &str = "HLSMUX";

/// Where an effective setting came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    KernelCmdline(PathBuf),
    Environment(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("built-in default"),
            Source::File(path) => write!(f, "config file {}", path.display()),
            Source::KernelCmdline(path) => write!(f, "kernel command line {}", path.display()),
            Source::Environment(var) => write!(f, "environment {var}"),
        }
    }
}

/// One effective setting, for the start-up log.
#[derive(Clone, Debug)]
pub struct Origin {
    pub key: String,
    pub value: String,
    pub source: Source,
}

impl Settings {
    /// The built-in defaults alone: no file, command line or environment
    /// (for tools such as the benchmark that plan as a worker would).
    pub fn defaults() -> Result<Self, ConfigError> {
        let raw: RawSettings = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        raw.parse()
    }

    /// Loads, lowest to highest: built-in defaults < `file` (when given) <
    /// the kernel command line (`muxid=`, `muxhwdec=`) < `HLSMUX_*`
    /// environment. Returns where each value came from, too.
    pub fn load(file: Option<&Path>) -> Result<(Self, Vec<Origin>), ConfigError> {
        let layers = |boot: Option<&str>| {
            let mut builder =
                Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
            if let Some(path) = file {
                builder =
                    builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
            }
            if let Some(boot) = boot {
                builder = builder.add_source(File::from_str(boot, FileFormat::Toml));
            }
            builder
                .add_source(Environment::with_prefix(ENV_PREFIX).try_parsing(false))
                .build()
        };
        // The command line's own path is a setting: read it without it first.
        let cmdline_path = PathBuf::from(layers(None)?.get_string("kernel_cmdline")?);
        let boot = BootOptions::read(&cmdline_path)?;
        let merged = layers(Some(&boot.as_toml()))?;
        let raw: RawSettings = merged.clone().try_deserialize()?;
        let settings = raw.parse()?;

        let in_file = match file {
            Some(path) => Some(
                Config::builder()
                    .add_source(File::from(path).format(FileFormat::Toml).required(true))
                    .build()?,
            ),
            None => None,
        };
        let mut origins: Vec<Origin> = merged
            .try_deserialize::<std::collections::HashMap<String, config::Value>>()?
            .into_iter()
            .map(|(key, value)| {
                let var = format!("{ENV_PREFIX}_{}", key.to_uppercase());
                let source = if std::env::var_os(&var).is_some() {
                    Source::Environment(var)
                } else if boot.sets(&key) {
                    Source::KernelCmdline(cmdline_path.clone())
                } else if in_file
                    .as_ref()
                    .is_some_and(|f| f.get::<config::Value>(&key).is_ok())
                {
                    Source::File(file.map(Path::to_owned).unwrap_or_default())
                } else {
                    Source::Default
                };
                let value = if key == "amqp_url" {
                    settings.broker.amqp_url.to_string()
                } else {
                    value.to_string()
                };
                Origin { key, value, source }
            })
            .collect();
        origins.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((settings, origins))
    }
}

/// Blocking. Says so when the config `file` holds a broker password and
/// other users may read it (it should be mode 0600, owned by the worker).
pub fn exposed_secret(file: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(file).ok()?.permissions().mode();
    if mode & 0o077 == 0 {
        return None;
    }
    let url = Config::builder()
        .add_source(File::from(file).format(FileFormat::Toml))
        .build()
        .and_then(|read| read.get_string("amqp_url"))
        .ok()?;
    let url = AmqpUrls::parse(&url).ok()?;
    url.has_password().then(|| {
        format!(
            "{} holds the broker password and other users can read it (mode {:o}): chmod 600 it",
            file.display(),
            mode & 0o777
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hlsmux_protocol::LadderName;

    #[test]
    fn a_readable_config_file_with_a_password_is_called_out() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("worker.toml");
        std::fs::write(&file, "amqp_url = \"amqp://hlsmux:secret@nas:5672/%2f\"\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let warning = exposed_secret(&file).expect("called out");
        assert!(
            warning.contains("chmod 600") && !warning.contains("secret@"),
            "{warning}"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(exposed_secret(&file), None);
        std::fs::write(&file, "amqp_url = \"amqp://nas:5672/%2f\"\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(exposed_secret(&file), None, "no password, nothing to hide");
    }

    fn raw() -> RawSettings {
        Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()
            .and_then(Config::try_deserialize)
            .expect("defaults deserialise")
    }

    #[test]
    fn defaults_parse() {
        let settings = raw().parse().expect("defaults are valid");
        assert_eq!(settings.broker.muxer_id.get(), 1);
        assert_eq!(settings.encoding.segment_seconds, 5);
        assert_eq!(settings.encoding.ladder, LadderName::Standard);
    }

    #[test]
    fn a_file_overrides_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        std::fs::write(&path, "muxer_id = 4\nsegment_seconds = 2\n").expect("write");
        let (settings, origins) = Settings::load(Some(&path)).expect("loads");
        assert_eq!(settings.broker.muxer_id.get(), 4);
        let origin = origins
            .iter()
            .find(|o| o.key == "muxer_id")
            .expect("listed");
        assert_eq!(origin.source, Source::File(path.clone()));
        assert_eq!(settings.encoding.segment_seconds, 2);
    }

    #[test]
    fn the_kernel_command_line_beats_the_file_and_is_named_as_the_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cmdline = dir.path().join("cmdline");
        std::fs::write(&cmdline, "root=/dev/nfs muxid=9 muxhwdec=1\n").expect("write");
        let path = dir.path().join("worker.toml");
        std::fs::write(
            &path,
            format!(
                "muxer_id = 4\nkernel_cmdline = {:?}\n",
                cmdline.display().to_string()
            ),
        )
        .expect("write");
        let (settings, origins) = Settings::load(Some(&path)).expect("loads");
        assert_eq!(settings.broker.muxer_id.get(), 9);
        assert!(settings.encoding.hw_decode);
        let source = |key: &str| {
            origins
                .iter()
                .find(|o| o.key == key)
                .map(|o| o.source.clone())
        };
        assert_eq!(
            source("muxer_id"),
            Some(Source::KernelCmdline(cmdline.clone()))
        );
        assert_eq!(source("hw_decode"), Some(Source::KernelCmdline(cmdline)));
        assert_eq!(source("kernel_cmdline"), Some(Source::File(path)));
        assert_eq!(source("ladder"), Some(Source::Default));
    }

    #[test]
    fn storage_mounts_come_as_an_array_or_a_comma_separated_string() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        std::fs::write(&path, "storage_mounts = [\"/srv/a\", \"/srv/b\"]\n").expect("write");
        let (settings, _) = Settings::load(Some(&path)).expect("loads");
        assert_eq!(
            settings.storage.storage_mounts,
            [PathBuf::from("/srv/a"), PathBuf::from("/srv/b")]
        );
        std::fs::write(&path, "storage_mounts = \"/srv/a, /srv/b\"\n").expect("write");
        let (settings, _) = Settings::load(Some(&path)).expect("loads");
        assert_eq!(
            settings.storage.storage_mounts,
            [PathBuf::from("/srv/a"), PathBuf::from("/srv/b")]
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut bad = raw();
        bad.muxer_id = "seven".into();
        let error = bad.parse().expect_err("non-numeric muxer");
        assert!(
            matches!(
                error,
                ConfigError::Invalid {
                    key: "muxer_id",
                    ..
                }
            ),
            "{error}"
        );

        let mut bad = raw();
        bad.ladder = "fancy".into();
        let error = bad.parse().expect_err("unknown ladder");
        assert!(
            matches!(error, ConfigError::Invalid { key: "ladder", .. }),
            "{error}"
        );

        let mut bad = raw();
        bad.key_uri_prefix = "https://keys.example.com/hls".into();
        let error = bad.parse().expect_err("no trailing slash");
        assert!(
            matches!(
                error,
                ConfigError::Invalid {
                    key: "key_uri_prefix",
                    ..
                }
            ),
            "{error}"
        );

        let mut bad = raw();
        bad.history_max_age = "7 days".into();
        let error = bad.parse().expect_err("not RabbitMQ's notation");
        assert!(
            matches!(
                error,
                ConfigError::Invalid {
                    key: "history_max_age",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn the_example_config_in_deploy_parses_to_the_defaults() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/worker.example.toml");
        let from_example: RawSettings = Config::builder()
            .add_source(
                File::from(example.as_path())
                    .format(FileFormat::Toml)
                    .required(true),
            )
            .build()
            .and_then(Config::try_deserialize)
            .expect("example parses");
        let (example, defaults) = (
            from_example.parse().expect("valid"),
            raw().parse().expect("valid"),
        );
        assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let error =
            Settings::load(Some(Path::new("/nonexistent/worker.toml"))).expect_err("missing file");
        assert!(matches!(error, ConfigError::Load(_)));
    }
}
