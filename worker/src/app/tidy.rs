//! The side task that tidies originals: consumes this muxer's due tidy requests.

use super::Worker;
use crate::broker::{BrokerError, BrokerSession};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::warn;

impl Worker {
    /// Handles due tidy requests until the session fails. Never returns
    /// otherwise, so that it never cuts a job short.
    pub(super) async fn tidy_originals(
        &self,
        session: &BrokerSession,
        shutdown: &CancellationToken,
    ) -> BrokerError {
        let mut consumer = match session.consume_tidy().await {
            Ok(consumer) => consumer,
            Err(error) => return error,
        };
        while let Some(next) = consumer.next().await {
            match next {
                Ok(delivery) => {
                    let disposition = self.tidier.handle(&delivery, shutdown).await;
                    if let Err(error) = disposition.apply(&delivery.acker).await {
                        return BrokerError::Lost(error);
                    }
                }
                Err(error) => return BrokerError::Lost(error),
            }
        }
        // The broker cancelled the tidy consumer (its queue was deleted):
        // jobs go on; tidying resumes with the next session.
        warn!("tidy consumer cancelled by the broker");
        std::future::pending().await
    }
}
