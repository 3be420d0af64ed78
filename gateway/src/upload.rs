//! A streamed upload into the media root's `incoming/`, the way `hlsmux
//! submit` copies a file from outside it: written under a hidden
//! temporary name and given its visible name only once complete (so no
//! worker reads half a file), never replacing a file already there.
//! Memory stays bounded whatever the size: each body frame goes to disk
//! as it arrives. The size is capped, and so is slowness: a client that
//! trickles bytes (slow loris) is cut off rather than holding a
//! connection and a file open for ever.

use std::path::Path;
use std::time::Duration;

use hlsmux_protocol::{JobId, RelativePath};
use hlsmux_submitter::input::{INCOMING, partial_name, publish_copy};
use http_body_util::BodyExt;
use hyper::StatusCode;
use hyper::body::Incoming;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::api_error::ApiError;

/// What an upload may cost the gateway.
#[derive(Clone, Copy, Debug)]
pub struct UploadLimits {
    /// The largest file accepted.
    pub max_bytes: u64,
    /// The upload must send at least `min_bytes_per_second` on average
    /// over every window of this length, or it is refused as too slow.
    pub window: Duration,
    pub min_bytes_per_second: u64,
}

impl Default for UploadLimits {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024 * 1024 * 1024,
            window: Duration::from_secs(30),
            // 1 Mbit/s: far below any LAN, far above a slow loris.
            min_bytes_per_second: 128 * 1024,
        }
    }
}

/// Checks the name an upload asks for: one plain file name, not hidden.
pub fn file_name(name: &str) -> Result<&str, ApiError> {
    let bad = |why: &str| ApiError::bad_request("bad_filename", format!("filename {name:?} {why}"));
    if name.is_empty() {
        return Err(bad("is empty: send ?filename=NAME.mp4"));
    }
    if name.len() > 200 {
        return Err(bad("is longer than 200 bytes"));
    }
    if name.contains(['/', '\\']) || name == ".." {
        return Err(bad("must be a file name, not a path"));
    }
    if name.starts_with('.') {
        return Err(bad(
            "must not start with a dot (hidden names are the uploads in progress)",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("has control characters"));
    }
    Ok(name)
}

/// Receives `body` into `incoming/` as `file_name` (or the name with the
/// job ID's start added, when taken); returns its path under the media
/// root. Nothing is left behind when it is refused.
pub async fn receive(
    body: Incoming,
    declared_length: Option<u64>,
    media_root: &Path,
    file_name: &str,
    job_id: JobId,
    limits: UploadLimits,
) -> Result<RelativePath, ApiError> {
    if declared_length.is_some_and(|length| length > limits.max_bytes) {
        return Err(too_large(limits));
    }
    let root = media_root
        .canonicalize()
        .map_err(|error| ApiError::root_unavailable("media", media_root, &error))?;
    let incoming = root.join(INCOMING);
    tokio::fs::create_dir_all(&incoming)
        .await
        .map_err(|error| storage_failed(&incoming, &error))?;
    let partial = incoming.join(partial_name(file_name, job_id));
    let written = write(body, &partial, limits).await;
    let placed = match written {
        Ok(()) => {
            let (from, into, name) = (partial.clone(), incoming.clone(), file_name.to_owned());
            tokio::task::spawn_blocking(move || publish_copy(&from, &into, &name, job_id))
                .await
                .map_err(|error| storage_failed(&incoming, &std::io::Error::other(error)))
                .and_then(|placed| placed.map_err(|error| storage_failed(&incoming, &error)))
        }
        Err(error) => Err(error),
    };
    let _ = tokio::fs::remove_file(&partial).await;
    let placed = placed?;
    let inside = placed.strip_prefix(&root).unwrap_or(&placed);
    RelativePath::from_path(inside)
        .map_err(|error| ApiError::bad_request("bad_filename", error.to_string()))
}

async fn write(mut body: Incoming, partial: &Path, limits: UploadLimits) -> Result<(), ApiError> {
    let mut file = tokio::fs::File::create_new(partial)
        .await
        .map_err(|error| storage_failed(partial, &error))?;
    let mut total: u64 = 0;
    let mut window_start = Instant::now();
    let mut in_window: u64 = 0;
    loop {
        let window_end = window_start + limits.window;
        let frame = match tokio::time::timeout_at(window_end, body.frame()).await {
            Err(_window_over) => None,
            Ok(None) => break,
            Ok(Some(Err(error))) => {
                return Err(ApiError::bad_request(
                    "upload_interrupted",
                    format!("the upload broke off after {total} bytes: {error}"),
                ));
            }
            Ok(Some(Ok(frame))) => Some(frame),
        };
        if let Some(data) = frame.and_then(|frame| frame.into_data().ok()) {
            total += data.len() as u64;
            if total > limits.max_bytes {
                return Err(too_large(limits));
            }
            in_window += data.len() as u64;
            file.write_all(&data)
                .await
                .map_err(|error| storage_failed(partial, &error))?;
        }
        if Instant::now() >= window_end {
            let needed = limits.min_bytes_per_second * limits.window.as_secs().max(1);
            if in_window < needed {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "upload_too_slow",
                    format!(
                        "the upload sent {in_window} bytes in {} s; it must send at least {} \
                         bytes a second",
                        limits.window.as_secs(),
                        limits.min_bytes_per_second
                    ),
                ));
            }
            window_start = Instant::now();
            in_window = 0;
        }
    }
    if total == 0 {
        return Err(ApiError::bad_request(
            "input_unusable",
            "the upload is empty (0 bytes)",
        ));
    }
    file.sync_all()
        .await
        .map_err(|error| storage_failed(partial, &error))
}

