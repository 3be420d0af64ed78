//! The worker's confirmed publishes: status events, heartbeats and tidy
//! requests, and the looks back at the event history that a redelivery and
//! a job's outcome need.

use std::time::Duration;

use hlsmux_amqp::{HistoryStart, PublishError, publish_json, publish_json_with_expiration, stream};
use hlsmux_protocol::{
    EventState, Heartbeat, JobId, JobState, MuxerId, StatusEvent, TidyRequest, Topology,
};
use lapin::Channel;
use lapin::options::BasicCancelOptions;
use lapin::types::FieldTable;

use time::OffsetDateTime;

use super::outcome_ledger::{OutcomeLedger, same_event};
use std::sync::Arc;
use std::time::Instant;

/// How many times a job's outcome is published when the event history does
/// not show it afterwards.
const OUTCOME_ATTEMPTS: usize = 3;

/// How long a look at the history waits for the next message before it
/// concludes an event is not there: what it looks for was confirmed before
/// the read began, so only a loaded machine makes it slow, and a wrong
/// "missing" costs a second `done` or a false `failed` (seen under load
/// with the 0.8 s a follower's catch-up uses).
const READ_BACK_QUIET: Duration = Duration::from_secs(5);

/// How long to wait before looking at the history a second time: a stream
/// replica on this worker's node may trail its leader for a moment.
const READ_BACK_PAUSE: Duration = Duration::from_secs(2);

/// Publishes a worker's status events and tidy requests, each confirmed by
/// the broker.
#[derive(Clone)]
pub struct Publisher {
    pub(super) channel: Channel,
    /// Reads the event history (see `done_already_published`).
    pub(super) history: Channel,
    pub(super) topology: Topology,
    pub(super) exchange: String,
    pub(super) heartbeat_stream: String,
    pub(super) tidy_wait_queue: String,
    pub(super) muxer_id: MuxerId,
    pub(super) worker_name: String,
    /// Outcomes published lately, to look for again (see `audit_outcomes`).
    pub(super) outcomes: Arc<OutcomeLedger>,
}

impl Publisher {
    /// Schedules the tidying of a finished job's original after `delay`.
    pub async fn schedule_tidy(
        &self,
        request: &TidyRequest,
        delay: Duration,
    ) -> Result<(), PublishError> {
        publish_json_with_expiration(
            &self.channel,
            "",
            &self.tidy_wait_queue,
            &request.job_id.to_string(),
            request,
            delay,
        )
        .await
    }

