//! The side task that follows the pool's cancellations stream.

use super::Worker;
use super::side_consumer::{Followed, follow_stream};
use super::side_feature::SideFeature;
use crate::broker::{BrokerError, BrokerSession};
use hlsmux_protocol::CancelRequest;
use tracing::info;

impl Worker {
    /// Keeps the set of cancelled jobs up to date with the pool's
    /// cancellations stream, from its start, until the session fails.
    pub(super) async fn follow_cancellations(
        &self,
        session: &BrokerSession,
        feature: &SideFeature,
    ) -> BrokerError {
        let consumer = match session.read_cancellations().await {
            Ok(consumer) => consumer,
            Err(error) => return error,
        };
        self.side_feature_ready(feature);
        follow_stream("cancellations", consumer, |followed| match followed {
            Followed::CaughtUp => self.cancellations.mark_caught_up(),
            Followed::Message(request, _) => self.record_cancellation(request),
        })
        .await
    }

    fn record_cancellation(&self, request: CancelRequest) {
        if self
            .state
            .job()
            .is_some_and(|(job, _)| job == request.job_id)
        {
            info!(job_id = %request.job_id, by = %request.by, "the job in hand is cancelled: stopping it");
        }
        self.cancellations.record(request);
    }
}
