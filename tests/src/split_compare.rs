//! How a split output is held to the same input encoded whole (issue
//! 21): rung by rung, as many segments each as long within a frame, as
//! many pictures and audio frames, video timestamps advancing by exactly
//! one frame everywhere (the joins included), MPEG-TS continuity counters
//! running on across the joins, and pictures as close to the source (mean
//! SSIM within 0.005).

use std::path::Path;

use hlsmux_protocol::SegmentFormat;
use serde_json::Value;
use tokio::process::Command;

/// One rung of both outputs: its directory name and size.
pub struct RungToCompare {
    pub name: String,
    pub width: u32,
    pub height: u32,
}

/// The two outputs and what they were made from.
pub struct Comparison<'a> {
    pub name: &'a str,
    pub split: &'a Path,
    pub whole: &'a Path,
    pub source: &'a Path,
    pub fps: u32,
    pub rungs: &'a [RungToCompare],
    pub format: SegmentFormat,
    pub encrypted: bool,
}

/// Panics, naming the rule and the rung, where the split output differs
/// from the whole one.
pub async fn assert_split_matches_whole(comparison: Comparison<'_>) {
    let Comparison {
        name,
        split,
        whole,
        source,
        fps,
        rungs,
        format,
        encrypted,
    } = comparison;
    let frame = 1.0 / f64::from(fps);
    for rung in rungs {
        let rung_name = &rung.name;
        let split_playlist = split.join(rung_name).join("index.m3u8");
        let whole_playlist = whole.join(rung_name).join("index.m3u8");
        let (split_durations, whole_durations) =
            (durations(&split_playlist), durations(&whole_playlist));
        assert_eq!(
            split_durations.len(),
            whole_durations.len(),
            "{name} {rung_name}: as many segments"
        );
        for (a, b) in split_durations.iter().zip(&whole_durations) {
            assert!(
                (a - b).abs() <= frame + 1e-3,
                "{name} {rung_name}: {split_durations:?} against {whole_durations:?}"
            );
        }
        assert_eq!(
            packets(&split_playlist, "v:0").await,
            packets(&whole_playlist, "v:0").await,
            "{name} {rung_name}: as many pictures"
        );
        let times = picture_times(&split_playlist).await;
        let jumps: Vec<(f64, f64)> = times
            .windows(2)
            .filter(|pair| ((pair[1] - pair[0]) - frame).abs() > 1e-3)
            .map(|pair| (pair[0], pair[1]))
            .collect();
        assert!(
            jumps.is_empty(),
            "{name} {rung_name}: timestamps jump: {jumps:?}"
        );
        if format == SegmentFormat::Mpegts && !encrypted {
            let breaks = continuity_breaks(&split.join(rung_name), &split_playlist);
            assert!(breaks.is_empty(), "{name} {rung_name}: {breaks:?}");
        }
        let (width, height) = (u64::from(rung.width), u64::from(rung.height));
        let split_ssim = ssim_against_source(&split_playlist, source, width, height).await;
        let whole_ssim = ssim_against_source(&whole_playlist, source, width, height).await;
        assert!(
            (split_ssim - whole_ssim).abs() <= 0.005,
            "{name} {rung_name}: SSIM {split_ssim} split, {whole_ssim} whole"
        );
    }
    let audio = |dir: &Path| dir.join("audio").join("index.m3u8");
    assert_eq!(
        packets(&audio(split), "a:0").await,
        packets(&audio(whole), "a:0").await,
        "{name}: as many audio frames"
    );
}

async fn ffprobe_json(args: &[&str], target: &Path) -> Value {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-allowed_extensions", "ALL", "-of", "json"])
        .args(args)
        .arg(target)
        .output()
        .await
        .expect("ffprobe runs");
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

/// Each segment's duration, from a media playlist.
fn durations(playlist: &Path) -> Vec<f64> {
    let bytes = std::fs::read(playlist).expect("playlist");
    let media = m3u8_rs::parse_media_playlist_res(&bytes).expect("parses");
    media
        .segments
        .iter()
        .map(|s| f64::from(s.duration))
        .collect()
}

/// How many packets ffprobe counts in the playlist's first `stream`.
async fn packets(playlist: &Path, stream: &str) -> u64 {
    let report = ffprobe_json(
        &[
            "-select_streams",
            stream,
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
        ],
        playlist,
    )
    .await;
    report["streams"][0]["nb_read_packets"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Every picture's presentation time, in order.
async fn picture_times(playlist: &Path) -> Vec<f64> {
    let report = ffprobe_json(
        &["-select_streams", "v:0", "-show_entries", "packet=pts_time"],
        playlist,
    )
    .await;
    let mut times: Vec<f64> = report["packets"]
        .as_array()
        .map(|packets| {
            packets
                .iter()
                .filter_map(|p| p["pts_time"].as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    times.sort_by(f64::total_cmp);
    times
}

/// The mean SSIM of a rung against the source scaled to its size.
async fn ssim_against_source(playlist: &Path, source: &Path, width: u64, height: u64) -> f64 {
    let graph = format!(
        "[0:v]setpts=PTS-STARTPTS[rung];[1:v]scale={width}:{height},setsar=1,setpts=PTS-STARTPTS[reference];[rung][reference]ssim"
    );
    let output = Command::new("ffmpeg")
        .args(["-v", "info", "-nostats", "-allowed_extensions", "ALL", "-i"])
        .arg(playlist)
        .arg("-i")
        .arg(source)
        .args(["-lavfi", &graph, "-f", "null", "-"])
        .output()
        .await
        .expect("ffmpeg runs");
    let said = String::from_utf8_lossy(&output.stderr);
    said.lines()
        .find_map(|line| line.split("All:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no SSIM for {}: {said}", playlist.display()))
}

/// Every PID's continuity counter steps by one from packet to packet with
/// a payload, across all of a rung's segments in order.
fn continuity_breaks(dir: &Path, playlist: &Path) -> Vec<String> {
    let bytes = std::fs::read(playlist).expect("playlist");
    let media = m3u8_rs::parse_media_playlist_res(&bytes).expect("parses");
    let mut last: std::collections::HashMap<u16, u8> = std::collections::HashMap::new();
    let mut breaks = Vec::new();
    for segment in &media.segments {
        let data = std::fs::read(dir.join(&segment.uri)).expect("segment");
        for packet in data.chunks_exact(188) {
            let pid = u16::from(packet[1] & 0x1f) << 8 | u16::from(packet[2]);
            if pid == 0x1fff || packet[3] & 0x10 == 0 {
                continue;
            }
            let counter = packet[3] & 0x0f;
            if let Some(previous) = last.get(&pid)
                && counter != (previous + 1) & 0x0f
            {
                breaks.push(format!(
                    "{} pid {pid}: {previous} then {counter}",
                    segment.uri
                ));
            }
            last.insert(pid, counter);
        }
    }
    breaks
}
