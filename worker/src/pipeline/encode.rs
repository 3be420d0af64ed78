//! Encode: one ffmpeg process that decodes the input once, scales it to every
//! rung, and writes all variants and the master playlist with keyframes at
//! the same timestamps, so players can switch rungs at any segment.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::JobError;
use super::codec::{HardwareDecoder, VideoEncoder};
use super::hls::layout::{AUDIO_RENDITION, Layout};
use super::ladder::{Rung, SourceVideo, plan_ladder};
use super::probe::last_lines;
use super::probe::{AudioTrack, SourceMedia};
use crate::config::Settings;
use hlsmux_protocol::{LadderName, SegmentFormat};

/// Where the audio rendition comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum AudioSource {
    /// A track of the input.
    Track(AudioTrack),
    /// Silence as long as the source: for a source without audio, when the
    /// setting `silent_audio` asks for a track every output has.
    Silence { seconds: f64 },
}

impl AudioSource {
    pub fn language(&self) -> Option<&str> {
        match self {
            AudioSource::Track(track) => track.language.as_deref(),
            AudioSource::Silence { .. } => None,
        }
    }
}

/// What a job asks of its output, each the worker's default unless the job
/// says otherwise.
#[derive(Clone, Copy, Debug)]
pub struct OutputOptions {
    pub ladder: LadderName,
    pub segment_seconds: u32,
    pub layout: Layout,
}

/// Everything ffmpeg needs to know to encode one job.
#[derive(Clone, Debug)]
pub struct EncodePlan {
    pub input: PathBuf,
    pub video_stream_index: usize,
    /// Deinterlace before scaling (the source is stored as fields).
    pub deinterlace: bool,
    /// Encoded once, as a rendition all rungs share.
    pub audio: Option<AudioSource>,
    pub rungs: Vec<Rung>,
    pub segment_seconds: u32,
    /// Where each file goes.
    pub layout: Layout,
    pub encoder: VideoEncoder,
    /// Decode in hardware with this, where the input's codec allows.
    pub decoder: Option<HardwareDecoder>,
    pub vaapi_device: String,
    pub x264_preset: String,
    pub audio_kbps: u32,
    pub threads: u32,
    /// The demuxers the input may be opened with.
    pub input_formats: String,
}

impl EncodePlan {
    /// The plan for `source` under `settings`: the ladder trimmed to the
    /// source, to the encoder's limits and to `max_rung_lines`; the audio
    /// track in `audio_language`, or the first.
    pub fn new(
        settings: &Settings,
        input: PathBuf,
        source: &SourceMedia,
        options: OutputOptions,
        encoder: VideoEncoder,
        decoder: Option<HardwareDecoder>,
    ) -> Self {
        let rungs = plan_ladder(
            options.ladder,
            SourceVideo {
                width: source.video.width,
                height: source.video.height,
                bitrate: source.video_bitrate,
                frame_rate: source.video.frame_rate,
            },
            encoder.limits().at_most_lines(settings.max_rung_lines),
        );
        Self {
            input,
            video_stream_index: source.video.index,
            deinterlace: source.video.interlaced,
            audio: match source.audio_track(settings.audio_language.as_deref()) {
                Some(track) => Some(AudioSource::Track(track.clone())),
                None if settings.silent_audio => Some(AudioSource::Silence {
                    seconds: source.duration_seconds,
                }),
                None => None,
            },
            rungs,
            segment_seconds: options.segment_seconds,
            layout: options.layout,
            encoder,
            decoder,
            vaapi_device: settings.vaapi_device.clone(),
            x264_preset: settings.x264_preset.clone(),
            audio_kbps: settings.audio_bitrate_kbps,
            threads: settings.ffmpeg_threads,
            input_formats: settings.input_formats.clone(),
        }
    }
}

