//! The stages one job goes through, in order: input (validate → probe) →
//! plan (ladder) → encode → hls (master: describe what was encoded →
//! encrypt, when asked → verify) → publish. `produce` runs encode through
//! verify, for a job and for the self-test alike; `container` reads the
//! segments' own bytes for hls.
//!
//! Each stage is a plain function over plain data; only `job` ties them to
//! the broker. Every stage fails with a [`JobError`], which knows its reason
//! code and whether retrying could help.

pub mod container;
pub mod encode;
pub mod hls;
pub mod input;
pub mod job_ids;
pub mod plan;
pub mod produce;
pub mod publish;
pub mod split;

use std::path::PathBuf;

use hlsmux_protocol::{FailureReason, RequeueReason};

use crate::health::storage::fault::StorageFault;
use crate::health::storage::problem::StorageProblem;

/// Whether a failed job could succeed if tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// The job itself is at fault: fail it and dead-letter it.
    Permanent,
    /// The worker or its surroundings are at fault: give the job back.
    Transient,
}

/// Why an input that exists cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("it is not a regular file")]
    NotAFile,
    #[error("it is empty (0 bytes)")]
    Empty,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the job cannot be done as asked: {0}")]
    InvalidRequest(String),
    #[error("input {0} does not exist under the media root")]
    InputMissing(PathBuf),
    #[error("input {0} resolves outside the media root")]
    InputOutsideRoot(PathBuf),
    #[error("input {path} cannot be read: {why}")]
    InputUnreadable {
        path: PathBuf,
        #[source]
        why: Unreadable,
    },
    #[error("ffprobe cannot read {path} as media: {detail}")]
    ProbeFailed { path: PathBuf, detail: String },
    #[error("input {0} has no video stream")]
    NoVideoStream(PathBuf),
    #[error(
        "input {path} is read as `{format}`, which is not among the input formats this worker opens (setting input_formats)"
    )]
    InputFormatRefused { path: PathBuf, format: String },
    #[error("ffmpeg failed ({status}): {stderr_tail}")]
    EncodeFailed { status: String, stderr_tail: String },
    #[error("ffmpeg was killed by {signal}: {stderr_tail}")]
    EncoderCrashed { signal: String, stderr_tail: String },
    #[error("ffmpeg made no progress for {seconds} s (setting stall_timeout_seconds)")]
    Stalled { seconds: u64 },
    #[error("the encoded output did not verify: {0}")]
    VerifyFailed(String),
    #[error("the encoded output breaks an HLS rule, so it was not published: {0}")]
    OutputInvalid(String),
    #[error("output {path} already exists ({owner}); remove it or submit with another --name")]
    OutputExists { path: PathBuf, owner: String },
    #[error("cannot write output under {path}: {source}")]
    OutputUnwritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("media root {path} is not usable: {source}")]
    MediaRootUnavailable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run {program}: {source}")]
    ToolUnavailable {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no randomness for the encryption key: {0}")]
    NoRandomness(#[source] getrandom::Error),
    #[error("the job was interrupted because the worker is shutting down")]
    Interrupted,
    #[error("the shared storage failed during the job: {0}")]
    StorageFailed(#[source] StorageProblem),
    /// A write (or read) the volume refused: the volume's fault.
    #[error("{fault} at {path} ({cause})")]
    Storage {
        fault: StorageFault,
        path: PathBuf,
        cause: String,
    },
    /// The broker did not take a split job's chunk orders: the job goes
    /// back to its queue (the chunks already finished are kept).
    #[error("cannot order chunks into the pool's chunk queue: {0}")]
    ChunkQueue(String),
    /// A chunk of a split job failed for the input's reason on the worker
    /// that encoded it.
    #[error("chunk {index} failed: {message}")]
    ChunkFailed {
        index: u32,
        reason: FailureReason,
        message: String,
    },
    #[error("cancelled by {by}; nothing was published")]
    Cancelled { by: String },
    #[error(
        "job ID {job_id} already names another request ({first}); this message is refused and that job is untouched: submit again for a new ID"
    )]
    DuplicateJobId {
        job_id: hlsmux_protocol::JobId,
        first: String,
    },
}

