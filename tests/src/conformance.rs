//! An HLS conformance checker for published outputs, independent of the
//! worker's own verify stage: it reads the playlists with m3u8-rs and the
//! media with ffprobe (which decrypts an encrypted output with its key), and
//! applies the rules of Apple's HLS Authoring Specification that hlsmux
//! promises for VOD H.264/AAC. It returns every rule broken, so a failing
//! test shows them all at once.

use std::path::Path;

use m3u8_rs::{MasterPlaylist, MediaPlaylist, VariantStream};
use serde_json::Value;
use tokio::process::Command;

use crate::media::Clip;

mod starts;
use starts::{VideoStart, check_starts, video_start};

/// What the checker knows of the source.
#[derive(Clone, Copy, Debug)]
pub struct Expected {
    pub seconds: f64,
    pub audio: bool,
    /// The source's short side: no rung may be larger.
    pub max_lines: u32,
    pub portrait: bool,
    /// The source's frame rate (its average, for a variable-rate source).
    pub fps: f64,
    /// The longest keyframe interval allowed (the worker's
    /// `keyframe_seconds`; Apple's authoring specification says 2 s).
    pub keyframe_seconds: f64,
    /// Width over height of the picture as shown (anamorphic pixels and
    /// rotation applied): every rung must have this shape, in square
    /// pixels.
    pub display_aspect: f64,
}

impl From<Clip> for Expected {
    /// What a clip made by [`Clip::write`] must come out as.
    fn from(clip: Clip) -> Self {
        let quarter_turned = clip.rotation % 180 == 90;
        let (num, den) = clip.sample_aspect.unwrap_or((1, 1));
        let shown_width = f64::from(clip.width) * f64::from(num) / f64::from(den);
        let aspect = shown_width / f64::from(clip.height);
        Expected {
            seconds: f64::from(clip.seconds),
            audio: clip.audio,
            max_lines: clip.width.min(clip.height),
            portrait: (clip.height > clip.width) != quarter_turned,
            fps: f64::from(clip.fps),
            keyframe_seconds: 2.0,
            display_aspect: if quarter_turned { 1.0 / aspect } else { aspect },
        }
    }
}

/// Panics, listing every rule broken, unless the output whose master
/// playlist is `master_path` conforms.
pub async fn assert_conforms(master_path: &Path, expected: Expected) {
    let broken = broken_rules(master_path, expected).await;
    assert!(
        broken.is_empty(),
        "{} breaks rules: {broken:#?}",
        master_path.display()
    );
}

