//! Taking other workers' chunks while idle: when the consume loop sees
//! chunks waiting, it stops consuming jobs (so the broker cannot push a
//! job to a worker busy with a chunk) and takes chunks one at a time with
//! `basic.get` until none is left, then consumes jobs again.

use super::Worker;
use crate::broker::BrokerSession;
use hlsmux_protocol::WorkerState;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

impl Worker {
    /// Whether chunks wait for a worker like this one.
    pub(super) async fn chunks_waiting(&self, session: &BrokerSession) -> bool {
        self.settings.split.take_chunks && session.chunks().waiting().await.is_ok_and(|n| n > 0)
    }

    /// Encodes waiting chunks one after another until none is left, or
    /// the worker stops, loses its session or closes its gate. A chunk in
    /// hand when the worker stops is given back at once (it is at most a
    /// chunk's work).
    pub(super) async fn take_chunks(
        &self,
        session: &BrokerSession,
        shutdown: &CancellationToken,
        lost: &CancellationToken,
    ) {
        loop {
            if shutdown.is_cancelled()
                || lost.is_cancelled()
                || self.gate.closed(true).await.is_some()
            {
                return;
            }
            let delivery = match session.chunks().take().await {
                Ok(Some(delivery)) => delivery,
                Ok(None) => return,
                Err(error) => {
                    warn!(%error, "cannot take chunks from the queue");
                    return;
                }
            };
            self.state.set(WorkerState::Busy, "chunk received");
            let interrupt = shutdown.child_token();
            let stop_on_loss = lost.clone();
            let settled = tokio::select! {
                settled = self.runner.handle_chunk(&delivery, &interrupt) => settled,
                () = stop_on_loss.cancelled() => {
                    interrupt.cancel();
                    return;
                }
            };
            if let Err(error) = settled.disposition.apply(&delivery.acker).await {
                warn!(%error, "could not settle a chunk; the broker will deliver it again");
            }
            // A chunk is evidence of the worker's health as a job is.
            if let Some(reasons) = self.quarantine.record(&settled.evidence) {
                error!(%reasons, "quarantining this worker: it takes no jobs or chunks until a self-test passes");
                self.metrics.quarantines.inc();
            }
            self.state.set(WorkerState::Idle, "chunk settled");
        }
    }
}