/// The ffmpeg arguments for `plan`, writing into `out_dir`.
pub fn ffmpeg_args(plan: &EncodePlan, out_dir: &Path) -> Vec<OsString> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| (*s).to_owned()));
    push(&[
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-nostats",
    ]);
    push(&["-progress", "pipe:1"]);
    let threads = plan.threads.to_string();
    if plan.threads > 0 {
        push(&["-threads", &threads]);
    }
    args.extend(plan.encoder.device_args(&plan.vaapi_device));
    if let Some(decoder) = plan.decoder {
        args.extend(decoder.input_args(&plan.vaapi_device));
    }
    args.extend(super::validate::confinement_args(&plan.input_formats));
    let mut args: Vec<OsString> = args.into_iter().map(OsString::from).collect();
    args.push("-i".into());
    args.push(plan.input.clone().into());

    let mut push = |items: &[String]| args.extend(items.iter().map(OsString::from));
    if let Some(AudioSource::Silence { seconds }) = &plan.audio {
        push(&[
            "-f".into(),
            "lavfi".into(),
            "-t".into(),
            format!("{seconds:.3}"),
            "-i".into(),
            "anullsrc=channel_layout=stereo:sample_rate=48000".into(),
        ]);
    }
    push(&["-filter_complex".into(), filter_graph(plan)]);
    for index in 0..plan.rungs.len() {
        push(&["-map".into(), format!("[video{index}]")]);
    }
    match &plan.audio {
        Some(AudioSource::Track(track)) => push(&["-map".into(), format!("0:{}", track.index)]),
        Some(AudioSource::Silence { .. }) => push(&["-map".into(), "1:a".into()]),
        None => {}
    }

    // Keyframes exactly at segment boundaries in every variant: a GOP of one
    // segment (at the fastest rung's rate), and keyframes forced by time
    // (which every encoder honours).
    let fastest = plan
        .rungs
        .iter()
        .map(|rung| rung.frame_rate.as_f64())
        .fold(1.0, f64::max);
    let gop = (fastest * f64::from(plan.segment_seconds)).round().max(1.0) as u32;
    push(&plan.encoder.codec_args(&plan.x264_preset, gop));
    if plan.threads > 0 {
        push(&["-threads".into(), threads]);
    }
    for (index, rung) in plan.rungs.iter().enumerate() {
        push(
            &plan
                .encoder
                .rate_args(index, rung.video_kbps, rung.max_kbps(), rung.buffer_kbits()),
        );
    }
    push(&[
        "-force_key_frames".into(),
        format!("expr:gte(t,n_forced*{})", plan.segment_seconds),
    ]);
    if plan.audio.is_some() {
        push(&[
            "-c:a".into(),
            "aac".into(),
            "-b:a".into(),
            format!("{}k", plan.audio_kbps),
            "-ac".into(),
            "2".into(),
        ]);
    }

    // The audio is one rendition group: every rung names it, and players
    // fetch it once whichever rung they play. (ffmpeg writes no master
    // playlist: `master` writes it from what was actually encoded.)
    let group = match plan.audio {
        Some(_) => format!(",agroup:{AUDIO_RENDITION}"),
        None => String::new(),
    };
    let mut stream_map: Vec<String> = plan
        .rungs
        .iter()
        .enumerate()
        .map(|(index, rung)| format!("v:{index}{group},name:{}", rung.name()))
        .collect();
    if plan.audio.is_some() {
        stream_map.push(format!("a:0{group},name:{AUDIO_RENDITION}"));
    }
    let segment_seconds = plan.segment_seconds.to_string();
    let muxer: [&str; 12] = [
        "-max_muxing_queue_size",
        "1024",
        "-f",
        "hls",
        "-hls_time",
        &segment_seconds,
        "-hls_playlist_type",
        "vod",
        "-hls_flags",
        "independent_segments",
        "-var_stream_map",
        &stream_map.join(" "),
    ];
    args.extend(muxer.iter().map(OsString::from));
    args.extend([
        "-hls_segment_type".into(),
        plan.layout.format.as_str().into(),
    ]);
    if plan.layout.format == SegmentFormat::Fmp4 {
        args.extend([
            "-hls_fmp4_init_filename".into(),
            plan.layout.ffmpeg_init().into(),
        ]);
    }
    args.push("-hls_segment_filename".into());
    args.push(out_dir.join(plan.layout.ffmpeg_segments()).into());
    args.push(out_dir.join(plan.layout.ffmpeg_playlists()).into());
    args
}

/// Decodes the video once (deinterlaced when stored as fields), splits it,
/// and scales each copy to its rung at the rung's constant frame rate (which
/// also turns a variable-rate source into a constant-rate output).
fn filter_graph(plan: &EncodePlan) -> String {
    let count = plan.rungs.len();
    let deinterlace = if plan.deinterlace { "yadif," } else { "" };
    let mut graph = format!("[0:{}]{deinterlace}split={count}", plan.video_stream_index);
    for index in 0..count {
        graph.push_str(&format!("[split{index}]"));
    }
    for (index, rung) in plan.rungs.iter().enumerate() {
        graph.push_str(&format!(
            ";[split{index}]scale={}:{},fps={},{}[video{index}]",
            rung.width,
            rung.height,
            rung.frame_rate.ffmpeg(),
            plan.encoder.filter_suffix()
        ));
    }
    graph
}

