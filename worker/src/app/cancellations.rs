//! The side task that follows the pool's cancellations stream.

use super::Worker;
use super::side_feature::SideFeature;
use crate::broker::{BrokerError, BrokerSession};
use futures_util::StreamExt;
use hlsmux_protocol::CancelRequest;
use lapin::options::BasicAckOptions;
use tracing::{info, warn};

impl Worker {
    /// Keeps the set of cancelled jobs up to date with the pool's
    /// cancellations stream, from its start, until the session fails.
    pub(super) async fn follow_cancellations(
        &self,
        session: &BrokerSession,
        feature: &SideFeature,
    ) -> BrokerError {
        let mut consumer = match session.read_cancellations().await {
            Ok(consumer) => consumer,
            Err(error) => return error,
        };
        self.side_feature_ready(feature);
        let mut caught_up = false;
        loop {
            // Timed only until the backlog is read, so an idle worker
            // does not wake for nothing.
            let next = if caught_up {
                consumer.next().await
            } else {
                match tokio::time::timeout(hlsmux_amqp::stream::CAUGHT_UP_QUIET, consumer.next())
                    .await
                {
                    Ok(next) => next,
                    Err(_) => {
                        caught_up = true;
                        self.cancellations.mark_caught_up();
                        continue;
                    }
                }
            };
            let Some(next) = next else { break };
            let delivery = match next {
                Ok(delivery) => delivery,
                Err(error) => return BrokerError::Lost(error),
            };
            // Streams count acknowledgements as credit for more.
            if let Err(error) = delivery.acker.ack(BasicAckOptions::default()).await {
                return BrokerError::Lost(error);
            }
            match serde_json::from_slice::<CancelRequest>(&delivery.data) {
                Ok(request) => {
                    if self
                        .state
                        .job()
                        .is_some_and(|(job, _)| job == request.job_id)
                    {
                        info!(job_id = %request.job_id, by = %request.by, "the job in hand is cancelled: stopping it");
                    }
                    self.cancellations.record(request);
                }
                Err(error) => {
                    warn!(%error, "skipping a message in the cancellations stream that is not a cancellation")
                }
            }
        }
        BrokerError::ConsumerCancelled("cancellations")
    }
}
