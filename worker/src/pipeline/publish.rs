//! Publish: make a verified output visible in one step.
//!
//! ffmpeg writes into a hidden staging directory beside the final one (same
//! filesystem), which is renamed into place only after verification, so a
//! player or a downstream sync never sees a half-written output. A record of
//! the job inside the output makes a redelivered job recognise its own work.
//!
//! Each attempt at a job stages in its own directory, named after the host
//! and process writing it: two attempts never write into one directory (a
//! worker that lost its broker may still be encoding when the redelivered
//! copy starts elsewhere), and a dead attempt's leftovers can be recognised
//! and removed.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hlsmux_protocol::{JobId, RelativePath, RungSummary, SCHEMA_VERSION};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::JobError;

/// The job record written into every published output.
pub const JOB_RECORD: &str = ".hlsmux-job.json";
/// Created in a published output once its `done` event is confirmed, so a
/// later delivery of the job neither redoes nor re-announces it.
pub const DONE_REPORTED: &str = ".hlsmux-done-reported";
const STAGING_SUFFIX: &str = ".partial";

/// Who writes a staging directory: a process on a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagingOwner {
    pub host: String,
    pub pid: u32,
}

impl StagingOwner {
    pub fn this_process(host: &str) -> Self {
        Self {
            host: host.to_owned(),
            pid: std::process::id(),
        }
    }

    /// Whether this owner is certainly gone: a process of this very host
    /// that no longer exists. Other hosts' processes cannot be seen.
    fn is_gone(&self, me: &StagingOwner) -> bool {
        if self.host != me.host || self.pid == me.pid {
            return false;
        }
        let Ok(pid) = i32::try_from(self.pid) else {
            return true;
        };
        matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        )
    }
}

/// What a published output says about the job that made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub schema: u32,
    pub job_id: JobId,
    /// The master playlist, relative to the output root.
    pub master_playlist: String,
    pub rungs: Vec<RungSummary>,
    pub media_seconds: f64,
    pub wall_seconds: f64,
    #[serde(default)]
    pub encoder: String,
    /// The AES-128 key file, relative to the output root, when encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<String>,
    /// The input, relative to the media root: the one file a tidy request
    /// for this job may move (absent in records of earlier versions, which
    /// then move nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<RelativePath>,
    /// A split job's chunks, and who encoded each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<hlsmux_protocol::ChunkSummary>,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
}

impl OutputRecord {
    pub fn new(
        job_id: JobId,
        master_playlist: String,
        rungs: Vec<RungSummary>,
        media_seconds: f64,
        wall_seconds: f64,
        encoder: String,
    ) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            job_id,
            master_playlist,
            rungs,
            media_seconds,
            wall_seconds,
            encoder,
            encryption_key: None,
            input: None,
            chunks: Vec::new(),
            finished_at: OffsetDateTime::now_utc(),
        }
    }
}

/// What is already at a job's final output path.
#[derive(Debug)]
pub enum ExistingOutput {
    Nothing,
    /// A complete output of this very job: a redelivery, nothing to redo.
    /// `reported` says whether its `done` event went out already.
    ThisJob {
        record: OutputRecord,
        reported: bool,
    },
    /// Something else, which must not be overwritten.
    Other {
        owner: String,
    },
}

/// Where one job's output is staged and where it is published.
#[derive(Clone, Debug)]
pub struct OutputLocation {
    job_id: JobId,
    relative: RelativePath,
    final_dir: PathBuf,
    staging_dir: PathBuf,
    /// Every attempt's staging directory name starts with this.
    staging_prefix: String,
    owner: StagingOwner,
}

impl OutputLocation {
    pub fn new(
        output_root: &Path,
        output: &RelativePath,
        job_id: JobId,
        owner: StagingOwner,
    ) -> Self {
        let final_dir = output.under(output_root);
        let parent = final_dir.parent().unwrap_or(output_root).to_owned();
        let staging_prefix = format!(".{}.{job_id}.", output.file_name());
        let staging_dir = parent.join(format!(
            "{staging_prefix}{}.{}{STAGING_SUFFIX}",
            owner.host, owner.pid
        ));
        Self {
            job_id,
            relative: output.clone(),
            final_dir,
            staging_dir,
            staging_prefix,
            owner,
        }
    }

    pub fn final_dir(&self) -> &Path {
        &self.final_dir
    }

    pub fn staging_dir(&self) -> &Path {
        &self.staging_dir
    }

    /// A path inside the output, relative to the output root.
    pub fn relative(&self, inside: &str) -> String {
        format!("{}/{inside}", self.relative)
    }

    pub fn relative_dir(&self) -> &str {
        self.relative.as_str()
    }

    /// The output's name under the output root.
    pub fn output(&self) -> &RelativePath {
        &self.relative
    }

