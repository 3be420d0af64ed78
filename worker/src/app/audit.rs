//! The side task that looks for this worker's recent outcomes in the event
//! history again, and publishes again any the broker lost after showing it
//! (see `broker::outcome_ledger`).

use super::Worker;
use crate::broker::outcome_ledger::AUDIT_INTERVAL;
use crate::broker::{BrokerError, BrokerSession};

impl Worker {
    /// Audits every interval until the session fails.
    pub(super) async fn audit_outcomes(&self, session: &BrokerSession) -> BrokerError {
        loop {
            tokio::time::sleep(AUDIT_INTERVAL).await;
            match session.events().audit_outcomes().await {
                Ok(0) => {}
                Ok(republished) => self
                    .metrics
                    .outcomes_republished
                    .inc_by(u64::try_from(republished).unwrap_or(u64::MAX)),
                Err(error) => return BrokerError::Publish(error),
            }
        }
    }
}
