//! Moves a finished job's original input out of the media root into
//! `originals/` (same relative path), once its delay has passed, so caches
//! that still point at the original can expire first, as the seed did.
//!
//! A tidy request is a claim, not an order: it moves only the one regular
//! file that the job's own output record names as its input, found beneath
//! the media root without following links out of it, and only once that
//! output is complete. A request that can never succeed is dropped, not
//! retried for ever.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hlsmux_amqp::delivery_count;
use hlsmux_protocol::TidyRequest;
use lapin::message::Delivery;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Settings;
use crate::job::outcome::{Disposition, Ending};
use crate::pipeline::publish::{ExistingOutput, existing_output};

/// Folder under the media root that receives tidied originals.
pub const ORIGINALS: &str = "originals";

/// Deliveries of one tidy request before it is given up: a move that has
/// failed this often for a passing reason is not going to pass.
const TIDY_ATTEMPTS: u64 = 5;

#[derive(Debug, PartialEq, Eq)]
pub enum TidyOutcome {
    Moved(PathBuf),
    OriginalMissing,
    OutputIncomplete,
    /// The request names something other than the job's recorded input,
    /// or something that is not a regular file beneath the media root.
    Refused(&'static str),
}

pub struct Tidier {
    settings: Arc<Settings>,
}

impl Tidier {
    pub fn new(settings: Arc<Settings>) -> Self {
        Self { settings }
    }

