//! Handles one delivered job message: parses it, runs it through the
//! pipeline (see `produce`), reports every step as a status event, and
//! says how to settle the delivery (through `outcome`'s table).

use hlsmux_amqp::salvage_job_id;
use hlsmux_protocol::{FailureReason, JobId, JobRequest, JobState, RequeueReason, TidyRequest};
use lapin::message::Delivery;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::JobRunner;
use super::failure::Failure;
use super::outcome::{Ending, Reported, Settled, report_then_settle};
use super::produce::Produced;
use crate::blocking;
use crate::broker::{ChunkQueue, Publisher};
use crate::health::quarantine::Evidence;
use crate::health::storage::StorageHealth;
use crate::metrics::Outcome;
use crate::pipeline::{JobError, Retry};

impl JobRunner {
    /// Handles one delivery from start to finish and says how to settle it.
    /// `interrupt` stops the job (ffmpeg is stopped and the job requeued);
    /// so does a cancellation of the job, which fails it as `cancelled`.
    pub async fn handle(
        &self,
        delivery: &Delivery,
        events: &Publisher,
        chunks: &ChunkQueue,
        interrupt: &CancellationToken,
    ) -> Settled {
        let request = match JobRequest::from_json(&delivery.data) {
            Ok(request) => request,
            Err(bad) => {
                let job_id = salvage_job_id(&delivery.properties, &delivery.data);
                warn!(?job_id, error = %bad, "dead-lettering a message that is not a job");
                let Some(job_id) = job_id else {
                    return Settled::new(Ending::NotAJob.disposition(), Evidence::Neutral);
                };
                let failed = JobState::Failed {
                    reason: FailureReason::BadMessage,
                    message: bad.to_string(),
                };
                let (disposition, reported) =
                    report_then_settle(events, job_id, failed, Ending::NotAJob).await;
                if reported == Reported::Yes {
                    self.metrics
                        .job_finished(Outcome::Failed(FailureReason::BadMessage));
                }
                return Settled::new(disposition, Evidence::Neutral);
            }
        };
        let span = info_span!("job", job_id = %request.job_id, input = %request.input);
        // The submitter's trace, carried in the message headers, is the
        // parent; without one (or without tracing) this does nothing.
        let parent =
            hlsmux_telemetry::extract_trace_context(delivery.properties.headers().as_ref());
        let _ = span.set_parent(parent);
        self.state.set_job(Some(request.job_id));
        let in_hand = self.cancellations.watch(request.job_id, interrupt);
        let settled = self
            .run(
                &request,
                delivery.redelivered,
                events,
                chunks,
                in_hand.token(),
            )
            .instrument(span)
            .await;
        drop(in_hand);
        self.state.set_job(None);
        settled
    }

    async fn run(
        &self,
        request: &JobRequest,
        redelivered: bool,
        events: &Publisher,
        chunks: &ChunkQueue,
        cancel: &CancellationToken,
    ) -> Settled {
        let job_id = request.job_id;
        let failure = match self
            .produce(request, redelivered, events, chunks, cancel)
            .await
        {
            Ok(Produced::AlreadyReported) => {
                info!("output already published and reported by an earlier delivery");
                return Settled::new(Ending::JobDone.disposition(), Evidence::Neutral);
            }
            Ok(Produced::Done { state, location }) => {
                self.schedule_tidy(request, events).await;
                let finished = match state.as_ref() {
                    JobState::Done {
                        wall_seconds,
                        media_seconds,
                        reused: false,
                        ..
                    } => Some((*wall_seconds, *media_seconds)),
                    _ => None,
                };
                let (disposition, reported) =
                    report_then_settle(events, job_id, *state, Ending::JobDone).await;
                if reported == Reported::No {
                    // The output, if published, is recognised by the redelivery.
                    self.metrics.job_finished(Outcome::Unreported);
                    return Settled::new(disposition, Evidence::Neutral);
                }
                if let Err(error) = blocking::run(move || location.mark_reported()).await {
                    warn!(%error, "could not record that the job was reported; a redelivery would report it again");
                }
                match finished {
                    Some((wall, media)) => self.metrics.job_done(wall, media),
                    None => self.metrics.job_finished(Outcome::Done),
                }
                return Settled::new(disposition, Evidence::WorkerWell);
            }
            Err(failure) => failure,
        };
        let failure = match failure {
            Failure::Job(JobError::Interrupted) => match self.cancellations.cancelled_by(job_id) {
                Some(by) => Failure::Job(JobError::Cancelled { by }),
                None => Failure::Job(JobError::Interrupted),
            },
            Failure::Job(error)
                if error.retry() == Retry::Permanent && error.could_be_storage() =>
            {
                match self.storage.health(true).await {
                    StorageHealth::Healthy => Failure::Job(error),
                    StorageHealth::Unhealthy(reason) => {
                        warn!(%error, %reason, "storage failed under the job; it is not the job's fault");
                        Failure::Job(JobError::StorageFailed(reason))
                    }
                }
            }
            other => other,
        };
        let error = match failure {
            Failure::Broker(error) => {
                warn!(%error, "could not publish the job's event; requeueing it");
                self.metrics.job_finished(Outcome::Unreported);
                return Settled::new(Ending::Unreported.disposition(), Evidence::Neutral);
            }
            Failure::Job(error) => error,
        };
        match error.requeue_reason() {
            Some(reason) => self.requeue(job_id, reason, &error, events, cancel).await,
            None => self.fail(job_id, &error, events).await,
        }
    }

