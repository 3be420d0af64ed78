//! Validate: open a job's input under the media root, confined to it, and
//! make sure it is a readable, non-empty file before any tool touches it;
//! the tools then read that open file, never the name again.

use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};

use hlsmux_protocol::RelativePath;

use crate::pipeline::{JobError, Unreadable};

/// The demuxers a worker opens unless configured otherwise: containers that
/// hold their media themselves. Playlists (hls, dash), lists (concat) and
/// image sequences name other files or URLs, so a crafted input of that
/// kind could make ffmpeg read outside the media root or fetch from the
/// network.
pub const DEFAULT_INPUT_FORMATS: &str =
    "mov,matroska,mpegts,mpeg,avi,flv,asf,ogg,mxf,dv,nut,h264,hevc,m4v,mpegvideo,yuv4mpegpipe";

/// ffmpeg/ffprobe input options that confine what an input may make them
/// open: local files only, and only the allowed demuxers. They go before
/// `-i` and apply to everything the demuxer opens in turn.
pub fn confinement_args(input_formats: &str) -> [String; 4] {
    [
        "-protocol_whitelist".into(),
        "file".into(),
        "-format_whitelist".into(),
        input_formats.into(),
    ]
}

/// The demuxer ffmpeg refused, if its error output says it refused one
/// (`[hls @ 0x...] Format not on whitelist '...'`).
pub fn refused_format(stderr: &str) -> Option<String> {
    let line = stderr
        .lines()
        .find(|line| line.contains("Format not on whitelist"))?;
    let name = line.strip_prefix('[')?.split(" @ ").next()?;
    Some(name.to_owned())
}

/// An input file inside the media root, opened once and held open: what
/// ffprobe and ffmpeg read is this very file, whatever happens to its name
/// meanwhile (a link swapped in after the check would otherwise be read).
#[derive(Debug, Clone)]
pub struct ValidInput {
    file: Arc<File>,
    /// Where it was found, for messages.
    pub path: PathBuf,
    pub size_bytes: u64,
}

impl ValidInput {
    /// The name ffprobe and ffmpeg open it by: this process's descriptor
    /// in /proc, which opens the inode held, not the name in the media
    /// root. Valid while this value (or a clone) lives.
    pub fn tool_path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.file.as_raw_fd()
        ))
    }
}

/// Blocking (it touches the possibly-networked media root): call it from a
/// blocking thread. Opens the input beneath the media root without ever
/// resolving a name outside it (links that stay inside are followed), and
/// without blocking on a FIFO.
pub fn resolve_input(media_root: &Path, input: &RelativePath) -> Result<ValidInput, JobError> {
    let root_unusable = |source: std::io::Error| JobError::MediaRootUnavailable {
        path: media_root.to_owned(),
        source,
    };
    let root = media_root.canonicalize().map_err(root_unusable)?;
    let root_dir = File::open(&root).map_err(root_unusable)?;
    let candidate = input.under(&root);
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let opened = match openat2(&root_dir, input.as_str(), how) {
        // Linux before 5.6 has no openat2: open the resolved name without
        // following a last link, and check where the opened file is.
        Err(Errno::ENOSYS) => open_resolved(&root, &candidate)?,
        Err(Errno::ENOENT) => return Err(JobError::InputMissing(candidate)),
        // A name that resolves out of the root (`EXDEV`), or through /proc.
        Err(Errno::EXDEV | Errno::ELOOP) => return Err(JobError::InputOutsideRoot(candidate)),
        Err(errno) => {
            return Err(JobError::InputUnreadable {
                path: candidate,
                why: std::io::Error::from(errno).into(),
            });
        }
        Ok(fd) => File::from(fd),
    };
    let unreadable = |why: Unreadable| JobError::InputUnreadable {
        path: candidate.clone(),
        why,
    };
    let metadata = opened.metadata().map_err(|e| unreadable(e.into()))?;
    if !metadata.is_file() {
        return Err(unreadable(Unreadable::NotAFile));
    }
    if metadata.len() == 0 {
        return Err(unreadable(Unreadable::Empty));
    }
    let mut first_byte = [0_u8; 1];
    opened
        .read_exact_at(&mut first_byte, 0)
        .map_err(|e| unreadable(e.into()))?;
    Ok(ValidInput {
        file: Arc::new(opened),
        size_bytes: metadata.len(),
        path: candidate,
    })
}

