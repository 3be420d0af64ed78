//! Video and audio start together: a variant's first picture is shown
//! within one frame of where the audio's sound starts. ffprobe's stream
//! start times are read here, the AAC priming (1024 samples, which MPEG-TS
//! and HLS's fMP4 keep in front of the sound) is added to the audio's.

use serde_json::Value;

/// Samples of AAC encoder priming: one frame.
const PRIMING_SAMPLES: f64 = 1024.0;

/// A variant's first picture, as ffprobe's stream report says.
pub struct VideoStart {
    pub uri: String,
    pub start: Option<f64>,
    pub frame: f64,
}

/// The video stream's `start_time` in ffprobe's streams of a playlist.
pub fn video_start(streams: &[Value]) -> Option<f64> {
    let video = streams.iter().find(|s| s["codec_type"] == "video")?;
    video["start_time"].as_str()?.parse().ok()
}

/// Checks each variant against the audio rendition's streams.
pub fn check_starts(
    audio_uri: &str,
    audio: &[Value],
    videos: &[VideoStart],
    broken: &mut Vec<String>,
) {
    let Some(stream) = audio.iter().find(|s| s["codec_type"] == "audio") else {
        broken.push(format!("{audio_uri}: ffprobe finds no audio stream"));
        return;
    };
    let first: Option<f64> = stream["start_time"].as_str().and_then(|t| t.parse().ok());
    let rate: Option<f64> = stream["sample_rate"].as_str().and_then(|r| r.parse().ok());
    let (Some(first), Some(rate)) = (first, rate) else {
        broken.push(format!("{audio_uri}: no start time or sample rate"));
        return;
    };
    let sound = first + PRIMING_SAMPLES / rate;
    for video in videos {
        let Some(start) = video.start else {
            broken.push(format!("{}: no start time", video.uri));
            continue;
        };
        if (start - sound).abs() > video.frame + 1e-3 {
            broken.push(format!(
                "{}: first picture at {start:.3} s, the audio's sound at {sound:.3} s: more than a frame apart",
                video.uri
            ));
        }
    }
}
