//! The hlsmux pool's edge to RabbitMQ, shared by the worker, the `hlsmux`
//! CLI and the tests: declaring the topology whose names `hlsmux-protocol`
//! defines, publishing with confirms, reading the pool's streams, and
//! reading what RabbitMQ writes into headers.

pub mod declare;
mod headers;
mod publish;
mod replies;
pub mod stream;
mod url;

pub use headers::{
    delivery_count, died_of_delivery_limit, last_death, salvage_job_id, stream_offset,
};
pub use publish::{CONFIRM_TIMEOUT, PublishError, publish_json, publish_json_with_expiration};
pub use replies::{is_access_refused, is_not_found, is_precondition_failed};
pub use stream::HistoryStart;
pub use url::{AmqpUrl, AmqpUrlError, AmqpUrls};
