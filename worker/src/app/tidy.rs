//! The side task that tidies originals: consumes this muxer's due tidy requests.

use tokio_util::sync::CancellationToken;

use super::Worker;
use super::side_consumer::settle_each;
use crate::broker::{BrokerError, BrokerSession};

impl Worker {
    /// Handles due tidy requests until the session fails. Never returns
    /// otherwise, so that it never cuts a job short.
    pub(super) async fn tidy_originals(
        &self,
        session: &BrokerSession,
        shutdown: &CancellationToken,
    ) -> BrokerError {
        match session.consume_tidy().await {
            Ok(consumer) => {
                settle_each("tidy", consumer, |delivery| async move {
                    self.tidier.handle(&delivery, shutdown).await
                })
                .await
            }
            Err(error) => error,
        }
    }
}
