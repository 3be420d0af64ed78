//! Runs one delivered job message through the pipeline, reports every step
//! as a status event, and returns what to tell the broker.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hlsmux_amqp::{PublishError, salvage_job_id};
use hlsmux_protocol::{
    FailureReason, JobId, JobRequest, JobState, RequeueReason, SegmentFormat, TidyRequest,
};
use lapin::message::Delivery;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::broker::Publisher;
use crate::cancellations::Cancellations;
use crate::config::Settings;
use crate::disposition::Disposition;
use crate::hardware::{MachineCodecs, soc};
use crate::metrics::{Outcome, WorkerMetrics};
use crate::pipeline::encode::{self, EncodePlan, EncodeProgress, OutputOptions};
use crate::pipeline::hls::layout::Layout;
use crate::pipeline::hls::{encrypt, key, master, verify};
use crate::pipeline::probe::SourceMedia;
use crate::pipeline::publish::{ExistingOutput, OutputLocation, OutputRecord, StagingOwner};
use crate::pipeline::{JobError, Retry, probe, validate};
use crate::quarantine::Evidence;
use crate::state::StateTracker;
use crate::storage::{StorageHealth, StorageMonitor};

/// At most one progress event a second per job.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// How long a job waits for a worker that has just come up to read the
/// cancellations sent before it (normally well under a second).
const CANCELLATIONS_CATCH_UP: Duration = Duration::from_secs(5);
/// Segment lengths a job may ask for.
const SEGMENT_SECONDS_RANGE: std::ops::RangeInclusive<u32> = 1..=60;

/// Why a job did not finish.
#[derive(Debug)]
enum Failure {
    Job(JobError),
    /// An event could not be published: the broker connection is in doubt,
    /// so the job goes back to the queue rather than being acked unreported.
    Broker(PublishError),
}

impl From<JobError> for Failure {
    fn from(error: JobError) -> Self {
        Failure::Job(error)
    }
}

impl From<PublishError> for Failure {
    fn from(error: PublishError) -> Self {
        Failure::Broker(error)
    }
}

/// What producing a job's output came to.
enum Produced {
    /// The output is published (now, or by an earlier delivery whose
    /// `done` event did not go out): report it.
    Done {
        state: Box<JobState>,
        location: OutputLocation,
    },
    /// An earlier delivery published the output and reported it.
    AlreadyReported,
}

/// How a delivery is to be settled, and what it says about the worker.
#[derive(Debug)]
pub struct Settled {
    pub disposition: Disposition,
    pub evidence: Evidence,
}

impl Settled {
    fn new(disposition: Disposition, evidence: Evidence) -> Self {
        Self {
            disposition,
            evidence,
        }
    }
}

/// Runs jobs with one worker's settings, codecs and storage.
#[derive(Clone)]
pub struct JobRunner {
    settings: Arc<Settings>,
    codecs: Arc<MachineCodecs>,
    storage: Arc<StorageMonitor>,
    metrics: Arc<WorkerMetrics>,
    state: Arc<StateTracker>,
    cancellations: Cancellations,
    owner: StagingOwner,
}

impl JobRunner {
    pub fn new(
        settings: Arc<Settings>,
        codecs: MachineCodecs,
        storage: Arc<StorageMonitor>,
        metrics: Arc<WorkerMetrics>,
        state: Arc<StateTracker>,
        cancellations: Cancellations,
        worker_name: &str,
    ) -> Self {
        Self {
            settings,
            codecs: Arc::new(codecs),
            storage,
            metrics,
            state,
            cancellations,
            owner: StagingOwner::this_process(worker_name),
        }
    }

