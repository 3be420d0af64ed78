//! The side task that tidies originals: consumes this muxer's due tidy requests.

use tokio_util::sync::CancellationToken;

use super::Worker;
use super::side_consumer::settle_each;
use super::side_feature::SideFeature;
use crate::broker::{BrokerError, BrokerSession};

impl Worker {
    /// Handles due tidy requests until the session fails. Never returns
    /// otherwise, so that it never cuts a job short.
    pub(super) async fn tidy_originals(
        &self,
        session: &BrokerSession,
        feature: &SideFeature,
        shutdown: &CancellationToken,
    ) -> BrokerError {
        match session.consume_tidy().await {
            Ok(consumer) => {
                self.side_feature_ready(feature);
                settle_each("tidy", consumer, |delivery| async move {
                    self.tidier.handle(&delivery, shutdown).await
                })
                .await
            }
            Err(error) => error,
        }
    }
}