/// Rules the output whose master playlist is `master_path` breaks; empty
/// when it conforms.
pub async fn broken_rules(master_path: &Path, expected: Expected) -> Vec<String> {
    let mut broken = Vec::new();
    let dir = master_path
        .parent()
        .expect("the master playlist is in a directory");
    let master = match read(master_path)
        .and_then(|bytes| m3u8_rs::parse_master_playlist_res(&bytes).map_err(|e| format!("{e:?}")))
    {
        Ok(master) => master,
        Err(error) => return vec![format!("{} does not parse: {error}", master_path.display())],
    };
    check_master(&master, expected, &mut broken);
    let variants: Vec<&VariantStream> = master.variants.iter().filter(|v| !v.is_i_frame).collect();
    let audio = master.alternatives.first().and_then(|a| a.uri.clone());
    // Every media playlist's TARGETDURATION: Apple's authoring
    // specification wants one for the whole presentation.
    let mut targets: Vec<(String, u64)> = Vec::new();
    let audio_rates = match &audio {
        Some(uri) => match Measured::read(dir, uri, &mut broken) {
            Some(measured) => {
                targets.push((uri.clone(), measured.media.target_duration));
                check_duration(uri, &measured, expected.seconds, &mut broken);
                (measured.peak(), measured.average())
            }
            None => (0, 0),
        },
        None => (0, 0),
    };
    let mut ends: Vec<(String, Vec<f64>, f64)> = Vec::new();
    let mut video_starts: Vec<VideoStart> = Vec::new();
    for variant in &variants {
        let Some(measured) = Measured::read(dir, &variant.uri, &mut broken) else {
            continue;
        };
        targets.push((variant.uri.clone(), measured.media.target_duration));
        check_duration(&variant.uri, &measured, expected.seconds, &mut broken);
        let (peak, average) = (
            measured.peak() + audio_rates.0,
            measured.average() + audio_rates.1,
        );
        within_ten_percent(
            &variant.uri,
            "BANDWIDTH",
            variant.bandwidth,
            peak,
            &mut broken,
        );
        within_ten_percent(
            &variant.uri,
            "AVERAGE-BANDWIDTH",
            variant.average_bandwidth.unwrap_or(0),
            average,
            &mut broken,
        );
        let playlist = dir.join(&variant.uri);
        let streams = probe_streams(&playlist).await;
        check_codecs(variant, &streams, &mut broken);
        check_shape(variant, &streams, expected.display_aspect, &mut broken);
        let frame = 1.0 / variant.frame_rate.unwrap_or(25.0);
        video_starts.push(VideoStart {
            uri: variant.uri.clone(),
            start: video_start(&streams),
            frame,
        });
        let keyframes = Keyframes {
            frame,
            longest_interval: expected.keyframe_seconds,
        };
        check_keyframes(&variant.uri, &playlist, &measured, keyframes, &mut broken).await;
        check_frame_rate(variant, &playlist, expected.fps, &mut broken).await;
        ends.push((variant.uri.clone(), measured.ends(), frame));
        check_i_frames(dir, &master, variant, &measured, &mut broken).await;
    }
    for i_frames in master.variants.iter().filter(|v| v.is_i_frame) {
        if let Some(media) = read_media_playlist(&dir.join(&i_frames.uri)) {
            targets.push((i_frames.uri.clone(), media.target_duration));
        }
    }
    if let Some(uri) = &audio {
        let streams = probe_streams(&dir.join(uri)).await;
        check_starts(uri, &streams, &video_starts, &mut broken);
    }
    // The audio is cut on the variants' grid: as many segments, no
    // trailing sliver of audio after the last video segment.
    if let (Some(uri), Some(first)) = (&audio, variants.first())
        && let (Some(audio_playlist), Some(video_playlist)) = (
            read_media_playlist(&dir.join(uri)),
            read_media_playlist(&dir.join(&first.uri)),
        )
        && audio_playlist.segments.len() != video_playlist.segments.len()
    {
        let last = audio_playlist.segments.last().map_or(0.0, |s| s.duration);
        broken.push(format!(
            "{uri}: {} segments, {} has {} (the last audio one lasts {last:.3} s)",
            audio_playlist.segments.len(),
            first.uri,
            video_playlist.segments.len()
        ));
    }
    if let Some((first_uri, first)) = targets.first()
        && let Some((uri, other)) = targets.iter().find(|(_, target)| target != first)
    {
        broken.push(format!(
            "{uri}: TARGETDURATION {other}, but {first_uri} has {first}: one for every media playlist"
        ));
    }
    if let Some((first_uri, first, first_frame)) = ends.first() {
        for (uri, other, frame) in &ends[1..] {
            let tolerance = first_frame.max(*frame) + 1e-3;
            if other.len() != first.len()
                || other
                    .iter()
                    .zip(first)
                    .any(|(a, b)| (a - b).abs() > tolerance)
            {
                broken.push(format!(
                    "{uri}: segments end at other times than {first_uri}'s"
                ));
            }
        }
    }
    broken
}

fn check_master(master: &MasterPlaylist, expected: Expected, broken: &mut Vec<String>) {
    if !master.independent_segments {
        broken.push("master: no #EXT-X-INDEPENDENT-SEGMENTS".into());
    }
    let variants: Vec<&VariantStream> = master.variants.iter().filter(|v| !v.is_i_frame).collect();
    if variants.is_empty() {
        broken.push("master: no variants".into());
    }
    if variants.windows(2).any(|w| w[0].bandwidth > w[1].bandwidth) {
        broken.push("master: variants are not ordered by BANDWIDTH".into());
    }
    let groups: Vec<&str> = master
        .alternatives
        .iter()
        .filter(|a| a.media_type == m3u8_rs::AlternativeMediaType::Audio)
        .map(|a| a.group_id.as_str())
        .collect();
    for rendition in master
        .alternatives
        .iter()
        .filter(|a| a.media_type == m3u8_rs::AlternativeMediaType::Audio)
    {
        // Apple's authoring specification: LANGUAGE on every audio rendition.
        if rendition.language.as_deref().is_none_or(str::is_empty) {
            broken.push(format!(
                "master: audio rendition {:?} has no LANGUAGE",
                rendition.name
            ));
        }
    }
    let has_audio_group = !groups.is_empty();
    if expected.audio != has_audio_group {
        broken.push(format!(
            "master: audio renditions {groups:?} for a source with audio: {}",
            expected.audio
        ));
    }
    for variant in &variants {
        let name = &variant.uri;
        match variant.resolution {
            Some(r) => {
                if r.width % 2 == 1 || r.height % 2 == 1 {
                    broken.push(format!("{name}: odd RESOLUTION {}x{}", r.width, r.height));
                }
                if r.width.min(r.height) > u64::from(expected.max_lines) {
                    broken.push(format!(
                        "{name}: {}x{} upscales the source",
                        r.width, r.height
                    ));
                }
                if (r.height > r.width) != expected.portrait {
                    broken.push(format!("{name}: {}x{} is turned", r.width, r.height));
                }
            }
            None => broken.push(format!("{name}: no RESOLUTION")),
        }
        if variant.frame_rate.is_none() {
            broken.push(format!("{name}: no FRAME-RATE"));
        }
        if variant.average_bandwidth.is_none() {
            broken.push(format!("{name}: no AVERAGE-BANDWIDTH"));
        }
        match (&variant.audio, expected.audio) {
            (Some(group), true) if groups.contains(&group.as_str()) => {}
            (None, false) => {}
            (group, _) => broken.push(format!("{name}: AUDIO group {group:?}")),
        }
    }
}

