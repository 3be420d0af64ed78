//! What is wrong with the shared storage, kept with its cause: the gate,
//! `/readyz`, requeue events and the logs all say it, none parses it.

use std::path::PathBuf;
use std::sync::Arc;

/// The step of a storage probe that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeStep {
    Create,
    Write,
    Sync,
    ReadBack,
    Remove,
    MeasureRoom,
}

impl ProbeStep {
    fn as_str(self) -> &'static str {
        match self {
            ProbeStep::Create => "create",
            ProbeStep::Write => "write",
            ProbeStep::Sync => "sync",
            ProbeStep::ReadBack => "read back",
            ProbeStep::Remove => "remove",
            ProbeStep::MeasureRoom => "measure the free space of",
        }
    }
}

impl std::fmt::Display for ProbeStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the shared storage is not fit for jobs. I/O causes are shared
/// (`Arc`) because the last health is kept and handed out.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StorageProblem {
    #[error("cannot read {}: {source}", path.display())]
    MountTableUnreadable {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("{} is not mounted", path.display())]
    NotMounted { path: PathBuf },
    #[error("{}: cannot {step} {}: {source}", path.display(), file.display())]
    ProbeFailed {
        path: PathBuf,
        step: ProbeStep,
        file: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("{}: {} read back different bytes", path.display(), file.display())]
    ProbeMismatch { path: PathBuf, file: PathBuf },
    #[error("{}: probe stuck for {seconds} s (is the server answering?)", path.display())]
    ProbeStuck { path: PathBuf, seconds: u64 },
    #[error(
        "{}: {} free, {} needed (free some space: the worker resumes by itself)",
        path.display(), bytes(*free_bytes), bytes(*needed_bytes)
    )]
    Full {
        path: PathBuf,
        free_bytes: u64,
        needed_bytes: u64,
    },
    #[error("{}: the probe thread vanished", path.display())]
    ProbeLost { path: PathBuf },
    #[error("{}: cannot start a probe: {source}", path.display())]
    ProbeNotStarted {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
}

impl StorageProblem {
    /// The same problem: the same kind, at the same place, of the same
    /// kind of I/O error (for logging a change only once).
    fn key(
        &self,
    ) -> (
        std::mem::Discriminant<Self>,
        Option<&PathBuf>,
        Option<std::io::ErrorKind>,
    ) {
        let (path, source) = match self {
            StorageProblem::MountTableUnreadable { path, source }
            | StorageProblem::ProbeFailed { path, source, .. }
            | StorageProblem::ProbeNotStarted { path, source } => (path, Some(source.kind())),
            StorageProblem::NotMounted { path }
            | StorageProblem::Full { path, .. }
            | StorageProblem::ProbeMismatch { path, .. }
            | StorageProblem::ProbeStuck { path, .. }
            | StorageProblem::ProbeLost { path } => (path, None),
        };
        (std::mem::discriminant(self), Some(path), source)
    }

    /// Whether the trouble is a lack of room (the worker is then
    /// `storage-full`, not `storage-unhealthy`): measured, or a probe's
    /// write refused for it.
    pub fn is_full(&self) -> bool {
        match self {
            StorageProblem::Full { .. } => true,
            StorageProblem::ProbeFailed { source, .. } => {
                crate::health::storage::fault::StorageFault::of_io(source)
                    == Some(crate::health::storage::fault::StorageFault::Full)
            }
            _ => false,
        }
    }
}

/// A byte count for people: `3.2 MiB`.
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl PartialEq for StorageProblem {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
