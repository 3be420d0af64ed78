//! Webhooks: a job submitted with a `callback_url` is POSTed its `done` or
//! `failed` event, signed with its token's secret (see `sign`), until the
//! receiver acknowledges or the attempts run out, with back-off between.
//! A receiver acknowledges by answering 2xx, or, when it answers 202, by
//! calling `POST /v1/webhooks/{delivery_id}/ack` later (see `acknowledge`).
//!
//! The delivery state lives in RabbitMQ, not in memory: every callback
//! asked for, every attempt and every giving-up is a record in the
//! pool's webhook log stream, written (and confirmed) before it counts.
//! A gateway that starts reads the log and the event history and
//! delivers what it still owes, so a callback is delivered at least once
//! across restarts; a receiver deduplicates by `job_id`. One gateway per
//! pool delivers; a second would deliver a second time.

mod acknowledge;
mod allow;
mod deliver;
mod log;
pub mod sign;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hlsmux_amqp::HistoryStart;
use hlsmux_protocol::{JobId, StatusEvent};
use hlsmux_submitter::broker::Broker;
use hlsmux_submitter::history;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use crate::api_error::ApiError;
use crate::index::JobIndex;
use crate::metrics::GatewayMetrics;
use crate::tokens::Tokens;
pub use allow::check_callback;
pub use log::Record;
use log::write;

/// How callbacks are retried.
#[derive(Clone, Copy, Debug)]
pub struct WebhookSettings {
    /// The wait after the first failed attempt; it doubles after each
    /// failure, up to `MAX_BACKOFF`.
    pub first_retry: Duration,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// How long a receiver has to answer one attempt.
    pub attempt_timeout: Duration,
    /// How long after answering 202 a receiver has to acknowledge the
    /// delivery, before it is attempted again.
    pub ack_timeout: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            first_retry: Duration::from_secs(5),
            // 5 s doubling to the 10-minute cap: about an hour and a half.
            max_attempts: 15,
            attempt_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(600),
        }
    }
}

const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How often the owed callbacks are looked over.
const TICK: Duration = Duration::from_millis(200);

/// A callback owed or settled.
struct Callback {
    url: String,
    token: String,
    attempts: Vec<Value>,
    /// `pending`, `awaiting_ack`, `delivered` or `given_up`.
    state: &'static str,
    /// The delivery answered 202, while its acknowledgement is awaited.
    awaiting: Option<Uuid>,
    reason: Option<String>,
    next_at: Instant,
}

pub struct Webhooks {
    settings: WebhookSettings,
    metrics: Arc<GatewayMetrics>,
    callbacks: Mutex<HashMap<JobId, Callback>>,
    client: reqwest::Client,
}

impl Webhooks {
    pub fn new(settings: WebhookSettings, metrics: Arc<GatewayMetrics>) -> Self {
        Self {
            settings,
            metrics,
            callbacks: Mutex::default(),
            client: deliver::client(),
        }
    }

    /// Writes the callback into the webhook log (confirmed) and owes it.
    pub async fn subscribe(
        &self,
        broker: &Broker,
        job_id: JobId,
        url: String,
        token: &str,
    ) -> Result<(), ApiError> {
        let record = Record::Subscribed {
            job_id,
            url,
            token: token.to_owned(),
            at: OffsetDateTime::now_utc(),
        };
        write(broker, &record).await?;
        self.apply(record);
        Ok(())
    }

    /// The callback of `job` and its attempts, for `GET /v1/jobs/{id}`.
    pub fn view(&self, job: JobId) -> Option<Value> {
        let callbacks = self.callbacks.lock().unwrap_or_else(|p| p.into_inner());
        callbacks.get(&job).map(|callback| {
            json!({
                "url": callback.url,
                "state": callback.state,
                "reason": callback.reason,
                "attempts": callback.attempts,
            })
        })
    }

    fn apply(&self, record: Record) {
        let mut callbacks = self.callbacks.lock().unwrap_or_else(|p| p.into_inner());
        match record {
            Record::Subscribed {
                job_id, url, token, ..
            } => {
                callbacks.entry(job_id).or_insert(Callback {
                    url,
                    token,
                    attempts: Vec::new(),
                    state: "pending",
                    awaiting: None,
                    reason: None,
                    next_at: Instant::now(),
                });
            }
            Record::Attempted {
                job_id,
                attempt,
                delivery_id,
                status,
                ref error,
                acknowledged,
                awaiting_ack,
                at,
            } => {
                if let Some(callback) = callbacks.get_mut(&job_id) {
                    callback.attempts.push(json!({
                        "attempt": attempt,
                        "delivery_id": delivery_id,
                        "at": at.format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default(),
                        "status": status,
                        "error": error,
                        "acknowledged": acknowledged,
                        "awaiting_ack": awaiting_ack,
                    }));
                    callback.awaiting = None;
                    if acknowledged {
                        callback.state = "delivered";
                    } else if awaiting_ack {
                        callback.state = "awaiting_ack";
                        callback.awaiting = Some(delivery_id);
                        callback.next_at = Instant::now() + self.settings.ack_timeout;
                    } else {
                        callback.state = "pending";
                        let doublings = attempt.saturating_sub(1).min(16);
                        let wait = self
                            .settings
                            .first_retry
                            .saturating_mul(1 << doublings)
                            .min(MAX_BACKOFF);
                        callback.next_at = Instant::now() + wait;
                    }
                }
            }
            Record::Acknowledged {
                job_id,
                delivery_id,
                at,
            } => {
                if let Some(callback) = callbacks.get_mut(&job_id)
                    && callback.awaiting == Some(delivery_id)
                {
                    callback.awaiting = None;
                    callback.state = "delivered";
                    let wanted = delivery_id.to_string();
                    if let Some(attempt) = callback
                        .attempts
                        .iter_mut()
                        .find(|attempt| attempt["delivery_id"] == wanted.as_str())
                    {
                        attempt["acknowledged"] = json!(true);
                        attempt["acknowledged_at"] = json!(
                            at.format(&time::format_description::well_known::Rfc3339)
                                .unwrap_or_default()
                        );
                    }
                }
            }
            Record::GaveUp { job_id, reason, .. } => {
                if let Some(callback) = callbacks.get_mut(&job_id) {
                    callback.state = "given_up";
                    callback.reason = Some(reason);
                }
            }
        }
    }

