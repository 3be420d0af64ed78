//! Checks on a published HLS output, with the real tools that read it.

use std::path::{Path, PathBuf};

use m3u8_rs::MasterPlaylist;
use tokio::process::Command;

pub fn read_master(path: &Path) -> MasterPlaylist {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    m3u8_rs::parse_master_playlist_res(&bytes)
        .unwrap_or_else(|_| panic!("{} is not a master playlist", path.display()))
}

/// ffmpeg decodes every variant of the playlist `master` (decrypting an
/// encrypted one with its key), or one segment; returns its error output.
pub async fn decode(master: &Path) -> Result<(), String> {
    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg.args(["-v", "error", "-threads", "1"]);
    if master.extension().is_some_and(|e| e == "m3u8") {
        // The HLS demuxer opens only media extensions by default, not `.key`.
        ffmpeg.args(["-allowed_extensions", "ALL"]);
    }
    let output = ffmpeg
        .arg("-i")
        .arg(master)
        .args(["-map", "0", "-f", "null", "-"])
        .output()
        .await
        .expect("ffmpeg runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() && stderr.trim().is_empty() {
        Ok(())
    } else {
        Err(stderr)
    }
}

/// The codec types (`video`, `audio`, `subtitle`, ...) of a media file or
/// playlist, one per stream (ffprobe repeats streams under each program).
pub async fn stream_types(path: &Path) -> Vec<String> {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=index,codec_type",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .await
        .expect("ffprobe runs");
    assert!(
        output.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let streams: std::collections::BTreeMap<u32, String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.trim().split_once(','))
        .filter_map(|(index, kind)| Some((index.parse().ok()?, kind.to_owned())))
        .collect();
    streams.into_values().collect()
}

/// How many video frames ffprobe decodes from a media playlist (after
/// decrypting it, when encrypted).
pub async fn video_frames(playlist: &Path) -> u64 {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-allowed_extensions", "ALL", "-count_frames"])
        .args([
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
        ])
        .args(["-of", "csv=p=0"])
        .arg(playlist)
        .output()
        .await
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.trim().trim_end_matches(',').parse().ok())
        .unwrap_or(0)
}

/// Staging directories left anywhere under `root`.
pub fn staging_leftovers(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if entry.file_name().to_string_lossy().ends_with(".partial") {
                    found.push(path.clone());
                }
                pending.push(path);
            }
        }
    }
    found
}

/// Whether the first video frame of a media file is a keyframe.
pub async fn starts_with_keyframe(path: &Path) -> bool {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
        ])
        .args(["-show_entries", "frame=key_frame", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .await
        .expect("ffprobe runs");
    // One line per frame, `key_frame` first (ffprobe may add a trailing comma).
    let text = String::from_utf8_lossy(&output.stdout);
    let first_frame = text.lines().find(|line| !line.trim().is_empty());
    first_frame
        .and_then(|line| line.split(',').next())
        .map(str::trim)
        == Some("1")
}

/// The frequency of the pure tone in a media file's first audio stream,
/// from the zero crossings of its decoded samples.
pub async fn tone_frequency(path: &Path) -> f64 {
    const SAMPLE_RATE: f64 = 16_000.0;
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-allowed_extensions", "ALL", "-i"])
        .arg(path)
        .args([
            "-map", "0:a:0", "-ac", "1", "-ar", "16000", "-f", "s16le", "-",
        ])
        .output()
        .await
        .expect("ffmpeg runs");
    let samples: Vec<i16> = output
        .stdout
        .chunks_exact(2)
        .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    // Between the first and the last zero crossing: the encoder's priming
    // and padding (silence) at either end do not dilute the tone.
    let crossings: Vec<usize> = samples
        .windows(2)
        .enumerate()
        .filter(|(_, pair)| (pair[0] < 0) != (pair[1] < 0))
        .map(|(index, _)| index)
        .collect();
    let (Some(first), Some(last)) = (crossings.first(), crossings.last()) else {
        return 0.0;
    };
    let seconds = (last - first) as f64 / SAMPLE_RATE;
    if seconds <= 0.0 {
        return 0.0;
    }
    (crossings.len() - 1) as f64 / 2.0 / seconds
}

/// The media playlists a master playlist names: its variants (not the
/// I-frame streams) and its renditions, as URIs relative to it.
pub fn media_playlists(master: &Path) -> Vec<String> {
    let master = read_master(master);
    master
        .variants
        .iter()
        .filter(|v| !v.is_i_frame)
        .map(|v| v.uri.clone())
        .chain(master.alternatives.iter().filter_map(|a| a.uri.clone()))
        .collect()
}
