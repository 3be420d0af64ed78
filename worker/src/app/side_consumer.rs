//! What the side tasks share: for a queue, take each delivery, let the task
//! say how it ended, settle it; for a stream, read it from its start and
//! hand on each message; both until the channel fails.

use futures_util::StreamExt;
use lapin::Consumer;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;

use crate::broker::BrokerError;
use crate::job::outcome::Disposition;

/// Handles every delivery of `consumer` with `handle` and settles it as
/// `handle` says, until its channel fails or the broker cancels the
/// consumer (its queue was deleted); the side feature then tries again.
pub(super) async fn settle_each<Handled: Future<Output = Disposition>>(
    name: &'static str,
    mut consumer: Consumer,
    mut handle: impl FnMut(Delivery) -> Handled,
) -> BrokerError {
    while let Some(next) = consumer.next().await {
        let delivery = match next {
            Ok(delivery) => delivery,
            Err(error) => return BrokerError::Lost(error),
        };
        let acker = delivery.acker.clone();
        let disposition = handle(delivery).await;
        if let Err(error) = disposition.apply(&acker).await {
            return BrokerError::Lost(error);
        }
    }
    BrokerError::ConsumerCancelled(name)
}

/// What [`follow_stream`] hands its handler.
pub(super) enum Followed<T> {
    /// A message, and whether the backlog had been read before it came.
    Message(T, bool),
    /// The backlog is read: nothing came for a moment.
    CaughtUp,
}

/// Reads a stream from the consumer's start for as long as it serves:
/// acknowledges each delivery (streams count acknowledgements as credit),
/// hands `handle` each message that parses as `T` (skipping, with a
/// warning, what does not), and says once when the backlog is read. Ends
/// when the channel fails or the broker cancels the consumer.
pub(super) async fn follow_stream<T: serde::de::DeserializeOwned>(
    name: &'static str,
    mut consumer: Consumer,
    mut handle: impl FnMut(Followed<T>),
) -> BrokerError {
    let mut caught_up = false;
    loop {
        // Timed only until the backlog is read, so an idle worker does not
        // wake for nothing.
        let next = if caught_up {
            consumer.next().await
        } else {
            match tokio::time::timeout(hlsmux_amqp::stream::CAUGHT_UP_QUIET, consumer.next()).await
            {
                Ok(next) => next,
                Err(_) => {
                    caught_up = true;
                    handle(Followed::CaughtUp);
                    continue;
                }
            }
        };
        let Some(next) = next else { break };
        let delivery = match next {
            Ok(delivery) => delivery,
            Err(error) => return BrokerError::Lost(error),
        };
        if let Err(error) = delivery.acker.ack(BasicAckOptions::default()).await {
            return BrokerError::Lost(error);
        }
        match serde_json::from_slice::<T>(&delivery.data) {
            Ok(message) => handle(Followed::Message(message, caught_up)),
            Err(error) => {
                tracing::warn!(%error, "skipping a message in the {name} stream that does not parse")
            }
        }
    }
    BrokerError::ConsumerCancelled(name)
}
