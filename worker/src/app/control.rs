//! The side task that follows this muxer's drain/resume commands in the
//! pool's control stream.

use super::Worker;
use super::side_feature::SideFeature;
use crate::broker::{BrokerError, BrokerSession};
use futures_util::StreamExt;
use hlsmux_protocol::ControlCommand;
use lapin::options::BasicAckOptions;
use tracing::{info, warn};

impl Worker {
    /// Keeps the remote drain setting up to date with the latest command
    /// for this muxer, until the session fails. The backlog is read to its
    /// end before its latest command is applied, so that a drain undone
    /// long ago never closes the gate for a moment.
    pub(super) async fn follow_control(
        &self,
        session: &BrokerSession,
        feature: &SideFeature,
    ) -> BrokerError {
        let mut consumer = match session.read_control().await {
            Ok(consumer) => consumer,
            Err(error) => return error,
        };
        self.side_feature_ready(feature);
        let mut backlog_latest = None;
        let mut caught_up = false;
        loop {
            let next = if caught_up {
                consumer.next().await
            } else {
                match tokio::time::timeout(hlsmux_amqp::stream::CAUGHT_UP_QUIET, consumer.next())
                    .await
                {
                    Ok(next) => next,
                    Err(_) => {
                        caught_up = true;
                        if let Some(command) = backlog_latest.take() {
                            self.apply_control(&command);
                        }
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
            let command = match serde_json::from_slice::<ControlCommand>(&delivery.data) {
                Ok(command) if command.muxer_id == self.settings.broker.muxer_id => command,
                Ok(_) => continue,
                Err(error) => {
                    warn!(%error, "skipping a message in the control stream that is not a command");
                    continue;
                }
            };
            if caught_up {
                self.apply_control(&command);
            } else {
                backlog_latest = Some(command);
            }
        }
        BrokerError::ConsumerCancelled("control stream")
    }

    fn apply_control(&self, command: &ControlCommand) {
        let next = command.drain.then(|| command.by.clone());
        let mut current = self
            .remote_drain
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *current != next {
            info!(drain = command.drain, by = %command.by, "remote command for this muxer");
            *current = next;
        }
    }
}
