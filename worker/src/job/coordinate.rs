//! Coordinates a split job across the pool: the worker that took the job
//! orders every unfinished chunk into the pool's chunk queue and helps
//! encode them: it takes chunks from the queue (its own job's or any
//! other's, so two coordinators never wait on each other), encodes the
//! audio whole itself once the queue runs dry, and helps again until
//! every chunk of its job is finished. A chunk nobody holds
//! (its order was dropped after killing workers, or left by a worker that
//! plans it otherwise) is encoded here. Progress is the job's: the
//! seconds of its chunks finished. The finished parts are then stitched
//! and published like any job's output (see `produce`).
//!
//! Everything a coordinator knows is on the shared volume (the job's
//! chunk store), so a coordinator that dies loses nothing: the job comes
//! back to another worker, which reuses every part already finished.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hlsmux_protocol::{CheckedChunkOrder, ChunkOrder, ChunkSummary, JobRequest};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::JobRunner;
use crate::blocking;
use crate::broker::ChunkQueue;
use crate::pipeline::JobError;
use crate::pipeline::encode::{EncodePlan, EncodeProgress};
use crate::pipeline::hls::layout::AUDIO_RENDITION;
use crate::pipeline::split::grid::ChunkGrid;
use crate::pipeline::split::stitch::PartDir;
use crate::pipeline::split::store::{ChunkStore, PartRecord, abandon};
use crate::pipeline::split::{self, EncodedParts, SplitRun};

/// How often the coordinator looks at its chunks while none is to be had.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// How long a chunk may be neither finished nor in anyone's hands, with
/// the queue empty, before the coordinator encodes it itself: a worker
/// that takes an order begins its attempt at once, so this only has to
/// cover the moment between the two.
const UNCLAIMED_GRACE: Duration = Duration::from_secs(5);

/// One split job being coordinated.
pub(super) struct PoolSplit<'a> {
    pub request: &'a JobRequest,
    pub plan: &'a EncodePlan,
    pub grid: &'a ChunkGrid,
    pub chunks: &'a ChunkQueue,
    pub progress: &'a watch::Sender<Option<EncodeProgress>>,
    pub cancel: &'a CancellationToken,
}

/// Where a chunk stands, as the store shows it.
enum ChunkState {
    Finished,
    Failed(JobError),
    Held,
    Unheld,
}

impl JobRunner {
    /// Has every chunk of the job encoded, across the pool, and returns
    /// the finished parts.
    pub(super) async fn encode_across_pool(
        &self,
        split: PoolSplit<'_>,
    ) -> Result<EncodedParts, JobError> {
        let PoolSplit {
            request,
            plan,
            grid,
            chunks,
            progress,
            cancel,
        } = split;
        let store = ChunkStore::new(&self.settings.paths.output_root, request.job_id);
        {
            let store = store.clone();
            blocking::run(move || store.open()).await?;
        }
        let signature = plan.chunk_signature();
        let orders: Vec<CheckedChunkOrder> = grid
            .chunks
            .iter()
            .map(|chunk| CheckedChunkOrder {
                request: request.clone(),
                order: ChunkOrder::new(
                    request,
                    chunk.index,
                    chunk.start_seconds,
                    chunk.seconds,
                    chunk.first_segment,
                    signature.clone(),
                ),
            })
            .collect();
        let mut reused = 0;
        for checked in &orders {
            let name = ChunkStore::chunk_part(checked.order.index);
            if store_record(&store, &name).await.is_some() {
                reused += 1;
                continue;
            }
            chunks
                .order(&checked.order)
                .await
                .map_err(|error| JobError::ChunkQueue(error.to_string()))?;
        }
        info!(
            chunks = grid.chunks.len(),
            reused, "split across the pool: chunks ordered"
        );
        // Encode chunks with the pool first, and the audio (one part, not
        // to be shared) when the queue runs dry: it then fills the time
        // the last chunks take elsewhere. At most as many as were ordered,
        // so a queue full of other jobs' chunks cannot hold the audio back.
        for _ in reused..grid.chunks.len() {
            if !self.help_with_one_chunk(chunks, cancel).await {
                break;
            }
        }
        let audio = match plan.audio {
            Some(_) => Some(self.encode_audio(request, &store, plan, cancel).await?),
            None => None,
        };
        self.wait_for_chunks(&store, &orders, grid, chunks, progress, cancel)
            .await?;
        Ok(EncodedParts {
            chunks: grid
                .chunks
                .iter()
                .map(|chunk| PartDir {
                    dir: store.finished(&ChunkStore::chunk_part(chunk.index)),
                    start_seconds: chunk.start_seconds,
                })
                .collect(),
            audio,
        })
    }

    /// The job's audio, encoded whole here (never per chunk: AAC restarted
    /// at every join would click), or found finished by an earlier
    /// coordinator.
    async fn encode_audio(
        &self,
        request: &JobRequest,
        store: &ChunkStore,
        plan: &EncodePlan,
        cancel: &CancellationToken,
    ) -> Result<std::path::PathBuf, JobError> {
        if store_record(store, AUDIO_RENDITION).await.is_some() {
            return Ok(store.finished(AUDIO_RENDITION));
        }
        let begun = {
            let (store, who) = (store.clone(), self.owner.host.clone());
            blocking::run(move || store.begin(AUDIO_RENDITION, &who)).await?
        };
        let Some(attempt) = begun else {
            return Err(JobError::Interrupted);
        };
        let started = Instant::now();
        let log_path = self
            .settings
            .paths
            .work_dir
            .join(format!("{}.audio.ffmpeg.log", request.job_id));
        let memory_events = self
            .settings
            .tools
            .memory_events
            .clone()
            .or_else(crate::pipeline::encode::oom::own_memory_events);
        let run = SplitRun {
            plan,
            ffmpeg: &self.settings.tools.ffmpeg,
            work_dir: &self.settings.paths.work_dir,
            log_path: &log_path,
            stall_timeout: self.settings.encoding.stall_timeout,
            memory_events: memory_events.as_deref(),
        };
        let (progress, _) = watch::channel(None);
        if let Err(error) = split::encode_audio_part(&run, &attempt, &progress, cancel).await {
            blocking::run(move || abandon(&attempt)).await;
            return Err(error);
        }
        let _ = tokio::fs::remove_file(&log_path).await;
        let record = PartRecord {
            worker: format!("{}#{}", self.owner.host, self.owner.pid),
            wall_seconds: started.elapsed().as_secs_f64(),
        };
        let store = store.clone();
        blocking::run(move || {
            store.finish(AUDIO_RENDITION, &attempt, &record)?;
            Ok(store.finished(AUDIO_RENDITION))
        })
        .await
    }

