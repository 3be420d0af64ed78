//! One delivered job message, from start to settlement: `handle` parses it
//! and reports its ending, `spec` fixes what the job asks for, `produce`
//! drives the pipeline (an existing output, the plan, the attempts),
//! `attempt` runs one attempt to its publish with progress events,
//! `coordinate` spreads a long job's chunks across the pool and `chunk`
//! encodes one chunk of any job, `room` keeps it to the output volume's
//! free space, `failure` says why a job did not finish, and `outcome`
//! decides how the broker is told.

mod attempt;
mod chunk;
mod coordinate;
mod failure;
mod handle;
pub mod outcome;
mod produce;
mod room;
mod spec;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cancellations::Cancellations;
use crate::config::Settings;
use crate::hardware::MachineCodecs;
use crate::health::state::StateTracker;
use crate::health::storage::StorageMonitor;
use crate::metrics::WorkerMetrics;
use crate::pipeline::publish::StagingOwner;

/// Runs jobs with one worker's settings, codecs and storage.
#[derive(Clone)]
pub struct JobRunner {
    pub(super) settings: Arc<Settings>,
    pub(super) codecs: Arc<MachineCodecs>,
    pub(super) storage: Arc<StorageMonitor>,
    pub(super) metrics: Arc<WorkerMetrics>,
    pub(super) state: Arc<StateTracker>,
    pub(super) cancellations: Cancellations,
    pub(super) owner: StagingOwner,
    /// The worker is asked to drain: a coordinator then takes no other
    /// job's chunks while it waits, and encodes its own chunks itself.
    pub(super) draining: Arc<AtomicBool>,
}

impl JobRunner {
    pub fn new(
        settings: Arc<Settings>,
        codecs: MachineCodecs,
        storage: Arc<StorageMonitor>,
        metrics: Arc<WorkerMetrics>,
        state: Arc<StateTracker>,
        cancellations: Cancellations,
        worker_name: &str,
    ) -> Self {
        Self {
            settings,
            codecs: Arc::new(codecs),
            storage,
            metrics,
            state,
            cancellations,
            owner: StagingOwner::this_process(worker_name),
            draining: Arc::default(),
        }
    }

    /// Says whether the worker is asked to drain (see `draining`).
    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::Relaxed);
    }
}
