//! Encodes one chunk of a split job (see `coordinate`): any worker of the
//! pool with the job's encoder, the coordinator included. The order is
//! checked as a job is (its request parsed as a job message, the input
//! resolved under this worker's media root), the chunk is planned again
//! here and must come out as the coordinator planned it, and its segments
//! go into an attempt directory of the job's chunk store, renamed into
//! place only when whole.

use std::time::{Duration, Instant};

use hlsmux_protocol::{CheckedChunkOrder, ChunkOrder};
use lapin::message::Delivery;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use super::JobRunner;
use super::outcome::{Disposition, Settled};
use super::spec::JobSpec;
use crate::blocking;
use crate::health::quarantine::Evidence;
use crate::health::storage::StorageHealth;
use crate::pipeline::input::{probe, validate};
use crate::pipeline::split::grid::Chunk;
use crate::pipeline::split::store::{ChunkStore, PartFailure, PartRecord, abandon};
use crate::pipeline::split::{self, SplitRun};
use crate::pipeline::{JobError, Retry};
use hlsmux_protocol::RequeueReason;

/// How a chunk ended here, for the broker and the quarantine.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkEnding {
    /// Encoded here, or failed for the input's reason (recorded for the
    /// coordinator): this worker did its part.
    Handled,
    /// Encoded by another worker first; or wanted no more (its job is
    /// finished or cancelled); or left to its coordinator (a plan that
    /// differs): the broker forgets it, and it says nothing of this worker.
    Settled,
    /// Not done here and now (the worker is stopping, or its storage is in
    /// trouble): back to the queue for any worker.
    GiveBack,
    /// Given back for a reason that points at this worker (ffmpeg crashed
    /// or stalled, a tool is missing): counts towards its quarantine.
    Faulted {
        reason: RequeueReason,
        detail: String,
    },
}

impl ChunkEnding {
    pub fn settled(self) -> Settled {
        match self {
            ChunkEnding::Handled => Settled::new(Disposition::Ack, Evidence::WorkerWell),
            ChunkEnding::Settled => Settled::new(Disposition::Ack, Evidence::Neutral),
            ChunkEnding::GiveBack => Settled::new(Disposition::Requeue, Evidence::Neutral),
            ChunkEnding::Faulted { reason, detail } => Settled::new(
                Disposition::Requeue,
                Evidence::WorkerFault { reason, detail },
            ),
        }
    }
}

/// Why a chunk was not encoded here.
enum NotEncoded {
    /// This worker would plan the chunk otherwise than its coordinator.
    PlanDiffers {
        ours: String,
    },
    /// The job's store is gone: its coordinator is done with it.
    Unwanted,
    Job(JobError),
}

impl From<JobError> for NotEncoded {
    fn from(error: JobError) -> Self {
        NotEncoded::Job(error.blame_storage())
    }
}

impl JobRunner {
    /// Takes one chunk delivered from the pool's queue, and says how to
    /// settle it. `interrupt` stops it (the worker is stopping).
    pub async fn handle_chunk(
        &self,
        delivery: &Delivery,
        interrupt: &CancellationToken,
    ) -> Settled {
        let order = match ChunkOrder::from_json(&delivery.data) {
            Ok(order) => order,
            Err(bad) => {
                warn!(error = %bad, "dropping a message in the chunk queue that is not a chunk order");
                self.metrics.chunks_dropped.inc();
                return ChunkEnding::Settled.settled();
            }
        };
        let waited = (time::OffsetDateTime::now_utc() - order.order.ordered_at).as_seconds_f64();
        self.metrics.chunk_wait_seconds.observe(waited.max(0.0));
        self.run_chunk(&order, interrupt).await.settled()
    }

