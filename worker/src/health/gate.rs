//! Decides whether the worker should take jobs right now. It does not while
//! an operator's drain lock file exists or `hlsmux drain` was given for its
//! muxer (the job in hand finishes first; the lock file wins over a remote
//! resume), or
//! while it has quarantined itself after failing jobs for its own reasons,
//! or while its shared storage is unhealthy or without room (jobs then wait
//! in the queue for a healthy worker instead of failing here).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::health::quarantine::Quarantine;
use crate::health::storage::{StorageHealth, StorageMonitor, StorageProblem};

/// Why the worker is not taking jobs.
#[derive(Clone, Debug, PartialEq)]
pub enum Closed {
    DrainLock(PathBuf),
    /// `hlsmux drain` (by whom).
    RemoteDrain(String),
    Quarantined(String),
    Storage(StorageProblem),
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closed::DrainLock(path) => write!(f, "drain lock {} is present", path.display()),
            Closed::RemoteDrain(by) => write!(f, "drained remotely by {by} (hlsmux drain)"),
            Closed::Quarantined(reasons) => write!(f, "quarantined: {reasons}"),
            Closed::Storage(reason) if reason.is_full() => write!(f, "storage full: {reason}"),
            Closed::Storage(reason) => write!(f, "storage unhealthy: {reason}"),
        }
    }
}

/// The latest remote command for this muxer: drained, and by whom.
pub type RemoteDrain = std::sync::Mutex<Option<String>>;

pub struct ServiceGate {
    drain_lock: PathBuf,
    remote_drain: Arc<RemoteDrain>,
    quarantine: Arc<Quarantine>,
    storage: Arc<StorageMonitor>,
}

impl ServiceGate {
    pub fn new(
        drain_lock: PathBuf,
        remote_drain: Arc<RemoteDrain>,
        quarantine: Arc<Quarantine>,
        storage: Arc<StorageMonitor>,
    ) -> Self {
        Self {
            drain_lock,
            remote_drain,
            quarantine,
            storage,
        }
    }

    /// Whether an operator asked the worker to drain.
    pub async fn drain_requested(&self) -> Option<Closed> {
        // An unreadable lock directory counts as no lock: draining is an
        // operator's explicit act, never a side effect of an error.
        if let Ok(true) = tokio::fs::try_exists(&self.drain_lock).await {
            return Some(Closed::DrainLock(self.drain_lock.clone()));
        }
        let remote = self
            .remote_drain
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        remote.map(Closed::RemoteDrain)
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