/// Where an encode has got to, from ffmpeg's `-progress` report.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EncodeProgress {
    /// Seconds of output written so far.
    pub out_seconds: f64,
    pub fps: f64,
    /// Multiple of real time.
    pub speed: f64,
}

impl EncodeProgress {
    pub fn percent_of(&self, duration_seconds: f64) -> f64 {
        if duration_seconds <= 0.0 {
            return 0.0;
        }
        (self.out_seconds / duration_seconds * 100.0).clamp(0.0, 100.0)
    }
}

/// Accumulates `key=value` lines; each block ends with a `progress=` line.
#[derive(Debug, Default)]
pub struct ProgressParser {
    current: EncodeProgress,
}

impl ProgressParser {
    /// Feeds one line; returns the block's progress when the block ends.
    pub fn feed(&mut self, line: &str) -> Option<EncodeProgress> {
        let (key, value) = line.trim().split_once('=')?;
        let number = || value.trim().trim_end_matches('x').parse::<f64>().ok();
        match key {
            // Despite its name, ffmpeg reports out_time_ms in microseconds too.
            "out_time_us" => {
                if let Some(us) = number() {
                    self.current.out_seconds = (us / 1e6).max(0.0);
                }
            }
            "fps" => self.current.fps = number().unwrap_or(self.current.fps),
            "speed" => self.current.speed = number().unwrap_or(self.current.speed),
            "progress" => return Some(self.current),
            _ => {}
        }
        None
    }
}

/// How many of ffmpeg's last error lines a failure message quotes.
const STDERR_TAIL_LINES: usize = 5;

/// The running encode's process group is recorded in the work dir, in a
/// file named after the worker's process: a worker killed outright
/// (SIGKILL, OOM) leaves its ffmpeg running, and the next worker to start
/// there stops it.
fn encoder_record(work_dir: &Path) -> PathBuf {
    work_dir.join(format!("encoder.{}.pgid", std::process::id()))
}

/// Blocking. Stops encoders that workers which no longer run left behind
/// in `work_dir`, where the recorded process group still runs ffmpeg (so a
/// reused ID is left alone).
pub fn stop_orphaned_encoders(work_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(worker_pid) = name
            .strip_prefix("encoder.")
            .and_then(|rest| rest.strip_suffix(".pgid"))
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let worker_alive = nix::sys::signal::kill(Pid::from_raw(worker_pid), None).is_ok();
        if worker_alive {
            continue;
        }
        let pgid = std::fs::read_to_string(entry.path())
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok());
        let _ = std::fs::remove_file(entry.path());
        let Some(pgid) = pgid else { continue };
        let runs_ffmpeg = std::fs::read(format!("/proc/{pgid}/cmdline"))
            .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("ffmpeg"));
        if runs_ffmpeg {
            tracing::warn!(
                pgid,
                worker_pid,
                "stopping an encoder left running by a killed worker"
            );
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

/// Runs ffmpeg with `args`, publishing progress on `progress` and writing its
/// error output to `log_path`. ffmpeg is killed and awaited when `cancel`
/// fires, or when its output time has not advanced for `stall_timeout`.
/// While it runs, its process group is recorded in `work_dir`.
pub async fn run_ffmpeg(
    ffmpeg: &Path,
    args: &[OsString],
    work_dir: &Path,
    log_path: &Path,
    progress: &watch::Sender<Option<EncodeProgress>>,
    stall_timeout: Duration,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    let child = Command::new(ffmpeg)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that stopping it also stops anything it
        // (or a wrapper script around it) started.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| JobError::ToolUnavailable {
            program: ffmpeg.to_owned(),
            detail: error.to_string(),
        })?;
    let pgid_record = encoder_record(work_dir);
    if let Some(pid) = child.id() {
        let _ = tokio::fs::write(&pgid_record, pid.to_string()).await;
    }
    let result = supervise(child, ffmpeg, log_path, progress, stall_timeout, cancel).await;
    let _ = tokio::fs::remove_file(&pgid_record).await;
    result
}

