//! Produces one job's output: finds it already published (a redelivery),
//! or validates, probes, plans, encodes, describes, encrypts, verifies and
//! publishes it, reporting `started` and progress on the way.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hlsmux_protocol::{JobRequest, JobState, SplitMode};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use super::JobRunner;
use super::attempt::Attempt;
use super::failure::Failure;
use super::spec::JobSpec;
use crate::blocking;
use crate::broker::ChunkQueue;
use crate::broker::Publisher;
use crate::config::Settings;
use crate::hardware::soc::SocSensor;
use crate::health::storage::fault::StorageFault;
use crate::pipeline::JobError;
use crate::pipeline::encode::{EncodePlan, OutputOptions};
use crate::pipeline::input::probe::{self, SourceMedia};
use crate::pipeline::input::validate;
use crate::pipeline::job_ids::JobIdRegister;
use crate::pipeline::publish::{ExistingOutput, OutputLocation, OutputRecord};
use crate::pipeline::split::grid::ChunkGrid;
use crate::pipeline::split::store::ChunkStore;

/// How long a job waits for a worker that has just come up to read the
/// cancellations sent before it (normally well under a second).
const CANCELLATIONS_CATCH_UP: Duration = Duration::from_secs(5);

/// What producing a job's output came to.
pub(super) enum Produced {
    /// The output is published (now, or by an earlier delivery whose
    /// `done` event did not go out): report it.
    Done {
        state: Box<JobState>,
        location: OutputLocation,
    },
    /// An earlier delivery published the output and reported it.
    AlreadyReported,
}