    /// Handles one delivery from start to finish and says how to settle it.
    /// `interrupt` stops the job (ffmpeg is stopped and the job requeued);
    /// so does a cancellation of the job, which fails it as `cancelled`.
    pub async fn handle(
        &self,
        delivery: &Delivery,
        events: &Publisher,
        interrupt: &CancellationToken,
    ) -> Settled {
        let request = match JobRequest::from_json(&delivery.data) {
            Ok(request) => request,
            Err(bad) => {
                let job_id = salvage_job_id(&delivery.properties, &delivery.data);
                warn!(?job_id, error = %bad, "dead-lettering a message that is not a job");
                let Some(job_id) = job_id else {
                    return Settled::new(Disposition::DeadLetter, Evidence::Neutral);
                };
                let failed = JobState::Failed {
                    reason: FailureReason::BadMessage,
                    message: bad.to_string(),
                };
                return match events.publish(job_id, failed).await {
                    Ok(()) => {
                        self.metrics
                            .job_finished(Outcome::Failed, FailureReason::BadMessage.as_str());
                        Settled::new(Disposition::DeadLetter, Evidence::Neutral)
                    }
                    Err(error) => {
                        warn!(%error, "could not report the bad message; requeueing it");
                        Settled::new(Disposition::Requeue, Evidence::Neutral)
                    }
                };
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
            .run(&request, delivery.redelivered, events, in_hand.token())
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
        cancel: &CancellationToken,
    ) -> Settled {
        let job_id = request.job_id;
        let failure = match self.produce(request, redelivered, events, cancel).await {
            Ok(Produced::AlreadyReported) => {
                info!("output already published and reported by an earlier delivery");
                return Settled::new(Disposition::Ack, Evidence::Neutral);
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
                match events.publish(job_id, *state).await {
                    Ok(()) => {
                        if let Err(error) = blocking(move || location.mark_reported()).await {
                            warn!(%error, "could not record that the job was reported; a redelivery would report it again");
                        }
                        match finished {
                            Some((wall, media)) => self.metrics.job_done(wall, media),
                            None => self.metrics.job_finished(Outcome::Done, ""),
                        }
                        return Settled::new(Disposition::Ack, Evidence::WorkerWell);
                    }
                    Err(error) => Failure::Broker(error),
                }
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
                // The output, if published, is recognised by the redelivery.
                warn!(%error, "could not publish the job's event; requeueing it");
                self.metrics.job_finished(Outcome::Requeued, "broker");
                return Settled::new(Disposition::Requeue, Evidence::Neutral);
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
                () = tokio::time::sleep(self.settings.requeue_delay) => {}
                () = cancel.cancelled() => {}
            }
        }
        self.metrics
            .job_finished(Outcome::Requeued, reason.as_str());
        let evidence = if reason.is_worker_fault() {
            Evidence::WorkerFault {
                reason,
                detail: error.to_string(),
            }
        } else {
            Evidence::Neutral
        };
        Settled::new(Disposition::Requeue, evidence)
    }

    /// Fails the job for good with a `failed` event and dead-letters it.
    async fn fail(&self, job_id: JobId, error: &JobError, events: &Publisher) -> Settled {
        let reason = error.reason();
        info!(%reason, %error, "job failed");
        let failed = JobState::Failed {
            reason,
            message: error.to_string(),
        };
        match events.publish(job_id, failed).await {
            Ok(()) => {
                self.metrics.job_finished(Outcome::Failed, reason.as_str());
                // The job's fault, which the worker handled as it should.
                Settled::new(Disposition::for_error(error), Evidence::WorkerWell)
            }
            Err(publish_error) => {
                warn!(error = %publish_error, "could not report the failure; requeueing the job");
                self.metrics.job_finished(Outcome::Requeued, "broker");
                Settled::new(Disposition::Requeue, Evidence::Neutral)
            }
        }
    }

    /// Asks the broker to tidy the original away later. Done again for a
    /// redelivered job (the first delivery may have died before this); a
    /// second request finds the original gone, which is fine.
    async fn schedule_tidy(&self, request: &JobRequest, events: &Publisher) {
        if !self.settings.tidy_originals {
            return;
        }
        let tidy = TidyRequest::new(
            request.job_id,
            request.input.clone(),
            request.output.clone(),
        );
        if let Err(error) = events.schedule_tidy(&tidy, self.settings.tidy_delay).await {
            warn!(%error, "could not schedule tidying the original; it stays in place");
        }
    }

    /// Produces the job's output, or finds it already produced, and returns
    /// the `done` state to report.
    async fn produce(
        &self,
        request: &JobRequest,
        redelivered: bool,
        events: &Publisher,
        cancel: &CancellationToken,
    ) -> Result<Produced, Failure> {
        let settings = &self.settings;
        let location = OutputLocation::new(
            &settings.output_root,
            &request.output,
            request.job_id,
            self.owner.clone(),
        );
        let existing = {
            let location = location.clone();
            blocking(move || location.existing()).await?
        };
        match existing {
            ExistingOutput::ThisJob { reported: true, .. } => return Ok(Produced::AlreadyReported),
            ExistingOutput::ThisJob {
                record,
                reported: false,
            } => {
                if events
                    .done_already_published(request.job_id, request.submitted_at)
                    .await
                {
                    info!(
                        "an earlier delivery published the output and reported it, then died; recording that"
                    );
                    let location = location.clone();
                    if let Err(error) = blocking(move || location.mark_reported()).await {
                        warn!(%error, "could not record that the job was reported");
                    }
                    return Ok(Produced::AlreadyReported);
                }
                info!("output already published by an earlier delivery; reporting it");
                let state = Box::new(done_state(&location, record, true));
                return Ok(Produced::Done { state, location });
            }
            ExistingOutput::Other { owner } => {
                return Err(JobError::OutputExists {
                    path: location.final_dir().to_owned(),
                    owner,
                }
                .into());
            }
            ExistingOutput::Nothing => {}
        }
        self.cancellations.caught_up(CANCELLATIONS_CATCH_UP).await;
        if let Some(by) = self.cancellations.cancelled_by(request.job_id) {
            return Err(JobError::Cancelled { by }.into());
        }
        let segment_seconds = match request.segment_seconds {
            None => settings.segment_seconds,
            Some(seconds) if SEGMENT_SECONDS_RANGE.contains(&seconds) => seconds,
            Some(seconds) => {
                return Err(JobError::InvalidRequest(format!(
                    "segment length {seconds} s is outside {}..={} s",
                    SEGMENT_SECONDS_RANGE.start(),
                    SEGMENT_SECONDS_RANGE.end()
                ))
                .into());
            }
        };

        let layout = Layout {
            naming: request.naming.unwrap_or(settings.naming),
            format: request.segment_format.unwrap_or(settings.segment_format),
        };
        if layout.format == SegmentFormat::Fmp4 && !self.codecs.encoder.writes_fmp4() {
            return Err(JobError::InvalidRequest(format!(
                "fMP4 segments cannot be made with {} (it writes its stream headers late); submit with --segment-format mpegts, or to a muxer whose workers use another encoder",
                self.codecs.encoder
            ))
            .into());
        }
        let encrypted = request.encrypt.unwrap_or(settings.encrypt);

        events
            .publish(
                request.job_id,
                JobState::Started {
                    input: request.input.to_string(),
                    redelivered,
                },
            )
            .await?;
        let started = Instant::now();
        if let Some(throttling) = soc::read_throttling(&settings.throttling_command).await
            && throttling.any_now()
        {
            warn!(
                raw = format!("{:#x}", throttling.raw()),
                "the SoC is throttled: this job will run slow"
            );
        }

        let input = {
            let (root, input) = (settings.media_root.clone(), request.input.clone());
            blocking(move || validate::resolve_input(&root, &input))
                .instrument(info_span!("validate"))
                .await?
        };
        let source = probe::probe(
            &settings.ffprobe,
            &input.path,
            &settings.input_formats,
            Duration::from_secs(settings.probe_timeout_seconds),
        )
        .instrument(info_span!("probe"))
        .await?;
        let plan = info_span!("plan").in_scope(|| {
            self.plan(
                input.path.clone(),
                &source,
                OutputOptions {
                    ladder: request.ladder.unwrap_or(settings.ladder),
                    segment_seconds,
                    layout,
                },
            )
        });

        {
            let (location, stale) = (location.clone(), settings.stale_staging);
            blocking(move || location.prepare_staging(stale)).await?;
        }
        let produced = self
            .encode_verify_publish(
                request.job_id,
                &plan,
                encrypted,
                source.duration_seconds,
                &location,
                started,
                events,
                cancel,
            )
            .await;
        if produced.is_err() {
            let location = location.clone();
            blocking(move || location.discard_staging()).await;
        }
        let record = produced?;
        info!(wall_seconds = record.wall_seconds, "job done");
        let state = Box::new(done_state(&location, record, false));
        Ok(Produced::Done { state, location })
    }

    /// How this worker encodes `source`: the ladder trimmed to the source
    /// and the encoder's limits, and a hardware decoder where one fits.
    pub(crate) fn plan(
        &self,
        input: PathBuf,
        source: &SourceMedia,
        options: OutputOptions,
    ) -> EncodePlan {
        let encoder = self.codecs.encoder;
        let decoder = self.codecs.decoder_for(&source.video.codec);
        if self.settings.hw_decode && decoder.is_none() {
            info!(codec = %source.video.codec, %encoder, "no hardware decoder for this input: decoding in software");
        }
        let plan = EncodePlan::new(&self.settings, input, source, options, encoder, decoder);
        info!(
            duration = source.duration_seconds,
            rungs = ?plan.rungs.iter().map(|r| r.name()).collect::<Vec<_>>(),
            "planned"
        );
        plan
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    #[allow(clippy::too_many_arguments)]
    async fn encode_verify_publish(
        &self,
        job_id: JobId,
        plan: &EncodePlan,
        encrypted: bool,
        duration_seconds: f64,
        location: &OutputLocation,
        started: Instant,
        events: &Publisher,
        cancel: &CancellationToken,
    ) -> Result<OutputRecord, Failure> {
        let log_path = self.settings.work_dir.join(format!("{job_id}.ffmpeg.log"));
        let args = encode::ffmpeg_args(plan, location.staging_dir());
        let (progress_tx, mut progress_rx) = watch::channel(None);
        let encoding = encode::run_ffmpeg(
            &self.settings.ffmpeg,
            &args,
            &self.settings.work_dir,
            &log_path,
            &progress_tx,
            self.settings.stall_timeout,
            cancel,
        );
        tokio::pin!(encoding);
        let mut last_report: Option<Instant> = None;
        let encoded = async {
            loop {
                tokio::select! {
                    result = &mut encoding => break result,
                    Ok(()) = progress_rx.changed() => {
                        let due = last_report.is_none_or(|at| at.elapsed() >= PROGRESS_INTERVAL);
                        let latest: Option<EncodeProgress> = *progress_rx.borrow_and_update();
                        if let Some(progress) = latest {
                            self.metrics.encode_fps.set(progress.fps);
                            self.metrics.encode_speed.set(progress.speed);
                            self.state.set_progress(progress.percent_of(duration_seconds));
                        }
                        if let (true, Some(progress)) = (due, latest) {
                            last_report = Some(Instant::now());
                            let state = JobState::Progress {
                                percent: progress.percent_of(duration_seconds),
                                fps: progress.fps,
                                speed: progress.speed,
                            };
                            if let Err(error) = events.publish(job_id, state).await {
                                warn!(%error, "could not publish progress");
                            }
                        }
                    }
                }
            }
        }
        .instrument(info_span!("encode", encoder = %plan.encoder, rungs = plan.rungs.len()))
        .await;
        if let Err(error) = &encoded {
            warn!(log = %log_path.display(), %error, "ffmpeg did not finish");
        }
        encoded?;
        let _ = tokio::fs::remove_file(&log_path).await;

        {
            let (dir, plan) = (location.staging_dir().to_owned(), plan.clone());
            blocking(move || master::write_master(&dir, &plan))
                .instrument(info_span!("master"))
                .await?;
        }
        if encrypted {
            let dir = location.staging_dir().to_owned();
            let output = location.relative_dir().to_owned();
            let prefix = self.settings.key_uri_prefix.clone();
            let layout = plan.layout;
            blocking(move || encrypt::encrypt_output(&dir, layout, &output, &prefix))
                .instrument(info_span!("encrypt"))
                .await?;
        }
        let rung_summaries = {
            let (dir, plan) = (location.staging_dir().to_owned(), plan.clone());
            blocking(move || verify::verify_output(&dir, &plan, duration_seconds, encrypted))
                .instrument(info_span!("verify"))
                .await?
        };
        let mut record = OutputRecord::new(
            job_id,
            location.relative(plan.layout.master()),
            rung_summaries,
            duration_seconds,
            started.elapsed().as_secs_f64(),
            plan.encoder.to_string(),
        );
        record.encryption_key = encrypted.then(|| location.relative(key::KEY_FILE));
        // The last moment a cancellation can keep the output unpublished.
        if let Some(by) = self.cancellations.cancelled_by(job_id) {
            return Err(JobError::Cancelled { by }.into());
        }
        let location = location.clone();
        Ok(blocking(move || location.publish(record))
            .instrument(info_span!("publish"))
            .await?)
    }
}

fn done_state(location: &OutputLocation, record: OutputRecord, reused: bool) -> JobState {
    JobState::Done {
        output: location.relative_dir().to_owned(),
        master_playlist: record.master_playlist,
        rungs: record.rungs,
        media_seconds: record.media_seconds,
        wall_seconds: record.wall_seconds,
        reused,
        encoder: record.encoder,
        encryption_key: record.encryption_key,
    }
}

/// Runs filesystem work off the async threads: the media and output roots
/// may be network mounts that stall.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}
