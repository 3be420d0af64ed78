//! Reading the pool's RabbitMQ streams (event history, heartbeats,
//! cancellations): from a chosen start, and "up to now", which a stream
//! cannot say by itself since it has no end.

use std::time::Duration;

use futures_util::StreamExt;
use hlsmux_protocol::{CancelRequest, Heartbeat, StatusEvent};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Consumer};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

/// Unacknowledged stream messages a reader may hold.
const STREAM_PREFETCH: u16 = 100;

/// A stream's backlog arrives at once; a reader has caught up once nothing
/// has come for this long.
pub const CAUGHT_UP_QUIET: Duration = Duration::from_millis(800);

/// Messages stamped this much after a read began are live, not backlog
/// (the writers' clocks may run a little ahead of the reader's).
const CLOCK_SKEW: time::Duration = time::Duration::seconds(2);

/// Where to start reading a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryStart {
    /// The oldest message kept.
    First,
    /// The first message at or after this time (seconds since the epoch).
    Since(u64),
    /// Just after this stream offset (resuming a read).
    After(u64),
}

impl HistoryStart {
    /// From `ago` before now.
    pub fn ago(ago: Duration) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        HistoryStart::Since(now.saturating_sub(ago.as_secs()))
    }
}

/// A message of one of the pool's streams, stamped by its writer.
pub trait Stamped {
    fn stamped_at(&self) -> OffsetDateTime;
}

impl Stamped for StatusEvent {
    fn stamped_at(&self) -> OffsetDateTime {
        self.at
    }
}

impl Stamped for Heartbeat {
    fn stamped_at(&self) -> OffsetDateTime {
        self.at
    }
}

impl Stamped for CancelRequest {
    fn stamped_at(&self) -> OffsetDateTime {
        self.at
    }
}

/// Reads a stream from `from`. Deliveries carry their offset in the
/// `x-stream-offset` header and must be acknowledged (streams count acks
/// as credit).
pub async fn open(
    channel: &Channel,
    stream: &str,
    from: HistoryStart,
    consumer_tag: &str,
) -> lapin::Result<Consumer> {
    channel
        .basic_qos(STREAM_PREFETCH, BasicQosOptions::default())
        .await?;
    let mut arguments = FieldTable::default();
    let offset = match from {
        HistoryStart::Since(seconds) => AMQPValue::Timestamp(seconds),
        HistoryStart::After(offset) => {
            AMQPValue::LongLongInt(i64::try_from(offset.saturating_add(1)).unwrap_or(i64::MAX))
        }
        HistoryStart::First => AMQPValue::LongString(LongString::from("first")),
    };
    arguments.insert("x-stream-offset".into(), offset);
    channel
        .basic_consume(
            stream.into(),
            consumer_tag.into(),
            BasicConsumeOptions::default(),
            arguments,
        )
        .await
}

/// Reads `consumer` up to now, handing each message (or why it does not
/// parse) to `visit` until it returns `false`: up to a message stamped
/// after the read began (a busy stream is never quiet), or until nothing
/// arrives for `quiet`.
pub async fn read_until_quiet<T: DeserializeOwned + Stamped>(
    consumer: &mut Consumer,
    quiet: Duration,
    mut visit: impl FnMut(Result<T, serde_json::Error>) -> bool,
) -> lapin::Result<()> {
    let live_after = OffsetDateTime::now_utc() + CLOCK_SKEW;
    while let Ok(Some(next)) = tokio::time::timeout(quiet, consumer.next()).await {
        let delivery = next?;
        delivery.acker.ack(BasicAckOptions::default()).await?;
        let parsed = serde_json::from_slice::<T>(&delivery.data);
        if parsed.as_ref().is_ok_and(|m| m.stamped_at() > live_after) || !visit(parsed) {
            break;
        }
    }
    Ok(())
}

/// Every message of `consumer` up to now (see [`read_until_quiet`]),
/// skipping those that do not parse (a stream may hold a newer schema's).
pub async fn collect_until_quiet<T: DeserializeOwned + Stamped>(
    consumer: &mut Consumer,
    quiet: Duration,
) -> lapin::Result<Vec<T>> {
    let mut messages = Vec::new();
    read_until_quiet(consumer, quiet, |parsed| {
        match parsed {
            Ok(message) => messages.push(message),
            Err(error) => tracing::debug!(%error, "skipping a stream message that does not parse"),
        }
        true
    })
    .await?;
    Ok(messages)
}
