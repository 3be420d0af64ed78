//! The side task that follows this muxer's drain/resume commands in the
//! pool's control stream.

use super::Worker;
use super::side_consumer::{Followed, follow_stream};
use super::side_feature::SideFeature;
use crate::broker::{BrokerError, BrokerSession};
use hlsmux_protocol::ControlCommand;
use tracing::info;

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
        let consumer = match session.read_control().await {
            Ok(consumer) => consumer,
            Err(error) => return error,
        };
        self.side_feature_ready(feature);
        let mut backlog_latest: Option<ControlCommand> = None;
        let muxer = self.settings.broker.muxer_id;
        follow_stream(
            "control",
            consumer,
            |followed: Followed<ControlCommand>| match followed {
                Followed::Message(command, _) if command.muxer_id != muxer => {}
                Followed::Message(command, true) => self.apply_control(&command),
                Followed::Message(command, false) => backlog_latest = Some(command),
                Followed::CaughtUp => {
                    if let Some(command) = backlog_latest.take() {
                        self.apply_control(&command);
                    }
                }
            },
        )
        .await
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
