//! The worker's own stages (encode, whole or split, then master, timing,
//! encryption and verify) run straight into a directory, without a broker
//! or a job: for the tests and the benchmark that compare a split encode
//! with a whole one.

use std::path::Path;
use std::time::{Duration, Instant};

use hlsmux_protocol::RelativePath;
use hlsmux_worker::pipeline::encode::EncodePlan;
use hlsmux_worker::pipeline::produce::{Encryption, Production, SplitWork, produce};
use hlsmux_worker::pipeline::split::grid::ChunkGrid;
use tokio_util::sync::CancellationToken;

/// Produces `plan` (a source of `seconds`) into `dir`, split on `grid` or
/// whole, encrypted when asked; returns the wall time. Panics, saying
/// why, when the stages fail.
pub async fn produce_here(
    plan: &EncodePlan,
    seconds: f64,
    dir: &Path,
    grid: Option<&ChunkGrid>,
    encrypted: bool,
) -> Duration {
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
        encryption: encrypted.then(|| Encryption {
            output: RelativePath::parse("talk.hls").expect("valid"),
            key_uri_prefix: String::new(),
        }),
        output_url: None,
        ffmpeg: Path::new("ffmpeg"),
        ffprobe: Path::new("ffprobe"),
        probe_timeout: Duration::from_secs(60),
        work_dir: &work,
        log_path: work.join("ffmpeg.log"),
        stall_timeout: Duration::from_secs(300),
        memory_events: None,
        split: grid.map(SplitWork::Here),
        cancel: &cancel,
    };
    let started = Instant::now();
    produce(production, &progress)
        .await
        .unwrap_or_else(|error| panic!("{} did not produce: {error}", dir.display()));
    started.elapsed()
}
