//! Timing: the rules verify cannot see in a segment's first bytes, read
//! by ffprobe over each whole media playlist, demuxing only (no picture is
//! decoded, so it costs one read of the output):
//!
//! - keyframes no further apart than the plan's `keyframe_seconds` (Apple's
//!   HLS Authoring Specification: 2 s), in every rung, so seeking and rung
//!   switches never wait long for a picture;
//! - square pixels in every rung (a rung rounded to even sides is off the
//!   source's shape by less than a pixel, never by a sample aspect ratio);
//! - video and audio start together: the video's first presentation time
//!   is within one frame of where the audio's sound starts. The AAC
//!   encoder opens the audio with one frame of priming (1024 samples,
//!   23 ms at 44.1 kHz) that neither MPEG-TS nor HLS's fMP4 tells a
//!   player to drop, so the audio's first timestamp leads the video's by
//!   exactly that, and lips stay in sync.
//!
//! It runs on the clear segments, before encryption, which changes no
//! timestamp.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;

use crate::pipeline::JobError;
use crate::pipeline::encode::EncodePlan;
use crate::pipeline::hls::layout::AUDIO_RENDITION;
use crate::pipeline::hls::playlist::fail;
use crate::pipeline::hls::rules::invalid;
use crate::pipeline::plan::ladder::Rung;

/// Samples of priming the AAC encoder puts before the sound: one frame.
const AAC_PRIMING_SAMPLES: f64 = 1024.0;
/// Slack for the timestamps' 90 kHz rounding.
const ROUNDING_SECONDS: f64 = 1e-3;

/// How to run ffprobe over a staged output.
pub struct Prober<'a> {
    pub ffprobe: &'a Path,
    /// For one playlist: the `probe_timeout_seconds` setting plus a
    /// second per [`READ_SPEED`] seconds of source.
    pub timeout: Duration,
}

/// How many seconds of a rung the slowest worker is taken to read in a
/// second, demuxing only: a Pi 3 on its 100 Mb/s link reads an 8 Mb/s rung
/// at about 10x; 4 leaves room for a busy NAS.
pub const READ_SPEED: f64 = 4.0;

impl Prober<'_> {
    /// The timeout for reading `source_seconds` of output, after `base`.
    pub fn timeout_for(base: Duration, source_seconds: f64) -> Duration {
        base + Duration::from_secs_f64((source_seconds / READ_SPEED).max(0.0))
    }
}

