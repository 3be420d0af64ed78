//! Items 1, 2 and the worker's memory during an encode: a job through the
//! pool against the same ffmpeg command run directly, and against the
//! seed's pipeline (a full re-encode to strip tracks, then one ffmpeg per
//! bitrate, each decoding the input again).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hlsmux_protocol::LadderName;
use hlsmux_tests::{TestEnv, TestWorker};
use hlsmux_worker::config::{EncodingSettings, Settings};
use hlsmux_worker::pipeline::encode::{EncodePlan, OutputOptions, ffmpeg_args};
use hlsmux_worker::pipeline::hls::layout::Layout;
use hlsmux_worker::pipeline::input::probe::{SourceMedia, probe};
use hlsmux_worker::pipeline::plan::codec::VideoEncoder;
use hlsmux_worker::pipeline::plan::ladder::{SourceVideo, plan_ladder};
use tokio::process::Command;

use crate::measure::{cpu_seconds, reaped_children_cpu, sampling_rss};

/// The flags both sides use: the worker gets them as settings, the plain
/// ffmpeg command is built from them by the worker's own code.
pub const PRESET: &str = "ultrafast";
pub const THREADS: u32 = 2;
pub const SEGMENT_SECONDS: u32 = 2;

/// The worker's environment for these settings.
pub fn worker_env() -> Vec<(String, String)> {
    vec![
        ("HLSMUX_X264_PRESET".into(), PRESET.into()),
        ("HLSMUX_FFMPEG_THREADS".into(), THREADS.to_string()),
        ("HLSMUX_SEGMENT_SECONDS".into(), SEGMENT_SECONDS.to_string()),
        ("HLSMUX_ENCODER".into(), "libx264".into()),
    ]
}

pub struct Source {
    pub path: PathBuf,
    pub media: SourceMedia,
    settings: EncodingSettings,
}

impl Source {
    pub async fn probe(path: PathBuf) -> Self {
        let mut settings = Settings::defaults()
            .expect("the built-in settings parse")
            .encoding;
        settings.x264_preset = PRESET.into();
        settings.ffmpeg_threads = THREADS;
        let media = probe(
            Path::new("ffprobe"),
            &path,
            &path,
            &settings.input_formats,
            Duration::from_secs(60),
        )
        .await
        .expect("the benchmark clip probes");
        Self {
            path,
            media,
            settings,
        }
    }

    /// The worker's own plan for this source (software encoder, no
    /// hardware decoder).
    pub fn plan(&self, ladder: LadderName) -> EncodePlan {
        let options = OutputOptions {
            ladder,
            segment_seconds: SEGMENT_SECONDS,
            layout: Layout::default(),
            rate_control: hlsmux_protocol::RateControl::default(),
        };
        EncodePlan::new(
            &self.settings,
            self.path.clone(),
            &self.media,
            options,
            VideoEncoder::Libx264,
            None,
        )
    }
}

/// Wall and CPU seconds of one measured run.
#[derive(Clone, Copy, Debug)]
pub struct Cost {
    pub wall: f64,
    pub cpu: f64,
}

/// A job through the pool: its cost, the worker's own CPU seconds (without
/// ffmpeg's) and the worker's largest resident memory meanwhile, in MiB.
#[derive(Clone, Copy, Debug)]
pub struct PoolRun {
    pub cost: Cost,
    pub worker_own_cpu: f64,
    pub worker_peak_rss: f64,
}

/// Runs `ffmpeg args` to its end as a child of this process; its CPU time
/// is read from this process's reaped-children counters.
async fn ffmpeg(args: &[std::ffi::OsString]) -> Cost {
    let cpu_before = reaped_children_cpu();
    let started = Instant::now();
    let status = Command::new("ffmpeg")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg {args:?}");
    let wall = started.elapsed().as_secs_f64();
    let cpu_after = reaped_children_cpu();
    Cost {
        wall,
        cpu: cpu_after - cpu_before,
    }
}

/// The plain ffmpeg run of `plan` into a fresh directory under `scratch`.
pub async fn plain(plan: &EncodePlan, scratch: &Path, run: usize) -> Cost {
    let out = scratch.join(format!("plain-{run}"));
    std::fs::create_dir_all(&out).expect("output dir");
    ffmpeg(&ffmpeg_args(plan, &out)).await
}

