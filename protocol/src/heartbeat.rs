//! Worker heartbeats: what each worker says about itself every few seconds,
//! kept briefly in the pool's heartbeat stream so `hlsmux workers` can show
//! the pool, and notice a worker that went silent.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{JobId, MuxerId};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub schema: u32,
    pub muxer_id: MuxerId,
    /// Host name.
    pub worker: String,
    pub pid: u32,
    pub version: String,
    pub state: WorkerState,
    /// The job in hand and how far its encode is.
    pub job: Option<JobId>,
    /// The chunk of `job` in hand, when it is another worker's split job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<u32>,
    pub percent: Option<f64>,
    pub encoder: String,
    pub temperature_celsius: Option<f64>,
    /// Throttling flags set now or since boot (`vcgencmd get_throttled`).
    pub throttled: Vec<String>,
    /// Seconds between heartbeats: a reader calls the worker lost after
    /// three missed.
    pub interval_seconds: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// What a worker is doing, as its heartbeats say and its metrics export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
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
    /// Not consuming until its output volume (or work dir) has room again.
    StorageFull,
    /// Not consuming: its last jobs failed for its own reasons.
    Quarantined,
    /// A state this build does not know (a newer worker's).
    #[serde(other)]
    Unknown,
}

impl WorkerState {
    /// Every state a worker of this build can be in, for metrics.
    pub const ALL: [WorkerState; 7] = [
        WorkerState::Idle,
        WorkerState::Busy,
        WorkerState::Draining,
        WorkerState::Drained,
        WorkerState::StorageUnhealthy,
        WorkerState::StorageFull,
        WorkerState::Quarantined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Idle => "idle",
            WorkerState::Busy => "busy",
            WorkerState::Draining => "draining",
            WorkerState::Drained => "drained",
            WorkerState::StorageUnhealthy => "storage-unhealthy",
            WorkerState::StorageFull => "storage-full",
            WorkerState::Quarantined => "quarantined",
            WorkerState::Unknown => "unknown",
        }
    }

    /// Whether the worker has a job in hand.
    pub fn has_job(self) -> bool {
        matches!(self, WorkerState::Busy | WorkerState::Draining)
    }
}

impl std::fmt::Display for WorkerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Heartbeat {
    /// Whether three intervals have passed since this heartbeat at `now`.
    pub fn is_lost(&self, now: OffsetDateTime) -> bool {
        let silent = now - self.at;
        silent.whole_milliseconds() > i128::from(self.interval_seconds) * 3 * 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SCHEMA_VERSION;

    #[test]
    fn a_worker_is_lost_after_three_missed_heartbeats() {
        let heartbeat = Heartbeat {
            schema: SCHEMA_VERSION,
            muxer_id: MuxerId::new(1).expect("valid"),
            worker: "pi1".into(),
            pid: 7,
            version: "0.1.0".into(),
            state: WorkerState::Idle,
            job: None,
            chunk: None,
            percent: None,
            encoder: "libx264".into(),
            temperature_celsius: None,
            throttled: Vec::new(),
            interval_seconds: 5,
            at: OffsetDateTime::now_utc(),
        };
        let at = heartbeat.at;
        assert!(!heartbeat.is_lost(at + time::Duration::seconds(14)));
        assert!(heartbeat.is_lost(at + time::Duration::seconds(16)));
    }

    #[test]
    fn states_travel_as_the_words_earlier_workers_sent() {
        for state in WorkerState::ALL {
            let json = serde_json::to_string(&state).expect("serialises");
            assert_eq!(json, format!("\"{state}\""));
        }
        let newer: WorkerState = serde_json::from_str("\"melting\"").expect("parses");
        assert_eq!(newer, WorkerState::Unknown);
    }
}