/// A media playlist, when it reads.
fn read_media_playlist(path: &Path) -> Option<MediaPlaylist> {
    let bytes = read(path).ok()?;
    m3u8_rs::parse_media_playlist_res(&bytes).ok()
}

/// A media playlist with its segment sizes.
struct Measured {
    media: MediaPlaylist,
    sizes: Vec<u64>,
}

impl Measured {
    fn read(dir: &Path, uri: &str, broken: &mut Vec<String>) -> Option<Measured> {
        let path = dir.join(uri);
        let media = match read(&path).and_then(|bytes| {
            m3u8_rs::parse_media_playlist_res(&bytes).map_err(|e| format!("{e:?}"))
        }) {
            Ok(media) => media,
            Err(error) => {
                broken.push(format!("{uri}: does not parse: {error}"));
                return None;
            }
        };
        if media.playlist_type != Some(m3u8_rs::MediaPlaylistType::Vod) {
            broken.push(format!("{uri}: not #EXT-X-PLAYLIST-TYPE:VOD"));
        }
        if !media.end_list {
            broken.push(format!("{uri}: no #EXT-X-ENDLIST"));
        }
        let longest = media
            .segments
            .iter()
            .map(|s| f64::from(s.duration))
            .fold(0.0, f64::max);
        // RFC 8216 4.3.3.1: each EXTINF, rounded to the nearest integer,
        // is no more than the target; and a target no larger than needed.
        let rounded = (longest + 0.5).floor() as u64;
        if rounded > media.target_duration || media.target_duration > rounded.max(1) + 1 {
            broken.push(format!(
                "{uri}: TARGETDURATION {} does not fit the longest segment ({longest}) rounded",
                media.target_duration
            ));
        }
        // No sliver: every segment but the last lasts at least a tenth of
        // the target (the last ends with the source, checked by duration).
        let tenth = media.target_duration as f64 / 10.0;
        let before_last = media.segments.len().saturating_sub(1);
        if let Some(sliver) = media.segments[..before_last]
            .iter()
            .find(|s| f64::from(s.duration) < tenth)
        {
            broken.push(format!(
                "{uri}: segment {} lasts {} s, under a tenth of the target",
                sliver.uri, sliver.duration
            ));
        }
        let segment_dir = path.parent().unwrap_or(dir);
        let sizes = media
            .segments
            .iter()
            .map(|s| {
                std::fs::metadata(segment_dir.join(&s.uri))
                    .map(|m| m.len())
                    .unwrap_or(0)
            })
            .collect();
        Some(Measured { media, sizes })
    }

    fn seconds(&self) -> f64 {
        self.media
            .segments
            .iter()
            .map(|s| f64::from(s.duration))
            .sum()
    }

    fn average(&self) -> u64 {
        (self.sizes.iter().sum::<u64>() as f64 * 8.0 / self.seconds()) as u64
    }

    /// The highest rate over runs of consecutive segments lasting 0.5 to
    /// 1.5 target durations (the authoring specification's peak).
    fn peak(&self) -> u64 {
        let target = self.media.target_duration as f64;
        let mut peak = 0;
        for start in 0..self.sizes.len() {
            let (mut seconds, mut bytes) = (0.0, 0);
            for (segment, size) in self.media.segments[start..]
                .iter()
                .zip(&self.sizes[start..])
            {
                seconds += f64::from(segment.duration);
                bytes += size;
                if seconds > 1.5 * target + 1e-6 {
                    break;
                }
                if seconds >= 0.5 * target - 1e-6 {
                    peak = peak.max((bytes as f64 * 8.0 / seconds) as u64);
                }
            }
        }
        peak.max(self.average())
    }

