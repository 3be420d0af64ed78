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

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("no queue is bound for routing key {routing_key:?} on exchange {exchange:?}")]
    Unroutable {
        exchange: String,
        routing_key: String,
    },
    #[error("the broker refused the message on exchange {exchange:?} (negative acknowledgement)")]
    Nacked { exchange: String },
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

async fn publish<T: Serialize>(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &T,
    mandatory: bool,
    properties: BasicProperties,
) -> Result<(), PublishError> {
    let payload = serde_json::to_vec(body)?;
    let confirmed = async {
        channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory,
                    ..BasicPublishOptions::default()
                },
                &payload,
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
        Confirmation::Ack(Some(_returned)) => Err(PublishError::Unroutable {
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
        }),
        Confirmation::Nack(_) => Err(PublishError::Nacked {
            exchange: exchange.to_owned(),
        }),
        Confirmation::NotRequested => Err(PublishError::NotConfirmed),
    }
}