    /// Encodes one chunk, or finds it needs no encoding here.
    pub(super) async fn run_chunk(
        &self,
        checked: &CheckedChunkOrder,
        interrupt: &CancellationToken,
    ) -> ChunkEnding {
        let CheckedChunkOrder { request, order } = checked;
        let job_id = request.job_id;
        let span = info_span!("chunk", %job_id, index = order.index, start = order.start_seconds);
        async {
            if self.cancellations.cancelled_by(job_id).is_some() {
                info!("the chunk's job is cancelled: dropping the chunk");
                return ChunkEnding::Settled;
            }
            let store = ChunkStore::new(&self.settings.paths.output_root, job_id);
            let name = ChunkStore::chunk_part(order.index);
            let begun = {
                let (store, name, who) = (store.clone(), name.clone(), self.owner.host.clone());
                blocking::run(move || match store.record(&name) {
                    Some(_) => Ok(None),
                    None => store.begin(&name, &who),
                })
                .await
            };
            let attempt = match begun {
                Ok(Some(attempt)) => attempt,
                Ok(None) => {
                    info!("the chunk is finished already, or its job is: nothing to do");
                    return ChunkEnding::Settled;
                }
                Err(error) => {
                    warn!(%error, "cannot begin the chunk on the shared storage: giving it back");
                    return ChunkEnding::GiveBack;
                }
            };
            self.state.set_chunk(Some((job_id, order.index)));
            let in_hand = self.cancellations.watch(job_id, interrupt);
            let started = Instant::now();
            let encoded = self.encode_chunk(checked, &attempt, in_hand.token()).await;
            drop(in_hand);
            self.state.set_chunk(None);
            let ending = self
                .settle_chunk(checked, &store, &name, &attempt, encoded, started)
                .await;
            if matches!(ending, ChunkEnding::GiveBack | ChunkEnding::Faulted { .. }) {
                // Another worker (or this one, later) takes it instead.
                tokio::select! {
                    () = tokio::time::sleep(self.settings.service.requeue_delay) => {}
                    () = interrupt.cancelled() => {}
                }
            }
            ending
        }
        .instrument(span)
        .await
    }

    async fn settle_chunk(
        &self,
        checked: &CheckedChunkOrder,
        store: &ChunkStore,
        name: &str,
        attempt: &std::path::Path,
        encoded: Result<(), NotEncoded>,
        started: Instant,
    ) -> ChunkEnding {
        let job_id = checked.request.job_id;
        let (store, name, attempt) = (store.clone(), name.to_owned(), attempt.to_owned());
        let error = match encoded {
            Ok(()) => {
                let record = PartRecord {
                    worker: format!("{}#{}", self.owner.host, self.owner.pid),
                    wall_seconds: started.elapsed().as_secs_f64(),
                };
                let finished = {
                    let (store, name, attempt) = (store.clone(), name.clone(), attempt.clone());
                    blocking::run(move || store.finish(&name, &attempt, &record)).await
                };
                return match finished {
                    Ok(first) => {
                        info!(first, seconds = started.elapsed().as_secs_f64(), by = %format!("{}#{}", self.owner.host, self.owner.pid), "chunk encoded");
                        self.metrics.chunks_encoded.inc();
                        ChunkEnding::Handled
                    }
                    Err(error) => {
                        warn!(%error, "cannot put the chunk in place: giving it back");
                        blocking::run(move || abandon(&attempt)).await;
                        ChunkEnding::GiveBack
                    }
                };
            }
            Err(NotEncoded::PlanDiffers { ours }) => {
                info!(theirs = %checked.order.plan, %ours, "this worker would encode the chunk otherwise: leaving it to its coordinator");
                blocking::run(move || abandon(&attempt)).await;
                return ChunkEnding::Settled;
            }
            Err(NotEncoded::Unwanted) => {
                blocking::run(move || abandon(&attempt)).await;
                return ChunkEnding::Settled;
            }
            Err(NotEncoded::Job(error)) => error,
        };
        blocking::run({
            let attempt = attempt.clone();
            move || abandon(&attempt)
        })
        .await;
        if matches!(error, JobError::Interrupted) {
            return match self.cancellations.cancelled_by(job_id) {
                Some(by) => {
                    info!(%by, "the chunk's job was cancelled: chunk stopped");
                    ChunkEnding::Settled
                }
                None => ChunkEnding::GiveBack,
            };
        }
        let storage_trouble = error.retry() == Retry::Permanent
            && error.could_be_storage()
            && matches!(self.storage.health(true).await, StorageHealth::Unhealthy(_));
        if error.retry() == Retry::Transient || storage_trouble {
            warn!(%error, "chunk not encoded for this worker's reasons: giving it back");
            return match error.requeue_reason() {
                Some(reason) if reason.is_worker_fault() => ChunkEnding::Faulted {
                    reason,
                    detail: error.to_string(),
                },
                _ => ChunkEnding::GiveBack,
            };
        }
        warn!(%error, "chunk failed for the input's reason: its job fails with it");
        let failure = PartFailure {
            reason: error.reason(),
            message: error.to_string(),
        };
        match blocking::run(move || store.fail(&name, &failure)).await {
            Ok(()) => ChunkEnding::Handled,
            Err(error) => {
                warn!(%error, "cannot record the chunk's failure: giving it back");
                ChunkEnding::GiveBack
            }
        }
    }

