//! Probe: ask ffprobe what the input holds, and keep only what planning and
//! encoding need: the first real video stream, the first audio stream, the
//! duration and the bitrates.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;

use super::JobError;

/// What the pipeline knows of an input after probing.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceMedia {
    pub duration_seconds: f64,
    pub video: VideoStream,
    pub audio_stream_index: Option<usize>,
    /// The video bitrate, or failing that the container's less its audio.
    pub video_bitrate: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VideoStream {
    /// Absolute stream index in the input, for `-map 0:<index>`.
    pub index: usize,
    /// ffprobe's codec name (`h264`, `mpeg2video`, ...).
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
}

/// Frame rate assumed when the input does not state one (keyframe spacing
/// only; segments are cut by time either way).
const FALLBACK_FRAME_RATE: f64 = 25.0;

/// Runs ffprobe on `input` and parses its report.
pub async fn probe(
    ffprobe: &Path,
    input: &Path,
    input_formats: &str,
    timeout: Duration,
) -> Result<SourceMedia, JobError> {
    let run = Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .args(super::validate::confinement_args(input_formats))
        .arg(input)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| JobError::ProbeFailed {
            path: input.to_owned(),
            detail: format!("ffprobe did not finish within {} s", timeout.as_secs()),
        })?
        .map_err(|error| JobError::ToolUnavailable {
            program: ffprobe.to_owned(),
            detail: error.to_string(),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if let Some(format) = super::validate::refused_format(&stderr) {
            return Err(JobError::InputFormatRefused {
                path: input.to_owned(),
                format,
            });
        }
        return Err(JobError::ProbeFailed {
            path: input.to_owned(),
            detail: last_lines(&stderr, 3),
        });
    }
    parse_probe_report(input, &output.stdout)
}

/// Parses ffprobe's `-print_format json -show_format -show_streams` output.
pub fn parse_probe_report(input: &Path, json: &[u8]) -> Result<SourceMedia, JobError> {
    let failed = |detail: String| JobError::ProbeFailed {
        path: input.to_owned(),
        detail,
    };
    let report: ProbeReport = serde_json::from_slice(json)
        .map_err(|e| failed(format!("unreadable ffprobe report: {e}")))?;
    let video = report
        .streams
        .iter()
        .find(|s| s.codec_type == "video" && !s.disposition.attached_pic)
        .ok_or_else(|| JobError::NoVideoStream(input.to_owned()))?;
    let (Some(width), Some(height)) = (video.width, video.height) else {
        return Err(failed("the video stream has no dimensions".into()));
    };
    if width == 0 || height == 0 {
        return Err(failed("the video stream has no dimensions".into()));
    }
    let audio = report.streams.iter().find(|s| s.codec_type == "audio");
    let duration_seconds = parse_number(report.format.duration.as_deref())
        .or_else(|| parse_number(video.duration.as_deref()))
        .filter(|d| *d > 0.0)
        .ok_or_else(|| failed("the input's duration is unknown".into()))?;
    let frame_rate = parse_rate(&video.avg_frame_rate)
        .or_else(|| parse_rate(&video.r_frame_rate))
        .unwrap_or(FALLBACK_FRAME_RATE);
    let audio_bitrate = audio
        .and_then(|a| parse_integer(a.bit_rate.as_deref()))
        .unwrap_or(0);
    let video_bitrate = parse_integer(video.bit_rate.as_deref())
        .or_else(|| {
            parse_integer(report.format.bit_rate.as_deref())
                .map(|total| total.saturating_sub(audio_bitrate))
        })
        .filter(|b| *b > 0);
    Ok(SourceMedia {
        duration_seconds,
        video: VideoStream {
            index: video.index,
            codec: video.codec_name.clone(),
            width,
            height,
            frame_rate,
        },
        audio_stream_index: audio.map(|a| a.index),
        video_bitrate,
    })
}

#[derive(Deserialize)]
struct ProbeReport {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    #[serde(default)]
    format: ProbeFormat,
}