    /// Blocking.
    pub fn existing(&self) -> Result<ExistingOutput, JobError> {
        match std::fs::symlink_metadata(&self.final_dir) {
            Err(error) if error.kind() == ErrorKind::NotFound => {
                return Ok(ExistingOutput::Nothing);
            }
            Err(error) => return Err(self.unwritable(&self.final_dir, error)),
            Ok(_) => {}
        }
        let record = std::fs::read(self.final_dir.join(JOB_RECORD))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<OutputRecord>(&bytes).ok());
        Ok(match record {
            Some(record) if record.job_id == self.job_id => ExistingOutput::ThisJob {
                record,
                reported: self.final_dir.join(DONE_REPORTED).exists(),
            },
            Some(record) => ExistingOutput::Other {
                owner: format!("made by job {}", record.job_id),
            },
            None => ExistingOutput::Other {
                owner: "not made by hlsmux".into(),
            },
        })
    }

    /// Blocking. Creates an empty staging directory for this attempt, and
    /// removes what earlier attempts at the job left: those of dead
    /// processes on this host, and those unchanged for `stale_after`.
    pub fn prepare_staging(&self, stale_after: Duration) -> Result<(), JobError> {
        self.discard_staging();
        for (path, owner) in self.other_attempts() {
            let abandoned = owner.is_gone(&self.owner)
                || newest_change(&path)
                    .and_then(|at| at.elapsed().ok())
                    .is_none_or(|age| age >= stale_after);
            if abandoned {
                tracing::info!(path = %path.display(), host = %owner.host, pid = owner.pid, "removing an abandoned attempt's staging directory");
                remove_dir(&path);
            } else {
                tracing::warn!(host = %owner.host, pid = owner.pid, "another attempt at this job is still writing; the first to finish publishes");
            }
        }
        std::fs::create_dir_all(&self.staging_dir)
            .map_err(|e| self.unwritable(&self.staging_dir, e))
    }

    /// Other attempts' staging directories for this job, with their owners.
    fn other_attempts(&self) -> Vec<(PathBuf, StagingOwner)> {
        let Some(parent) = self.staging_dir.parent() else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(parent) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let owner = name
                    .strip_prefix(&self.staging_prefix)?
                    .strip_suffix(STAGING_SUFFIX)?;
                let (host, pid) = owner.rsplit_once('.')?;
                let owner = StagingOwner {
                    host: host.to_owned(),
                    pid: pid.parse().ok()?,
                };
                (entry.path() != self.staging_dir).then(|| (entry.path(), owner))
            })
            .collect()
    }

    /// Blocking. Records that the job's `done` event is confirmed.
    pub fn mark_reported(&self) -> Result<(), JobError> {
        let marker = self.final_dir.join(DONE_REPORTED);
        std::fs::File::create(&marker)
            .map(drop)
            .map_err(|e| self.unwritable(&marker, e))
    }

    /// Blocking. Writes the job record into the staging directory and renames
    /// it into place. Returns the record that stands at the final path: ours,
    /// or that of an earlier delivery of this job that got there first.
    pub fn publish(&self, record: OutputRecord) -> Result<OutputRecord, JobError> {
        let record_path = self.staging_dir.join(JOB_RECORD);
        let bytes = serde_json::to_vec_pretty(&record)
            .map_err(|e| self.unwritable(&record_path, std::io::Error::other(e)))?;
        std::fs::File::create(&record_path)
            .and_then(|mut file| {
                file.write_all(&bytes)?;
                file.sync_all()
            })
            .map_err(|e| self.unwritable(&record_path, e))?;
        match std::fs::rename(&self.staging_dir, &self.final_dir) {
            Ok(()) => Ok(record),
            Err(rename_error) => match self.existing()? {
                ExistingOutput::ThisJob {
                    record: earlier, ..
                } => {
                    self.discard_staging();
                    Ok(earlier)
                }
                ExistingOutput::Other { owner } => {
                    self.discard_staging();
                    Err(JobError::OutputExists {
                        path: self.final_dir.clone(),
                        owner,
                    })
                }
                ExistingOutput::Nothing => Err(self.unwritable(&self.final_dir, rename_error)),
            },
        }
    }

    /// Blocking. Removes this attempt's staging directory if there is one.
    pub fn discard_staging(&self) {
        remove_dir(&self.staging_dir);
    }

    fn unwritable(&self, path: &Path, error: std::io::Error) -> JobError {
        JobError::unwritable(path, error)
    }
}

/// Blocking. What stands at `output` under `output_root`, for a reader that
/// writes nothing.
pub fn existing_output(
    output_root: &Path,
    output: &RelativePath,
    job_id: JobId,
) -> Result<ExistingOutput, JobError> {
    OutputLocation::new(output_root, output, job_id, StagingOwner::this_process("")).existing()
}

fn remove_dir(path: &Path) {
    if let Err(error) = std::fs::remove_dir_all(path)
        && error.kind() != ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "could not remove staging directory");
    }
}