/// The fallback of [`resolve_input`] for kernels without openat2.
fn open_resolved(root: &Path, candidate: &Path) -> Result<File, JobError> {
    let resolved = match candidate.canonicalize() {
        Ok(resolved) => resolved,
        Err(error) if error.kind() == ErrorKind::NotFound => {
            return Err(JobError::InputMissing(candidate.to_owned()));
        }
        Err(error) => {
            return Err(JobError::InputUnreadable {
                path: candidate.to_owned(),
                why: error.into(),
            });
        }
    };
    if !resolved.starts_with(root) {
        return Err(JobError::InputOutsideRoot(candidate.to_owned()));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(&resolved)
        .map_err(|error| JobError::InputUnreadable {
            path: candidate.to_owned(),
            why: error.into(),
        })?;
    // What was opened, not what the name meant a moment ago.
    let opened =
        std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).map_err(|error| {
            JobError::InputUnreadable {
                path: candidate.to_owned(),
                why: error.into(),
            }
        })?;
    if !opened.starts_with(root) {
        return Err(JobError::InputOutsideRoot(candidate.to_owned()));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_demuxer_is_named_from_ffmpeg_output() {
        let stderr = "[hls @ 0x556b421234c0] Format not on whitelist 'mov,matroska'\nin.m3u8: Invalid argument";
        assert_eq!(refused_format(stderr).as_deref(), Some("hls"));
        assert_eq!(refused_format("in.mp4: Invalid data found"), None);
    }

    fn input(path: &str) -> RelativePath {
        RelativePath::parse(path).expect("valid relative path")
    }

    #[test]
    fn a_readable_file_resolves() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::write(root.path().join("clip.mp4"), b"data").expect("write");
        let valid = resolve_input(root.path(), &input("clip.mp4")).expect("valid");
        assert_eq!(valid.size_bytes, 4);
    }

    #[test]
    fn missing_empty_and_directory_inputs_are_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::write(root.path().join("empty.mp4"), b"").expect("write");
        std::fs::create_dir(root.path().join("dir.mp4")).expect("mkdir");
        assert!(matches!(
            resolve_input(root.path(), &input("nope.mp4")),
            Err(JobError::InputMissing(_))
        ));
        let empty = resolve_input(root.path(), &input("empty.mp4")).expect_err("empty");
        assert!(
            matches!(
                empty,
                JobError::InputUnreadable {
                    why: Unreadable::Empty,
                    ..
                }
            ),
            "{empty}"
        );
        assert!(matches!(
            resolve_input(root.path(), &input("dir.mp4")),
            Err(JobError::InputUnreadable { .. })
        ));
    }

    #[test]
    fn a_link_out_of_the_root_is_refused() {
        let outside = tempfile::tempdir().expect("tempdir");
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret.mp4"), b"data").expect("write");
        std::os::unix::fs::symlink(
            outside.path().join("secret.mp4"),
            root.path().join("link.mp4"),
        )
        .expect("symlink");
        assert!(matches!(
            resolve_input(root.path(), &input("link.mp4")),
            Err(JobError::InputOutsideRoot(_))
        ));
    }

    #[test]
    fn links_inside_the_root_are_followed_and_fifos_refused_without_blocking() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("talks")).expect("mkdir");
        std::fs::write(root.path().join("talks/clip.mp4"), b"data").expect("write");
        std::os::unix::fs::symlink("talks/clip.mp4", root.path().join("link.mp4"))
            .expect("symlink");
        assert!(resolve_input(root.path(), &input("link.mp4")).is_ok());
        nix::unistd::mkfifo(
            &root.path().join("pipe.mp4"),
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        )
        .expect("fifo");
        assert!(matches!(
            resolve_input(root.path(), &input("pipe.mp4")),
            Err(JobError::InputUnreadable {
                why: Unreadable::NotAFile,
                ..
            })
        ));
    }

    #[test]
    fn the_tools_read_the_file_that_was_checked_not_what_its_name_became() {
        let outside = tempfile::tempdir().expect("tempdir");
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret.mp4"), b"secret").expect("write");
        std::fs::write(root.path().join("clip.mp4"), b"checked").expect("write");
        let valid = resolve_input(root.path(), &input("clip.mp4")).expect("valid");
        // The name is swapped for a link out of the root after the check.
        std::fs::remove_file(root.path().join("clip.mp4")).expect("remove");
        std::os::unix::fs::symlink(
            outside.path().join("secret.mp4"),
            root.path().join("clip.mp4"),
        )
        .expect("symlink");
        assert_eq!(
            std::fs::read(valid.tool_path()).expect("the held file"),
            b"checked"
        );
        drop(valid);
    }

    #[test]
    fn a_missing_media_root_is_the_workers_problem() {
        let error =
            resolve_input(Path::new("/nonexistent/media"), &input("a.mp4")).expect_err("no root");
        assert_eq!(error.retry(), crate::pipeline::Retry::Transient);
    }
}
