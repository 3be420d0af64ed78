//! A chunk order: one stretch of a split job's video, which any worker of
//! the pool with the same encoder may encode (see the worker's
//! `job::coordinate`). Only workers publish chunk orders, yet a worker
//! checks one as it checks a job: the job's request inside is parsed as a
//! job message, and the time range must be a real one.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{BadMessage, JobId, JobRequest, SCHEMA_VERSION};

/// A chunk index past this is not a chunk of any real job (a two-day
/// input in one-second chunks has fewer).
const MAX_CHUNK_INDEX: u32 = 200_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkOrder {
    pub schema: u32,
    /// The job's request, as its coordinator received it.
    pub request: serde_json::Value,
    /// The chunk's place in the job, from 0.
    pub index: u32,
    /// Where the chunk starts in the source, in seconds.
    pub start_seconds: f64,
    pub seconds: f64,
    /// The global number of the chunk's first segment.
    pub first_segment: u64,
    /// The coordinator's plan in short (rungs, sizes, bitrates, segment
    /// and keyframe lengths, layout): a worker whose own plan for the job
    /// differs leaves the chunk to the coordinator, so every chunk of an
    /// output is encoded alike.
    pub plan: String,
    #[serde(with = "time::serde::rfc3339")]
    pub ordered_at: OffsetDateTime,
}

/// A chunk order checked: its job's request parsed, its range sane.
#[derive(Clone, Debug)]
pub struct CheckedChunkOrder {
    pub request: JobRequest,
    pub order: ChunkOrder,
}

#[derive(Debug, thiserror::Error)]
pub enum BadChunkOrder {
    #[error("chunk order is not valid JSON for its schema: {0}")]
    Invalid(serde_json::Error),
    #[error("chunk order carries a bad job request: {0}")]
    Request(#[source] BadMessage),
    #[error("chunk order's range is not a real one: {0}")]
    Range(String),
}

impl ChunkOrder {
    pub fn new(
        request: &JobRequest,
        index: u32,
        start_seconds: f64,
        seconds: f64,
        first_segment: u64,
        plan: String,
    ) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            request: serde_json::to_value(request).unwrap_or(serde_json::Value::Null),
            index,
            start_seconds,
            seconds,
            first_segment,
            plan,
            ordered_at: OffsetDateTime::now_utc(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks an order; the size cap is a job message's, with
    /// room for the order around it.
    pub fn from_json(body: &[u8]) -> Result<CheckedChunkOrder, BadChunkOrder> {
        if body.len() > 2 * crate::MAX_JOB_MESSAGE_BYTES {
            return Err(BadChunkOrder::Range(format!(
                "{} bytes is no chunk order",
                body.len()
            )));
        }
        let order: Self = serde_json::from_slice(body).map_err(BadChunkOrder::Invalid)?;
        let request_bytes = serde_json::to_vec(&order.request).map_err(BadChunkOrder::Invalid)?;
        let request = JobRequest::from_json(&request_bytes).map_err(BadChunkOrder::Request)?;
        let sane = order.start_seconds.is_finite()
            && order.start_seconds >= 0.0
            && order.seconds.is_finite()
            && order.seconds > 0.0
            && order.index <= MAX_CHUNK_INDEX
            && !order.plan.is_empty();
        if !sane {
            return Err(BadChunkOrder::Range(format!(
                "chunk {} from {} s for {} s",
                order.index, order.start_seconds, order.seconds
            )));
        }
        Ok(CheckedChunkOrder { request, order })
    }

    pub fn job_id(&self) -> Option<JobId> {
        self.request
            .get("job_id")
            .and_then(|id| serde_json::from_value(id.clone()).ok())
    }
}

/// One chunk of a split job, as its `done` event lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChunkSummary {
    pub index: u32,
    pub start_seconds: f64,
    pub seconds: f64,
    /// The worker (host name and process ID) that encoded it.
    pub worker: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MuxerId, RelativePath};

    fn request() -> JobRequest {
        JobRequest::new(
            MuxerId::new(1).expect("valid"),
            RelativePath::parse("talk.mp4").expect("valid"),
            RelativePath::parse("talk").expect("valid"),
        )
    }

    #[test]
    fn an_order_reads_back_with_its_request() {
        let order = ChunkOrder::new(&request(), 2, 12.0, 6.0, 6, "plan".into());
        let checked = ChunkOrder::from_json(&order.to_json()).expect("valid");
        assert_eq!(checked.request, request_with_id(&order));
        assert_eq!(checked.order, order);
    }

    fn request_with_id(order: &ChunkOrder) -> JobRequest {
        serde_json::from_value(order.request.clone()).expect("request")
    }

    #[test]
    fn a_hostile_order_is_refused() {
        let good = ChunkOrder::new(&request(), 0, 0.0, 6.0, 0, "plan".into());
        let mut negative = good.clone();
        negative.start_seconds = -1.0;
        assert!(matches!(
            ChunkOrder::from_json(&negative.to_json()),
            Err(BadChunkOrder::Range(_))
        ));
        let mut escaping = good.clone();
        escaping.request["input"] = serde_json::Value::String("../etc/passwd".into());
        assert!(matches!(
            ChunkOrder::from_json(&escaping.to_json()),
            Err(BadChunkOrder::Request(_))
        ));
        let mut unplanned = good;
        unplanned.plan.clear();
        assert!(ChunkOrder::from_json(&unplanned.to_json()).is_err());
    }
}
