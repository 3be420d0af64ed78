//! Consuming jobs on one session: one at a time, only while the gate is
//! open, with the grace period on shutdown and the quarantine self-test.

use super::{GATE_POLL, Worker};
use crate::broker::{BrokerError, BrokerSession};
use crate::health::gate::Closed;
use crate::health::selftest;
use crate::job::outcome::Ending;
use crate::job::outcome::Settled;
use futures_util::StreamExt;
use hlsmux_protocol::WorkerState;
use lapin::Consumer;
use lapin::message::Delivery;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

impl Worker {
    /// Waits while the gate is closed, reporting why. A quarantined worker
    /// runs its self-test once the cool-down is over. False when shutdown
    /// came first.
    pub(super) async fn wait_for_open_gate(&self, shutdown: &CancellationToken) -> bool {
        while let Some(reason) = self.gate.closed(false).await {
            let state = match &reason {
                Closed::DrainLock(_) | Closed::RemoteDrain(_) => WorkerState::Drained,
                Closed::Quarantined(_) => WorkerState::Quarantined,
                Closed::Storage(problem) if problem.is_full() => WorkerState::StorageFull,
                Closed::Storage(_) => WorkerState::StorageUnhealthy,
            };
            self.state.set(state, &reason.to_string());
            if matches!(reason, Closed::Quarantined(_)) && self.quarantine.self_test_due() {
                self.self_test(shutdown).await;
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(GATE_POLL) => {}
                () = shutdown.cancelled() => return false,
            }
        }
        !shutdown.is_cancelled()
    }

    /// Runs the quarantine self-test: a storage probe and a small encode
    /// through the real pipeline. Passing lifts the quarantine.
    pub(super) async fn self_test(&self, shutdown: &CancellationToken) {
        info!("quarantine cool-down over: running the self-test");
        let outcome = match self.storage.health(true).await {
            crate::health::storage::StorageHealth::Unhealthy(reason) => {
                Err(format!("storage: {reason}"))
            }
            crate::health::storage::StorageHealth::Healthy => {
                selftest::run(&self.runner, shutdown).await
            }
        };
        match outcome {
            Ok(()) => {
                info!("self-test passed: taking jobs again");
                self.quarantine.lift();
            }
            Err(why) => {
                error!(%why, "self-test failed: staying quarantined for another cool-down");
                self.quarantine.extend(&why);
            }
        }
    }

    /// Takes jobs one at a time until shutdown, the gate closing, or a broker
    /// error. Hands the consumer back unless the broker already ended it.
    pub(super) async fn consume(
        &self,
        session: &BrokerSession,
        mut consumer: Consumer,
        shutdown: &CancellationToken,
        lost: &CancellationToken,
    ) -> (Option<Consumer>, Result<Stop, BrokerError>) {
        loop {
            // Shutdown first: a job the broker pushed as the last one was
            // acked must not start once the worker is stopping.
            if shutdown.is_cancelled() {
                return (Some(consumer), Ok(Stop::Shutdown));
            }
            let next = tokio::select! {
                biased;
                () = shutdown.cancelled() => return (Some(consumer), Ok(Stop::Shutdown)),
                () = lost.cancelled() => return (None, Ok(Stop::SessionLost)),
                next = consumer.next() => next,
                () = tokio::time::sleep(GATE_POLL) => {
                    if self.gate.closed(false).await.is_some() {
                        return (Some(consumer), Ok(Stop::GateClosed));
                    }
                    if self.chunks_waiting(session).await {
                        return (Some(consumer), Ok(Stop::ChunksWaiting));
                    }
                    continue;
                }
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(error)) => return (None, Err(BrokerError::Lost(error))),
                None => {
                    let lost = BrokerError::ConsumerCancelled("job");
                    return (None, Err(lost));
                }
            };
            // Storage is probed afresh before each job.
            if self.gate.closed(true).await.is_some() {
                // Not in service as this job arrived: it is not ours to start.
                let _ = Ending::NotInService
                    .disposition()
                    .apply(&delivery.acker)
                    .await;
                return (Some(consumer), Ok(Stop::GateClosed));
            }
            self.state.set(WorkerState::Busy, "job received");
            let Settled {
                disposition,
                evidence,
            } = self.run_job(&delivery, session, shutdown).await;
            if let Err(error) = disposition.apply(&delivery.acker).await {
                warn!(%error, ?disposition, "could not settle the job; the broker will redeliver it");
            }
            if let Some(reasons) = self.quarantine.record(&evidence) {
                error!(%reasons, cooldown = ?self.settings.service.quarantine_cooldown, "quarantining this worker: it takes no jobs until a self-test passes");
                self.metrics.quarantines.inc();
            }
            if self.gate.closed(false).await.is_some() {
                return (Some(consumer), Ok(Stop::GateClosed));
            }
            self.state.set(WorkerState::Idle, "job settled");
        }
    }

    /// Runs one job, noticing meanwhile if the worker is asked to drain.
    /// On shutdown the job has the grace period to finish; then it is
    /// interrupted (and requeued).
    pub(super) async fn run_job(
        &self,
        delivery: &Delivery,
        session: &BrokerSession,
        shutdown: &CancellationToken,
    ) -> Settled {
        let interrupt = CancellationToken::new();
        self.runner.set_draining(false);
        let job = self
            .runner
            .handle(delivery, session.events(), session.chunks(), &interrupt);
        tokio::pin!(job);
        let mut grace_ends: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                settled = &mut job => return settled,
                () = tokio::time::sleep(GATE_POLL) => {
                    if let Some(reason) = self.gate.drain_requested().await {
                        self.state.set(WorkerState::Draining, &reason.to_string());
                        self.runner.set_draining(true);
                    }
                }
                () = shutdown.cancelled(), if grace_ends.is_none() => {
                    let grace = self.settings.service.shutdown_grace;
                    info!(?grace, "stopping: the job in hand may finish within the grace period");
                    self.state.set(WorkerState::Draining, "shutting down");
                    self.runner.set_draining(true);
                    grace_ends = Some(tokio::time::Instant::now() + grace);
                }
                () = sleep_until_some(grace_ends), if !interrupt.is_cancelled() => {
                    info!("grace period over: interrupting the job");
                    interrupt.cancel();
                }
            }
        }
    }
}

/// Why consuming stopped without a broker error.
pub(super) enum Stop {
    Shutdown,
    GateClosed,
    /// Chunks of split jobs wait and this worker has no job in hand.
    ChunksWaiting,
    /// Another channel of the session failed; reconnect.
    SessionLost,
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