    /// Handles one due tidy request and says how to settle it.
    pub async fn handle(&self, delivery: &Delivery, shutdown: &CancellationToken) -> Disposition {
        let request: TidyRequest = match serde_json::from_slice(&delivery.data) {
            Ok(request) => request,
            Err(error) => {
                warn!(%error, "dead-lettering a tidy request that does not parse");
                return Ending::TidyUnreadable.disposition();
            }
        };
        let (media_root, output_root) = (
            self.settings.paths.media_root.clone(),
            self.settings.paths.output_root.clone(),
        );
        let job = request.clone();
        let outcome =
            tokio::task::spawn_blocking(move || tidy(&media_root, &output_root, &job)).await;
        match outcome {
            Ok(Ok(TidyOutcome::Moved(to))) => {
                info!(job_id = %request.job_id, input = %request.input, to = %to.display(), "original moved");
                Ending::TidyFinished.disposition()
            }
            Ok(Ok(TidyOutcome::OriginalMissing)) => {
                info!(job_id = %request.job_id, input = %request.input, "original already gone; nothing to tidy");
                Ending::TidyFinished.disposition()
            }
            Ok(Ok(TidyOutcome::OutputIncomplete)) => {
                warn!(job_id = %request.job_id, output = %request.output, "output not complete: original left in place");
                Ending::TidyFinished.disposition()
            }
            Ok(Ok(TidyOutcome::Refused(why))) => {
                warn!(job_id = %request.job_id, input = %request.input, why, "tidy request refused: nothing moved");
                Ending::TidyFinished.disposition()
            }
            Ok(Err(error)) if can_never_succeed(&error) => {
                warn!(job_id = %request.job_id, %error, "cannot move the original, nor ever will: dropping the request");
                Ending::TidyImpossible.disposition()
            }
            Ok(Err(error)) if delivery_count(&delivery.properties) + 1 >= TIDY_ATTEMPTS => {
                warn!(job_id = %request.job_id, %error, attempts = TIDY_ATTEMPTS, "cannot move the original; giving up");
                Ending::TidyImpossible.disposition()
            }
            Ok(Err(error)) => {
                warn!(job_id = %request.job_id, %error, "cannot move the original yet; retrying later");
                tokio::select! {
                    () = tokio::time::sleep(self.settings.service.requeue_delay) => {}
                    () = shutdown.cancelled() => {}
                }
                Ending::TidyBlocked.disposition()
            }
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }
}

/// Whether a failed move is the request's or the tree's fault, which no
/// retry fixes (an error of the storage itself may pass).
fn can_never_succeed(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::AlreadyExists
            | ErrorKind::NotADirectory
            | ErrorKind::IsADirectory
            | ErrorKind::InvalidInput
            | ErrorKind::InvalidFilename
            | ErrorKind::CrossesDevices
            | ErrorKind::PermissionDenied
    )
}

/// Blocking. Moves the input into `originals/` if its output is complete
/// and records it as this job's input.
pub fn tidy(
    media_root: &Path,
    output_root: &Path,
    request: &TidyRequest,
) -> std::io::Result<TidyOutcome> {
    let record = match existing_output(output_root, &request.output, request.job_id) {
        Ok(ExistingOutput::ThisJob { record, .. }) => record,
        _ => return Ok(TidyOutcome::OutputIncomplete),
    };
    if record.input.as_ref() != Some(&request.input) {
        return Ok(TidyOutcome::Refused(
            "not the input this job's output records",
        ));
    }
    // The directory it is in, resolved: it must lie beneath the media root
    // (a linked directory must not lead out of it)...
    let root = media_root.canonicalize()?;
    let named = request.input.under(media_root);
    let parent = match named.parent().map(Path::canonicalize) {
        Some(Ok(parent)) => parent,
        Some(Err(error)) if error.kind() == ErrorKind::NotFound => {
            return Ok(TidyOutcome::OriginalMissing);
        }
        Some(Err(error)) => return Err(error),
        None => return Ok(TidyOutcome::Refused("no parent directory")),
    };
    if !parent.starts_with(&root) || parent.starts_with(root.join(ORIGINALS)) {
        return Ok(TidyOutcome::Refused("outside the media root"));
    }
    // ...and it must itself be a regular file, not a link or a directory.
    let source = parent.join(request.input.file_name());
    match std::fs::symlink_metadata(&source) {
        Err(error) if error.kind() == ErrorKind::NotFound => {
            return Ok(TidyOutcome::OriginalMissing);
        }
        Err(error) => return Err(error),
        Ok(metadata) if !metadata.file_type().is_file() => {
            return Ok(TidyOutcome::Refused("not a regular file"));
        }
        Ok(_) => {}
    }
    let mut target = request.input.under(&root.join(ORIGINALS));
    if target.exists() {
        // Never replace an earlier original of the same name.
        let name = format!("{}.{}", request.input.file_name(), request.job_id);
        target.set_file_name(name);
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(&source, &target)?;
    Ok(TidyOutcome::Moved(target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::publish::{OutputLocation, OutputRecord, StagingOwner};
    use hlsmux_protocol::{JobId, RelativePath};

    fn request(job: JobId) -> TidyRequest {
        TidyRequest::new(
            job,
            RelativePath::parse("incoming/clip.mp4").expect("valid"),
            RelativePath::parse("incoming/clip.mp4.hls").expect("valid"),
        )
    }

    fn publish_output(output_root: &Path, request: &TidyRequest) {
        let location = OutputLocation::new(
            output_root,
            &request.output,
            request.job_id,
            StagingOwner::this_process("test"),
        );
        location
            .prepare_staging(std::time::Duration::from_secs(600))
            .expect("staging");
        let mut record = OutputRecord::new(
            request.job_id,
            "m".into(),
            Vec::new(),
            1.0,
            1.0,
            "libx264".into(),
        );
        record.input = Some(request.input.clone());
        location.publish(record).expect("publish");
    }

    #[test]
    fn moves_the_original_of_a_complete_output_keeping_its_path() {
        let (media, output) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let request = request(JobId::generate());
        std::fs::create_dir_all(media.path().join("incoming")).expect("mkdir");
        std::fs::write(media.path().join("incoming/clip.mp4"), b"video").expect("write");
        publish_output(output.path(), &request);
        let outcome = tidy(media.path(), output.path(), &request).expect("tidies");
        let expected = media.path().join("originals/incoming/clip.mp4");
        assert_eq!(outcome, TidyOutcome::Moved(expected.clone()));
        assert!(!media.path().join("incoming/clip.mp4").exists());
        assert_eq!(std::fs::read(expected).expect("moved"), b"video");
    }

    #[test]
    fn never_moves_an_input_whose_output_is_not_complete() {
        let (media, output) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let request = request(JobId::generate());
        std::fs::create_dir_all(media.path().join("incoming")).expect("mkdir");
        std::fs::write(media.path().join("incoming/clip.mp4"), b"video").expect("write");
        assert_eq!(
            tidy(media.path(), output.path(), &request).expect("ok"),
            TidyOutcome::OutputIncomplete
        );
        // Another job's output does not count either.
        publish_output(
            output.path(),
            &TidyRequest {
                job_id: JobId::generate(),
                ..request.clone()
            },
        );
        assert_eq!(
            tidy(media.path(), output.path(), &request).expect("ok"),
            TidyOutcome::OutputIncomplete
        );
        assert!(media.path().join("incoming/clip.mp4").exists());
    }

    #[test]
    fn a_missing_original_is_not_an_error_and_earlier_originals_are_kept() {
        let (media, output) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let request = request(JobId::generate());
        publish_output(output.path(), &request);
        assert_eq!(
            tidy(media.path(), output.path(), &request).expect("ok"),
            TidyOutcome::OriginalMissing
        );

        std::fs::create_dir_all(media.path().join("originals/incoming")).expect("mkdir");
        std::fs::write(media.path().join("originals/incoming/clip.mp4"), b"older").expect("write");
        std::fs::create_dir_all(media.path().join("incoming")).expect("mkdir");
        std::fs::write(media.path().join("incoming/clip.mp4"), b"newer").expect("write");
        let TidyOutcome::Moved(to) = tidy(media.path(), output.path(), &request).expect("ok")
        else {
            panic!("moved");
        };
        assert_ne!(to, media.path().join("originals/incoming/clip.mp4"));
        assert_eq!(
            std::fs::read(media.path().join("originals/incoming/clip.mp4")).expect("kept"),
            b"older"
        );
    }
}
