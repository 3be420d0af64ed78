//! Room on the output volume for a job: refused before the encode when
//! its estimated output does not fit, and recognised after it when the
//! volume filled up under it. Either way the job is requeued as
//! `storage_full` and the worker waits for the room (see the storage
//! monitor's `want_room`).

use super::JobRunner;
use crate::blocking;
use crate::health::storage::fault::StorageFault;
use crate::health::storage::free_bytes;
use crate::health::storage::problem::bytes;
use crate::pipeline::JobError;

/// Less room than this on the output volume after a failed encode means
/// the volume filled up (a segment no longer fitted).
const FULL_BELOW: u64 = 1024 * 1024;

impl JobRunner {
    /// Requeues the job (`storage_full`) when the output root has less room
    /// than its estimated output, and keeps the worker from taking jobs
    /// until there is that much.
    pub(super) async fn check_room(&self, estimate: u64) -> Result<(), JobError> {
        let root = &self.settings.paths.output_root;
        let Some(free) = self.free_bytes(root).await else {
            return Ok(());
        };
        if free >= estimate {
            return Ok(());
        }
        self.storage.want_room(root, estimate);
        Err(JobError::Storage {
            fault: StorageFault::Full,
            path: root.clone(),
            cause: format!(
                "{} free, the job's output needs about {}",
                bytes(free),
                bytes(estimate)
            ),
        })
    }

    /// `error`, or the output volume being full if that is what it was:
    /// ffmpeg's HLS muxer ends with success, saying nothing, after failing
    /// to write segments into a full volume, and the output then fails
    /// verification. Measured before the staging directory goes.
    pub(super) async fn full_volume_or(&self, error: JobError, estimate: u64) -> JobError {
        let root = &self.settings.paths.output_root;
        match self.free_bytes(root).await {
            Some(free) if free < FULL_BELOW.max(estimate / 50) => JobError::Storage {
                fault: StorageFault::Full,
                path: root.clone(),
                cause: format!(
                    "No space left on device: {} free as the encode ended; {error}",
                    bytes(free)
                ),
            },
            _ => error,
        }
    }

    /// The free bytes at `path`, or `None` when they cannot be measured.
    pub(super) async fn free_bytes(&self, path: &std::path::Path) -> Option<u64> {
        let path = path.to_owned();
        blocking::run(move || free_bytes(&path)).await.ok()
    }
}