    /// Helps until every chunk of the job is finished; fails with the
    /// first chunk that failed for the input's reason.
    async fn wait_for_chunks(
        &self,
        store: &ChunkStore,
        orders: &[CheckedChunkOrder],
        grid: &ChunkGrid,
        chunks: &ChunkQueue,
        progress: &watch::Sender<Option<EncodeProgress>>,
        cancel: &CancellationToken,
    ) -> Result<(), JobError> {
        let within = self.settings.encoding.stall_timeout;
        let mut unheld_since: HashMap<u32, Instant> = HashMap::new();
        loop {
            if cancel.is_cancelled() {
                return Err(JobError::Interrupted);
            }
            let states = {
                let (store, grid) = (store.clone(), grid.clone());
                blocking::run(move || chunk_states(&store, &grid, within)).await
            };
            let mut finished_seconds = 0.0;
            let mut all_finished = true;
            for (chunk, state) in grid.chunks.iter().zip(states) {
                match state {
                    ChunkState::Finished => {
                        finished_seconds += chunk.seconds;
                        unheld_since.remove(&chunk.index);
                    }
                    ChunkState::Failed(error) => return Err(error),
                    ChunkState::Held => {
                        all_finished = false;
                        unheld_since.remove(&chunk.index);
                    }
                    ChunkState::Unheld => {
                        all_finished = false;
                        unheld_since.entry(chunk.index).or_insert_with(Instant::now);
                    }
                }
            }
            progress.send_replace(Some(EncodeProgress {
                out_seconds: finished_seconds,
                fps: 0.0,
                speed: 0.0,
            }));
            if all_finished {
                return Ok(());
            }
            if self.help_with_one_chunk(chunks, cancel).await {
                continue;
            }
            // The queue is empty: a chunk long in nobody's hands is ours.
            let orphan = unheld_since
                .iter()
                .filter(|(_, since)| since.elapsed() >= UNCLAIMED_GRACE)
                .map(|(index, _)| *index)
                .min();
            if let Some(index) = orphan
                && let Some(checked) = orders.iter().find(|o| o.order.index == index)
            {
                info!(index, "no worker holds this chunk: encoding it here");
                unheld_since.remove(&index);
                let _ = self.run_chunk(checked, cancel).await;
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(WAIT_POLL) => {}
                () = cancel.cancelled() => {}
            }
        }
    }

    /// Encodes the next chunk in the queue, whoever's it is. False when
    /// the queue is empty (or cannot be read), or the worker is draining.
    async fn help_with_one_chunk(&self, chunks: &ChunkQueue, cancel: &CancellationToken) -> bool {
        if self.draining.load(std::sync::atomic::Ordering::Relaxed) {
            return false;
        }
        match chunks.take().await {
            Ok(Some(delivery)) => {
                let disposition = self.handle_chunk(&delivery, cancel).await.disposition;
                if let Err(error) = disposition.apply(&delivery.acker).await {
                    warn!(%error, "could not settle a chunk; the broker will deliver it again");
                }
                true
            }
            Ok(None) => false,
            Err(error) => {
                warn!(%error, "cannot take chunks from the queue; waiting for the pool");
                false
            }
        }
    }

    /// Who encoded each of the job's chunks, for its `done` event.
    pub(super) async fn chunk_summaries(
        &self,
        request: &JobRequest,
        grid: &ChunkGrid,
    ) -> Vec<ChunkSummary> {
        let store = ChunkStore::new(&self.settings.paths.output_root, request.job_id);
        let grid = grid.clone();
        blocking::run(move || {
            grid.chunks
                .iter()
                .map(|chunk| ChunkSummary {
                    index: chunk.index,
                    start_seconds: chunk.start_seconds,
                    seconds: chunk.seconds,
                    worker: store
                        .record(&ChunkStore::chunk_part(chunk.index))
                        .map(|record| record.worker)
                        .unwrap_or_default(),
                })
                .collect()
        })
        .await
    }
}

async fn store_record(store: &ChunkStore, name: &str) -> Option<PartRecord> {
    let (store, name) = (store.clone(), name.to_owned());
    blocking::run(move || store.record(&name)).await
}

/// Blocking. Each chunk's state, in order.
fn chunk_states(store: &ChunkStore, grid: &ChunkGrid, within: Duration) -> Vec<ChunkState> {
    grid.chunks
        .iter()
        .map(|chunk| {
            let name = ChunkStore::chunk_part(chunk.index);
            if store.record(&name).is_some() {
                ChunkState::Finished
            } else if let Some(failure) = store.failure(&name) {
                ChunkState::Failed(JobError::ChunkFailed {
                    index: chunk.index,
                    reason: failure.reason,
                    message: failure.message,
                })
            } else if store.in_progress(&name, within) {
                ChunkState::Held
            } else {
                ChunkState::Unheld
            }
        })
        .collect()
}
