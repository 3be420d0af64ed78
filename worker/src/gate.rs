//! Decides whether the worker should take jobs right now. An operator takes
//! a worker out of service by creating its drain lock file: the job in hand
//! finishes, then the worker stops consuming until the file is removed.

use std::path::{Path, PathBuf};

/// Why the worker is not taking jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closed {
    DrainLock(PathBuf),
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::DrainLock(path) => write!(f, "drain lock {} is present", path.display()),
        }
    }
}

pub struct ServiceGate {
    drain_lock: PathBuf,
}

impl ServiceGate {
    pub fn new(drain_lock: PathBuf) -> Self {
        Self { drain_lock }
    }

    pub fn drain_lock(&self) -> &Path {
        &self.drain_lock
    }

    /// `None` when the worker may take jobs, else why not.
    pub async fn closed(&self) -> Option<Closed> {
        // An unreadable lock directory counts as no lock: draining is an
        // operator's explicit act, never a side effect of an error.
        match tokio::fs::try_exists(&self.drain_lock).await {
            Ok(true) => Some(Closed::DrainLock(self.drain_lock.clone())),
            _ => None,
        }
    }
}
