//! What RabbitMQ and the publisher wrote into a delivery's properties:
//! stream offsets, dead-letter history, message IDs.

use hlsmux_protocol::{JobId, JobRequest};
use lapin::BasicProperties;
use lapin::types::AMQPValue;

/// The reason RabbitMQ records in `x-death` for a message dead-lettered
/// because it reached the queue's delivery limit.
const DELIVERY_LIMIT_DEATH: &str = "delivery_limit";

/// A delivery's offset in a stream.
pub fn stream_offset(properties: &BasicProperties) -> Option<u64> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get("x-stream-offset")? {
        AMQPValue::LongLongInt(offset) => u64::try_from(*offset).ok(),
        AMQPValue::LongUInt(offset) => Some(u64::from(*offset)),
        AMQPValue::LongInt(offset) => u64::try_from(*offset).ok(),
        _ => None,
    }
}

/// Why a dead letter was dead-lettered, as RabbitMQ recorded it in the
/// message's latest `x-death` entry (`rejected`, `delivery_limit`, ...),
/// with the number of times it died so.
pub fn last_death(properties: &BasicProperties) -> Option<(String, i64)> {
    let headers = properties.headers().as_ref()?;
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        return None;
    };
    // The most recent death comes first.
    let AMQPValue::FieldTable(death) = deaths.as_slice().first()? else {
        return None;
    };
    let reason = match death.inner().get("reason")? {
        AMQPValue::LongString(reason) => String::from_utf8_lossy(reason.as_bytes()).into_owned(),
        _ => return None,
    };
    let count = match death.inner().get("count") {
        Some(AMQPValue::LongLongInt(count)) => *count,
        Some(AMQPValue::LongInt(count)) => i64::from(*count),
        _ => 1,
    };
    Some((reason, count))
}

/// Whether a dead letter was dead-lettered because it reached its queue's
/// delivery limit.
pub fn died_of_delivery_limit(properties: &BasicProperties) -> bool {
    last_death(properties).is_some_and(|(reason, _)| reason == DELIVERY_LIMIT_DEATH)
}

/// How many times a quorum queue delivered this message before
/// (`x-delivery-count`; 0 on its first delivery).
pub fn delivery_count(properties: &BasicProperties) -> u64 {
    let Some(headers) = properties.headers().as_ref() else {
        return 0;
    };
    match headers.inner().get("x-delivery-count") {
        Some(AMQPValue::LongLongInt(count)) => u64::try_from(*count).unwrap_or(0),
        Some(AMQPValue::LongInt(count)) => u64::try_from(*count).unwrap_or(0),
        Some(AMQPValue::LongUInt(count)) => u64::from(*count),
        Some(AMQPValue::ShortInt(count)) => u64::try_from(*count).unwrap_or(0),
        _ => 0,
    }
}

/// [`JobRequest::salvage_job_id`] from a delivered message's properties
/// and body.
pub fn salvage_job_id(properties: &BasicProperties, body: &[u8]) -> Option<JobId> {
    let message_id = properties.message_id().as_ref().map(|id| id.as_str());
    JobRequest::salvage_job_id(message_id, body)
}
