//! The job ID register: the first request seen under each job ID, kept on
//! the shared output volume for ever (one small file per job), so that a
//! later message reusing an ID for another request is refused
//! (`duplicate_job_id`) instead of encoding again or touching the first
//! job's output. A redelivery, or an operator's `dlq retry`, carries the
//! same request and passes.
//!
//! The entry is made by a hard link, which fails if the name exists (also
//! over NFS): of two workers claiming one ID at once exactly one wins, and
//! an entry is never seen half written.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use hlsmux_protocol::{JobId, JobRequest, RESERVED_OUTPUT_DIR, RequestIdentity, SCHEMA_VERSION};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::JobError;

/// Under the output root.
const REGISTER_DIR: &str = "job-ids";

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Entry {
    schema: u32,
    job_id: JobId,
    request: RequestIdentity,
    #[serde(with = "time::serde::rfc3339")]
    first_seen_at: OffsetDateTime,
}

/// The register under one output root.
#[derive(Clone, Debug)]
pub struct JobIdRegister {
    dir: PathBuf,
    /// Names this process's temporary files.
    writer: String,
}

impl JobIdRegister {
    pub fn new(output_root: &Path, host: &str) -> Self {
        Self {
            dir: output_root.join(RESERVED_OUTPUT_DIR).join(REGISTER_DIR),
            writer: format!("{host}.{}", std::process::id()),
        }
    }

    /// Blocking. Records `request` as the one its job ID names, or checks
    /// that it is the one already recorded; a different one is
    /// [`JobError::DuplicateJobId`].
    pub fn claim(&self, request: &JobRequest) -> Result<(), JobError> {
        let path = self.dir.join(format!("{}.json", request.job_id));
        let identity = request.identity();
        match std::fs::read(&path) {
            Ok(bytes) => return Self::compare(&path, &bytes, request.job_id, &identity),
            Err(error) if error.kind() == ErrorKind::NotFound => {}
            Err(error) => return Err(JobError::unwritable(&path, error)),
        }
        let entry = Entry {
            schema: SCHEMA_VERSION,
            job_id: request.job_id,
            request: identity.clone(),
            first_seen_at: OffsetDateTime::now_utc(),
        };
        let bytes = serde_json::to_vec_pretty(&entry).unwrap_or_else(|_| unreachable!());
        std::fs::create_dir_all(&self.dir).map_err(|e| JobError::unwritable(&self.dir, e))?;
        let temporary = self
            .dir
            .join(format!(".{}.{}.new", request.job_id, self.writer));
        let written = std::fs::File::create(&temporary)
            .and_then(|mut file| file.write_all(&bytes).and_then(|()| file.sync_all()));
        if let Err(error) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(JobError::unwritable(&temporary, error));
        }
        let linked = std::fs::hard_link(&temporary, &path);
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => Ok(()),
            // Another delivery of this ID claimed it first.
            Err(error) if error.kind() == ErrorKind::AlreadyExists => {
                let bytes = std::fs::read(&path).map_err(|e| JobError::unwritable(&path, e))?;
                Self::compare(&path, &bytes, request.job_id, &identity)
            }
            Err(error) => Err(JobError::unwritable(&path, error)),
        }
    }

    fn compare(
        path: &Path,
        bytes: &[u8],
        job_id: JobId,
        identity: &RequestIdentity,
    ) -> Result<(), JobError> {
        // An entry that does not read is not evidence that this request is
        // the first: refuse rather than risk a second job under one ID.
        let entry: Entry =
            serde_json::from_slice(bytes).map_err(|error| JobError::DuplicateJobId {
                job_id,
                first: format!("an unreadable register entry {} ({error})", path.display()),
            })?;
        if entry.job_id == job_id && &entry.request == identity {
            return Ok(());
        }
        Err(JobError::DuplicateJobId {
            job_id,
            first: format!(
                "input {}, output {}, submitted {}, first seen {}",
                entry.request.input,
                entry.request.output,
                rfc3339(entry.request.submitted_at),
                rfc3339(entry.first_seen_at)
            ),
        })
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hlsmux_protocol::{MuxerId, RelativePath};

    fn request(input: &str, output: &str) -> JobRequest {
        JobRequest::new(
            MuxerId::new(1).expect("valid"),
            RelativePath::parse(input).expect("valid"),
            RelativePath::parse(output).expect("valid"),
        )
    }

    #[test]
    fn an_id_names_its_first_request_for_ever() {
        let root = tempfile::tempdir().expect("tempdir");
        let register = JobIdRegister::new(root.path(), "host");
        let first = request("a.mp4", "a.hls");
        register.claim(&first).expect("the first claim");
        register
            .claim(&first)
            .expect("a redelivery of the same request");
        let mut retried = first.clone();
        retried.muxer_id = MuxerId::new(2).expect("valid");
        register
            .claim(&retried)
            .expect("the same request routed elsewhere");

        let mut other_output = first.clone();
        other_output.output = RelativePath::parse("b.hls").expect("valid");
        let refused = register.claim(&other_output).expect_err("another request");
        assert!(
            matches!(refused, JobError::DuplicateJobId { .. }),
            "{refused}"
        );
        assert!(refused.to_string().contains("a.hls"), "{refused}");
        let mut other_options = first.clone();
        other_options.encrypt = Some(true);
        assert!(register.claim(&other_options).is_err());

        let leftovers: Vec<_> = std::fs::read_dir(root.path().join(".hlsmux/job-ids"))
            .expect("register")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            1,
            "one entry, no temporary files: {leftovers:?}"
        );
    }

    #[test]
    fn an_unreadable_entry_refuses_rather_than_allows() {
        let root = tempfile::tempdir().expect("tempdir");
        let register = JobIdRegister::new(root.path(), "host");
        let job = request("a.mp4", "a.hls");
        let dir = root.path().join(".hlsmux/job-ids");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join(format!("{}.json", job.job_id)), b"{").expect("entry");
        assert!(matches!(
            register.claim(&job),
            Err(JobError::DuplicateJobId { .. })
        ));
    }
}
