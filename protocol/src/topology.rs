//! The RabbitMQ names and declarations of one hlsmux pool.
//!
//! Every name starts with the pool's namespace (`hlsmux` by default), so
//! several pools, and every test, can share one broker. Exchanges and the
//! dead-letter queue are declared by every program; a muxer's queue only by
//! the workers of that muxer (and the deploy definitions), so a job for a
//! muxer that has never had a worker is unroutable instead of piling up.

use std::fmt;
use std::str::FromStr;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, Consumer, ErrorKind, ExchangeKind, Queue};

use crate::{EventState, HistoryRetention, JobId, MuxerId, StatusEvent};

/// Unacknowledged history events a reader may hold.
const HISTORY_PREFETCH: u16 = 100;

/// Where to start reading the event history stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryStart {
    /// The oldest event kept.
    First,
    /// The first event at or after this time (seconds since the epoch).
    Since(u64),
    /// Just after this stream offset (resuming a read).
    After(u64),
}

/// A delivery's offset in the event history stream.
pub fn stream_offset(properties: &lapin::BasicProperties) -> Option<u64> {
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
pub fn last_death(properties: &lapin::BasicProperties) -> Option<(String, i64)> {
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
pub fn died_of_delivery_limit(properties: &lapin::BasicProperties) -> bool {
    last_death(properties).is_some_and(|(reason, _)| reason == DELIVERY_LIMIT_DEATH)
}

/// How many times a job may be delivered before the broker dead-letters it.
/// RabbitMQ 3.10 sets no default, so a job that kills its worker every time
/// would otherwise loop forever.
pub const DELIVERY_LIMIT: i64 = 5;

/// How long the heartbeat stream keeps heartbeats.
pub const HEARTBEAT_MAX_AGE: &str = "1h";
/// The segment size of the small streams (heartbeats, cancellations):
/// retention drops whole segments, so a small one lets old messages go.
pub const SMALL_STREAM_SEGMENT_BYTES: i64 = 1 << 20;

/// How long the cancellation stream keeps a cancellation: a job queued
/// longer than this before a worker takes it would run after all.
pub const CANCELLATION_MAX_AGE: &str = "7D";

/// The reason RabbitMQ records in `x-death` for a message dead-lettered
/// because it reached the queue's delivery limit.
pub const DELIVERY_LIMIT_DEATH: &str = "delivery_limit";

/// The prefix of every exchange and queue name of one pool.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Namespace(String);

impl TryFrom<String> for Namespace {
    type Error = NamespaceError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "namespace {0:?} is not valid: use 1 to 64 letters, digits, '-' or '_' (it prefixes every exchange and queue name)"
)]
pub struct NamespaceError(String);

impl FromStr for Namespace {
    type Err = NamespaceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(NamespaceError(s.to_owned()))
        }
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self("hlsmux".into())
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The names of a pool's exchanges and queues, and their declarations.
#[derive(Clone, Debug)]
pub struct Topology {
    namespace: Namespace,
    history_retention: HistoryRetention,
}

impl Topology {
    pub fn new(namespace: Namespace) -> Self {
        Self {
            namespace,
            history_retention: HistoryRetention::default(),
        }
    }

    /// The retention the event history stream gets if this program is the
    /// one that creates it (see [`HistoryRetention`]).
    pub fn with_history_retention(mut self, retention: HistoryRetention) -> Self {
        self.history_retention = retention;
        self
    }

    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// Direct exchange; a job's routing key is its muxer ID.
    pub fn jobs_exchange(&self) -> String {
        format!("{}.jobs", self.namespace)
    }

    /// Topic exchange; routing key `<job_id>.<state>`.
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.namespace)
    }

    /// Fanout exchange where muxer queues send rejected and over-delivered jobs.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dead-letter", self.namespace)
    }

    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead-letter", self.namespace)
    }

    /// A second copy of every dead letter, which workers consume to report
    /// jobs that the broker dead-lettered by itself (delivery limit) as
    /// failed; the dead-letter queue keeps its copy for `hlsmux dlq`.
    pub fn dead_letter_notices_queue(&self) -> String {
        format!("{}.dead-letter-notices", self.namespace)
    }

    /// A RabbitMQ stream of worker heartbeats, kept an hour.
    pub fn heartbeat_stream(&self) -> String {
        format!("{}.heartbeats", self.namespace)
    }

    /// A RabbitMQ stream holding every status event for a while, so that a
    /// follower that lost its connection (or was not running) can read what
    /// it missed.
    pub fn event_history_stream(&self) -> String {
        format!("{}.event-history", self.namespace)
    }

    /// A RabbitMQ stream of job cancellations (see
    /// [`CancelRequest`](crate::CancelRequest)), which every worker reads
    /// from its start.
    pub fn cancellation_stream(&self) -> String {
        format!("{}.cancellations", self.namespace)
    }

    pub fn muxer_queue(&self, muxer: MuxerId) -> String {
        format!("{}.muxer.{muxer}", self.namespace)
    }

    /// Holds the latest drain/resume command for a muxer (see
    /// [`ControlCommand`](crate::ControlCommand)).
    pub fn control_queue(&self, muxer: MuxerId) -> String {
        format!("{}.control.{muxer}", self.namespace)
    }

    /// Declares a muxer's control queue: durable, classic, holding only the
    /// latest command. Both the CLI and the muxer's workers declare it.
    pub async fn declare_control_queue(
        &self,
        channel: &Channel,
        muxer: MuxerId,
    ) -> lapin::Result<Queue> {
        let mut arguments = FieldTable::default();
        arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(1));
        arguments.insert("x-overflow".into(), long_string("drop-head"));
        channel
            .queue_declare(
                self.control_queue(muxer).into(),
                QueueDeclareOptions::durable(),
                arguments,
            )
            .await
    }

    /// Direct exchange into which the tidy wait queues dead-letter expired
    /// requests, keyed by muxer ID.
    pub fn tidy_exchange(&self) -> String {
        format!("{}.tidy", self.namespace)
    }

    /// Where a muxer's tidy requests wait out their delay (no consumer).
    pub fn tidy_wait_queue(&self, muxer: MuxerId) -> String {
        format!("{}.tidy-wait.{muxer}", self.namespace)
    }

    /// Where a muxer's tidy requests arrive once due.
    pub fn tidy_queue(&self, muxer: MuxerId) -> String {
        format!("{}.tidy.{muxer}", self.namespace)
    }

    pub fn job_routing_key(muxer: MuxerId) -> String {
        muxer.to_string()
    }

    pub fn event_routing_key(job: JobId, state: EventState) -> String {
        format!("{job}.{state}")
    }

    /// The binding that receives every event of one job.
    pub fn job_events_binding(job: JobId) -> String {
        format!("{job}.*")
    }

    /// The binding that receives every event of the pool.
    pub const ALL_EVENTS_BINDING: &'static str = "#";

    /// Follows status events through a private queue (deleted with its
    /// connection) bound with each of `bindings`. Subscribe before causing
    /// the events, so that none is missed.
    pub async fn subscribe_events(
        &self,
        channel: &Channel,
        bindings: &[String],
        consumer_tag: &str,
    ) -> lapin::Result<Consumer> {
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions::exclusive().auto_delete(),
                FieldTable::default(),
            )
            .await?;
        for binding in bindings {
            channel
                .queue_bind(
                    queue.name().clone(),
                    self.events_exchange().into(),
                    binding.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        channel
            .basic_consume(
                queue.name().clone(),
                consumer_tag.into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
    }

    /// Declares the exchanges, the dead-letter queues and the three streams,
    /// on a channel of their own. Idempotent.
    pub async fn declare_exchanges(&self, connection: &Connection) -> lapin::Result<()> {
        let channel = connection.create_channel().await?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.jobs_exchange().into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                self.events_exchange().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                self.dead_letter_exchange().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;
        for queue in [self.dead_letter_queue(), self.dead_letter_notices_queue()] {
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions::durable(),
                    Self::dead_letter_arguments(),
                )
                .await?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    self.dead_letter_exchange().into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        self.declare_event_history(connection).await?;
        channel
            .queue_declare(
                self.heartbeat_stream().into(),
                QueueDeclareOptions::durable(),
                Self::heartbeat_arguments(),
            )
            .await?;
        channel
            .queue_declare(
                self.cancellation_stream().into(),
                QueueDeclareOptions::durable(),
                Self::cancellation_arguments(),
            )
            .await?;
        channel
            .queue_bind(
                self.event_history_stream().into(),
                self.events_exchange().into(),
                Self::ALL_EVENTS_BINDING.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        channel.close(200, "declared".into()).await
    }

    /// Creates the event history stream with this program's retention
    /// unless it exists: an existing stream keeps the retention it was
    /// created with, whatever this program's settings say.
    async fn declare_event_history(&self, connection: &Connection) -> lapin::Result<()> {
        let name = self.event_history_stream();
        // A passive declare of a missing queue closes its channel.
        let probe = connection.create_channel().await?;
        match probe
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::durable().passive(),
                FieldTable::default(),
            )
            .await
        {
            Ok(_) => return probe.close(200, "exists".into()).await,
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(error),
        }
        let create = connection.create_channel().await?;
        match create
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::durable(),
                self.event_history_arguments(),
            )
            .await
        {
            Ok(_) => create.close(200, "created".into()).await,
            // Another program created it in between, with its retention.
            Err(error) if is_precondition_failed(&error) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Reads the event history stream from `since` (seconds since the Unix
    /// epoch) or, when given, from just after stream offset `after`.
    /// Deliveries carry their offset in the `x-stream-offset` header and
    /// must be acknowledged (streams count acks as credit).
    pub async fn read_event_history(
        &self,
        channel: &Channel,
        from: HistoryStart,
        consumer_tag: &str,
    ) -> lapin::Result<Consumer> {
        self.read_stream(channel, &self.event_history_stream(), from, consumer_tag)
            .await
    }

    /// Whether the event history, read from `since` (seconds since the
    /// epoch) up to now, holds an event that `wanted` accepts. For the rare
    /// question "did this job's `done` go out before its worker died?".
    pub async fn history_contains(
        &self,
        channel: &Channel,
        since: u64,
        wanted: impl Fn(&StatusEvent) -> bool,
    ) -> lapin::Result<bool> {
        let live_after = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
        let tag = format!("history-check-{}", JobId::generate());
        let mut consumer = self
            .read_event_history(channel, HistoryStart::Since(since), &tag)
            .await?;
        let mut found = false;
        while let Ok(Some(next)) =
            tokio::time::timeout(std::time::Duration::from_millis(800), consumer.next()).await
        {
            let delivery = next?;
            delivery.acker.ack(BasicAckOptions::default()).await?;
            let Ok(event) = serde_json::from_slice::<StatusEvent>(&delivery.data) else {
                continue;
            };
            if wanted(&event) {
                found = true;
                break;
            }
            if event.at > live_after {
                break;
            }
        }
        channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await?;
        Ok(found)
    }

    /// Reads a stream of the pool (events or heartbeats) from `from`.
    pub async fn read_stream(
        &self,
        channel: &Channel,
        stream: &str,
        from: HistoryStart,
        consumer_tag: &str,
    ) -> lapin::Result<Consumer> {
        channel
            .basic_qos(HISTORY_PREFETCH, BasicQosOptions::default())
            .await?;
        let mut arguments = FieldTable::default();
        let offset = match from {
            HistoryStart::Since(seconds) => AMQPValue::Timestamp(seconds),
            HistoryStart::After(offset) => {
                AMQPValue::LongLongInt(i64::try_from(offset.saturating_add(1)).unwrap_or(i64::MAX))
            }
            HistoryStart::First => long_string("first"),
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

    /// Declares and binds one muxer's job queue. Only workers call this.
    pub async fn declare_muxer_queue(
        &self,
        channel: &Channel,
        muxer: MuxerId,
    ) -> lapin::Result<Queue> {
        let queue = channel
            .queue_declare(
                self.muxer_queue(muxer).into(),
                QueueDeclareOptions::durable(),
                self.muxer_queue_arguments(),
            )
            .await?;
        channel
            .queue_bind(
                self.muxer_queue(muxer).into(),
                self.jobs_exchange().into(),
                Self::job_routing_key(muxer).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(queue)
    }

    /// Declares a muxer's tidy wait queue and tidy queue. Only workers call
    /// this. The wait queue is a classic queue: per-message TTL expires in
    /// order there, and every request of a muxer carries the same delay.
    pub async fn declare_tidy_queues(
        &self,
        channel: &Channel,
        muxer: MuxerId,
    ) -> lapin::Result<()> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.tidy_exchange().into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await?;
        let mut wait_arguments = FieldTable::default();
        wait_arguments.insert(
            "x-dead-letter-exchange".into(),
            long_string(&self.tidy_exchange()),
        );
        wait_arguments.insert(
            "x-dead-letter-routing-key".into(),
            long_string(&Self::job_routing_key(muxer)),
        );
        channel
            .queue_declare(
                self.tidy_wait_queue(muxer).into(),
                QueueDeclareOptions::durable(),
                wait_arguments,
            )
            .await?;
        channel
            .queue_declare(
                self.tidy_queue(muxer).into(),
                QueueDeclareOptions::durable(),
                quorum_arguments(),
            )
            .await?;
        channel
            .queue_bind(
                self.tidy_queue(muxer).into(),
                self.tidy_exchange().into(),
                Self::job_routing_key(muxer).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
    }

    /// A muxer queue's arguments: quorum, a delivery limit, and at-least-once
    /// dead-lettering (which RabbitMQ only allows with `reject-publish`).
    /// The event history stream's arguments: its retention.
    pub fn event_history_arguments(&self) -> FieldTable {
        let mut arguments = FieldTable::default();
        arguments.insert("x-queue-type".into(), long_string("stream"));
        arguments.insert(
            "x-max-age".into(),
            long_string(self.history_retention.max_age.as_str()),
        );
        arguments.insert(
            "x-max-length-bytes".into(),
            AMQPValue::LongLongInt(
                i64::try_from(self.history_retention.max_bytes).unwrap_or(i64::MAX),
            ),
        );
        arguments
    }

    /// The heartbeat stream's arguments: an hour, in small segments
    /// (retention drops whole segments, so old heartbeats do go).
    pub fn heartbeat_arguments() -> FieldTable {
        small_stream_arguments(HEARTBEAT_MAX_AGE)
    }

    /// The cancellation stream's arguments: as long as a job may wait in
    /// its queue, in small segments (every worker reads all of it).
    pub fn cancellation_arguments() -> FieldTable {
        small_stream_arguments(CANCELLATION_MAX_AGE)
    }

    /// The dead-letter queue's and the notices queue's arguments.
    pub fn dead_letter_arguments() -> FieldTable {
        quorum_arguments()
    }

    pub fn muxer_queue_arguments(&self) -> FieldTable {
        let mut arguments = quorum_arguments();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            long_string(&self.dead_letter_exchange()),
        );
        arguments.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
        arguments.insert(
            "x-dead-letter-strategy".into(),
            long_string("at-least-once"),
        );
        arguments.insert("x-overflow".into(), long_string("reject-publish"));
        arguments
    }
}

/// Whether RabbitMQ answered 404: no such queue or exchange.
pub fn is_not_found(error: &lapin::Error) -> bool {
    is_soft_error(error, AMQPSoftError::NOTFOUND)
}

/// Whether RabbitMQ answered 406: a declaration differs from what exists.
pub fn is_precondition_failed(error: &lapin::Error) -> bool {
    is_soft_error(error, AMQPSoftError::PRECONDITIONFAILED)
}

fn is_soft_error(error: &lapin::Error, soft: AMQPSoftError) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(amqp)
        if *amqp.kind() == AMQPErrorKind::Soft(soft))
}

/// A stream kept `max_age`, in small segments.
fn small_stream_arguments(max_age: &str) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), long_string("stream"));
    arguments.insert("x-max-age".into(), long_string(max_age));
    arguments.insert(
        "x-stream-max-segment-size-bytes".into(),
        AMQPValue::LongLongInt(SMALL_STREAM_SEGMENT_BYTES),
    );
    arguments
}

fn quorum_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), long_string("quorum"));
    arguments
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_namespace() {
        let topology = Topology::new("t-42".parse().expect("valid"));
        let muxer = MuxerId::new(7).expect("valid");
        assert_eq!(topology.jobs_exchange(), "t-42.jobs");
        assert_eq!(topology.events_exchange(), "t-42.events");
        assert_eq!(topology.muxer_queue(muxer), "t-42.muxer.7");
        assert_eq!(Topology::job_routing_key(muxer), "7");
    }

    #[test]
    fn namespaces_cannot_break_names() {
        assert!("a.b".parse::<Namespace>().is_err());
        assert!("".parse::<Namespace>().is_err());
        assert!("a b".parse::<Namespace>().is_err());
        assert!("pool_2-b".parse::<Namespace>().is_ok());
    }

    #[test]
    fn event_routing_keys_match_the_job_binding() {
        let job = JobId::generate();
        let key = Topology::event_routing_key(job, EventState::Done);
        let binding = Topology::job_events_binding(job);
        assert_eq!(key.split('.').count(), binding.split('.').count());
        assert!(key.starts_with(binding.trim_end_matches('*')));
    }
}
