//! Status events: what a worker tells everyone about a job as it goes.
//!
//! Events are published on the topic exchange with routing key
//! `<job_id>.<state>`, so a client can follow one job (`<job_id>.*`), one
//! state of every job (`*.failed`), or everything (`#`).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{JobId, MuxerId, SCHEMA_VERSION};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub schema: u32,
    pub job_id: JobId,
    pub muxer_id: MuxerId,
    /// Host name of the worker that published the event.
    pub worker: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(flatten)]
    pub state: JobState,
}

/// One rung of a finished output, as reported in the `done` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RungSummary {
    pub width: u32,
    pub height: u32,
    pub video_bitrate: u64,
    /// The rung's media playlist, relative to the output directory.
    pub playlist: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    Started {
        input: String,
        /// True when the broker redelivered the job (a worker died or
        /// gave it back before finishing it).
        redelivered: bool,
    },
    Progress {
        /// 0 to 100, of the input's duration.
        percent: f64,
        fps: f64,
        /// Encode speed as a multiple of real time.
        speed: f64,
    },
    Done {
        /// The output directory, relative to the output root.
        output: String,
        /// The master playlist, relative to the output root.
        master_playlist: String,
        rungs: Vec<RungSummary>,
        media_seconds: f64,
        wall_seconds: f64,
        /// True when the output already existed from an earlier delivery of
        /// this job and was not produced again.
        reused: bool,
        /// The video encoder that produced the output (`libx264`,
        /// `h264_v4l2m2m`, ...).
        #[serde(default)]
        encoder: String,
        /// The AES-128 key file, relative to the output root, when the
        /// output is encrypted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encryption_key: Option<String>,
        /// For a job split across the pool: each chunk, and who encoded it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        chunks: Vec<crate::ChunkSummary>,
    },
    /// The worker gave the job back to its queue; it will be tried again
    /// (here or on another worker of the muxer) until the delivery limit.
    Requeued {
        reason: RequeueReason,
        message: String,
    },
    Failed {
        reason: FailureReason,
        message: String,
    },
}

/// The state name, as used in routing keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventState {
    Started,
    Progress,
    Done,
    Requeued,
    Failed,
}

impl EventState {
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Started => "started",
            EventState::Progress => "progress",
            EventState::Done => "done",
            EventState::Requeued => "requeued",
            EventState::Failed => "failed",
        }
    }
}

impl fmt::Display for EventState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job failed for good: a stable code for programs, next to the
/// human message in the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The message could not be read as a job.
    BadMessage,
    /// The input path does not exist under the media root.
    InputMissing,
    /// The input resolves (through a link) to a place outside the media root.
    InputOutsideRoot,
    /// The input exists but cannot be read, or is empty.
    InputUnreadable,
    /// ffprobe could not read the input as media.
    ProbeFailed,
    /// The input has no video stream.
    NoVideoStream,
    /// ffmpeg failed on the input.
    EncodeFailed,
    /// ffmpeg finished but its output did not pass verification (a missing
    /// segment, an unreadable playlist).
    VerifyFailed,
    /// The output breaks an HLS rule (named in the message), so it was
    /// not published.
    OutputInvalid,
    /// A different job already produced the output directory.
    OutputExists,
    /// The output could not be written under the output root.
    OutputUnwritable,
    /// The input is a kind of file the worker refuses to open (a playlist,
    /// a concat list, anything that could make ffmpeg read other files).
    InputFormatRefused,
    /// The job was tried as often as the queue's delivery limit allows, each
    /// time ending with its worker crashing or giving it back.
    RetriesExhausted,
    /// Someone cancelled the job (`hlsmux cancel`) before it was done.
    Cancelled,
    /// The message reused the ID of a job that asked for something else.
    /// The event reports the refused message, not that job: its outcome
    /// stands (see [`JobState::is_refused_duplicate`]).
    DuplicateJobId,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::BadMessage => "bad_message",
            FailureReason::InputMissing => "input_missing",
            FailureReason::InputOutsideRoot => "input_outside_root",
            FailureReason::InputUnreadable => "input_unreadable",
            FailureReason::ProbeFailed => "probe_failed",
            FailureReason::NoVideoStream => "no_video_stream",
            FailureReason::EncodeFailed => "encode_failed",
            FailureReason::VerifyFailed => "verify_failed",
            FailureReason::OutputInvalid => "output_invalid",
            FailureReason::OutputExists => "output_exists",
            FailureReason::OutputUnwritable => "output_unwritable",
            FailureReason::InputFormatRefused => "input_format_refused",
            FailureReason::RetriesExhausted => "retries_exhausted",
            FailureReason::Cancelled => "cancelled",
            FailureReason::DuplicateJobId => "duplicate_job_id",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a worker gave a job back instead of finishing it: all of these are
