//! Where a split job's parts wait on the shared output volume until the
//! coordinator stitches them: `.hlsmux/chunks/<job>/` under the output
//! root, one directory per finished part (`chunk-00003`, `audio`). A part
//! is encoded into an attempt directory of its own (`chunk-00003.attempt-
//! <host>-<pid>-<nanos>`) and renamed into place whole, so a part that is
//! there is finished, a worker killed mid-chunk leaves only an attempt
//! nobody reads, and two workers that encode the same chunk cannot mix
//! their segments: the first rename wins. Kept per job ID, not per
//! attempt of the job, so a coordinator that takes over a job reuses every
//! part already finished. All of it is blocking filesystem work.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hlsmux_protocol::{FailureReason, JobId, RESERVED_OUTPUT_DIR};
use serde::{Deserialize, Serialize};

use crate::pipeline::JobError;

const CHUNKS_DIR: &str = "chunks";
const RECORD_FILE: &str = "part.json";
const FAILED_SUFFIX: &str = ".failed.json";
const ATTEMPT_MARK: &str = ".attempt-";

/// Who encoded a finished part, and how long it took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartRecord {
    /// Host name and process ID.
    pub worker: String,
    pub wall_seconds: f64,
}

/// Why a part failed for the input's reason: the job fails with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartFailure {
    pub reason: FailureReason,
    pub message: String,
}

/// One split job's parts.
#[derive(Clone, Debug)]
pub struct ChunkStore {
    root: PathBuf,
}

impl ChunkStore {
    pub fn new(output_root: &Path, job: JobId) -> Self {
        Self {
            root: output_root
                .join(RESERVED_OUTPUT_DIR)
                .join(CHUNKS_DIR)
                .join(job.to_string()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The name of chunk `index`'s part.
    pub fn chunk_part(index: u32) -> String {
        format!("chunk-{index:05}")
    }

    /// The finished part `name`'s directory.
    pub fn finished(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Creates the job's store (the coordinator's, once per job).
    pub fn open(&self) -> Result<(), JobError> {
        std::fs::create_dir_all(&self.root).map_err(|error| JobError::unwritable(&self.root, error))
    }

    /// Whether part `name` is finished, with its record.
    pub fn record(&self, name: &str) -> Option<PartRecord> {
        let bytes = std::fs::read(self.finished(name).join(RECORD_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// A fresh attempt directory for part `name`. `None` when the job's
    /// store is gone: its coordinator finished, failed or was cancelled,
    /// and the part is wanted no more.
    pub fn begin(&self, name: &str, worker: &str) -> Result<Option<PathBuf>, JobError> {
        if !self.root.is_dir() {
            return Ok(None);
        }
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let attempt = self.root.join(format!(
            "{name}{ATTEMPT_MARK}{worker}-{}-{nanos}",
            std::process::id()
        ));
        match std::fs::create_dir(&attempt) {
            Ok(()) => Ok(Some(attempt)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(JobError::unwritable(&attempt, error)),
        }
    }

    /// Puts a finished attempt in place as part `name`. False when another
    /// attempt got there first (this one is removed).
    pub fn finish(
        &self,
        name: &str,
        attempt: &Path,
        record: &PartRecord,
    ) -> Result<bool, JobError> {
        let record_path = attempt.join(RECORD_FILE);
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        std::fs::write(&record_path, bytes)
            .map_err(|error| JobError::unwritable(&record_path, error))?;
        let finished = self.finished(name);
        if finished.exists() {
            abandon(attempt);
            return Ok(false);
        }
        match std::fs::rename(attempt, &finished) {
            Ok(()) => Ok(true),
            // Another attempt's rename came first (a non-empty target).
            Err(_) if finished.exists() => {
                abandon(attempt);
                Ok(false)
            }
            Err(error) => Err(JobError::unwritable(&finished, error)),
        }
    }

    /// Records that part `name` failed for the input's reason.
    pub fn fail(&self, name: &str, failure: &PartFailure) -> Result<(), JobError> {
        let path = self.root.join(format!("{name}{FAILED_SUFFIX}"));
        let bytes = serde_json::to_vec(failure).unwrap_or_default();
        std::fs::write(&path, bytes).map_err(|error| JobError::unwritable(&path, error))
    }

    /// The failure recorded for part `name`, if any.
    pub fn failure(&self, name: &str) -> Option<PartFailure> {
        let bytes = std::fs::read(self.root.join(format!("{name}{FAILED_SUFFIX}"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Whether some worker is encoding part `name`: an attempt directory
    /// of it, or a file in one, changed within `within` (ffmpeg writes a
    /// segment every few seconds of output). A killed worker's attempt
    /// goes quiet.
    pub fn in_progress(&self, name: &str, within: Duration) -> bool {
        let prefix = format!("{name}{ATTEMPT_MARK}");
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return false;
        };
        let now = SystemTime::now();
        let recent = |path: &Path| {
            std::fs::metadata(path)
                .and_then(|meta| meta.modified())
                .is_ok_and(|at| now.duration_since(at).unwrap_or_default() < within)
        };
        entries.flatten().any(|entry| {
            let path = entry.path();
            entry.file_name().to_string_lossy().starts_with(&prefix)
                && (recent(&path)
                    || std::fs::read_dir(&path)
                        .map(|files| files.flatten().any(|file| recent(&file.path())))
                        .unwrap_or(false))
        })
    }

    /// Removes the whole store: the job is published, failed or cancelled.
    pub fn remove(&self) {
        if let Err(error) = std::fs::remove_dir_all(&self.root)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(%error, store = %self.root.display(), "could not remove a split job's parts");
        }
    }
}

/// Removes an attempt nobody will read (best effort).
pub fn abandon(attempt: &Path) {
    let _ = std::fs::remove_dir_all(attempt);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(worker: &str) -> PartRecord {
        PartRecord {
            worker: worker.into(),
            wall_seconds: 1.0,
        }
    }

    #[test]
    fn the_first_finished_attempt_wins_and_the_other_leaves_nothing() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = ChunkStore::new(root.path(), JobId::generate());
        store.open().expect("open");
        let name = ChunkStore::chunk_part(3);
        let first = store.begin(&name, "pi1").expect("begin").expect("store");
        let second = store.begin(&name, "pi2").expect("begin").expect("store");
        std::fs::write(first.join("a.ts"), b"first").expect("write");
        std::fs::write(second.join("a.ts"), b"second").expect("write");
        assert!(store.in_progress(&name, Duration::from_secs(60)));
        assert!(
            store
                .finish(&name, &second, &record("pi2"))
                .expect("finish")
        );
        assert!(!store.finish(&name, &first, &record("pi1")).expect("finish"));
        assert_eq!(store.record(&name), Some(record("pi2")));
        let kept = std::fs::read(store.finished(&name).join("a.ts")).expect("read");
        assert_eq!(kept, b"second");
        assert!(!first.exists(), "the losing attempt is removed");
        assert!(!store.in_progress(&name, Duration::from_secs(60)));
    }

    #[test]
    fn a_part_of_a_job_whose_store_is_gone_is_not_begun() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = ChunkStore::new(root.path(), JobId::generate());
        assert!(store.begin("chunk-00000", "pi1").expect("begin").is_none());
    }

    #[test]
    fn a_quiet_attempt_is_not_in_progress() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = ChunkStore::new(root.path(), JobId::generate());
        store.open().expect("open");
        store.begin("chunk-00001", "pi1").expect("begin");
        assert!(!store.in_progress("chunk-00001", Duration::ZERO));
        assert!(!store.in_progress("chunk-00002", Duration::from_secs(60)));
    }
}
