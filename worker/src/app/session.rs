//! One broker session after another until shutdown: connect (with capped,
//! jittered back-off), serve jobs and the side tasks, reconnect.

use super::Worker;
use super::consume::Stop;
use super::side_feature::Side;
use crate::broker::{BrokerError, BrokerSession};
use crate::job::outcome::Ending;
use hlsmux_protocol::WorkerState;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

const RECONNECT_MIN: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

impl Worker {
    /// Connects, serves and reconnects until shutdown.
    pub(super) async fn consume_until_shutdown(&self, shutdown: &CancellationToken) {
        let shutdown = shutdown.clone();
        let mut delay = RECONNECT_MIN;
        let mut connected_before = false;
        loop {
            let opened = tokio::select! {
                opened = BrokerSession::open(&self.settings, &self.name, &self.encoder, Arc::clone(&self.outcomes)) => opened,
                () = shutdown.cancelled() => return,
            };
            let session = match opened {
                Ok(session) => session,
                Err(error) => {
                    let wait = with_jitter(delay);
                    error!(%error, retry_in = ?wait, "broker unavailable");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = shutdown.cancelled() => return,
                    }
                    delay = (delay * 2).min(RECONNECT_MAX);
                    continue;
                }
            };
            delay = RECONNECT_MIN;
            self.metrics.broker_connected.set(1);
            if connected_before {
                self.metrics.broker_reconnects.inc();
            }
            connected_before = true;
            let served = self.serve_session(&session, &shutdown).await;
            session.close().await;
            self.metrics.broker_connected.set(0);
            match served {
                Ok(()) => return,
                Err(error) => warn!(%error, "reconnecting"),
            }
        }
    }

    /// Serves jobs, tidy requests and dead-letter notices on one session.
    /// When the side consumers lose the connection, a job in hand still
    /// runs to its end (its output is not wasted: a redelivery recognises
    /// it) before the session is given up.
    pub(super) async fn serve_session(
        &self,
        session: &BrokerSession,
        shutdown: &CancellationToken,
    ) -> Result<(), BrokerError> {
        let lost = CancellationToken::new();
        let serving = self.serve(session, shutdown, &lost);
        tokio::pin!(serving);
        let side_lost = async {
            tokio::select! {
                lost = self.keep_side_feature(Side::Tidy, session, shutdown) => lost,
                lost = self.keep_side_feature(Side::DeadLetterNotices, session, shutdown) => lost,
                lost = self.keep_side_feature(Side::Control, session, shutdown) => lost,
                lost = self.keep_side_feature(Side::Cancellations, session, shutdown) => lost,
                lost = self.send_heartbeats(session) => lost,
                lost = self.audit_outcomes(session) => lost,
            }
        };
        tokio::select! {
            served = &mut serving => served,
            error = side_lost => {
                lost.cancel();
                let _ = serving.await;
                Err(error)
            }
        }
    }

    /// Serves jobs on one broker session until shutdown (`Ok`) or until the
    /// connection fails (`Err`), consuming only while the gate is open.
    pub(super) async fn serve(
        &self,
        session: &BrokerSession,
        shutdown: &CancellationToken,
        lost: &CancellationToken,
    ) -> Result<(), BrokerError> {
        loop {
            let open = tokio::select! {
                open = self.wait_for_open_gate(shutdown) => open,
                () = lost.cancelled() => return Err(BrokerError::SessionLost),
            };
            if !open {
                return Ok(());
            }
            let consumer = session.consume().await?;
            self.state.set(WorkerState::Idle, "consuming");
            info!(
                muxer_id = %self.settings.broker.muxer_id,
                namespace = %self.settings.broker.namespace,
                "worker ready, waiting for jobs"
            );
            let (consumer, stopped) = self.consume(session, consumer, shutdown, lost).await;
            if let Some(consumer) = consumer {
                for stray in session.stop_consuming(consumer).await? {
                    let _ = Ending::NotInService.disposition().apply(&stray.acker).await;
                }
            }
            match stopped? {
                Stop::Shutdown => return Ok(()),
                Stop::GateClosed => continue,
                Stop::ChunksWaiting => self.take_chunks(session, shutdown, lost).await,
                Stop::SessionLost => {
                    return Err(BrokerError::SessionLost);
                }
            }
        }
    }
}

/// Up to a quarter more than `delay`, so workers that lost the broker
/// together do not all knock at the same instant.
fn with_jitter(delay: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let spread = u32::try_from(delay.as_millis() / 4)
        .unwrap_or(u32::MAX)
        .max(1);
    delay + Duration::from_millis(u64::from(nanos % spread))
}
