//! Decides whether the worker should take jobs right now. It does not while
//! an operator's drain lock file exists (the job in hand finishes first), or
//! while it has quarantined itself after failing jobs for its own reasons,
//! or while its shared storage is unhealthy (jobs then wait in the queue for
//! a healthy worker instead of failing here).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::quarantine::Quarantine;
use crate::storage::{StorageHealth, StorageMonitor};

/// Why the worker is not taking jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closed {
    DrainLock(PathBuf),
    Quarantined(String),
    Storage(String),
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closed::DrainLock(path) => write!(f, "drain lock {} is present", path.display()),
            Closed::Quarantined(reasons) => write!(f, "quarantined: {reasons}"),
            Closed::Storage(reason) => write!(f, "storage unhealthy: {reason}"),
        }
    }
}

pub struct ServiceGate {
    drain_lock: PathBuf,
    quarantine: Arc<Quarantine>,
    storage: Arc<StorageMonitor>,
}

impl ServiceGate {
    pub fn new(
        drain_lock: PathBuf,
        quarantine: Arc<Quarantine>,
        storage: Arc<StorageMonitor>,
    ) -> Self {
        Self {
            drain_lock,
            quarantine,
            storage,
        }
    }

    /// Whether an operator asked the worker to drain.
    pub async fn drain_requested(&self) -> Option<Closed> {
        // An unreadable lock directory counts as no lock: draining is an
        // operator's explicit act, never a side effect of an error.
        match tokio::fs::try_exists(&self.drain_lock).await {
            Ok(true) => Some(Closed::DrainLock(self.drain_lock.clone())),
            _ => None,
        }
    }

    /// `None` when the worker may take jobs, else why not. `fresh` probes
    /// the storage now instead of trusting a recent healthy result.
    pub async fn closed(&self, fresh: bool) -> Option<Closed> {
        if let Some(drain) = self.drain_requested().await {
            return Some(drain);
        }
        if let Some(reasons) = self.quarantine.reasons() {
            return Some(Closed::Quarantined(reasons));
        }
        match self.storage.health(fresh).await {
            StorageHealth::Healthy => None,
            StorageHealth::Unhealthy(reason) => Some(Closed::Storage(reason)),
        }
    }
}
