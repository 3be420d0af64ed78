//! Item 8: what splitting costs on one worker. The same plan through the
//! worker's stages twice, whole and in chunks run one after another here
//! (each chunk seeks and decodes a lead-in, the audio is its own run, then
//! the stitch), so the difference is the split's own overhead: what a pool
//! of N workers pays on top of 1/N of the encode once chunks are spread.

use std::path::Path;
use std::time::{Duration, Instant};

use hlsmux_worker::pipeline::encode::EncodePlan;
use hlsmux_worker::pipeline::produce::{Production, produce};
use hlsmux_worker::pipeline::split::grid::ChunkGrid;
use tokio_util::sync::CancellationToken;

/// Wall seconds of the stages over `plan`, split on `grid` or whole.
pub async fn produce_wall(
    plan: &EncodePlan,
    seconds: f64,
    dir: &Path,
    grid: Option<&ChunkGrid>,
) -> f64 {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("staging");
    let work = dir.with_extension("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let cancel = CancellationToken::new();
    let (progress, _) = tokio::sync::watch::channel(None);
    let production = Production {
        plan,
        staging_dir: dir,
        source_seconds: seconds,
        encryption: None,
        output_url: None,
        ffmpeg: Path::new("ffmpeg"),
        ffprobe: Path::new("ffprobe"),
        probe_timeout: Duration::from_secs(60),
        work_dir: &work,
        log_path: work.join("ffmpeg.log"),
        stall_timeout: Duration::from_secs(300),
        memory_events: None,
        split: grid,
        cancel: &cancel,
    };
    let started = Instant::now();
    produce(production, &progress)
        .await
        .unwrap_or_else(|error| panic!("{} did not produce: {error}", dir.display()));
    started.elapsed().as_secs_f64()
}
