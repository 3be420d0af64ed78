//! The worker's edge to its shared storage (NFS on a Pi pool): whether the
//! media and output mounts are there and answering.

pub mod fault;
pub mod monitor;
pub mod mountinfo;
pub mod problem;

pub use monitor::{StorageConfig, StorageHealth, StorageMonitor, free_bytes};
pub use problem::{ProbeStep, StorageProblem};
