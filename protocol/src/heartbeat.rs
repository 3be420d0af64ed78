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
    /// idle, busy, draining, drained, storage-unhealthy or quarantined.
    pub state: String,
    /// The job in hand and how far its encode is.
    pub job: Option<JobId>,
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
            state: "idle".into(),
            job: None,
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
}
