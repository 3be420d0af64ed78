//! Validate: resolve a job's input under the media root, confined to it, and
//! make sure it is a readable, non-empty file before any tool touches it.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

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

/// An input file that exists inside the media root and can be read.
#[derive(Debug, Clone)]
pub struct ValidInput {
    pub path: PathBuf,
    pub size_bytes: u64,
}

/// Blocking (it touches the possibly-networked media root): call it from a
/// blocking thread.
pub fn resolve_input(media_root: &Path, input: &RelativePath) -> Result<ValidInput, JobError> {
    let root = media_root
        .canonicalize()
        .map_err(|source| JobError::MediaRootUnavailable {
            path: media_root.to_owned(),
            source,
        })?;
    let candidate = input.under(&root);
    let resolved = match candidate.canonicalize() {
        Ok(resolved) => resolved,
        Err(error) if error.kind() == ErrorKind::NotFound => {
            return Err(JobError::InputMissing(candidate));
        }
        Err(error) => {
            return Err(JobError::InputUnreadable {
                path: candidate,
                why: error.into(),
            });
        }
    };
    if !resolved.starts_with(&root) {
        return Err(JobError::InputOutsideRoot(candidate));
    }
    let unreadable = |why: Unreadable| JobError::InputUnreadable {
        path: resolved.clone(),
        why,
    };
    let metadata = resolved.metadata().map_err(|e| unreadable(e.into()))?;
    if !metadata.is_file() {
        return Err(unreadable(Unreadable::NotAFile));
    }
    if metadata.len() == 0 {
        return Err(unreadable(Unreadable::Empty));
    }
    let mut first_byte = [0_u8; 1];
    File::open(&resolved)
        .and_then(|mut file| file.read_exact(&mut first_byte))
        .map_err(|e| unreadable(e.into()))?;
    Ok(ValidInput {
        size_bytes: metadata.len(),
        path: resolved,
    })
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
    fn a_missing_media_root_is_the_workers_problem() {
        let error =
            resolve_input(Path::new("/nonexistent/media"), &input("a.mp4")).expect_err("no root");
        assert_eq!(error.retry(), crate::pipeline::Retry::Transient);
    }
}
