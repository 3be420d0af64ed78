//! The self-test a quarantined worker must pass before it takes jobs again:
//! a short generated clip through the real pipeline (probe, plan, then the
//! very stages a job runs: encode, master, verify), on this machine's own
//! scratch space.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::job::JobRunner;
use crate::pipeline::encode::OutputOptions;
use crate::pipeline::hls::layout::Layout;
use crate::pipeline::input::probe;
use crate::pipeline::produce::{Production, produce};

/// Seconds of test picture: long enough for two segments of one second.
const CLIP_SECONDS: &str = "2";
const SEGMENT_SECONDS: u32 = 1;

/// Runs the self-test in `work_dir/self-test`; `Err` says what failed.
pub async fn run(runner: &JobRunner, cancel: &CancellationToken) -> Result<(), String> {
    let settings = runner.settings();
    let dir = settings.paths.work_dir.join("self-test");
    let _ = tokio::fs::remove_dir_all(&dir).await;
    let out_dir = dir.join("out");
    tokio::fs::create_dir_all(&out_dir)
        .await
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let result = encode_test_clip(runner, &dir, &out_dir, cancel).await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    result
}

async fn encode_test_clip(
    runner: &JobRunner,
    dir: &Path,
    out_dir: &Path,
    cancel: &CancellationToken,
) -> Result<(), String> {
    let settings = runner.settings();
    let source = dir.join("source.mkv");
    // mpeg4 is built into every ffmpeg, so making the clip tests nothing
    // but ffmpeg starting; the encode below is the real test.
    let made = Command::new(&settings.tools.ffmpeg)
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x180:rate=25"])
        .args(["-t", CLIP_SECONDS, "-c:v", "mpeg4", "-an"])
        .arg(&source)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", settings.tools.ffmpeg.display()))?;
    if !made.status.success() {
        return Err(format!(
            "making the test clip failed ({}): {}",
            made.status,
            probe::last_lines(&String::from_utf8_lossy(&made.stderr), 3)
        ));
    }
    let media = probe::probe(
        &settings.tools.ffprobe,
        &source,
        &source,
        &settings.encoding.input_formats,
        Duration::from_secs(settings.tools.probe_timeout_seconds),
    )
    .await
    .map_err(|e| e.to_string())?;
    let options = OutputOptions {
        ladder: settings.encoding.ladder,
        segment_seconds: SEGMENT_SECONDS,
        layout: Layout {
            naming: settings.encoding.naming,
            format: settings.encoding.segment_format,
        },
        rate_control: settings.encoding.rate_control,
    };
    let plan = runner.plan(source, &media, options);
    let (progress, _) = watch::channel(None);
    let production = Production {
        plan: &plan,
        staging_dir: out_dir,
        source_seconds: media.duration_seconds,
        encryption: None,
        output_url: None,
        ffmpeg: &settings.tools.ffmpeg,
        ffprobe: &settings.tools.ffprobe,
        probe_timeout: Duration::from_secs(settings.tools.probe_timeout_seconds),
        work_dir: dir,
        log_path: dir.join("ffmpeg.log"),
        stall_timeout: settings.encoding.stall_timeout,
        memory_events: settings.tools.memory_events.clone(),
        split: None,
        cancel,
    };
    produce(production, &progress)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}