    fn ends(&self) -> Vec<f64> {
        let mut end = 0.0;
        self.media
            .segments
            .iter()
            .map(|s| {
                end += f64::from(s.duration);
                end
            })
            .collect()
    }
}

fn check_duration(uri: &str, measured: &Measured, seconds: f64, broken: &mut Vec<String>) {
    if (measured.seconds() - seconds).abs() > 0.5 {
        broken.push(format!(
            "{uri}: lasts {:.2} s, the source {seconds:.2} s",
            measured.seconds()
        ));
    }
    if measured.sizes.contains(&0) {
        broken.push(format!("{uri}: a segment is missing or empty"));
    }
}

fn within_ten_percent(
    uri: &str,
    attribute: &str,
    declared: u64,
    measured: u64,
    broken: &mut Vec<String>,
) {
    if measured == 0 || (declared as f64 - measured as f64).abs() > 0.1 * measured as f64 {
        broken.push(format!(
            "{uri}: {attribute} {declared}, measured {measured}"
        ));
    }
}

/// ffprobe's streams of a media playlist (decrypted when encrypted).
async fn probe_streams(playlist: &Path) -> Vec<Value> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-allowed_extensions", "ALL"])
        .args(["-show_streams", "-of", "json"])
        .arg(playlist)
        .output()
        .await
        .expect("ffprobe runs");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    report["streams"].as_array().cloned().unwrap_or_default()
}

/// CODECS names the H.264 profile and level ffprobe reads from the stream,
/// and AAC-LC exactly when there is audio.
fn check_codecs(variant: &VariantStream, streams: &[Value], broken: &mut Vec<String>) {
    let name = &variant.uri;
    let codecs = variant.codecs.clone().unwrap_or_default();
    let Some(video) = streams.iter().find(|s| s["codec_type"] == "video") else {
        broken.push(format!("{name}: ffprobe finds no video"));
        return;
    };
    let profile_idc = match video["profile"].as_str().unwrap_or_default() {
        "Baseline" | "Constrained Baseline" => "42",
        "Main" => "4d",
        "High" => "64",
        other => {
            broken.push(format!("{name}: unexpected H.264 profile {other}"));
            return;
        }
    };
    let level = video["level"].as_u64().unwrap_or(0);
    let avc = codecs.split(',').find(|c| c.starts_with("avc1."));
    let matches = avc.is_some_and(|avc| {
        avc.len() == 11 && &avc[5..7] == profile_idc && avc[9..11] == format!("{level:02x}")
    });
    if !matches {
        broken.push(format!(
            "{name}: CODECS {codecs:?}, the stream is {} level {level}",
            video["profile"]
        ));
    }
    if codecs.contains("mp4a") && !codecs.split(',').any(|c| c == "mp4a.40.2") {
        broken.push(format!(
            "{name}: CODECS {codecs:?} names audio other than AAC-LC"
        ));
    }
}

/// Square pixels, and the source's shape as shown: a rung's size rounded to
/// even sides is off by less than a pixel, never by a sample aspect ratio
/// (3559:3548 for a 641x361 source, 64:45 for an anamorphic one).
fn check_shape(variant: &VariantStream, streams: &[Value], aspect: f64, broken: &mut Vec<String>) {
    let name = &variant.uri;
    let Some(video) = streams.iter().find(|s| s["codec_type"] == "video") else {
        return;
    };
    let sar = video["sample_aspect_ratio"].as_str().unwrap_or("1:1");
    if sar != "1:1" {
        broken.push(format!(
            "{name}: pixels are not square (sample aspect {sar})"
        ));
    }
    let (Some(width), Some(height)) = (video["width"].as_f64(), video["height"].as_f64()) else {
        return;
    };
    // Within a pixel of the shape, on the shorter side.
    let tolerance = 1.0 / width.min(height) * aspect.max(1.0 / aspect) + 1e-3;
    if ((width / height) - aspect).abs() / aspect > tolerance {
        broken.push(format!(
            "{name}: {width}x{height} is not the source's shape ({aspect:.4}:1)"
        ));
    }
}

