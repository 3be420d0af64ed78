//! Cancelling a job: `hlsmux cancel JOB`.
//!
//! A job message cannot be taken out of the middle of a queue, so a
//! cancellation is a message of its own in the pool's cancellations stream.
//! Every worker reads that stream from its start and keeps the IDs: a job
//! cancelled while queued fails as `cancelled` when a worker takes it, and
//! the job in hand is stopped when its cancellation arrives.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{JobId, SCHEMA_VERSION};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    pub schema: u32,
    pub job_id: JobId,
    /// Who asked (user and host), for the `failed` event's message.
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl CancelRequest {
    pub fn new(job_id: JobId, by: String) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            job_id,
            by,
            at: OffsetDateTime::now_utc(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancellation_reads_back_as_written() {
        let request = CancelRequest::new(JobId::generate(), "alice@laptop".into());
        let json = serde_json::to_vec(&request).expect("serialises");
        let read: CancelRequest = serde_json::from_slice(&json).expect("parses");
        assert_eq!(read, request);
    }
}
