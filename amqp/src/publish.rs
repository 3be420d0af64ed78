//! Publishing one JSON message and waiting for the broker to take it.

use lapin::options::BasicPublishOptions;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation};
use serde::Serialize;

use hlsmux_protocol::CONTENT_TYPE_JSON;

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// How long a publish may wait for the broker's confirmation. A broker
/// shutting down cleanly can leave a publish waiting with no error (lapin
/// issue reports), and a job must not hang on a status event.
pub const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The pauses before publishing again after a negative acknowledgement: a
/// quorum queue or stream refuses messages while it elects a new leader
/// after a cluster node's loss, which takes a few seconds. Publishing again
/// is safe: every message carries a fixed ID, and readers are idempotent.
const NACK_RETRY_PAUSES: [std::time::Duration; 7] = {
    use std::time::Duration;
    [
        Duration::from_millis(250),
        Duration::from_millis(500),
        Duration::from_secs(1),
        Duration::from_secs(2),
        Duration::from_secs(4),
        Duration::from_secs(4),
        Duration::from_secs(4),
    ]
};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("no queue is bound for routing key {routing_key:?} on exchange {exchange:?}")]
    Unroutable {
        exchange: String,
        routing_key: String,
    },
    #[error(
        "the broker refused the message on exchange {exchange:?} {attempts} times (negative acknowledgement)"
    )]
    Nacked { exchange: String, attempts: usize },
    #[error("the channel is not in confirm mode; publishing would be unconfirmed")]
    NotConfirmed,
    #[error("could not serialise the message: {0}")]
    Serialise(#[from] serde_json::Error),
    #[error("broker error while publishing: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not confirm the message within {} s", CONFIRM_TIMEOUT.as_secs())]
    ConfirmTimeout,
}

/// Publishes `body` as persistent JSON with `message_id` set, on a channel in
/// confirm mode, and returns once the broker has confirmed it.
///
/// With `mandatory`, an unroutable message is an error: RabbitMQ returns it
/// and then *acks* it, so the returned message, not only the ack, decides.
/// `headers` carry what travels beside the body (the trace context).
pub async fn publish_json<T: Serialize>(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    message_id: &str,
    body: &T,
    mandatory: bool,
    headers: FieldTable,
) -> Result<(), PublishError> {
    let properties = json_properties(message_id).with_headers(headers);
    publish(channel, exchange, routing_key, body, mandatory, properties).await
}

/// As [`publish_json`], with a per-message time-to-live: the broker
/// dead-letters the message when it expires (used to schedule work).
pub async fn publish_json_with_expiration<T: Serialize>(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    message_id: &str,
    body: &T,
    expiration: std::time::Duration,
) -> Result<(), PublishError> {
    let properties =
        json_properties(message_id).with_expiration(expiration.as_millis().to_string().into());
    publish(channel, exchange, routing_key, body, true, properties).await
}

fn json_properties(message_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_content_type(CONTENT_TYPE_JSON.into())
        .with_delivery_mode(PERSISTENT)
        .with_message_id(message_id.into())
}

/// Publishes once, and again after each pause while the broker refuses.
async fn publish<T: Serialize>(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &T,
    mandatory: bool,
    properties: BasicProperties,
) -> Result<(), PublishError> {
    let payload = serde_json::to_vec(body)?;
    let mut attempts = 0;
    for pause in NACK_RETRY_PAUSES.iter().map(Some).chain([None]) {
        attempts += 1;
        let published = publish_once(
            channel,
            exchange,
            routing_key,
            &payload,
            mandatory,
            properties.clone(),
        )
        .await;
        match (published, pause) {
            (Err(Refused::Nacked), Some(pause)) => {
                tracing::debug!(
                    exchange,
                    attempts,
                    "the broker refused a message; publishing it again"
                );
                tokio::time::sleep(*pause).await;
            }
            (Err(Refused::Nacked), None) => break,
            (Err(Refused::Other(error)), _) => return Err(error),
            (Ok(()), _) => return Ok(()),
        }
    }
    Err(PublishError::Nacked {
        exchange: exchange.to_owned(),
        attempts,
    })
}

/// Why one publish did not go through.
enum Refused {
    Nacked,
    Other(PublishError),
}

impl From<PublishError> for Refused {
    fn from(error: PublishError) -> Self {
        Refused::Other(error)
    }
}

impl From<lapin::Error> for Refused {
    fn from(error: lapin::Error) -> Self {
        Refused::Other(error.into())
    }
}

async fn publish_once(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    mandatory: bool,
    properties: BasicProperties,
) -> Result<(), Refused> {
    let confirmed = async {
        channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory,
                    ..BasicPublishOptions::default()
                },
                payload,
                properties,
            )
            .await?
            .await
    };
    let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirmed)
        .await
        .map_err(|_| PublishError::ConfirmTimeout)??;
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_returned)) => Err(Refused::Other(PublishError::Unroutable {
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
        })),
        Confirmation::Nack(_) => Err(Refused::Nacked),
        Confirmation::NotRequested => Err(Refused::Other(PublishError::NotConfirmed)),
    }
}