/// The latest modification time of `dir` and everything in it (segments
/// sit one level down, in each rung's directory).
fn newest_change(dir: &Path) -> Option<SystemTime> {
    let mut newest = std::fs::metadata(dir).and_then(|m| m.modified()).ok()?;
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if let Ok(modified) = metadata.modified() {
                newest = newest.max(modified);
            }
            if metadata.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Some(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRESH: Duration = Duration::from_secs(600);

    fn me() -> StagingOwner {
        StagingOwner::this_process("pi1.lan")
    }

    fn location(root: &Path, job: JobId) -> OutputLocation {
        location_for(root, job, me())
    }

    fn location_for(root: &Path, job: JobId, owner: StagingOwner) -> OutputLocation {
        OutputLocation::new(
            root,
            &RelativePath::parse("shows/a.mp4.hls").expect("valid"),
            job,
            owner,
        )
    }

    fn record(job: JobId) -> OutputRecord {
        OutputRecord::new(
            job,
            "shows/a.mp4.hls/master.m3u8".into(),
            Vec::new(),
            3.0,
            1.0,
            "libx264".into(),
        )
    }

    #[test]
    fn staging_is_a_hidden_sibling_of_the_final_directory() {
        let job = JobId::generate();
        let location = location(Path::new("/out"), job);
        assert_eq!(location.final_dir(), Path::new("/out/shows/a.mp4.hls"));
        assert_eq!(
            location.staging_dir(),
            Path::new(&format!(
                "/out/shows/.a.mp4.hls.{job}.pi1.lan.{}.partial",
                std::process::id()
            ))
        );
    }

    #[test]
    fn publishing_moves_staging_into_place_with_its_record() {
        let root = tempfile::tempdir().expect("tempdir");
        let job = JobId::generate();
        let location = location(root.path(), job);
        location.prepare_staging(FRESH).expect("staging");
        std::fs::write(location.staging_dir().join("master.m3u8"), "#EXTM3U\n").expect("write");
        location.publish(record(job)).expect("publishes");
        assert!(!location.staging_dir().exists());
        assert!(location.final_dir().join("master.m3u8").exists());
        assert!(matches!(
            location.existing(),
            Ok(ExistingOutput::ThisJob { record, reported: false }) if record.job_id == job
        ));
        location.mark_reported().expect("marks");
        assert!(matches!(
            location.existing(),
            Ok(ExistingOutput::ThisJob { reported: true, .. })
        ));
    }

    #[test]
    fn a_second_delivery_of_the_same_job_keeps_the_first_output() {
        let root = tempfile::tempdir().expect("tempdir");
        let job = JobId::generate();
        let location = location(root.path(), job);
        location.prepare_staging(FRESH).expect("staging");
        location.publish(record(job)).expect("first");
        location.prepare_staging(FRESH).expect("staging again");
        let kept = location
            .publish(record(job))
            .expect("second is not an error");
        assert_eq!(kept.job_id, job);
        assert!(!location.staging_dir().exists());
    }

    #[test]
    fn another_jobs_output_is_never_replaced() {
        let root = tempfile::tempdir().expect("tempdir");
        let first = location(root.path(), JobId::generate());
        first.prepare_staging(FRESH).expect("staging");
        first.publish(record(first.job_id)).expect("first");
        let second_job = JobId::generate();
        let second = location(root.path(), second_job);
        assert!(matches!(
            second.existing(),
            Ok(ExistingOutput::Other { .. })
        ));
        second.prepare_staging(FRESH).expect("staging");
        let error = second.publish(record(second_job)).expect_err("occupied");
        assert!(matches!(error, JobError::OutputExists { .. }));
        assert!(!second.staging_dir().exists());
    }

    #[test]
    fn leftover_staging_is_cleared_before_a_new_attempt() {
        let root = tempfile::tempdir().expect("tempdir");
        let location = location(root.path(), JobId::generate());
        location.prepare_staging(FRESH).expect("staging");
        std::fs::write(location.staging_dir().join("segment_00000.ts"), b"half").expect("write");
        location.prepare_staging(FRESH).expect("again");
        assert_eq!(
            std::fs::read_dir(location.staging_dir())
                .expect("list")
                .count(),
            0
        );
    }

    #[test]
    fn a_dead_local_attempts_staging_is_removed_and_a_live_ones_kept() {
        let root = tempfile::tempdir().expect("tempdir");
        let job = JobId::generate();
        // A process that has exited: its pid is free.
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let dead_pid = child.id();
        child.wait().expect("wait");
        let dead = location_for(
            root.path(),
            job,
            StagingOwner {
                host: "pi1.lan".into(),
                pid: dead_pid,
            },
        );
        let elsewhere = location_for(
            root.path(),
            job,
            StagingOwner {
                host: "pi2.lan".into(),
                pid: 7,
            },
        );
        for other in [&dead, &elsewhere] {
            other.prepare_staging(FRESH).expect("staging");
            std::fs::write(other.staging_dir().join("segment_00000.ts"), b"half").expect("write");
        }
        let mine = location(root.path(), job);
        mine.prepare_staging(FRESH).expect("staging");
        assert!(
            !dead.staging_dir().exists(),
            "a dead process's leftovers go"
        );
        assert!(
            elsewhere.staging_dir().exists(),
            "another host's recent work stays"
        );
        mine.prepare_staging(Duration::ZERO).expect("staging");
        assert!(
            !elsewhere.staging_dir().exists(),
            "stale work from elsewhere goes"
        );
        assert!(mine.staging_dir().exists());
    }
}