async fn supervise(
    mut child: tokio::process::Child,
    ffmpeg: &Path,
    log_path: &Path,
    progress: &watch::Sender<Option<EncodeProgress>>,
    stall_timeout: Duration,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    enum Cut {
        Cancelled,
        Stalled,
    }
    let finished = tokio::select! {
        outcome = async {
            tokio::join!(
                read_progress(stdout, progress),
                keep_stderr(stderr, log_path),
                child.wait(),
            )
        } => Ok(outcome),
        () = cancel.cancelled() => Err(Cut::Cancelled),
        () = stalled(progress.subscribe(), stall_timeout) => Err(Cut::Stalled),
    };
    let ((), stderr_text, status) = match finished {
        Ok(outcome) => outcome,
        Err(cut) => {
            // Never leave an orphan ffmpeg writing into a directory we delete.
            if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.kill().await;
            return Err(match cut {
                Cut::Cancelled => JobError::Interrupted,
                Cut::Stalled => JobError::Stalled {
                    seconds: stall_timeout.as_secs(),
                },
            });
        }
    };
    let status = status.map_err(|error| JobError::ToolUnavailable {
        program: ffmpeg.to_owned(),
        detail: error.to_string(),
    })?;
    if status.success() {
        return Ok(());
    }
    let stderr_tail = last_lines(&stderr_text, STDERR_TAIL_LINES);
    if let Some(signal) = status.signal() {
        // Killed from outside (a crash, the kernel's OOM killer): the
        // machine's trouble, not necessarily the input's.
        let signal =
            Signal::try_from(signal).map_or_else(|_| format!("signal {signal}"), |s| s.to_string());
        return Err(JobError::EncoderCrashed {
            signal,
            stderr_tail,
        });
    }
    Err(JobError::EncodeFailed {
        status: status.to_string(),
        stderr_tail,
    })
}

/// Resolves once ffmpeg's output time has not advanced for `limit` (from
/// the start, or from its last advance). Never resolves after ffmpeg ends.
async fn stalled(mut progress: watch::Receiver<Option<EncodeProgress>>, limit: Duration) {
    let mut reached = progress.borrow_and_update().map(|p| p.out_seconds);
    let mut deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, progress.changed()).await {
            Err(_) => return,
            Ok(Err(_)) => std::future::pending().await,
            Ok(Ok(())) => {
                let now = progress.borrow_and_update().map(|p| p.out_seconds);
                if now > reached {
                    reached = now;
                    deadline = Instant::now() + limit;
                }
            }
        }
    }
}

async fn read_progress(
    stdout: Option<impl AsyncRead + Unpin>,
    progress: &watch::Sender<Option<EncodeProgress>>,
) {
    let Some(stdout) = stdout else { return };
    let mut lines = BufReader::new(stdout).lines();
    let mut parser = ProgressParser::default();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(update) = parser.feed(&line) {
            progress.send_replace(Some(update));
        }
    }
}