/// The times ffprobe lists for the first video stream of a media playlist
/// (decrypted when encrypted), as `entries` selects them.
async fn video_times(playlist: &Path, entries: &[&str]) -> Vec<f64> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-allowed_extensions", "ALL"])
        .args(["-select_streams", "v:0"])
        .args(entries)
        .args(["-of", "csv=p=0"])
        .arg(playlist)
        .output()
        .await
        .expect("ffprobe runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// A variant's frame duration, and the longest keyframe interval allowed.
#[derive(Clone, Copy)]
struct Keyframes {
    frame: f64,
    longest_interval: f64,
}

/// Every segment starts on a keyframe: ffprobe's keyframes fall on every
/// segment boundary; and no two keyframes are further apart than allowed
/// (seeking and switching rungs wait for the next one).
async fn check_keyframes(
    uri: &str,
    playlist: &Path,
    measured: &Measured,
    keyframes: Keyframes,
    broken: &mut Vec<String>,
) {
    let frame = keyframes.frame;
    let times = video_times(
        playlist,
        &["-skip_frame", "nokey", "-show_entries", "frame=pts_time"],
    )
    .await;
    let Some(first) = times.first().copied() else {
        broken.push(format!("{uri}: ffprobe finds no keyframes"));
        return;
    };
    let starts = std::iter::once(0.0).chain(measured.ends().into_iter().rev().skip(1).rev());
    for start in starts {
        if !times
            .iter()
            .any(|t| (t - first - start).abs() <= frame + 1e-3)
        {
            broken.push(format!(
                "{uri}: no keyframe where the segment at {start:.3} s starts"
            ));
        }
    }
    let longest = times
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .fold(0.0, f64::max);
    if longest > keyframes.longest_interval + frame + 1e-3 {
        broken.push(format!(
            "{uri}: keyframes {longest:.3} s apart, more than {} s",
            keyframes.longest_interval
        ));
    }
}

/// FRAME-RATE is the rate the variant really runs at, constant (every
/// frame lasts the same), never above the source's, and at most 30 for
/// rungs of 432 lines or fewer.
async fn check_frame_rate(
    variant: &VariantStream,
    playlist: &Path,
    source_fps: f64,
    broken: &mut Vec<String>,
) {
    let name = &variant.uri;
    let Some(declared) = variant.frame_rate else {
        return;
    };
    let lines = variant.resolution.map_or(0, |r| r.width.min(r.height));
    if lines <= 432 && declared > 30.001 {
        broken.push(format!(
            "{name}: {lines} lines at {declared} frames per second"
        ));
    }
    if declared > source_fps + 0.01 {
        broken.push(format!(
            "{name}: FRAME-RATE {declared} above the source's {source_fps}"
        ));
    }
    let mut times = video_times(playlist, &["-show_entries", "packet=pts_time"]).await;
    times.sort_by(f64::total_cmp);
    let expected = 1.0 / declared;
    let uneven = times
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .find(|step| (step - expected).abs() > 0.002);
    if times.len() < 2 {
        broken.push(format!("{name}: ffprobe finds no frames"));
    } else if let Some(step) = uneven {
        broken.push(format!(
            "{name}: a frame lasts {step:.4} s, not 1/{declared}: the rate is not constant"
        ));
    }
}

/// Each video variant has an I-frame stream over its own segments: one
/// entry per segment, each a byte range inside it, and ffmpeg decodes one
/// picture from each.
async fn check_i_frames(
    dir: &Path,
    master: &MasterPlaylist,
    variant: &VariantStream,
    measured: &Measured,
    broken: &mut Vec<String>,
) {
    let segment_paths = |uri: &str, media: &MediaPlaylist| -> Vec<std::path::PathBuf> {
        let base = dir.join(uri);
        let base = base.parent().unwrap_or(dir).to_owned();
        media.segments.iter().map(|s| base.join(&s.uri)).collect()
    };
    let own_segments = segment_paths(&variant.uri, &measured.media);
    let found = master
        .variants
        .iter()
        .filter(|v| v.is_i_frame)
        .filter_map(|v| {
            let bytes = read(&dir.join(&v.uri)).ok()?;
            let media = m3u8_rs::parse_media_playlist_res(&bytes).ok()?;
            (segment_paths(&v.uri, &media) == own_segments).then_some((v, media))
        })
        .next();
    let Some((i_frames, media)) = found else {
        broken.push(format!(
            "{}: no I-frame stream with one entry per segment of it",
            variant.uri
        ));
        return;
    };
    if !media.i_frames_only {
        broken.push(format!("{}: not #EXT-X-I-FRAMES-ONLY", i_frames.uri));
    }
    for (entry, size) in media.segments.iter().zip(&measured.sizes) {
        let inside = entry
            .byte_range
            .as_ref()
            .is_some_and(|r| r.length > 0 && r.offset.unwrap_or(0) + r.length <= *size);
        if !inside {
            broken.push(format!(
                "{}: {} range is outside it",
                i_frames.uri, entry.uri
            ));
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}
