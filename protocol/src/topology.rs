//! The RabbitMQ names of one hlsmux pool, and the arguments each queue is
//! declared with (as plain data: the declarations themselves are the
//! broker crate's, and `hlsmux-deploy` renders the same arguments).
//!
//! Every name starts with the pool's namespace (`hlsmux` by default), so
//! several pools, and every test, can share one broker. Exchanges and the
//! dead-letter queue are declared by every program; a muxer's queue only by
//! the workers of that muxer (and the deploy definitions), so a job for a
//! muxer that has never had a worker is unroutable instead of piling up.

use std::fmt;
use std::str::FromStr;

use crate::{EventState, HistoryRetention, JobId, MuxerId, QueueArguments};

/// How many times a job may be delivered before the broker dead-letters it.
/// RabbitMQ 3.10 sets no default, so a job that kills its worker every time
/// would otherwise loop forever.
pub const DELIVERY_LIMIT: i64 = 5;

/// How long the heartbeat stream keeps heartbeats.
pub const HEARTBEAT_MAX_AGE: &str = "1h";
/// The segment size of the small streams (heartbeats, cancellations):
/// retention drops whole segments, so a small one lets old messages go.
pub const SMALL_STREAM_SEGMENT_BYTES: i64 = 1 << 20;

/// How many bytes of drain/resume commands the control stream keeps (the
/// newest commands always stay: retention drops whole old segments).
pub const CONTROL_STREAM_MAX_BYTES: i64 = 8 << 20;

/// How long the cancellation stream keeps a cancellation: a job queued
/// longer than this before a worker takes it would run after all.
pub const CANCELLATION_MAX_AGE: &str = "7D";
/// How long the webhook log keeps its records.
pub const WEBHOOK_LOG_MAX_AGE: &str = "7D";

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