impl JobRunner {
    /// Produces the job's output, or finds it already produced, and returns
    /// the `done` state to report.
    pub(super) async fn produce(
        &self,
        request: &JobRequest,
        redelivered: bool,
        events: &Publisher,
        chunks: &ChunkQueue,
        cancel: &CancellationToken,
    ) -> Result<Produced, Failure> {
        let settings = &self.settings;
        // Before anything else: a message reusing another request's job ID
        // must not touch that job's output, its outcome or its input.
        let register = JobIdRegister::new(&settings.paths.output_root, &self.owner.host);
        let claimed = request.clone();
        blocking::run(move || register.claim(&claimed)).await?;
        let location = OutputLocation::new(
            &settings.paths.output_root,
            &request.output,
            request.job_id,
            self.owner.clone(),
        );
        let existing = {
            let location = location.clone();
            blocking::run(move || location.existing()).await?
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
                    if let Err(error) = blocking::run(move || location.mark_reported()).await {
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
        let spec = JobSpec::resolve(request, settings, self.codecs.encoder)?;

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
        if let Some(throttling) = SocSensor::new(&settings.soc).throttling().await
            && throttling.any_now()
        {
            warn!(
                raw = format!("{:#x}", throttling.raw()),
                "the SoC is throttled: this job will run slow"
            );
        }

        let input = {
            let (root, input) = (settings.paths.media_root.clone(), request.input.clone());
            blocking::run(move || validate::resolve_input(&root, &input))
                .instrument(info_span!("validate"))
                .await?
        };
        // ffprobe and ffmpeg read the file validated, held open until the
        // job ends, never the name again.
        let source = probe::probe(
            &settings.tools.ffprobe,
            &input.tool_path(),
            &input.path,
            &settings.encoding.input_formats,
            Duration::from_secs(settings.tools.probe_timeout_seconds),
        )
        .instrument(info_span!("probe"))
        .await?;
        let plan =
            info_span!("plan").in_scope(|| self.plan(input.tool_path(), &source, spec.output));

        let split = self.split_grid(request, &source, &spec);
        let estimate = plan.estimated_output_bytes(source.duration_seconds, spec.encrypted);
        self.check_room(estimate).await?;
        self.prepare_staging(&location).await?;
        let mut plan = plan;
        let produced = loop {
            let attempt = Attempt {
                request,
                input: &request.input,
                plan: &plan,
                encrypted: spec.encrypted,
                base_url: spec.base_url.as_ref(),
                duration_seconds: source.duration_seconds,
                location: &location,
                started,
                events,
                split: split.as_ref(),
                chunks,
                cancel,
            };
            let produced = self.encode_verify_publish(attempt).await;
            // A hardware decoder that passed its trial can still fail on
            // one input (a profile or level it lacks, a stream it trips
            // on): encode that input again, once, decoding in software,
            // rather than fail it for good.
            match (&produced, plan.decoder) {
                (Err(Failure::Job(JobError::EncodeFailed { stderr_tail, .. })), Some(decoder)) => {
                    warn!(%decoder, ffmpeg = %stderr_tail, "the hardware decoder failed on this input: encoding it again, decoding in software");
                    if let Err(error) = self.prepare_staging(&location).await {
                        break Err(Failure::from(error));
                    }
                    plan = plan.decoding_in_software();
                }
                _ => break produced,
            }
        };
        drop(input);
        if split.is_some() {
            // The parts are done with unless the job comes back (a requeue
            // reuses them).
            let cancelled = self.cancellations.cancelled_by(request.job_id).is_some();
            let keep = !cancelled
                && (matches!(&produced, Err(Failure::Job(error)) if error.requeue_reason().is_some())
                    || matches!(&produced, Err(Failure::Broker(_))));
            if !keep {
                let store = ChunkStore::new(&settings.paths.output_root, request.job_id);
                blocking::run(move || store.remove()).await;
            }
        }
        let produced = match produced {
            Err(Failure::Job(error)) if error.could_be_storage() => {
                Err(Failure::Job(self.full_volume_or(error, estimate).await))
            }
            other => other,
        };
        if produced.is_err() {
            let location = location.clone();
            blocking::run(move || location.discard_staging()).await;
        }
        if let Err(Failure::Job(JobError::Storage {
            fault: StorageFault::Full,
            ..
        })) = &produced
        {
            // The estimate fitted and the volume filled anyway (others
            // write there too): wait until it has a whole job's room more
            // than now, rather than retrying into the same wall.
            let root = &settings.paths.output_root;
            if let Some(free) = self.free_bytes(root).await {
                self.storage.want_room(root, free.saturating_add(estimate));
            }
        }
        let record = produced?;
        info!(wall_seconds = record.wall_seconds, "job done");
        let state = Box::new(done_state(&location, record, false));
        Ok(Produced::Done { state, location })
    }

    /// The chunk grid to split the job on, when it is split: the job (or
    /// this worker's setting `split`) allows it, the input is at least
    /// `split_min_seconds` long, and it makes more than one chunk.
    fn split_grid(
        &self,
        request: &JobRequest,
        source: &SourceMedia,
        spec: &JobSpec,
    ) -> Option<ChunkGrid> {
        let split = &self.settings.split;
        let mode = request.split.unwrap_or(split.mode);
        if mode == SplitMode::Off || source.duration_seconds < f64::from(split.min_seconds) {
            return None;
        }
        let grid = ChunkGrid::new(
            source.duration_seconds,
            spec.output.segment_seconds,
            split.chunk_seconds,
        );
        (grid.chunks.len() > 1).then_some(grid)
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
        let decoder = self.codecs.decoder_for(&source.video);
        if self.settings.encoding.hw_decode && decoder.is_none() {
            info!(codec = %source.video.codec, %encoder, "no hardware decoder for this input: decoding in software");
        }
        let plan = EncodePlan::new(
            &self.settings.encoding,
            input,
            source,
            options,
            encoder,
            decoder,
        );
        info!(
            duration = source.duration_seconds,
            rungs = ?plan.rungs.iter().map(|r| r.name()).collect::<Vec<_>>(),
            "planned"
        );
        plan
    }

    /// An empty staging directory for this attempt, abandoned attempts'
    /// removed; the filesystem work runs off the runtime.
    async fn prepare_staging(&self, location: &OutputLocation) -> Result<(), JobError> {
        let (location, stale) = (location.clone(), self.settings.storage.stale_staging);
        blocking::run(move || location.prepare_staging(stale)).await
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
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
        chunks: record.chunks,
    }
}
