//! What the worker is doing, for logs now and for metrics and heartbeats.

use std::sync::{Arc, Mutex};

use hlsmux_protocol::{JobId, WorkerState};
use tokio::sync::watch;

use crate::metrics::WorkerMetrics;

/// Holds the current state, logs each change and exports it; and the job
/// in hand with its progress, for heartbeats.
pub struct StateTracker {
    current: watch::Sender<WorkerState>,
    job: Mutex<Option<(JobId, f64)>>,
    /// Another worker's chunk in hand: its job and index.
    chunk: Mutex<Option<(JobId, u32)>>,
    metrics: Arc<WorkerMetrics>,
}

impl StateTracker {
    pub fn new(metrics: Arc<WorkerMetrics>) -> Self {
        Self {
            current: watch::Sender::new(WorkerState::Idle),
            job: Mutex::new(None),
            chunk: Mutex::new(None),
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

    /// The job in hand (`None` when it ends), at 0 %.
    pub fn set_job(&self, job: Option<JobId>) {
        *self.lock_job() = job.map(|job| (job, 0.0));
    }

    pub fn set_progress(&self, percent: f64) {
        if let Some((_, progress)) = self.lock_job().as_mut() {
            *progress = percent;
        }
    }

    pub fn job(&self) -> Option<(JobId, f64)> {
        *self.lock_job()
    }

    /// Another job's chunk in hand (`None` when it ends).
    pub fn set_chunk(&self, chunk: Option<(JobId, u32)>) {
        *self
            .chunk
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = chunk;
    }

    pub fn chunk(&self) -> Option<(JobId, u32)> {
        *self
            .chunk
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_job(&self) -> std::sync::MutexGuard<'_, Option<(JobId, f64)>> {
        self.job
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn subscribe(&self) -> watch::Receiver<WorkerState> {
        self.current.subscribe()
    }
}
