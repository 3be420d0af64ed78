//! The side task that follows this muxer's drain/resume command.

use super::{GATE_POLL, Worker};
use crate::broker::{BrokerError, BrokerSession};
use tracing::info;

impl Worker {
    /// Keeps the remote drain setting up to date with the muxer's control
    /// queue, until the session fails.
    pub(super) async fn follow_control(&self, session: &BrokerSession) -> BrokerError {
        loop {
            match session.peek_control().await {
                // No command (or a peer is peeking at it): unchanged.
                Ok(None) => {}
                Ok(Some(command)) => {
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
                Err(error) => return error,
            }
            tokio::time::sleep(GATE_POLL).await;
        }
    }
}