    /// Validates, probes and plans the chunk's input here, and encodes the
    /// chunk into `attempt`.
    async fn encode_chunk(
        &self,
        checked: &CheckedChunkOrder,
        attempt: &std::path::Path,
        cancel: &CancellationToken,
    ) -> Result<(), NotEncoded> {
        let CheckedChunkOrder { request, order } = checked;
        let settings = &self.settings;
        let spec = JobSpec::resolve(request, settings, self.codecs.encoder)?;
        let input = {
            let (root, input) = (settings.paths.media_root.clone(), request.input.clone());
            blocking::run(move || validate::resolve_input(&root, &input)).await?
        };
        let source = probe::probe(
            &settings.tools.ffprobe,
            &input.tool_path(),
            &input.path,
            &settings.encoding.input_formats,
            Duration::from_secs(settings.tools.probe_timeout_seconds),
        )
        .await?;
        let rate = source.video.frame_rate;
        let frame = f64::from(rate.den) / f64::from(rate.num.max(1));
        if order.start_seconds + order.seconds > source.duration_seconds + frame {
            return Err(NotEncoded::Job(JobError::InvalidRequest(format!(
                "chunk {} runs to {:.3} s, past the input's end at {:.3} s",
                order.index,
                order.start_seconds + order.seconds,
                source.duration_seconds
            ))));
        }
        let plan = self.plan(input.tool_path(), &source, spec.output);
        let ours = plan.chunk_signature();
        if ours != order.plan {
            return Err(NotEncoded::PlanDiffers { ours });
        }
        if !attempt.is_dir() {
            return Err(NotEncoded::Unwanted);
        }
        let log_path = settings.paths.work_dir.join(format!(
            "{}.chunk-{}.ffmpeg.log",
            request.job_id, order.index
        ));
        let memory_events = settings
            .tools
            .memory_events
            .clone()
            .or_else(crate::pipeline::encode::oom::own_memory_events);
        let run = SplitRun {
            plan: &plan,
            ffmpeg: &settings.tools.ffmpeg,
            work_dir: &settings.paths.work_dir,
            log_path: &log_path,
            stall_timeout: settings.encoding.stall_timeout,
            memory_events: memory_events.as_deref(),
        };
        let chunk = Chunk {
            index: order.index,
            start_seconds: order.start_seconds,
            seconds: order.seconds,
            first_segment: order.first_segment,
        };
        let (progress, _) = watch::channel(None);
        split::encode_chunk_part(&run, &chunk, attempt, &progress, cancel).await?;
        let _ = tokio::fs::remove_file(&log_path).await;
        drop(input);
        Ok(())
    }
}