#[derive(Deserialize)]
struct ProbeStream {
    index: usize,
    #[serde(default)]
    codec_type: String,
    #[serde(default)]
    codec_name: String,
    width: Option<u32>,
    height: Option<u32>,
    #[serde(default)]
    avg_frame_rate: String,
    #[serde(default)]
    r_frame_rate: String,
    bit_rate: Option<String>,
    duration: Option<String>,
    #[serde(default)]
    disposition: Disposition,
}

#[derive(Deserialize, Default)]
struct Disposition {
    #[serde(default, deserialize_with = "flag")]
    attached_pic: bool,
}

#[derive(Deserialize, Default)]
struct ProbeFormat {
    duration: Option<String>,
    bit_rate: Option<String>,
}

fn flag<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(u8::deserialize(deserializer)? != 0)
}

fn parse_number(text: Option<&str>) -> Option<f64> {
    text?.trim().parse().ok().filter(|n: &f64| n.is_finite())
}

fn parse_integer(text: Option<&str>) -> Option<u64> {
    text?.trim().parse().ok()
}

/// Parses ffprobe's `num/den` rates; `0/0` means unknown.
fn parse_rate(text: &str) -> Option<f64> {
    let (num, den) = text.split_once('/')?;
    let (num, den): (f64, f64) = (num.parse().ok()?, den.parse().ok()?);
    (num > 0.0 && den > 0.0).then(|| num / den)
}

/// The last `count` non-empty lines of a tool's stderr, joined for a message.
pub fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = &lines[lines.len().saturating_sub(count)..];
    if tail.is_empty() {
        "(no error output)".into()
    } else {
        tail.join(" | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(streams: &str, format: &str) -> Vec<u8> {
        format!(r#"{{"streams": [{streams}], "format": {format}}}"#).into_bytes()
    }

    const VIDEO: &str = r#"{"index": 0, "codec_type": "video", "codec_name": "h264", "width": 640, "height": 360,
        "avg_frame_rate": "30000/1001", "r_frame_rate": "30000/1001", "bit_rate": "900000",
        "disposition": {"attached_pic": 0}}"#;
    const AUDIO: &str = r#"{"index": 1, "codec_type": "audio", "bit_rate": "128000"}"#;

    #[test]
    fn reads_video_audio_duration_and_bitrate() {
        let media = parse_probe_report(
            Path::new("a.mp4"),
            &report(
                &format!("{VIDEO}, {AUDIO}"),
                r#"{"duration": "3.5", "bit_rate": "1100000"}"#,
            ),
        )
        .expect("parses");
        assert_eq!(media.video.width, 640);
        assert_eq!(media.video.codec, "h264");
        assert!((media.video.frame_rate - 29.97).abs() < 0.01);
        assert_eq!(media.audio_stream_index, Some(1));
        assert_eq!(media.video_bitrate, Some(900_000));
        assert!((media.duration_seconds - 3.5).abs() < f64::EPSILON);
    }

    #[test]
    fn missing_video_bitrate_falls_back_to_the_container_less_audio() {
        let video = VIDEO.replace(r#""bit_rate": "900000","#, "");
        let media = parse_probe_report(
            Path::new("a.mkv"),
            &report(
                &format!("{video}, {AUDIO}"),
                r#"{"duration": "3.5", "bit_rate": "1128000"}"#,
            ),
        )
        .expect("parses");
        assert_eq!(media.video_bitrate, Some(1_000_000));
    }

    #[test]
    fn cover_art_is_not_a_video_stream() {
        let cover = r#"{"index": 0, "codec_type": "video", "width": 500, "height": 500,
            "disposition": {"attached_pic": 1}}"#;
        let error = parse_probe_report(
            Path::new("song.mp3"),
            &report(&format!("{cover}, {AUDIO}"), r#"{"duration": "180"}"#),
        )
        .expect_err("audio only");
        assert!(matches!(error, JobError::NoVideoStream(_)));
    }

    #[test]
    fn an_unknown_duration_is_a_probe_failure() {
        let error =
            parse_probe_report(Path::new("a.h264"), &report(VIDEO, "{}")).expect_err("no duration");
        assert!(matches!(error, JobError::ProbeFailed { .. }));
    }

    #[test]
    fn last_lines_keeps_the_tail() {
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b | c");
        assert_eq!(last_lines("", 2), "(no error output)");
    }
}