/// The names of a pool's exchanges and queues, and their arguments.
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

    /// Fanout exchange into the cancellation stream: submitters publish
    /// cancellations here, so they need no write on the default exchange
    /// (which would let them write into any queue).
    pub fn cancellations_exchange(&self) -> String {
        format!("{}.cancel-requests", self.namespace)
    }

    /// A RabbitMQ stream of the HTTP gateway's webhook records (a callback
    /// asked for, each attempt to deliver it, the delivery or the giving
    /// up): the delivery state lives in the broker, not in the gateway's
    /// memory, so a restarted gateway delivers what it still owes.
    pub fn webhook_log_stream(&self) -> String {
        format!("{}.webhook-log", self.namespace)
    }

    /// Fanout exchange into the webhook log: the gateway, as the submit
    /// user, writes its records here.
    pub fn webhook_records_exchange(&self) -> String {
        format!("{}.webhook-records", self.namespace)
    }

    /// The webhook log's arguments: a week (callbacks owed longer than
    /// that are given up anyway), in small segments.
    pub fn webhook_log_arguments() -> QueueArguments {
        QueueArguments::small_stream(WEBHOOK_LOG_MAX_AGE)
    }

    /// Direct exchange, keyed by muxer ID, into the control queues: the
    /// operator's drain and resume commands.
    pub fn control_exchange(&self) -> String {
        format!("{}.control-commands", self.namespace)
    }

    /// The pool-wide queue of split jobs' chunks for workers with
    /// `encoder`: every chunk of an output comes from the same encoder.
    /// Workers publish into it through the default exchange.
    pub fn chunk_queue(&self, encoder: &str) -> String {
        format!("{}.chunks.{encoder}", self.namespace)
    }

    /// The chunk queues' arguments: quorum, and a delivery limit past
    /// which the broker drops a chunk that kills its workers (its
    /// coordinator then encodes it, see the worker's `job::coordinate`).
    pub fn chunk_queue_arguments() -> QueueArguments {
        QueueArguments::quorum().integer("x-delivery-limit", DELIVERY_LIMIT)
    }

    pub fn muxer_queue(&self, muxer: MuxerId) -> String {
        format!("{}.muxer.{muxer}", self.namespace)
    }

    /// A RabbitMQ stream of every muxer's drain/resume commands (see
    /// [`ControlCommand`](crate::ControlCommand)), bound to the control
    /// exchange once per muxer; a worker reads it from the start and
    /// follows the latest command for its muxer. A stream, not a queue, so
    /// that it is replicated in a cluster and read without being consumed.
    pub fn control_stream(&self) -> String {
        format!("{}.control-log", self.namespace)
    }

    /// Direct exchange into which the tidy wait queues dead-letter expired
    /// requests, keyed by muxer ID.
    pub fn tidy_exchange(&self) -> String {
        format!("{}.tidy", self.namespace)
    }

    /// Where a muxer's tidy requests wait out their delay (no consumer).
    /// Pools from before 2026-12 have a classic `tidy-wait.<muxer>` queue
    /// instead, which still hands its waiting requests on when due.
    pub fn tidy_wait_queue(&self, muxer: MuxerId) -> String {
        format!("{}.tidy-delay.{muxer}", self.namespace)
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

    /// The event history stream's arguments: its retention.
    pub fn event_history_arguments(&self) -> QueueArguments {
        QueueArguments::stream()
            .text("x-max-age", self.history_retention.max_age.as_str())
            .integer(
                "x-max-length-bytes",
                i64::try_from(self.history_retention.max_bytes).unwrap_or(i64::MAX),
            )
    }

    /// The heartbeat stream's arguments: an hour, in small segments
    /// (retention drops whole segments, so old heartbeats do go).
    pub fn heartbeat_arguments() -> QueueArguments {
        QueueArguments::small_stream(HEARTBEAT_MAX_AGE)
    }

    /// The cancellation stream's arguments: as long as a job may wait in
    /// its queue, in small segments (every worker reads all of it).
    pub fn cancellation_arguments() -> QueueArguments {
        QueueArguments::small_stream(CANCELLATION_MAX_AGE)
    }

    /// The dead-letter queue's and the notices queue's arguments.
    pub fn dead_letter_arguments() -> QueueArguments {
        QueueArguments::quorum()
    }

    /// A muxer queue's arguments: quorum, a delivery limit, and at-least-once
    /// dead-lettering (which RabbitMQ only allows with `reject-publish`).
    pub fn muxer_queue_arguments(&self) -> QueueArguments {
        QueueArguments::quorum()
            .text("x-dead-letter-exchange", &self.dead_letter_exchange())
            .integer("x-delivery-limit", DELIVERY_LIMIT)
            .text("x-dead-letter-strategy", "at-least-once")
            .text("x-overflow", "reject-publish")
    }

    /// The control stream's arguments: kept by size, not age, so that a
    /// drain given long ago still holds.
    pub fn control_stream_arguments() -> QueueArguments {
        QueueArguments::stream()
            .integer("x-max-length-bytes", CONTROL_STREAM_MAX_BYTES)
            .integer(
                "x-stream-max-segment-size-bytes",
                SMALL_STREAM_SEGMENT_BYTES,
            )
    }

    /// A muxer's tidy wait queue's arguments: quorum, so that no node's
    /// loss takes it away (RabbitMQ 3.10 added message TTL to quorum
    /// queues; a message expires at the head, which is in order here since
    /// every request of a muxer carries the same delay), dead-lettering due
    /// requests into the tidy exchange.
    pub fn tidy_wait_queue_arguments(&self, muxer: MuxerId) -> QueueArguments {
        QueueArguments::quorum()
            .text("x-dead-letter-exchange", &self.tidy_exchange())
            .text("x-dead-letter-routing-key", &Self::job_routing_key(muxer))
    }

    /// A muxer's tidy queue's arguments.
    pub fn tidy_queue_arguments() -> QueueArguments {
        QueueArguments::quorum()
    }
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