    /// Whether this job's `done` is already in the event history: an
    /// attempt that died between its `done` and recording it leaves an
    /// output without the record, and the redelivery must not say `done`
    /// again. When the history cannot be read, `false` (better a second
    /// `done` than none).
    pub async fn done_already_published(
        &self,
        job_id: JobId,
        submitted_at: OffsetDateTime,
    ) -> bool {
        let since = minute_before(submitted_at);
        let is_done = |event: &StatusEvent| {
            event.job_id == job_id && matches!(event.state, JobState::Done { .. })
        };
        match self.history_contains(since, READ_BACK_QUIET, is_done).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, "cannot read the event history; reporting the job done again");
                false
            }
        }
    }

    /// Whether the event history, read from `since` (seconds since the
    /// epoch) up to now, holds an event that `wanted` accepts.
    async fn history_contains(
        &self,
        since: u64,
        quiet: Duration,
        mut wanted: impl FnMut(&StatusEvent) -> bool,
    ) -> lapin::Result<bool> {
        let tag = format!("history-check-{}", JobId::generate());
        let mut consumer = stream::open(
            &self.history,
            &self.topology.event_history_stream(),
            HistoryStart::Since(since),
            &tag,
        )
        .await?;
        let mut found = false;
        let read = stream::read_until_quiet(&mut consumer, quiet, |event| {
            found = event.is_ok_and(|event| wanted(&event));
            !found
        })
        .await;
        // Cancelled whatever the read came to, so no reader is left behind.
        let cancelled = self
            .history
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await;
        read.and(cancelled)?;
        Ok(found)
    }

    pub async fn publish_heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), PublishError> {
        publish_json(
            &self.channel,
            "",
            &self.heartbeat_stream,
            &format!("heartbeat-{}-{}", heartbeat.worker, heartbeat.pid),
            heartbeat,
            false,
            FieldTable::default(),
        )
        .await
    }

    /// Publishes a status event. A job's outcome (`done`, `failed`) is then
    /// read back from the event history and published again if missing: a
    /// RabbitMQ stream can lose a message it confirmed while its leader
    /// moves to another node (rabbitmq-server#9457; seen here in a rolling
    /// restart of a three-node 3.10 cluster), and a follower waiting for
    /// the outcome would then wait forever.
    pub async fn publish(&self, job_id: JobId, state: JobState) -> Result<(), PublishError> {
        let kind = state.event_state();
        let event = StatusEvent::new(job_id, self.muxer_id, &self.worker_name, state);
        if !matches!(kind, EventState::Done | EventState::Failed) {
            return self.publish_event(&event).await;
        }
        for attempt in 1..=OUTCOME_ATTEMPTS {
            self.publish_event(&event).await?;
            match self.history_holds(&event).await {
                Ok(true) => {
                    self.outcomes.record(event);
                    return Ok(());
                }
                Ok(false) => tracing::warn!(
                    %job_id, state = %kind, attempt,
                    "the broker confirmed the job's outcome but the event history does not hold it (lost in a stream leader change?); publishing it again"
                ),
                Err(error) => {
                    tracing::warn!(%job_id, %error, "cannot read the outcome back from the event history; trusting the broker's confirmation");
                    self.outcomes.record(event);
                    return Ok(());
                }
            }
        }
        // Still not seen: the audit keeps looking for it.
        self.outcomes.record(event);
        Ok(())
    }

    async fn publish_event(&self, event: &StatusEvent) -> Result<(), PublishError> {
        let routing_key = Topology::event_routing_key(event.job_id, event.state.event_state());
        publish_json(
            &self.channel,
            &self.exchange,
            &routing_key,
            &event.job_id.to_string(),
            event,
            false,
            hlsmux_telemetry::inject_trace_context(&tracing::Span::current()),
        )
        .await
    }

    /// Whether the event history holds `event`, looked for twice. The read
    /// starts a minute back: attaching to a stream by timestamp a second
    /// before the event found nothing on RabbitMQ 3.10 when the pool was
    /// quiet, and the redelivery check's minute works.
    async fn history_holds(&self, event: &StatusEvent) -> lapin::Result<bool> {
        let since = minute_before(event.at);
        let same = |seen: &StatusEvent| same_event(seen, event);
        if self.history_contains(since, READ_BACK_QUIET, same).await? {
            return Ok(true);
        }
        tokio::time::sleep(READ_BACK_PAUSE).await;
        self.history_contains(since, READ_BACK_QUIET, same).await
    }

    /// Looks for the outcomes due a second look in the event history, in
    /// one read, and publishes again each one it no longer holds. A read
    /// that fails says nothing (the next round tries again); only a publish
    /// that fails is an error, the session's.
    pub async fn audit_outcomes(&self) -> Result<usize, PublishError> {
        let due = self.outcomes.due(Instant::now());
        let Some(oldest) = due.iter().map(|event| event.at).min() else {
            return Ok(0);
        };
        let since = minute_before(oldest);
        let mut unseen = due;
        let read = self
            .history_contains(since, READ_BACK_QUIET, |seen: &StatusEvent| {
                unseen.retain(|event| !same_event(seen, event));
                unseen.is_empty()
            })
            .await;
        if let Err(error) = read {
            tracing::debug!(%error, "cannot read the event history to audit outcomes; trying again later");
            return Ok(0);
        }
        for event in &unseen {
            tracing::warn!(
                job_id = %event.job_id, state = %event.state.event_state(),
                "the event history no longer holds an outcome it held (lost in a stream leader change?); publishing it again"
            );
            self.publish_event(event).await?;
        }
        Ok(unseen.len())
    }
}

/// Where a look at the history for something stamped `at` starts, in
/// seconds since the epoch: a minute before, a margin for clocks that
/// disagree (and attaching to a stream a second before an event found
/// nothing on RabbitMQ 3.10 when the pool was quiet).
fn minute_before(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp())
        .unwrap_or(0)
        .saturating_sub(60)
}