/// Checks every rung's keyframe interval and pixel shape, and that video
/// and audio start together.
pub async fn check_timing(
    prober: Prober<'_>,
    dir: &Path,
    plan: &EncodePlan,
) -> Result<(), JobError> {
    let layout = plan.layout;
    let prober = &prober;
    let audio = async {
        match plan.audio {
            Some(_) => prober
                .audio_start(&dir.join(layout.media_playlist(AUDIO_RENDITION)))
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    // A few reads at once: each is mostly ffprobe starting up and waiting
    // on the disk, and one after another they cost a short job 7 %.
    let videos = async {
        let mut videos = Vec::with_capacity(plan.rungs.len());
        for rungs in plan.rungs.chunks(PARALLEL_READS) {
            let reads = rungs.iter().map(|rung| read_rung(prober, dir, plan, rung));
            videos.extend(futures_util::future::join_all(reads).await);
        }
        videos
    };
    let (audio_start, videos) = tokio::join!(audio, videos);
    let audio_start = audio_start?;
    for (uri, rung, video) in videos {
        let video = video?;
        let frame = 1.0 / rung.frame_rate.as_f64();
        check_square_pixels(&uri, &video)?;
        check_keyframe_interval(&uri, &video, f64::from(plan.keyframe_seconds), frame)?;
        if let Some(audio) = audio_start {
            check_starts_together(&uri, &video, audio, frame)?;
        }
    }
    Ok(())
}

/// How many playlists are read at once.
const PARALLEL_READS: usize = 4;

/// Reads one rung's playlist: its URI, the rung, and what ffprobe read.
async fn read_rung<'p>(
    prober: &Prober<'_>,
    dir: &Path,
    plan: &EncodePlan,
    rung: &'p Rung,
) -> (String, &'p Rung, Result<Video, JobError>) {
    let uri = plan.layout.media_playlist(&rung.name());
    let video = prober.video(&dir.join(&uri)).await;
    (uri, rung, video)
}

/// What ffprobe reads of a rung's video.
#[derive(Debug, Default)]
struct Video {
    /// `num:den`; absent or `0:1` when the stream does not say (square).
    sample_aspect: Option<String>,
    /// Every picture's presentation time, and whether it is a keyframe, in
    /// decoding order.
    packets: Vec<(f64, bool)>,
}

impl Video {
    fn first_presentation(&self) -> Option<f64> {
        self.packets.iter().map(|(pts, _)| *pts).reduce(f64::min)
    }

    /// Keyframe times in presentation order, then the stream's end (its
    /// last picture's time plus a frame) as a bound on the last interval.
    fn keyframes_and_end(&self, frame: f64) -> Vec<f64> {
        let mut keyframes: Vec<f64> = self
            .packets
            .iter()
            .filter(|(_, key)| *key)
            .map(|(pts, _)| *pts)
            .collect();
        keyframes.sort_by(f64::total_cmp);
        if let Some(last) = self.packets.iter().map(|(pts, _)| *pts).reduce(f64::max) {
            keyframes.push(last + frame);
        }
        keyframes
    }
}

/// Where an audio rendition's sound starts: its first timestamp plus the
/// encoder's priming.
#[derive(Clone, Copy, Debug)]
struct AudioStart {
    first_timestamp: f64,
    priming: f64,
}

impl AudioStart {
    fn sound(self) -> f64 {
        self.first_timestamp + self.priming
    }
}

fn check_square_pixels(uri: &str, video: &Video) -> Result<(), JobError> {
    match video.sample_aspect.as_deref() {
        None | Some("1:1" | "0:1") => Ok(()),
        Some(other) => Err(invalid(
            uri,
            &format!("pixels are not square (sample aspect {other})"),
        )),
    }
}

fn check_keyframe_interval(
    uri: &str,
    video: &Video,
    longest: f64,
    frame: f64,
) -> Result<(), JobError> {
    let times = video.keyframes_and_end(frame);
    if times.len() < 2 {
        return Err(invalid(uri, "holds no keyframe"));
    }
    let widest = times
        .windows(2)
        .map(|pair| (pair[0], pair[1] - pair[0]))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match widest {
        Some((at, gap)) if gap > longest + frame + ROUNDING_SECONDS => {
            let first = times[0];
            Err(invalid(
                uri,
                &format!(
                    "no keyframe for {gap:.3} s from {:.3} s, more than the {longest} s allowed",
                    at - first
                ),
            ))
        }
        _ => Ok(()),
    }
}

fn check_starts_together(
    uri: &str,
    video: &Video,
    audio: AudioStart,
    frame: f64,
) -> Result<(), JobError> {
    let Some(picture) = video.first_presentation() else {
        return Err(invalid(uri, "holds no picture"));
    };
    let apart = picture - audio.sound();
    if apart.abs() > frame + ROUNDING_SECONDS {
        return Err(invalid(
            uri,
            &format!(
                "its first picture is {:.0} ms {} the audio's sound (first audio timestamp {:.3} s plus {:.0} ms of AAC priming): more than a frame",
                apart.abs() * 1000.0,
                if apart > 0.0 { "after" } else { "before" },
                audio.first_timestamp,
                audio.priming * 1000.0
            ),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct Report {
    #[serde(default)]
    streams: Vec<ReportStream>,
    #[serde(default)]
    packets: Vec<ReportPacket>,
}

#[derive(Deserialize)]
struct ReportStream {
    sample_aspect_ratio: Option<String>,
    sample_rate: Option<String>,
}

#[derive(Deserialize)]
struct ReportPacket {
    pts_time: Option<String>,
    #[serde(default)]
    flags: String,
}

impl Prober<'_> {
    async fn video(&self, playlist: &Path) -> Result<Video, JobError> {
        let report = self
            .run(
                playlist,
                &[
                    "-select_streams",
                    "v:0",
                    "-show_entries",
                    "stream=sample_aspect_ratio:packet=pts_time,flags",
                ],
            )
            .await?;
        let packets = report
            .packets
            .iter()
            .filter_map(|packet| {
                let pts = packet.pts_time.as_deref()?.parse().ok()?;
                Some((pts, packet.flags.starts_with('K')))
            })
            .collect();
        Ok(Video {
            sample_aspect: report
                .streams
                .into_iter()
                .next()
                .and_then(|s| s.sample_aspect_ratio),
            packets,
        })
    }

    async fn audio_start(&self, playlist: &Path) -> Result<AudioStart, JobError> {
        let report = self
            .run(
                playlist,
                &[
                    "-select_streams",
                    "a:0",
                    "-read_intervals",
                    "%+#1",
                    "-show_entries",
                    "stream=sample_rate:packet=pts_time",
                ],
            )
            .await?;
        let first_timestamp = report
            .packets
            .first()
            .and_then(|p| p.pts_time.as_deref()?.parse().ok())
            .ok_or_else(|| fail(format!("{}: no audio packet", playlist.display())))?;
        let rate: f64 = report
            .streams
            .first()
            .and_then(|s| s.sample_rate.as_deref()?.parse().ok())
            .filter(|rate: &f64| *rate > 0.0)
            .ok_or_else(|| fail(format!("{}: no audio sample rate", playlist.display())))?;
        Ok(AudioStart {
            first_timestamp,
            priming: AAC_PRIMING_SAMPLES / rate,
        })
    }

    async fn run(&self, playlist: &Path, selection: &[&str]) -> Result<Report, JobError> {
        // Opened by its bare name from its own directory: ffprobe takes a
        // path for a URL, and an output named `talk #1? q&a.hls` would
        // lose everything after `#` and `?` when the playlist's segments
        // are resolved against it.
        let (dir, name) = match (playlist.parent(), playlist.file_name()) {
            (Some(dir), Some(name)) => (dir, Path::new(name)),
            _ => (Path::new("."), playlist),
        };
        // A relative program path (not a bare name found on PATH) must not
        // follow the change of directory.
        let program = if self.ffprobe.is_relative() && self.ffprobe.components().count() > 1 {
            std::env::current_dir()
                .map_or_else(|_| self.ffprobe.to_owned(), |cwd| cwd.join(self.ffprobe))
        } else {
            self.ffprobe.to_owned()
        };
        let run = Command::new(&program)
            // Only the output's own files: its playlists and segments.
            .args(["-v", "error", "-protocol_whitelist", "file"])
            .args(["-print_format", "json"])
            .args(selection)
            .arg(name)
            .current_dir(dir)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let tool = |source| JobError::ToolUnavailable {
            program: PathBuf::from(self.ffprobe),
            source,
        };
        let output = tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| {
                fail(format!(
                    "ffprobe did not read {} within {} s",
                    playlist.display(),
                    self.timeout.as_secs()
                ))
            })?
            .map_err(tool)?;
        if !output.status.success() {
            return Err(fail(format!(
                "ffprobe cannot read {}: {}",
                playlist.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        serde_json::from_slice(&output.stdout).map_err(|error| {
            fail(format!(
                "unreadable ffprobe report on {}: {error}",
                playlist.display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: f64 = 0.04;

    /// Pictures every frame from `start` for `seconds`, keyframes at
    /// `keyframes` (seconds from `start`).
    fn video(start: f64, seconds: f64, keyframes: &[f64]) -> Video {
        let count = (seconds / FRAME).round() as usize;
        Video {
            sample_aspect: Some("1:1".into()),
            packets: (0..count)
                .map(|n| {
                    let at = n as f64 * FRAME;
                    let key = keyframes.iter().any(|k| (k - at).abs() < 1e-6);
                    (start + at, key)
                })
                .collect(),
        }
    }

    #[test]
    fn keyframes_further_apart_than_allowed_are_refused_naming_where() {
        let every_two = video(1.4, 6.0, &[0.0, 2.0, 4.0]);
        check_keyframe_interval("a", &every_two, 2.0, FRAME).expect("every 2 s");
        let one_gap = video(1.4, 6.0, &[0.0, 2.0, 5.0]);
        let error = check_keyframe_interval("a", &one_gap, 2.0, FRAME)
            .expect_err("3 s without a keyframe")
            .to_string();
        assert!(error.contains("3.000 s from 2.000 s"), "{error}");
        // The last interval runs to the stream's end.
        let long_tail = video(1.4, 6.0, &[0.0, 2.0]);
        let error = check_keyframe_interval("a", &long_tail, 2.0, FRAME).expect_err("4 s tail");
        assert!(error.to_string().contains("from 2.000 s"), "{error}");
        let none = video(1.4, 6.0, &[]);
        assert!(check_keyframe_interval("a", &none, 2.0, FRAME).is_err());
    }

    #[test]
    fn only_square_pixels_pass() {
        let mut rung = video(0.0, 1.0, &[0.0]);
        check_square_pixels("a", &rung).expect("1:1");
        rung.sample_aspect = None;
        check_square_pixels("a", &rung).expect("unsaid is square");
        rung.sample_aspect = Some("3559:3548".into());
        let error = check_square_pixels("a", &rung).expect_err("not square");
        assert!(error.to_string().contains("3559:3548"), "{error}");
    }

    #[test]
    fn video_must_start_within_a_frame_of_the_audios_sound() {
        // ffmpeg's own output: audio's first timestamp leads by the
        // priming, 1024 samples at 44.1 kHz.
        let audio = AudioStart {
            first_timestamp: 1.456_778,
            priming: 1024.0 / 44_100.0,
        };
        let sixty = 1.0 / 60.0;
        check_starts_together("a", &video(1.48, 1.0, &[0.0]), audio, sixty).expect("in sync");
        // Two frames late (the offset a B-frame delay would make).
        let error = check_starts_together("a", &video(1.56, 1.0, &[0.0]), audio, FRAME)
            .expect_err("80 ms late")
            .to_string();
        assert!(error.contains("80 ms after"), "{error}");
        // The raw timestamps 23 ms apart would break a 60 fps frame: the
        // priming is what makes them agree.
        let raw = AudioStart {
            priming: 0.0,
            ..audio
        };
        assert!(check_starts_together("a", &video(1.48, 1.0, &[0.0]), raw, sixty).is_err());
    }
}
