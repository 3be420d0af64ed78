//! What can go wrong between the worker and RabbitMQ, each saying what to
//! check.

use hlsmux_amqp::{AmqpUrl, AmqpUrls, PublishError};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "cannot reach RabbitMQ at {urls} (last: {source}): is the broker running and the URL right?"
    )]
    Connect {
        urls: AmqpUrls,
        source: lapin::Error,
    },
    #[error("cannot set up queues and exchanges on {url}: {source}")]
    Topology { url: AmqpUrl, source: lapin::Error },
    #[error("lost the RabbitMQ connection: {0}")]
    Lost(#[source] lapin::Error),
    /// The broker ended a consumer (its queue was deleted, or a node went).
    #[error("the broker cancelled the {0} consumer")]
    ConsumerCancelled(&'static str),
    #[error("lost the RabbitMQ connection while publishing: {0}")]
    Publish(#[source] PublishError),
    /// Another task of the session lost it.
    #[error("a side consumer failed")]
    SessionLost,
}
