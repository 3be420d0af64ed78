//! What the hlsmux worker and the `hlsmux` submit tool agree on: the job
//! message, the status events, and the RabbitMQ topology that carries them.
//!
//! Everything that crosses the broker is defined here once, so the two
//! programs (and the tests, dashboards and deploy files) cannot drift apart.

mod amqp_url;
mod cancel;
mod control;
mod event;
mod heartbeat;
mod ids;
mod job;
mod paths;
mod publish;
mod retention;
mod tidy;
mod topology;

pub use amqp_url::{AmqpUrl, AmqpUrlError, AmqpUrls};
pub use cancel::CancelRequest;
pub use control::ControlCommand;
pub use event::{EventState, FailureReason, JobState, RequeueReason, RungSummary, StatusEvent};
pub use heartbeat::Heartbeat;
pub use ids::{JobId, JobIdError, MuxerId, MuxerIdError};
pub use job::{
    BadMessage, JobRequest, LadderName, MAX_JOB_MESSAGE_BYTES, OutputNaming, SegmentFormat,
};
pub use paths::{RelativePath, RelativePathError};
pub use publish::{PublishError, publish_json, publish_json_with_expiration};
pub use retention::{HistoryRetention, StreamMaxAge, StreamMaxAgeError};
pub use tidy::TidyRequest;
pub use topology::{
    DELIVERY_LIMIT, HistoryStart, Namespace, NamespaceError, Topology, died_of_delivery_limit,
    is_not_found, is_precondition_failed, last_death, stream_offset,
};

/// Version of the JSON schema of every message this crate defines.
///
/// Additive changes (a new optional field) keep the version; a reader rejects
/// a message whose version is newer than the one it was built with.
pub const SCHEMA_VERSION: u32 = 1;

/// The content type set on every message hlsmux publishes.
pub const CONTENT_TYPE_JSON: &str = "application/json";
