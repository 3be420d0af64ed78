//! The stages after planning, in order, for a job and for the quarantine
//! self-test alike: encode (whole, or split in chunks and stitched) →
//! master → timing → encrypt (when asked) → verify → rebase (with a base
//! URL). All of it happens in a staging directory; publishing is the
//! caller's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hlsmux_protocol::{RelativePath, RungSummary};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info_span, warn};

use super::JobError;
use super::encode::{self, EncodePlan, EncodeProgress};
use super::hls::timing::{self, Prober};
use super::hls::{encrypt, master, rebase, verify};
use super::split::{self, EncodedParts, SplitRun, grid::ChunkGrid};
use crate::blocking;
use futures_util::future::BoxFuture;

/// One run of the stages over a plan.
pub struct Production<'a> {
    pub plan: &'a EncodePlan,
    pub staging_dir: &'a Path,
    /// How long the source is, to check the output against.
    pub source_seconds: f64,
    /// `None`: the output stays clear.
    pub encryption: Option<Encryption>,
    /// The URL the output is served at, ending in `/` (see
    /// [`rebase`](super::hls::rebase)); `None`: relative URIs.
    pub output_url: Option<String>,
    pub ffmpeg: &'a Path,
    /// Reads the output back for [`timing`](super::hls::timing), within
    /// `probe_timeout` plus a time for its length.
    pub ffprobe: &'a Path,
    pub probe_timeout: Duration,
    /// ffmpeg runs here and keeps its log at `log_path` (removed once it
    /// succeeds, kept for a failure).
    pub work_dir: &'a Path,
    pub log_path: PathBuf,
    pub stall_timeout: Duration,
    /// The cgroup `memory.events` that counts out-of-memory kills, as
    /// configured; `None`: this process's own cgroup's.
    pub memory_events: Option<PathBuf>,
    /// Encode in chunks and stitch them (see [`split`]); `None`: one
    /// ffmpeg run for the whole input.
    pub split: Option<SplitWork<'a>>,
    pub cancel: &'a CancellationToken,
}

/// Where a split job's chunks are encoded.
pub enum SplitWork<'a> {
    /// Here, one after another, on this grid.
    Here(&'a ChunkGrid),
    /// Across the pool, by this future (the worker's coordinator), which
    /// yields the finished parts.
    Pool(BoxFuture<'a, Result<EncodedParts, JobError>>),
}

/// How an encrypted output names its key.
pub struct Encryption {
    /// The output's directory under the output root.
    pub output: RelativePath,
    /// `key_uri_prefix`: empty for a relative key URI.
    pub key_uri_prefix: String,
}

/// Runs the stages, reporting ffmpeg's progress on `progress`, and returns
/// what verify measured of each rung.
pub async fn produce(
    production: Production<'_>,
    progress: &watch::Sender<Option<EncodeProgress>>,
) -> Result<Vec<RungSummary>, JobError> {
    let Production {
        plan,
        staging_dir,
        source_seconds,
        encryption,
        output_url,
        ffmpeg,
        ffprobe,
        probe_timeout,
        work_dir,
        log_path,
        stall_timeout,
        memory_events,
        split,
        cancel,
    } = production;
    let memory_events = memory_events.or_else(encode::oom::own_memory_events);
    let span = info_span!("encode", encoder = %plan.encoder, rungs = plan.rungs.len());
    let run = SplitRun {
        plan,
        ffmpeg,
        work_dir,
        log_path: &log_path,
        stall_timeout,
        memory_events: memory_events.as_deref(),
    };
    let encoded = match split {
        Some(SplitWork::Here(grid)) => {
            split::encode_parts_here(run, grid, staging_dir, progress, cancel)
                .instrument(span)
                .await
        }
        Some(SplitWork::Pool(parts)) => match parts.instrument(span).await {
            Ok(parts) => {
                split::stitch_parts(staging_dir, plan, parts)
                    .instrument(info_span!("stitch"))
                    .await
            }
            Err(error) => Err(error),
        },
        None => {
            let args = encode::ffmpeg_args(plan, staging_dir);
            let run = encode::FfmpegRun {
                ffmpeg,
                args: &args,
                output_dir: staging_dir,
                work_dir,
                log_path: &log_path,
                stall_timeout,
                memory_events: memory_events.as_deref(),
            };
            encode::run_ffmpeg(run, progress, cancel)
                .instrument(span)
                .await
        }
    };
    if let Err(error) = &encoded {
        warn!(log = %log_path.display(), %error, "ffmpeg did not finish");
    }
    encoded?;
    let _ = tokio::fs::remove_file(&log_path).await;

    let presentation = {
        let (dir, plan) = (staging_dir.to_owned(), plan.clone());
        blocking::run(move || master::write_master(&dir, &plan))
            .instrument(info_span!("master"))
            .await?
    };
    let prober = Prober {
        ffprobe,
        timeout: Prober::timeout_for(probe_timeout, source_seconds),
    };
    timing::check_timing(prober, staging_dir, plan)
        .instrument(info_span!("timing"))
        .await?;
    let encrypted = encryption.is_some();
    if let Some(Encryption {
        output,
        key_uri_prefix,
    }) = encryption
    {
        let dir = staging_dir.to_owned();
        blocking::run(move || {
            encrypt::encrypt_output(&dir, presentation, &output, &key_uri_prefix)
        })
        .instrument(info_span!("encrypt"))
        .await?;
    }
    let (dir, verified_plan) = (staging_dir.to_owned(), plan.clone());
    let summaries = blocking::run(move || {
        verify::verify_output(&dir, &verified_plan, source_seconds, encrypted)
    })
    .instrument(info_span!("verify"))
    .await?;
    if let Some(url) = output_url {
        let (dir, layout) = (staging_dir.to_owned(), plan.layout);
        blocking::run(move || rebase::rebase_output(&dir, layout, &url))
            .instrument(info_span!("rebase"))
            .await?;
    }
    Ok(summaries)
}
