//! The side task that reports jobs the broker dead-lettered by itself.

use super::Worker;
use crate::broker::{BrokerError, BrokerSession};
use futures_util::StreamExt;
use tracing::warn;

impl Worker {
    /// Reports jobs the broker dead-lettered at their delivery limit, until
    /// the session fails.
    pub(super) async fn report_dead_letters(&self, session: &BrokerSession) -> BrokerError {
        let mut consumer = match session.consume_dead_letter_notices().await {
            Ok(consumer) => consumer,
            Err(error) => return error,
        };
        while let Some(next) = consumer.next().await {
            match next {
                Ok(delivery) => {
                    let disposition =
                        crate::dead_letters::report(&delivery, session.events(), &self.metrics)
                            .await;
                    if let Err(error) = disposition.apply(&delivery.acker).await {
                        return BrokerError::Lost(error);
                    }
                }
                Err(error) => return BrokerError::Lost(error),
            }
        }
        warn!("dead-letter notice consumer cancelled by the broker");
        std::future::pending().await
    }
}
