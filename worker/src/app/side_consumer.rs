//! What the queue-consuming side tasks share: take each delivery, let the
//! task say how it ended, settle it, until the session fails.

use futures_util::StreamExt;
use lapin::Consumer;
use lapin::message::Delivery;

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
