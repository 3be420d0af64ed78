//! Publish: make a verified output visible in one step.
//!
//! ffmpeg writes into a hidden staging directory beside the final one (same
//! filesystem), which is renamed into place only after verification, so a
//! player or a downstream sync never sees a half-written output. A record of
//! the job inside the output makes a redelivered job recognise its own work.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use hlsmux_protocol::{JobId, RelativePath, RungSummary, SCHEMA_VERSION};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::JobError;

/// The job record written into every published output.
pub const JOB_RECORD: &str = ".hlsmux-job.json";

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
            finished_at: OffsetDateTime::now_utc(),
        }
    }
}

/// What is already at a job's final output path.
#[derive(Debug)]
pub enum ExistingOutput {
    Nothing,
    /// A complete output of this very job: a redelivery, nothing to redo.
    ThisJob(OutputRecord),
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
}

impl OutputLocation {
    pub fn new(output_root: &Path, output: &RelativePath, job_id: JobId) -> Self {
        let final_dir = output.under(output_root);
        let parent = final_dir.parent().unwrap_or(output_root).to_owned();
        let staging_dir = parent.join(format!(".{}.{job_id}.partial", output.file_name()));
        Self {
            job_id,
            relative: output.clone(),
            final_dir,
            staging_dir,
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
            Some(record) if record.job_id == self.job_id => ExistingOutput::ThisJob(record),
            Some(record) => ExistingOutput::Other {
                owner: format!("made by job {}", record.job_id),
            },
            None => ExistingOutput::Other {
                owner: "not made by hlsmux".into(),
            },
        })
    }

    /// Blocking. Creates an empty staging directory, removing what an
    /// earlier, interrupted delivery of this job left there.
    pub fn prepare_staging(&self) -> Result<(), JobError> {
        self.discard_staging();
        std::fs::create_dir_all(&self.staging_dir)
            .map_err(|e| self.unwritable(&self.staging_dir, e))
    }

    /// Blocking. Writes the job record into the staging directory and renames
    /// it into place. Returns the record that stands at the final path: ours,
    /// or that of an earlier delivery of this job that got there first.
    pub fn publish(&self, record: OutputRecord) -> Result<OutputRecord, JobError> {
        let record_path = self.staging_dir.join(JOB_RECORD);
        let bytes = serde_json::to_vec_pretty(&record).map_err(|e| JobError::OutputUnwritable {
            path: record_path.clone(),
            detail: e.to_string(),
        })?;
        std::fs::File::create(&record_path)
            .and_then(|mut file| {
                file.write_all(&bytes)?;
                file.sync_all()
            })
            .map_err(|e| self.unwritable(&record_path, e))?;
        match std::fs::rename(&self.staging_dir, &self.final_dir) {
            Ok(()) => Ok(record),
            Err(rename_error) => match self.existing()? {
                ExistingOutput::ThisJob(earlier) => {
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

    /// Blocking. Removes the staging directory if there is one.
    pub fn discard_staging(&self) {
        if let Err(error) = std::fs::remove_dir_all(&self.staging_dir)
            && error.kind() != ErrorKind::NotFound
        {
            tracing::warn!(path = %self.staging_dir.display(), %error, "could not remove staging directory");
        }
    }

    fn unwritable(&self, path: &Path, error: std::io::Error) -> JobError {
        JobError::OutputUnwritable {
            path: path.to_owned(),
            detail: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(root: &Path, job: JobId) -> OutputLocation {
        OutputLocation::new(
            root,
            &RelativePath::parse("shows/a.mp4.hls").expect("valid"),
            job,
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
            Path::new(&format!("/out/shows/.a.mp4.hls.{job}.partial"))
        );
    }

    #[test]
    fn publishing_moves_staging_into_place_with_its_record() {
        let root = tempfile::tempdir().expect("tempdir");
        let job = JobId::generate();
        let location = location(root.path(), job);
        location.prepare_staging().expect("staging");
        std::fs::write(location.staging_dir().join("master.m3u8"), "#EXTM3U\n").expect("write");
        location.publish(record(job)).expect("publishes");
        assert!(!location.staging_dir().exists());
        assert!(location.final_dir().join("master.m3u8").exists());
        assert!(matches!(location.existing(), Ok(ExistingOutput::ThisJob(r)) if r.job_id == job));
    }

    #[test]
    fn a_second_delivery_of_the_same_job_keeps_the_first_output() {
        let root = tempfile::tempdir().expect("tempdir");
        let job = JobId::generate();
        let location = location(root.path(), job);
        location.prepare_staging().expect("staging");
        location.publish(record(job)).expect("first");
        location.prepare_staging().expect("staging again");
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
        first.prepare_staging().expect("staging");
        first.publish(record(first.job_id)).expect("first");
        let second_job = JobId::generate();
        let second = location(root.path(), second_job);
        assert!(matches!(
            second.existing(),
            Ok(ExistingOutput::Other { .. })
        ));
        second.prepare_staging().expect("staging");
        let error = second.publish(record(second_job)).expect_err("occupied");
        assert!(matches!(error, JobError::OutputExists { .. }));
        assert!(!second.staging_dir().exists());
    }

    #[test]
    fn leftover_staging_is_cleared_before_a_new_attempt() {
        let root = tempfile::tempdir().expect("tempdir");
        let location = location(root.path(), JobId::generate());
        location.prepare_staging().expect("staging");
        std::fs::write(location.staging_dir().join("segment_00000.ts"), b"half").expect("write");
        location.prepare_staging().expect("again");
        assert_eq!(
            std::fs::read_dir(location.staging_dir())
                .expect("list")
                .count(),
            0
        );
    }
}
