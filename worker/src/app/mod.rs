//! The worker as a whole: built from its settings (`startup`), it runs
//! until shutdown, connecting and reconnecting (`session`), consuming one
//! job at a time behind its gate (`consume`), with one module per side
//! task that shares the session: tidy, dead-letter notices, control
//! commands, cancellations, heartbeats and the audit of outcomes.

mod audit;
mod cancellations;
mod chunks;
mod consume;
mod control;
mod dead_letters;
mod heartbeat;
mod session;
mod side_consumer;
mod side_feature;
pub mod startup;
mod tidy;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::broker::outcome_ledger::OutcomeLedger;
use crate::cancellations::Cancellations;
use crate::config::Settings;
use crate::hardware::soc::SocSensor;
use crate::health::gate::{RemoteDrain, ServiceGate};
use crate::health::quarantine::Quarantine;
use crate::health::state::StateTracker;
use crate::health::storage::StorageMonitor;
use crate::job::JobRunner;
use crate::metrics::server::Endpoints;
use crate::metrics::{self, WorkerMetrics};
use crate::tidy::Tidier;

/// How often the gate (drain lock) is looked at.
const GATE_POLL: Duration = Duration::from_secs(1);

/// A worker ready to run.
pub struct Worker {
    settings: Arc<Settings>,
    name: String,
    runner: JobRunner,
    gate: ServiceGate,
    state: Arc<StateTracker>,
    /// The video encoder chosen at start-up, for heartbeats.
    encoder: String,
    tidier: Tidier,
    quarantine: Arc<Quarantine>,
    remote_drain: Arc<RemoteDrain>,
    cancellations: Cancellations,
    storage: Arc<StorageMonitor>,
    metrics: Arc<WorkerMetrics>,
    /// Outcomes published lately, looked for again (`audit`).
    outcomes: Arc<OutcomeLedger>,
}

impl Worker {
    /// Runs until `shutdown` is cancelled, serving metrics on
    /// `metrics_listener`. Stop order: the consumer stops, a job in hand may
    /// finish within the grace period or is interrupted and given back to
    /// its queue, the connection closes, and last the HTTP server stops.
    pub async fn run(self, metrics_listener: TcpListener, shutdown: CancellationToken) {
        let endpoints = Arc::new(Endpoints {
            metrics: Arc::clone(&self.metrics),
            state: self.state.subscribe(),
            storage: Arc::clone(&self.storage),
            quarantine: Arc::clone(&self.quarantine),
            soc: SocSensor::new(&self.settings.soc),
        });
        let stop_server = CancellationToken::new();
        let server = tokio::spawn(metrics::server::serve(
            metrics_listener,
            endpoints,
            stop_server.clone(),
        ));
        self.consume_until_shutdown(&shutdown).await;
        stop_server.cancel();
        let _ = server.await;
        info!("worker stopped");
    }
}