    /// Reads the webhook log, then delivers what is owed as jobs end,
    /// until `shutdown`.
    pub async fn run(
        &self,
        broker: &Broker,
        index: &JobIndex,
        tokens: &Tokens,
        shutdown: &CancellationToken,
    ) {
        let log = broker.topology().webhook_log_stream();
        loop {
            match history::read_stream::<Record>(broker, &log, HistoryStart::First).await {
                Ok(records) => {
                    info!(records = records.len(), "webhook log read");
                    for record in records {
                        self.apply(record);
                    }
                    break;
                }
                Err(error) => warn!(%error, "cannot read the webhook log; trying again"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = shutdown.cancelled() => return,
            }
        }
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            if !index.is_caught_up() {
                continue;
            }
            for (job, event) in self.due(index) {
                self.attempt(broker, tokens, job, &event).await;
            }
        }
    }

    /// The owed callbacks whose job has ended and whose wait is over.
    fn due(&self, index: &JobIndex) -> Vec<(JobId, StatusEvent)> {
        let callbacks = self.callbacks.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        callbacks
            .iter()
            .filter(|(_, callback)| {
                matches!(callback.state, "pending" | "awaiting_ack") && callback.next_at <= now
            })
            .filter_map(|(job, _)| index.final_event(*job).map(|event| (*job, event)))
            .collect()
    }

    /// One attempt at `job`'s callback, recorded in the log before it
    /// counts (an attempt not recorded is made again).
    async fn attempt(&self, broker: &Broker, tokens: &Tokens, job: JobId, event: &StatusEvent) {
        let (url, token, attempt) = {
            let callbacks = self.callbacks.lock().unwrap_or_else(|p| p.into_inner());
            let Some(callback) = callbacks.get(&job) else {
                return;
            };
            let attempt = u32::try_from(callback.attempts.len()).unwrap_or(u32::MAX) + 1;
            (callback.url.clone(), callback.token.clone(), attempt)
        };
        // The last attempt was answered 202 and never acknowledged.
        if attempt > self.settings.max_attempts {
            let reason = format!("no acknowledgement in {} attempts", attempt - 1);
            self.give_up(broker, job, reason).await;
            return;
        }
        let Some(secret) = tokens
            .named(&token)
            .and_then(|caller| caller.webhook_secret.clone())
        else {
            self.give_up(
                broker,
                job,
                format!("token {token:?} or its webhook_secret is gone"),
            )
            .await;
            return;
        };
        let delivery_id = Uuid::new_v4();
        let body = json!({
            "delivery_id": delivery_id,
            "attempt": attempt,
            "job_id": job,
            "state": event.state.event_state().as_str(),
            "event": event,
        });
        let answer = deliver::post(
            &self.client,
            &url,
            &secret,
            delivery_id,
            &body,
            self.settings.attempt_timeout,
        )
        .await;
        let record = Record::Attempted {
            job_id: job,
            attempt,
            delivery_id,
            status: answer.status,
            error: answer.error,
            acknowledged: answer.acknowledged,
            awaiting_ack: answer.awaiting_ack,
            at: OffsetDateTime::now_utc(),
        };
        if let Err(error) = write(broker, &record).await {
            // Not recorded, so not counted: it is tried again.
            warn!(%job, error = %error.message, "cannot record a webhook attempt");
            return;
        }
        self.apply(record);
        self.metrics
            .webhook_attempted(match (answer.acknowledged, answer.awaiting_ack) {
                (true, _) => "acknowledged",
                (false, true) => "awaiting_ack",
                (false, false) => "failed",
            });
        if !answer.acknowledged && !answer.awaiting_ack && attempt >= self.settings.max_attempts {
            self.give_up(
                broker,
                job,
                format!("no acknowledgement in {attempt} attempts"),
            )
            .await;
        }
    }

    async fn give_up(&self, broker: &Broker, job: JobId, reason: String) {
        warn!(%job, %reason, "giving up a webhook");
        let record = Record::GaveUp {
            job_id: job,
            reason,
            at: OffsetDateTime::now_utc(),
        };
        if write(broker, &record).await.is_ok() {
            self.apply(record);
            self.metrics.webhook_given_up();
        }
    }
}