impl JobError {
    pub fn reason(&self) -> FailureReason {
        match self {
            JobError::InvalidRequest(_) => FailureReason::BadMessage,
            JobError::InputMissing(_) => FailureReason::InputMissing,
            JobError::InputOutsideRoot(_) => FailureReason::InputOutsideRoot,
            JobError::InputUnreadable { .. } => FailureReason::InputUnreadable,
            JobError::ProbeFailed { .. } => FailureReason::ProbeFailed,
            JobError::NoVideoStream(_) => FailureReason::NoVideoStream,
            JobError::InputFormatRefused { .. } => FailureReason::InputFormatRefused,
            JobError::EncodeFailed { .. } => FailureReason::EncodeFailed,
            JobError::VerifyFailed(_) => FailureReason::VerifyFailed,
            JobError::OutputInvalid(_) => FailureReason::OutputInvalid,
            JobError::OutputExists { .. } => FailureReason::OutputExists,
            JobError::OutputUnwritable { .. } => FailureReason::OutputUnwritable,
            JobError::Cancelled { .. } => FailureReason::Cancelled,
            JobError::ChunkFailed { reason, .. } => *reason,
            JobError::DuplicateJobId { .. } => FailureReason::DuplicateJobId,
            JobError::MediaRootUnavailable { .. }
            | JobError::ToolUnavailable { .. }
            | JobError::NoRandomness(_)
            | JobError::EncoderCrashed { .. }
            | JobError::Stalled { .. }
            | JobError::Interrupted
            | JobError::ChunkQueue(_)
            | JobError::StorageFailed(_) => FailureReason::EncodeFailed,
            JobError::Storage { .. } => FailureReason::OutputUnwritable,
        }
    }

    /// Why the job goes back to its queue, for errors that are the worker's
    /// trouble rather than the job's; `None` when the job itself failed.
    pub fn requeue_reason(&self) -> Option<RequeueReason> {
        match self {
            JobError::StorageFailed(problem) if problem.is_full() => {
                Some(RequeueReason::StorageFull)
            }
            JobError::MediaRootUnavailable { .. } | JobError::StorageFailed(_) => {
                Some(RequeueReason::StorageUnhealthy)
            }
            JobError::Storage { fault, .. } => Some(fault.requeue_reason()),
            // The machine's random source is a tool the worker needs too.
            JobError::ToolUnavailable { .. }
            | JobError::NoRandomness(_)
            | JobError::ChunkQueue(_) => Some(RequeueReason::ToolUnavailable),
            JobError::EncoderCrashed { .. } => Some(RequeueReason::EncoderCrashed),
            JobError::Stalled { .. } => Some(RequeueReason::Stalled),
            JobError::Interrupted => Some(RequeueReason::WorkerStopping),
            _ => None,
        }
    }

    /// Whether shared storage failing under the job could explain this
    /// error (a vanished mount looks like a missing input, a write error,
    /// or an ffmpeg failure).
    pub fn could_be_storage(&self) -> bool {
        matches!(
            self,
            JobError::InputMissing(_)
                | JobError::InputUnreadable { .. }
                | JobError::ProbeFailed { .. }
                | JobError::EncodeFailed { .. }
                | JobError::VerifyFailed(_)
                | JobError::OutputUnwritable { .. }
        )
    }

    /// This error as the storage's fault, when its I/O error says so
    /// (no room, read-only, I/O error, stale handle); else unchanged.
    pub fn blame_storage(self) -> Self {
        let (path, source) = match &self {
            JobError::OutputUnwritable { path, source }
            | JobError::InputUnreadable {
                path,
                why: Unreadable::Io(source),
            } => (path, source),
            _ => return self,
        };
        match StorageFault::of_io(source) {
            Some(fault) => JobError::Storage {
                fault,
                path: path.clone(),
                cause: source.to_string(),
            },
            None => self,
        }
    }

    /// A write under the output that failed.
    pub fn unwritable(path: &std::path::Path, source: std::io::Error) -> Self {
        JobError::OutputUnwritable {
            path: path.to_owned(),
            source,
        }
    }

    pub fn retry(&self) -> Retry {
        match self.requeue_reason() {
            Some(_) => Retry::Transient,
            None => Retry::Permanent,
        }
    }
}
