//! Probe: ask ffprobe what the input holds, and keep only what planning and
//! encoding need: the first real video stream, the first audio stream, the
//! duration and the bitrates.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;

use crate::pipeline::JobError;
use crate::pipeline::plan::ladder::FrameRate;

/// What the pipeline knows of an input after probing.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceMedia {
    pub duration_seconds: f64,
    /// The video stream's own duration, where the container says.
    pub video_seconds: Option<f64>,
    pub video: VideoStream,
    /// Every audio stream, in the input's order.
    pub audio: Vec<AudioTrack>,
    /// The video bitrate, or failing that the container's less its audio.
    pub video_bitrate: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AudioTrack {
    /// Absolute stream index in the input, for `-map 0:<index>`.
    pub index: usize,
    /// The stream's `language` tag (ISO 639-2, `eng`), when it has one.
    pub language: Option<String>,
    /// Samples per second, when the stream says.
    pub sample_rate: Option<u32>,
}

impl SourceMedia {
    /// The audio track to encode: the first in `language` when asked and
    /// present, else the input's first.
    pub fn audio_track(&self, language: Option<&str>) -> Option<&AudioTrack> {
        language
            .and_then(|wanted| {
                self.audio
                    .iter()
                    .find(|track| track.language.as_deref() == Some(wanted))
            })
            .or_else(|| self.audio.first())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct VideoStream {
    /// Absolute stream index in the input, for `-map 0:<index>`.
    pub index: usize,
    /// ffprobe's codec name (`h264`, `mpeg2video`, ...).
    pub codec: String,
    /// As displayed: ffmpeg applies rotation metadata when it decodes, so a
    /// phone's portrait clip stored sideways is planned upright.
    pub width: u32,
    pub height: u32,
    pub frame_rate: FrameRate,
    /// Stored as fields (interlaced), to be deinterlaced before scaling.
    pub interlaced: bool,
    /// ffprobe's pixel format (`yuv420p`, `yuv420p10le`, `yuv422p`): bit
    /// depth and chroma, which a hardware decoder may not take.
    pub pix_fmt: Option<String>,
}

/// Runs ffprobe on `input` and parses its report.
/// `open_as` is the name ffprobe opens (see `ValidInput::tool_path`);
/// `input` the name messages show.
pub async fn probe(
    ffprobe: &Path,
    open_as: &Path,
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
        .args(crate::pipeline::input::validate::confinement_args(
            input_formats,
        ))
        .arg(open_as)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| JobError::ProbeFailed {
            path: input.to_owned(),
            detail: format!("ffprobe did not finish within {} s", timeout.as_secs()),
        })?
        .map_err(|source| JobError::ToolUnavailable {
            program: ffprobe.to_owned(),
            source,
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if let Some(format) = crate::pipeline::input::validate::refused_format(&stderr) {
            return Err(JobError::InputFormatRefused {
                path: input.to_owned(),
                format,
            });
        }
        return Err(JobError::ProbeFailed {
            path: input.to_owned(),
            detail: last_lines(&stderr, 3)
                .replace(&*open_as.to_string_lossy(), &input.to_string_lossy()),
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
    let frame_rate = FrameRate::parse(&video.avg_frame_rate)
        .or_else(|| FrameRate::parse(&video.r_frame_rate))
        .unwrap_or(FrameRate::FALLBACK);
    // Anamorphic sources (a 16:9 DVD or broadcast picture stored as
    // 720x576) are planned at the size they are shown at: every rung has
    // square pixels.
    let width = video.displayed_width(width);
    let (width, height) = if video.quarter_turned() {
        (height, width)
    } else {
        (width, height)
    };
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
        video_seconds: video_end(video, &report.format),
        video: VideoStream {
            index: video.index,
            codec: video.codec_name.clone(),
            width,
            height,
            frame_rate,
            interlaced: video
                .field_order
                .as_deref()
                .is_some_and(|order| matches!(order, "tt" | "bb" | "tb" | "bt")),
            pix_fmt: video.pix_fmt.clone(),
        },
        audio: report
            .streams
            .iter()
            .filter(|s| s.codec_type == "audio")
            .map(|s| AudioTrack {
                index: s.index,
                sample_rate: s.sample_rate.as_deref().and_then(|rate| rate.parse().ok()),
                language: s.tags.language.clone().filter(|l| l != "und"),
            })
            .collect(),
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
    field_order: Option<String>,
    pix_fmt: Option<String>,
    #[serde(default)]
    tags: StreamTags,
    #[serde(default)]
    side_data_list: Vec<SideData>,
    /// `16:15`; `0:1` or absent when the stream does not say (square).
    sample_aspect_ratio: Option<String>,
    /// Audio: `48000`.
    sample_rate: Option<String>,
    start_time: Option<String>,
}

/// Where the video ends on ffmpeg's timeline, which starts with the
/// earliest stream: in an MPEG-TS the audio may start before the video.
fn video_end(video: &ProbeStream, format: &ProbeFormat) -> Option<f64> {
    let duration = parse_number(video.duration.as_deref()).filter(|d| *d > 0.0)?;
    let start = parse_number(video.start_time.as_deref()).unwrap_or(0.0);
    let timeline_start = parse_number(format.start_time.as_deref()).unwrap_or(start);
    Some(duration + (start - timeline_start).max(0.0))
}

impl ProbeStream {
    /// The stored width stretched by the sample aspect ratio, as players
    /// show it (even, as encoders want).
    fn displayed_width(&self, stored: u32) -> u32 {
        let ratio = self.sample_aspect_ratio.as_deref().and_then(|text| {
            let (num, den) = text.split_once(':')?;
            let (num, den): (u64, u64) = (num.trim().parse().ok()?, den.trim().parse().ok()?);
            (num > 0 && den > 0 && num != den).then_some((num, den))
        });
        match ratio {
            Some((num, den)) => {
                let shown = (u64::from(stored) * num + den / 2) / den;
                u32::try_from(shown).map_or(stored, |shown| (shown + 1) & !1)
            }
            None => stored,
        }
    }

    /// Whether rotation metadata turns the picture by 90 or 270 degrees:
    /// a display matrix (ffprobe 5 and later) or an older `rotate` tag.
    fn quarter_turned(&self) -> bool {
        let degrees = self
            .side_data_list
            .iter()
            .find_map(|side| side.rotation)
            .or_else(|| self.tags.rotate.as_deref()?.trim().parse().ok())
            .unwrap_or(0.0);
        let quarter_turns = (degrees / 90.0).round() as i64;
        quarter_turns.rem_euclid(2) == 1
    }
}

#[derive(Deserialize, Default)]
struct StreamTags {
    rotate: Option<String>,
    language: Option<String>,
}

#[derive(Deserialize)]
struct SideData {
    rotation: Option<f64>,
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
    /// The earliest stream's start: ffmpeg's timeline begins there.
    start_time: Option<String>,
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
        assert!((media.video.frame_rate.as_f64() - 29.97).abs() < 0.01);
        assert!(!media.video.interlaced);
        assert_eq!(media.audio_track(None).map(|a| a.index), Some(1));
        assert_eq!(media.video_bitrate, Some(900_000));
        assert!((media.duration_seconds - 3.5).abs() < f64::EPSILON);
    }

    #[test]
    fn anamorphic_pictures_are_planned_at_the_size_they_are_shown() {
        let sized = |sar: &str| {
            let video = VIDEO
                .replace(
                    r#""width": 640, "height": 360"#,
                    r#""width": 720, "height": 576"#,
                )
                .replace(
                    r#""codec_name": "h264","#,
                    &format!(r#""codec_name": "mpeg2video", "sample_aspect_ratio": "{sar}","#),
                );
            let media = parse_probe_report(
                Path::new("dvd.mpg"),
                &report(&video, r#"{"duration": "3.5"}"#),
            )
            .expect("parses");
            (media.video.width, media.video.height)
        };
        assert_eq!(sized("64:45"), (1024, 576), "16:9 PAL");
        assert_eq!(sized("16:15"), (768, 576), "4:3 PAL");
        assert_eq!(sized("1:1"), (720, 576));
        assert_eq!(sized("0:1"), (720, 576), "unknown: square");
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
    fn the_audio_track_is_chosen_by_language_or_else_the_first() {
        let english = r#"{"index": 1, "codec_type": "audio", "tags": {"language": "eng"}}"#;
        let french = r#"{"index": 2, "codec_type": "audio", "tags": {"language": "fre"}}"#;
        let media = parse_probe_report(
            Path::new("film.mkv"),
            &report(
                &format!("{VIDEO}, {english}, {french}"),
                r#"{"duration": "2"}"#,
            ),
        )
        .expect("parses");
        assert_eq!(media.audio_track(None).map(|a| a.index), Some(1));
        assert_eq!(media.audio_track(Some("fre")).map(|a| a.index), Some(2));
        assert_eq!(media.audio_track(Some("deu")).map(|a| a.index), Some(1));
    }

    #[test]
    fn rotation_and_interlacing_are_read() {
        let turned = VIDEO.replace(
            r#""disposition""#,
            r#""field_order": "tt", "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}], "disposition""#,
        );
        let media = parse_probe_report(
            Path::new("phone.mp4"),
            &report(&turned, r#"{"duration": "2"}"#),
        )
        .expect("parses");
        assert_eq!((media.video.width, media.video.height), (360, 640));
        assert!(media.video.interlaced);
        let tagged = VIDEO.replace(
            r#""disposition""#,
            r#""tags": {"rotate": "180"}, "disposition""#,
        );
        let media = parse_probe_report(
            Path::new("upside.mp4"),
            &report(&tagged, r#"{"duration": "2"}"#),
        )
        .expect("parses");
        assert_eq!((media.video.width, media.video.height), (640, 360));
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
