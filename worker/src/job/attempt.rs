//! One attempt at a job's output: encode (whole, or split across the
//! pool by `coordinate`) through verify in a staging directory, with the
//! job's progress reported as events, then the one rename that publishes.

use std::time::{Duration, Instant};

use hlsmux_protocol::{BaseUrl, JobRequest, JobState, RelativePath};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use super::JobRunner;
use super::coordinate::PoolSplit;
use super::failure::Failure;
use crate::blocking;
use crate::broker::{ChunkQueue, Outage, Publisher};
use crate::pipeline::JobError;
use crate::pipeline::encode::{EncodePlan, EncodeProgress};
use crate::pipeline::hls::key;
use crate::pipeline::produce::{Encryption, Production, SplitWork, produce};
use crate::pipeline::publish::{OutputLocation, OutputRecord};
use crate::pipeline::split::grid::ChunkGrid;

/// At most one progress event a second per job.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// One attempt at a job's output, from encode to publish.
pub(super) struct Attempt<'a> {
    pub(super) request: &'a JobRequest,
    pub(super) input: &'a RelativePath,
    pub(super) plan: &'a EncodePlan,
    pub(super) encrypted: bool,
    pub(super) base_url: Option<&'a BaseUrl>,
    pub(super) duration_seconds: f64,
    pub(super) location: &'a OutputLocation,
    pub(super) started: Instant,
    pub(super) events: &'a Publisher,
    /// Split across the pool on this grid; `None`: whole, here.
    pub(super) split: Option<&'a ChunkGrid>,
    pub(super) chunks: &'a ChunkQueue,
    pub(super) cancel: &'a CancellationToken,
}

impl JobRunner {
    pub(super) async fn encode_verify_publish(
        &self,
        attempt: Attempt<'_>,
    ) -> Result<OutputRecord, Failure> {
        let Attempt {
            request,
            input,
            plan,
            encrypted,
            base_url,
            duration_seconds,
            location,
            started,
            events,
            split,
            chunks,
            cancel,
        } = attempt;
        let job_id = request.job_id;
        let (progress_tx, mut progress_rx) = watch::channel(None);
        let split_work = split.map(|grid| {
            SplitWork::Pool(Box::pin(self.encode_across_pool(PoolSplit {
                request,
                plan,
                grid,
                chunks,
                progress: &progress_tx,
                cancel,
            })))
        });
        let production = Production {
            plan,
            staging_dir: location.staging_dir(),
            source_seconds: duration_seconds,
            encryption: encrypted.then(|| Encryption {
                output: location.output().clone(),
                key_uri_prefix: self.settings.encoding.key_uri_prefix.clone(),
            }),
            output_url: base_url.map(|base| base.of_output(location.output())),
            ffmpeg: &self.settings.tools.ffmpeg,
            ffprobe: &self.settings.tools.ffprobe,
            probe_timeout: Duration::from_secs(self.settings.tools.probe_timeout_seconds),
            work_dir: &self.settings.paths.work_dir,
            log_path: self
                .settings
                .paths
                .work_dir
                .join(format!("{job_id}.ffmpeg.log")),
            stall_timeout: self.settings.encoding.stall_timeout,
            memory_events: self.settings.tools.memory_events.clone(),
            split: split_work,
            cancel,
        };
        let producing = produce(production, &progress_tx);
        tokio::pin!(producing);
        let mut last_report: Option<Instant> = None;
        let mut outage = Outage::default();
        let rung_summaries = loop {
            tokio::select! {
                result = &mut producing => break result?,
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
                        match events.publish(job_id, state).await {
                            Ok(()) => {
                                if let Some((lasted, missed)) = outage.succeeded() {
                                    info!(seconds = lasted.as_secs(), missed, "progress events go out again");
                                }
                            }
                            Err(error) if outage.failed() => {
                                warn!(%error, "cannot publish progress events; saying nothing more until they go out again");
                            }
                            Err(_) => {}
                        }
                    }
                }
            }
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
        record.input = Some(input.clone());
        if let Some(grid) = split {
            record.chunks = self.chunk_summaries(request, grid).await;
        }
        // The last moment a cancellation can keep the output unpublished.
        if let Some(by) = self.cancellations.cancelled_by(job_id) {
            return Err(JobError::Cancelled { by }.into());
        }
        let location = location.clone();
        Ok(blocking::run(move || location.publish(record))
            .instrument(info_span!("publish"))
            .await?)
    }
}
