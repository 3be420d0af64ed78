//! Split: one long input encoded in parts and stitched into an output a
//! player cannot tell from a whole encode (issue 21). The parts are the
//! video in chunks of whole segments on one global grid (`grid`), each
//! encoded by `encode::part_args` with its segments numbered and its
//! timestamps placed on the source's timeline, and the audio, encoded once
//! and whole; `stitch` joins them into the staging directory, after which
//! master, timing, encryption and verify run as for a whole encode.
//!
//! `encode_parts_here` runs every part on this worker, one after another:
//! it is what the pool-wide distribution of chunks stands on, and what the
//! tests compare with a whole encode.

mod fragments;
pub mod grid;
pub mod stitch;

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use self::grid::ChunkGrid;
use self::stitch::PartDir;
use super::JobError;
use super::encode::{self, EncodePlan, EncodeProgress, FfmpegRun, Part, Window};
use super::hls::layout::AUDIO_RENDITION;
use crate::blocking;

/// Where a split job's parts are written, inside its staging directory
/// (and gone from it once stitched).
pub const PARTS_DIR: &str = ".parts";

/// One split encode, run here.
pub struct SplitRun<'a> {
    pub plan: &'a EncodePlan,
    pub grid: &'a ChunkGrid,
    pub staging_dir: &'a Path,
    pub ffmpeg: &'a Path,
    pub work_dir: &'a Path,
    pub log_path: &'a Path,
    pub stall_timeout: Duration,
    pub memory_events: Option<&'a Path>,
}

/// Encodes the audio whole, then each chunk of video, then stitches them
/// into `staging_dir`. Progress is the whole job's: a chunk's output time
/// counts from where the chunk starts.
pub async fn encode_parts_here(
    run: SplitRun<'_>,
    progress: &watch::Sender<Option<EncodeProgress>>,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    let parts = run.staging_dir.join(PARTS_DIR);
    if run.plan.audio.is_some() {
        let dir = parts.join(AUDIO_RENDITION);
        let args = encode::part_args(run.plan, &dir, Part::AudioOnly);
        encode_part(&run, &args, &dir, 0.0, progress, cancel).await?;
    }
    let mut chunk_dirs = Vec::with_capacity(run.grid.chunks.len());
    for chunk in &run.grid.chunks {
        let dir = parts.join(format!("chunk-{:05}", chunk.index));
        let window = Window {
            start_seconds: chunk.start_seconds,
            seconds: chunk.seconds,
            first_segment: chunk.first_segment,
        };
        let args = encode::part_args(run.plan, &dir, Part::VideoWindow(window));
        encode_part(&run, &args, &dir, chunk.start_seconds, progress, cancel).await?;
        chunk_dirs.push(PartDir {
            dir,
            start_seconds: chunk.start_seconds,
        });
    }
    let (staging, layout) = (run.staging_dir.to_owned(), run.plan.layout);
    let streams: Vec<String> = run.plan.rungs.iter().map(|rung| rung.name()).collect();
    let audio = run.plan.audio.is_some();
    blocking::run(move || {
        for stream in &streams {
            stitch::stitch_stream(&staging, &chunk_dirs, layout, stream)?;
        }
        if audio {
            let audio = PartDir {
                dir: staging.join(PARTS_DIR).join(AUDIO_RENDITION),
                start_seconds: 0.0,
            };
            stitch::stitch_stream(&staging, &[audio], layout, AUDIO_RENDITION)?;
        }
        std::fs::remove_dir_all(staging.join(PARTS_DIR))
            .map_err(|error| JobError::unwritable(&staging.join(PARTS_DIR), error))
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
