//! Split: one long input encoded in parts and stitched into an output a
//! player cannot tell from a whole encode (issue 21). The parts are the
//! video in chunks of whole segments on one global grid (`grid`), each
//! encoded by `encode::part_args` with its segments numbered and its
//! timestamps placed on the source's timeline, and the audio, encoded once
//! and whole; `stitch` joins them into the staging directory, after which
//! master, timing, encryption and verify run as for a whole encode.
//!
//! `encode_parts_here` runs every part on this worker, one after another;
//! across the pool, the worker's `job::coordinate` orders the chunks from
//! other workers, which encode them with `encode_chunk_part` into the
//! job's `store`, and stitches them with `stitch_parts`.

mod fragments;
pub mod grid;
pub mod stitch;
pub mod store;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use self::grid::{Chunk, ChunkGrid};
use self::stitch::PartDir;
use super::JobError;
use super::encode::{self, EncodePlan, EncodeProgress, FfmpegRun, Part, Window};
use super::hls::layout::AUDIO_RENDITION;
use crate::blocking;

/// Where a split job's parts are written, inside its staging directory
/// (and gone from it once stitched).
pub const PARTS_DIR: &str = ".parts";

/// How this worker runs ffmpeg for a part of a split job.
pub struct SplitRun<'a> {
    pub plan: &'a EncodePlan,
    pub ffmpeg: &'a Path,
    pub work_dir: &'a Path,
    pub log_path: &'a Path,
    pub stall_timeout: Duration,
    pub memory_events: Option<&'a Path>,
}

/// The encoded parts of a split job, in order, ready to stitch.
pub struct EncodedParts {
    pub chunks: Vec<PartDir>,
    /// The audio rendition, encoded whole; `None` for a plan without one.
    pub audio: Option<PathBuf>,
}

/// Encodes the audio whole, then each chunk of video, in `staging_dir`'s
/// parts directory, then stitches them into `staging_dir`. Progress is
/// the whole job's: a chunk's output time counts from where it starts.
pub async fn encode_parts_here(
    run: SplitRun<'_>,
    grid: &ChunkGrid,
    staging_dir: &Path,
    progress: &watch::Sender<Option<EncodeProgress>>,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    let parts_dir = staging_dir.join(PARTS_DIR);
    let audio = match run.plan.audio {
        Some(_) => {
            let dir = parts_dir.join(AUDIO_RENDITION);
            encode_audio_part(&run, &dir, progress, cancel).await?;
            Some(dir)
        }
        None => None,
    };
    let mut chunks = Vec::with_capacity(grid.chunks.len());
    for chunk in &grid.chunks {
        let dir = parts_dir.join(format!("chunk-{:05}", chunk.index));
        encode_chunk_part(&run, chunk, &dir, progress, cancel).await?;
        chunks.push(PartDir {
            dir,
            start_seconds: chunk.start_seconds,
        });
    }
    stitch_parts(staging_dir, run.plan, EncodedParts { chunks, audio }).await?;
    blocking::run(move || {
        std::fs::remove_dir_all(&parts_dir).map_err(|error| JobError::unwritable(&parts_dir, error))
    })
    .await
}

/// Encodes the plan's audio, whole, into `dir`.
pub async fn encode_audio_part(
    run: &SplitRun<'_>,
    dir: &Path,
    progress: &watch::Sender<Option<EncodeProgress>>,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    let args = encode::part_args(run.plan, dir, Part::AudioOnly);
    encode_part(run, &args, dir, 0.0, progress, cancel).await
}

/// Encodes `chunk` of the plan's video, every rung, into `dir`.
pub async fn encode_chunk_part(
    run: &SplitRun<'_>,
    chunk: &Chunk,
    dir: &Path,
    progress: &watch::Sender<Option<EncodeProgress>>,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    let window = Window {
        start_seconds: chunk.start_seconds,
        seconds: chunk.seconds,
        first_segment: chunk.first_segment,
    };
    let args = encode::part_args(run.plan, dir, Part::VideoWindow(window));
    encode_part(run, &args, dir, chunk.start_seconds, progress, cancel).await
}

/// Stitches every rung's chunks, and the audio, into `staging_dir`; the
/// parts are read, never changed.
pub async fn stitch_parts(
    staging_dir: &Path,
    plan: &EncodePlan,
    parts: EncodedParts,
) -> Result<(), JobError> {
    let (staging, layout) = (staging_dir.to_owned(), plan.layout);
    let streams: Vec<String> = plan.rungs.iter().map(|rung| rung.name()).collect();
    blocking::run(move || {
        for stream in &streams {
            stitch::stitch_stream(&staging, &parts.chunks, layout, stream)?;
        }
        if let Some(dir) = parts.audio {
            let audio = PartDir {
                dir,
                start_seconds: 0.0,
            };
            stitch::stitch_stream(&staging, &[audio], layout, AUDIO_RENDITION)?;
        }
        Ok(())
    })
    .await
}

/// Runs one part's ffmpeg into `dir`, its progress shifted by `from`
/// seconds onto the whole job's.
async fn encode_part(
    run: &SplitRun<'_>,
    args: &[std::ffi::OsString],
    dir: &Path,
    from: f64,
    progress: &watch::Sender<Option<EncodeProgress>>,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|error| JobError::unwritable(dir, error))?;
    let (part_tx, mut part_rx) = watch::channel(None);
    let ffmpeg = FfmpegRun {
        ffmpeg: run.ffmpeg,
        args,
        output_dir: dir,
        work_dir: run.work_dir,
        log_path: run.log_path,
        stall_timeout: run.stall_timeout,
        memory_events: run.memory_events,
    };
    let encoding = encode::run_ffmpeg(ffmpeg, &part_tx, cancel);
    tokio::pin!(encoding);
    loop {
        tokio::select! {
            result = &mut encoding => return result,
            Ok(()) = part_rx.changed() => {
                let shifted = (*part_rx.borrow()).map(|part| EncodeProgress {
                    out_seconds: from + part.out_seconds,
                    ..part
                });
                progress.send_replace(shifted);
            }
        }
    }
}
