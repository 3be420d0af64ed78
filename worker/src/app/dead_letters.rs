//! The side task that reports jobs the broker dead-lettered by itself.

use super::Worker;
use super::side_consumer::settle_each;
use super::side_feature::SideFeature;
use crate::broker::{BrokerError, BrokerSession};

impl Worker {
    /// Reports jobs the broker dead-lettered at their delivery limit, until
    /// the session fails.
    pub(super) async fn report_dead_letters(
        &self,
        session: &BrokerSession,
        feature: &SideFeature,
    ) -> BrokerError {
        match session.consume_dead_letter_notices().await {
            Ok(consumer) => {
                self.side_feature_ready(feature);
                settle_each("dead-letter notice", consumer, |delivery| async move {
                    crate::dead_letters::report(&delivery, session.events(), &self.metrics).await
                })
                .await
            }
            Err(error) => error,
        }
    }
}