/// How old an unfinished upload (or `hlsmux submit` copy) must be before
/// it counts as abandoned: a crash or a power cut left it, since nothing
/// uploads for a day.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Blocking. Removes the temporary files in `incoming/` that no upload or
/// copy has written to for `older_than`; returns how many. Complete files
/// (visible names) are never touched.
pub fn sweep_abandoned(media_root: &Path, older_than: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(media_root.join(INCOMING)) else {
        return 0;
    };
    let now = std::time::SystemTime::now();
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with('.') && name.ends_with(".part")) {
            continue;
        }
        let stale = entry
            .metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .and_then(|meta| meta.modified().ok())
            .and_then(|modified| now.duration_since(modified).ok())
            .is_some_and(|age| age >= older_than);
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn too_large(limits: UploadLimits) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
        format!("an upload may be at most {} bytes", limits.max_bytes),
    )
}

fn storage_failed(path: &Path, error: &std::io::Error) -> ApiError {
    ApiError::new(
        StatusCode::INSUFFICIENT_STORAGE,
        "upload_not_stored",
        format!("cannot write the upload at {}: {error}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::{file_name, sweep_abandoned};
    use std::time::{Duration, SystemTime};

    #[test]
    fn only_temporary_files_untouched_for_the_age_are_swept() {
        let root = tempfile::tempdir().expect("tempdir");
        let incoming = root.path().join("incoming");
        std::fs::create_dir(&incoming).expect("incoming");
        let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
        for (name, old) in [
            (".talk.mp4.0b9c.part", true),
            (".fresh.mp4.1c2d.part", false),
            ("finished.mp4", true),
            (".hidden-but-not-partial", true),
        ] {
            let file = std::fs::File::create(incoming.join(name)).expect(name);
            if old {
                file.set_modified(two_days_ago).expect("mtime");
            }
        }
        assert_eq!(
            sweep_abandoned(root.path(), Duration::from_secs(24 * 3600)),
            1
        );
        let mut left: Vec<String> = std::fs::read_dir(&incoming)
            .expect("read")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".fresh.mp4.1c2d.part",
                ".hidden-but-not-partial",
                "finished.mp4"
            ]
        );
    }

    #[test]
    fn an_upload_is_named_by_one_plain_file_name() {
        assert_eq!(file_name("talk #1.mp4").ok(), Some("talk #1.mp4"));
        for bad in [
            "",
            "../canary.mp4",
            "a/b.mp4",
            "..",
            ".hidden.mp4",
            "a\\b.mp4",
            "line\nbreak.mp4",
        ] {
            let error = file_name(bad).expect_err(bad);
            assert_eq!(error.code, "bad_filename", "{bad:?}");
        }
    }
}