/// Collects ffmpeg's error output: the last lines in memory for the failure
/// message, all of it in the log file for whoever investigates.
async fn keep_stderr(stderr: Option<impl AsyncRead + Unpin>, log_path: &Path) -> String {
    let Some(stderr) = stderr else {
        return String::new();
    };
    let mut log = tokio::fs::File::create(log_path).await.ok();
    let mut tail: VecDeque<String> = VecDeque::with_capacity(STDERR_TAIL_LINES + 1);
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(file) = log.as_mut()
            && file
                .write_all(format!("{line}\n").as_bytes())
                .await
                .is_err()
        {
            log = None;
        }
        tail.push_back(line);
        if tail.len() > STDERR_TAIL_LINES {
            tail.pop_front();
        }
    }
    Vec::from(tail).join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ladder::FrameRate;

    const PAL: FrameRate = FrameRate { num: 25, den: 1 };

    fn plan(audio: Option<usize>) -> EncodePlan {
        EncodePlan {
            input: PathBuf::from("/media/in.mkv"),
            video_stream_index: 1,
            deinterlace: false,
            audio: audio.map(|index| {
                AudioSource::Track(AudioTrack {
                    index,
                    language: None,
                })
            }),
            rungs: vec![
                Rung {
                    width: 640,
                    height: 360,
                    video_kbps: 800,
                    frame_rate: PAL,
                },
                Rung {
                    width: 426,
                    height: 240,
                    video_kbps: 400,
                    frame_rate: PAL,
                },
            ],
            segment_seconds: 4,
            layout: Layout::default(),
            encoder: VideoEncoder::Libx264,
            decoder: None,
            vaapi_device: "/dev/dri/renderD128".into(),
            x264_preset: "veryfast".into(),
            audio_kbps: 128,
            threads: 2,
            input_formats: "mov,matroska".into(),
        }
    }

    fn text(args: &[OsString]) -> String {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn value_after<'a>(args: &'a [OsString], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|pair| pair[0] == flag)
            .filter_map(|pair| pair[1].to_str())
            .collect()
    }

    #[test]
    fn the_input_is_confined_to_local_files_and_allowed_formats() {
        let args = ffmpeg_args(&plan(None), Path::new("/out"));
        let input_at = args.iter().position(|a| a == "-i").expect("an input");
        let before_input = text(&args[..input_at]);
        assert!(
            before_input.contains("-protocol_whitelist file"),
            "{before_input}"
        );
        assert!(
            before_input.contains("-format_whitelist mov,matroska"),
            "{before_input}"
        );
    }

    #[test]
    fn decodes_once_and_splits_into_every_rung() {
        let args = ffmpeg_args(&plan(Some(2)), Path::new("/out/stage"));
        assert_eq!(value_after(&args, "-i"), ["/media/in.mkv"]);
        let graph = value_after(&args, "-filter_complex")[0];
        assert!(graph.starts_with("[0:1]split=2[split0][split1]"), "{graph}");
        assert!(graph.contains("scale=426:240"), "{graph}");
    }

    #[test]
    fn audio_is_encoded_once_as_a_rendition_every_rung_shares() {
        let args = ffmpeg_args(&plan(Some(2)), Path::new("/out/stage"));
        assert_eq!(value_after(&args, "-map"), ["[video0]", "[video1]", "0:2"]);
        let map = value_after(&args, "-var_stream_map")[0];
        assert_eq!(
            map,
            "v:0,agroup:audio,name:360p_800k v:1,agroup:audio,name:240p_400k a:0,agroup:audio,name:audio"
        );
        assert_eq!(value_after(&args, "-c:a"), ["aac"]);
    }

    #[test]
    fn silence_as_long_as_the_source_is_a_second_input_when_asked_for() {
        let mut silent = plan(None);
        silent.audio = Some(AudioSource::Silence { seconds: 12.5 });
        let args = ffmpeg_args(&silent, Path::new("/out/stage"));
        assert_eq!(
            value_after(&args, "-i"),
            [
                "/media/in.mkv",
                "anullsrc=channel_layout=stereo:sample_rate=48000"
            ]
        );
        assert_eq!(value_after(&args, "-t"), ["12.500"]);
        assert_eq!(value_after(&args, "-map"), ["[video0]", "[video1]", "1:a"]);
        assert_eq!(value_after(&args, "-c:a"), ["aac"]);
    }

    #[test]
    fn each_rung_gets_a_constant_frame_rate_and_fields_are_deinterlaced() {
        let mut interlaced = plan(None);
        interlaced.deinterlace = true;
        interlaced.rungs[1].frame_rate = FrameRate {
            num: 30000,
            den: 1001,
        };
        let args = ffmpeg_args(&interlaced, Path::new("/out/stage"));
        let graph = value_after(&args, "-filter_complex")[0];
        assert!(graph.starts_with("[0:1]yadif,split=2"), "{graph}");
        assert!(graph.contains("scale=640:360,fps=25/1,"), "{graph}");
        assert!(graph.contains("scale=426:240,fps=30000/1001,"), "{graph}");
        assert_eq!(
            value_after(&args, "-g"),
            ["120"],
            "a GOP of the fastest rung"
        );
    }

    #[test]
    fn an_input_without_audio_maps_video_only() {
        let args = ffmpeg_args(&plan(None), Path::new("/out/stage"));
        assert!(!text(&args).contains("-c:a"));
        assert_eq!(
            value_after(&args, "-var_stream_map")[0],
            "v:0,name:360p_800k v:1,name:240p_400k"
        );
    }

    #[test]
    fn keyframes_are_pinned_to_segment_boundaries() {
        let args = ffmpeg_args(&plan(Some(2)), Path::new("/out/stage"));
        assert_eq!(value_after(&args, "-g"), ["100"]);
        assert_eq!(value_after(&args, "-keyint_min"), ["100"]);
        assert_eq!(value_after(&args, "-sc_threshold"), ["0"]);
        assert_eq!(
            value_after(&args, "-force_key_frames"),
            ["expr:gte(t,n_forced*4)"]
        );
        assert_eq!(value_after(&args, "-hls_time"), ["4"]);
    }

    #[test]
    fn each_rung_gets_its_rate_and_vbv() {
        let args = ffmpeg_args(&plan(Some(2)), Path::new("/out/stage"));
        assert_eq!(value_after(&args, "-b:v:1"), ["400k"]);
        assert_eq!(value_after(&args, "-maxrate:v:1"), ["428k"]);
        assert_eq!(value_after(&args, "-bufsize:v:1"), ["600k"]);
    }

    #[test]
    fn writes_master_and_variants_into_the_staging_directory() {
        let args = ffmpeg_args(&plan(Some(2)), Path::new("/out/stage"));
        assert_eq!(
            args.last().map(|a| a.to_string_lossy().into_owned()),
            Some("/out/stage/%v/index.m3u8".into())
        );
        assert!(
            value_after(&args, "-master_pl_name").is_empty(),
            "the worker writes the master playlist itself"
        );
        let mut seed = plan(Some(2));
        seed.layout = Layout {
            naming: hlsmux_protocol::OutputNaming::Seed,
            format: SegmentFormat::Fmp4,
        };
        let args = ffmpeg_args(&seed, Path::new("/out/stage"));
        assert_eq!(
            value_after(&args, "-hls_segment_filename"),
            ["/out/stage/media_%v_%05d.m4s"]
        );
        assert_eq!(value_after(&args, "-hls_segment_type"), ["fmp4"]);
        assert_eq!(
            value_after(&args, "-hls_fmp4_init_filename"),
            ["media_init.mp4"]
        );
        assert_eq!(value_after(&args, "-threads"), ["2", "2"]);
    }

    #[test]
    fn hardware_set_up_goes_before_the_input_and_uploads_after_scaling() {
        let mut vaapi = plan(Some(2));
        vaapi.encoder = VideoEncoder::Vaapi;
        vaapi.decoder = Some(HardwareDecoder::Hwaccel("vaapi"));
        let args = ffmpeg_args(&vaapi, Path::new("/out/stage"));
        let input = args.iter().position(|a| a == "-i").expect("input");
        let device = args
            .iter()
            .position(|a| a == "-vaapi_device")
            .expect("device");
        let hwaccel = args.iter().position(|a| a == "-hwaccel").expect("hwaccel");
        assert!(device < input && hwaccel < input);
        let graph = value_after(&args, "-filter_complex")[0];
        assert!(
            graph.contains("scale=640:360,fps=25/1,format=nv12,hwupload[video0]"),
            "{graph}"
        );
        assert_eq!(value_after(&args, "-c:v"), ["h264_vaapi"]);
    }

    #[test]
    fn a_pi_hardware_decoder_is_chosen_as_the_input_codec() {
        let mut pi = plan(Some(2));
        pi.encoder = VideoEncoder::V4l2m2m;
        pi.decoder = Some(HardwareDecoder::Codec("h264_v4l2m2m"));
        let args = ffmpeg_args(&pi, Path::new("/out/stage"));
        assert_eq!(value_after(&args, "-c:v"), ["h264_v4l2m2m", "h264_v4l2m2m"]);
        let input = args.iter().position(|a| a == "-i").expect("input");
        let decoder = args.iter().position(|a| a == "-c:v").expect("decoder");
        assert!(decoder < input, "the decoder is an input option");
        assert!(
            value_after(&args, "-maxrate:v:0").is_empty(),
            "no VBV on the Pi encoder"
        );
        assert_eq!(value_after(&args, "-hls_segment_type"), ["mpegts"]);
    }

    #[test]
    fn progress_blocks_are_parsed() {
        let mut parser = ProgressParser::default();
        let block = "frame=50\nfps=24.5\nout_time_us=2000000\nspeed=1.5x\n";
        for line in block.lines() {
            assert_eq!(parser.feed(line), None);
        }
        let progress = parser.feed("progress=continue").expect("block ends");
        assert_eq!(
            progress,
            EncodeProgress {
                out_seconds: 2.0,
                fps: 24.5,
                speed: 1.5
            }
        );
        assert!((progress.percent_of(4.0) - 50.0).abs() < 1e-9);
        assert!(parser.feed("speed=N/A").is_none());
        assert_eq!(parser.feed("progress=end").map(|p| p.speed), Some(1.5));
    }
}
