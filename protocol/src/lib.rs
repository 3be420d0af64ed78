//! What the hlsmux worker and the `hlsmux` submit tool agree on: the job
//! message, the status events, and the names of the RabbitMQ topology that
//! carries them.
//!
//! Everything that crosses the broker is defined here once, so the two
//! programs (and the tests, dashboards and deploy files) cannot drift apart.
//! Wire types and names only: talking to the broker is `hlsmux-amqp`'s job,
//! so this crate needs neither an AMQP client nor a runtime.

mod base_url;
mod cancel;
mod chunk;
mod control;
mod event;
mod heartbeat;
mod ids;
mod job;
mod paths;
mod queue_arguments;
mod retention;
mod tidy;
mod topology;

pub use base_url::{BaseUrl, BaseUrlError};
pub use cancel::CancelRequest;
pub use chunk::{BadChunkOrder, CheckedChunkOrder, ChunkOrder, ChunkSummary};
pub use control::ControlCommand;
pub use event::{EventState, FailureReason, JobState, RequeueReason, RungSummary, StatusEvent};
pub use heartbeat::{Heartbeat, WorkerState};
pub use ids::{JobId, JobIdError, MuxerId, MuxerIdError};
pub use job::{
    BadMessage, JobRequest, LadderName, MAX_JOB_MESSAGE_BYTES, OutputNaming, RateControl,
    RequestIdentity, SegmentFormat, SplitMode,
};
pub use paths::{RESERVED_OUTPUT_DIR, RelativePath, RelativePathError};
pub use queue_arguments::{ArgumentValue, QueueArguments};
pub use retention::{HistoryRetention, StreamMaxAge, StreamMaxAgeError};
pub use tidy::TidyRequest;
pub use topology::{DELIVERY_LIMIT, Namespace, NamespaceError, Topology};

/// Version of the JSON schema of every message this crate defines.
///
/// Additive changes (a new optional field) keep the version; a reader rejects
/// a message whose version is newer than the one it was built with.
pub const SCHEMA_VERSION: u32 = 1;

/// The content type set on every message hlsmux publishes.
pub const CONTENT_TYPE_JSON: &str = "application/json";