/// One job through the pool: `hlsmux submit --wait` to its end, with the
/// worker's CPU (its own and its ffmpeg's) and the CLI's; also the
/// worker's largest resident memory meanwhile.
pub async fn through_pool(
    test: &TestEnv,
    worker: &TestWorker,
    clip: &Path,
    ladder: LadderName,
    name: &str,
    extra: &[&str],
) -> PoolRun {
    let pid = u32::try_from(worker.pid().as_raw()).expect("pid");
    let worker_before = cpu_seconds(pid, true).unwrap_or(0.0);
    let worker_own_before = cpu_seconds(pid, false).unwrap_or(0.0);
    let cli_before = reaped_children_cpu();
    let mut args = vec![
        "submit",
        clip.to_str().expect("utf-8"),
        "--muxer",
        "1",
        "--ladder",
        ladder.as_str(),
        "--name",
        name,
        "--wait",
    ];
    args.extend_from_slice(extra);
    let (run, wall, peak_rss) = sampling_rss(pid, test.cli(&args)).await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    let worker_cpu = cpu_seconds(pid, true).unwrap_or(0.0) - worker_before;
    let worker_own_cpu = cpu_seconds(pid, false).unwrap_or(0.0) - worker_own_before;
    let cli_cpu = reaped_children_cpu() - cli_before;
    PoolRun {
        cost: Cost {
            wall: wall.as_secs_f64(),
            cpu: worker_cpu + cli_cpu,
        },
        worker_own_cpu,
        worker_peak_rss: peak_rss,
    }
}

/// The seed's pipeline as plain ffmpeg commands, with the rung bitrates the
/// seed computes (source, half, 200 kb/s: the worker's `seed` ladder).
pub async fn seed_pipeline(source: &Source, scratch: &Path, run: usize) -> Cost {
    let dir = scratch.join(format!("seed-{run}"));
    std::fs::create_dir_all(&dir).expect("seed dir");
    let stripped = dir.join("stripped.mp4");
    let threads = THREADS.to_string();
    let strings = |items: &[&str]| -> Vec<std::ffi::OsString> {
        items.iter().map(std::ffi::OsString::from).collect()
    };
    let mut strip = strings(&["-v", "error", "-y", "-threads", &threads, "-i"]);
    strip.push(source.path.clone().into_os_string());
    strip.extend(strings(&[
        "-map", "0:v:0", "-map", "0:a:0", "-c:v", "libx264", "-preset", PRESET, "-threads",
        &threads, "-c:a", "aac", "-b:a", "128k",
    ]));
    strip.push(stripped.clone().into_os_string());
    let mut total = ffmpeg(&strip).await;

    let rungs = plan_ladder(
        LadderName::Seed,
        SourceVideo {
            width: source.media.video.width,
            height: source.media.video.height,
            bitrate: source.media.video_bitrate,
            frame_rate: source.media.video.frame_rate,
        },
        VideoEncoder::Libx264.limits(),
    );
    let gop = (source.media.video.frame_rate.as_f64() * f64::from(SEGMENT_SECONDS)).round() as u32;
    for rung in &rungs {
        let out = dir.join(format!("{}k", rung.video_kbps));
        std::fs::create_dir_all(&out).expect("rung dir");
        let mut args = strings(&["-v", "error", "-y", "-threads", &threads, "-i"]);
        args.push(stripped.clone().into_os_string());
        args.extend(strings(&[
            "-c:v",
            "libx264",
            "-preset",
            PRESET,
            "-threads",
            &threads,
            "-b:v",
            &format!("{}k", rung.video_kbps),
            "-maxrate",
            &format!("{}k", rung.max_kbps()),
            "-bufsize",
            &format!("{}k", rung.buffer_kbits()),
            "-g",
            &gop.to_string(),
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-f",
            "hls",
            "-hls_time",
            &SEGMENT_SECONDS.to_string(),
            "-hls_playlist_type",
            "vod",
        ]));
        args.push(out.join("index.m3u8").into_os_string());
        let cost = ffmpeg(&args).await;
        total.wall += cost.wall;
        total.cpu += cost.cpu;
    }
    total
}