    /// Gives the job back to its queue for the worker's own `reason`,
    /// saying so in a `requeued` event.
    async fn requeue(
        &self,
        job_id: JobId,
        reason: RequeueReason,
        error: &JobError,
        events: &Publisher,
        cancel: &CancellationToken,
    ) -> Settled {
        warn!(%reason, %error, "giving the job back to the queue");
        let requeued = JobState::Requeued {
            reason,
            message: error.to_string(),
        };
        if let Err(error) = events.publish(job_id, requeued).await {
            warn!(%error, "could not report the requeue");
        }
        if reason == RequeueReason::Stalled {
            self.metrics.encode_stalls.inc();
        }
        if reason != RequeueReason::WorkerStopping {
            // Give another worker (or this one, later) a chance, instead of
            // taking the same job straight back.
            tokio::select! {
                () = tokio::time::sleep(self.settings.service.requeue_delay) => {}
                () = cancel.cancelled() => {}
            }
        }
        self.metrics.job_finished(Outcome::Requeued(reason));
        let evidence = if reason.is_worker_fault() {
            Evidence::WorkerFault {
                reason,
                detail: error.to_string(),
            }
        } else {
            Evidence::Neutral
        };
        Settled::new(Ending::JobFailed(error).disposition(), evidence)
    }

    /// Fails the job for good with a `failed` event and dead-letters it.
    async fn fail(&self, job_id: JobId, error: &JobError, events: &Publisher) -> Settled {
        let reason = error.reason();
        info!(%reason, %error, "job failed");
        let failed = JobState::Failed {
            reason,
            message: error.to_string(),
        };
        let (disposition, reported) =
            report_then_settle(events, job_id, failed, Ending::JobFailed(error)).await;
        match reported {
            Reported::Yes => {
                self.metrics.job_finished(Outcome::Failed(reason));
                // The job's fault, which the worker handled as it should.
                Settled::new(disposition, Evidence::WorkerWell)
            }
            Reported::No => {
                self.metrics.job_finished(Outcome::Unreported);
                Settled::new(disposition, Evidence::Neutral)
            }
        }
    }

    /// Asks the broker to tidy the original away later. Done again for a
    /// redelivered job (the first delivery may have died before this); a
    /// second request finds the original gone, which is fine.
    async fn schedule_tidy(&self, request: &JobRequest, events: &Publisher) {
        if !self.settings.service.tidy_originals {
            return;
        }
        let tidy = TidyRequest::new(
            request.job_id,
            request.input.clone(),
            request.output.clone(),
        );
        if let Err(error) = events
            .schedule_tidy(&tidy, self.settings.service.tidy_delay)
            .await
        {
            warn!(%error, "could not schedule tidying the original; it stays in place");
        }
    }
}