/// the worker's trouble, not the job's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequeueReason {
    /// ffmpeg made no progress for longer than the stall timeout.
    Stalled,
    /// ffmpeg was killed by a signal (crash, out of memory).
    EncoderCrashed,
    /// The shared storage failed under the job (read-only, I/O errors,
    /// stale NFS handles, not answering).
    StorageUnhealthy,
    /// The output volume (or the work dir) has no room for the job.
    StorageFull,
    /// ffmpeg or ffprobe could not be run.
    ToolUnavailable,
    /// The worker is stopping and the job could not finish in its grace period.
    WorkerStopping,
}

impl RequeueReason {
    pub const ALL: [RequeueReason; 6] = [
        RequeueReason::Stalled,
        RequeueReason::EncoderCrashed,
        RequeueReason::StorageUnhealthy,
        RequeueReason::StorageFull,
        RequeueReason::ToolUnavailable,
        RequeueReason::WorkerStopping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequeueReason::Stalled => "stalled",
            RequeueReason::EncoderCrashed => "encoder_crashed",
            RequeueReason::StorageUnhealthy => "storage_unhealthy",
            RequeueReason::StorageFull => "storage_full",
            RequeueReason::ToolUnavailable => "tool_unavailable",
            RequeueReason::WorkerStopping => "worker_stopping",
        }
    }

    /// Whether the reason points at the worker's own health (and so counts
    /// towards quarantining it), rather than at being asked to stop or at
    /// a shared volume with no room (which the storage gate waits out).
    pub fn is_worker_fault(self) -> bool {
        !matches!(
            self,
            RequeueReason::WorkerStopping | RequeueReason::StorageFull
        )
    }
}

impl fmt::Display for RequeueReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl JobState {
    pub fn event_state(&self) -> EventState {
        match self {
            JobState::Started { .. } => EventState::Started,
            JobState::Progress { .. } => EventState::Progress,
            JobState::Done { .. } => EventState::Done,
            JobState::Requeued { .. } => EventState::Requeued,
            JobState::Failed { .. } => EventState::Failed,
        }
    }

    /// Whether this event reports a later message refused for reusing
    /// the job's ID (for another request), rather than the job itself:
    /// readers leave the job's state as it was.
    pub fn is_refused_duplicate(&self) -> bool {
        matches!(
            self,
            JobState::Failed {
                reason: FailureReason::DuplicateJobId,
                ..
            }
        )
    }

    /// Done and failed end a job; nothing follows them for that delivery.
    pub fn is_final(&self) -> bool {
        matches!(self, JobState::Done { .. } | JobState::Failed { .. })
    }
}

impl StatusEvent {
    pub fn new(job_id: JobId, muxer_id: MuxerId, worker: &str, state: JobState) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            job_id,
            muxer_id,
            worker: worker.to_owned(),
            at: OffsetDateTime::now_utc(),
            state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_event_serialises_with_flat_state_and_reason_code() {
        let event = StatusEvent::new(
            JobId::generate(),
            MuxerId::new(1).expect("valid"),
            "pi1",
            JobState::Failed {
                reason: FailureReason::NoVideoStream,
                message: "input has no video stream".into(),
            },
        );
        let value = serde_json::to_value(&event).expect("serialises");
        assert_eq!(value["state"], "failed");
        assert_eq!(value["reason"], "no_video_stream");
        let back: StatusEvent = serde_json::from_value(value).expect("parses");
        assert_eq!(back.state, event.state);
    }

    #[test]
    fn reason_codes_match_their_serde_names() {
        for reason in [
            FailureReason::BadMessage,
            FailureReason::InputMissing,
            FailureReason::InputOutsideRoot,
            FailureReason::InputUnreadable,
            FailureReason::ProbeFailed,
            FailureReason::NoVideoStream,
            FailureReason::EncodeFailed,
            FailureReason::VerifyFailed,
            FailureReason::OutputInvalid,
            FailureReason::OutputExists,
            FailureReason::OutputUnwritable,
            FailureReason::InputFormatRefused,
            FailureReason::RetriesExhausted,
        ] {
            let json = serde_json::to_value(reason).expect("serialises");
            assert_eq!(json, reason.as_str());
        }
        for reason in RequeueReason::ALL {
            let json = serde_json::to_value(reason).expect("serialises");
            assert_eq!(json, reason.as_str());
        }
    }
}
