//! What the worker is doing, for logs now and for metrics and heartbeats.

use std::fmt;

use std::sync::Arc;

use tokio::sync::watch;

use crate::metrics::WorkerMetrics;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerState {
    /// Consuming, no job in hand.
    Idle,
    /// Running a job.
    Busy,
    /// Running a job, asked to stop taking more afterwards.
    Draining,
    /// Out of service: not consuming.
    Drained,
    /// Not consuming until its shared storage answers again.
    StorageUnhealthy,
    /// Not consuming: its last jobs failed for its own reasons.
    Quarantined,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Idle => "idle",
            WorkerState::Busy => "busy",
            WorkerState::Draining => "draining",
            WorkerState::Drained => "drained",
            WorkerState::StorageUnhealthy => "storage-unhealthy",
            WorkerState::Quarantined => "quarantined",
        }
    }
}

impl fmt::Display for WorkerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Holds the current state, logs each change and exports it.
pub struct StateTracker {
    current: watch::Sender<WorkerState>,
    metrics: Arc<WorkerMetrics>,
}

impl StateTracker {
    pub fn new(metrics: Arc<WorkerMetrics>) -> Self {
        Self {
            current: watch::Sender::new(WorkerState::Idle),
            metrics,
        }
    }

    pub fn set(&self, next: WorkerState, why: &str) {
        let previous = self.current.send_replace(next);
        self.metrics.set_state(next);
        if previous != next {
            tracing::info!(from = %previous, to = %next, "worker {next}: {why}");
        }
    }

    pub fn get(&self) -> WorkerState {
        *self.current.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<WorkerState> {
        self.current.subscribe()
    }
}
