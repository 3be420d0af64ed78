//! The jobs the gateway answers about, kept in memory: one consumer reads
//! the pool's event history from its start and then live, so `GET
//! /v1/jobs/{id}` is a lookup, not a read of the history per request. It
//! holds what the history holds (its retention bounds it), plus the jobs
//! this gateway queued that no worker has taken yet. A lost connection is
//! resumed after the last offset read, so nothing is missed or doubled.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use futures_util::StreamExt;
use hlsmux_amqp::{HistoryStart, stream, stream_offset};
use hlsmux_protocol::{JobId, JobRequest, MuxerId, StatusEvent};
use hlsmux_submitter::broker::Broker;
use hlsmux_submitter::history::{self, JobSummary};
use lapin::options::BasicAckOptions;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How long the history must be quiet before the index counts as caught up.
const CAUGHT_UP_QUIET: Duration = Duration::from_millis(500);
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Known {
    /// Every event, in history order.
    events: Vec<StatusEvent>,
    /// Where each job's events are in `events`.
    by_job: HashMap<JobId, Vec<usize>>,
    /// Jobs queued here, until their first event.
    queued: HashMap<JobId, JobRequest>,
}

pub struct JobIndex {
    known: RwLock<Known>,
    caught_up: watch::Sender<bool>,
}

impl Default for JobIndex {
    fn default() -> Self {
        Self {
            known: RwLock::default(),
            caught_up: watch::Sender::new(false),
        }
    }
}

impl JobIndex {
    /// Reads the history into the index until `shutdown`.
    pub async fn follow(&self, broker: &Broker, shutdown: &CancellationToken) {
        let mut last_offset: Option<u64> = None;
        loop {
            let from = last_offset.map_or(HistoryStart::First, HistoryStart::After);
            let opened = async {
                let channel = broker.channel().await.map_err(|e| e.to_string())?;
                let consumer = stream::open(
                    &channel,
                    &broker.topology().event_history_stream(),
                    from,
                    "hlsmux-gateway-index",
                )
                .await
                .map_err(|e| e.to_string())?;
                Ok::<_, String>((channel, consumer))
            };
            let (channel, mut consumer) = match opened.await {
                Ok(opened) => opened,
                Err(error) => {
                    warn!(%error, "cannot read the event history; trying again");
                    tokio::select! {
                        () = tokio::time::sleep(RECONNECT_AFTER) => continue,
                        () = shutdown.cancelled() => return,
                    }
                }
            };
            loop {
                let next = tokio::select! {
                    next = tokio::time::timeout(CAUGHT_UP_QUIET, consumer.next()) => next,
                    () = shutdown.cancelled() => {
                        let _ = channel.close(200, "gateway stopping".into()).await;
                        return;
                    }
                };
                let delivery = match next {
                    Err(_quiet) => {
                        self.caught_up.send_replace(true);
                        continue;
                    }
                    Ok(Some(Ok(delivery))) => delivery,
                    Ok(_) => break,
                };
                let _ = delivery.acker.ack(BasicAckOptions::default()).await;
                if let Some(offset) = stream_offset(&delivery.properties) {
                    last_offset = Some(offset);
                }
                if let Ok(event) = serde_json::from_slice::<StatusEvent>(&delivery.data) {
                    self.record(event);
                }
            }
            warn!("the event history consumer ended; reading on after the last offset");
            tokio::time::sleep(RECONNECT_AFTER).await;
        }
    }

    fn record(&self, event: StatusEvent) {
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        let index = known.events.len();
        known.queued.remove(&event.job_id);
        known.by_job.entry(event.job_id).or_default().push(index);
        known.events.push(event);
    }

    /// Remembers a job this gateway queued, until a worker reports on it.
    pub fn queued(&self, job: JobRequest) {
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        if !known.by_job.contains_key(&job.job_id) {
            known.queued.insert(job.job_id, job);
        }
    }

    /// Whether the history has been read to its end once.
    pub fn is_caught_up(&self) -> bool {
        *self.caught_up.borrow()
    }

    /// Waits until the history has been read to its end once (at most
    /// `limit`), so a lookup does not miss an event the history holds.
    pub async fn caught_up(&self, limit: Duration) {
        let mut caught_up = self.caught_up.subscribe();
        let _ = tokio::time::timeout(limit, caught_up.wait_for(|done| *done)).await;
    }

    /// One job: its summary and timeline, or its request while queued.
    pub fn job(&self, job: JobId) -> Option<Value> {
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        if let Some(indices) = known.by_job.get(&job) {
            let events: Vec<StatusEvent> =
                indices.iter().map(|i| known.events[*i].clone()).collect();
            let summary = history::summarise(&events).into_iter().next()?;
            return Some(json!({ "job": summary, "events": events }));
        }
        known
            .queued
            .get(&job)
            .map(|request| json!({ "job": queued_summary(request), "events": [] }))
    }

    /// The `done` or `failed` event that ended `job`, once it has ended.
    pub fn final_event(&self, job: JobId) -> Option<StatusEvent> {
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        known
            .by_job
            .get(&job)?
            .iter()
            .rev()
            .map(|i| &known.events[*i])
            .find(|event| event.state.is_final() && !event.state.is_refused_duplicate())
            .cloned()
    }

    /// The latest state of `job`, if any worker has reported on it.
    pub fn summary(&self, job: JobId) -> Option<JobSummary> {
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        let indices = known.by_job.get(&job)?;
        let events: Vec<StatusEvent> = indices.iter().map(|i| known.events[*i].clone()).collect();
        history::summarise(&events).into_iter().next()
    }

    /// Every job's summary, oldest first, then the jobs queued here that
    /// no worker has reported on, with what a filter needs.
    pub fn listing(&self) -> Vec<Listed> {
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        let mut latest: HashMap<JobId, i128> = HashMap::new();
        for event in &known.events {
            latest.insert(event.job_id, event.at.unix_timestamp_nanos());
        }
        let reported = history::summarise(&known.events)
            .into_iter()
            .map(|summary| Listed {
                state: summary.state,
                muxer_id: summary.muxer_id,
                updated_at: latest.get(&summary.job_id).copied().unwrap_or_default(),
                summary: serde_json::to_value(&summary).unwrap_or(Value::Null),
            });
        let mut queued: Vec<&JobRequest> = known.queued.values().collect();
        queued.sort_by_key(|request| request.submitted_at);
        let queued = queued.into_iter().map(|request| Listed {
            state: "queued",
            muxer_id: request.muxer_id,
            updated_at: request.submitted_at.unix_timestamp_nanos(),
            summary: queued_summary(request),
        });
        reported.chain(queued).collect()
    }
}

/// A job in `GET /v1/jobs`, with the fields its filters look at.
pub struct Listed {
    pub state: &'static str,
    pub muxer_id: MuxerId,
    /// Its latest event's time (or its submission's, while queued), in
    /// nanoseconds since the epoch.
    pub updated_at: i128,
    pub summary: Value,
}

fn queued_summary(request: &JobRequest) -> Value {
    let submitted = request
        .submitted_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({
        "job_id": request.job_id,
        "state": "queued",
        "muxer_id": request.muxer_id,
        "input": request.input,
        "started_at": submitted,
        "updated_at": submitted,
    })
}
