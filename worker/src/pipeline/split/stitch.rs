//! Stitch: the chunks of a split job, each encoded into a directory of its
//! own with globally numbered segments on the source's timeline, become
//! one output laid out exactly as a whole encode's: every rung's segments
//! written into the staging directory (the parts stay as they were) and listed in one media playlist, the
//! MPEG-TS continuity counters renumbered so they run on across the joins
//! (each chunk's muxer started them afresh), and for fMP4 one
//! initialization section, which every chunk must have written the same
//! but for where it starts, and each later chunk's fragment decode times
//! moved on to where it starts.
//! What follows (master, timing, encryption, verify) is a whole encode's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hlsmux_protocol::SegmentFormat;
use m3u8_rs::{MediaPlaylist, MediaPlaylistType, MediaSegment};

use crate::pipeline::JobError;
use crate::pipeline::container::ts;
use crate::pipeline::hls::layout::Layout;
use crate::pipeline::hls::playlist::{fail, read_media};

use super::fragments;

/// One encoded part of a stream: where it was written, and where on the
/// source's timeline it starts (seconds).
pub struct PartDir {
    pub dir: PathBuf,
    pub start_seconds: f64,
}

/// Blocking. Stitches `stream`'s (a rung's) parts, in order, into
/// `staging`.
pub fn stitch_stream(
    staging: &Path,
    parts: &[PartDir],
    layout: Layout,
    stream: &str,
) -> Result<(), JobError> {
    let playlist_name = layout.media_playlist(stream);
    let playlist_path = staging.join(&playlist_name);
    let playlist_dir = playlist_path.parent().unwrap_or(staging).to_owned();
    std::fs::create_dir_all(&playlist_dir)
        .map_err(|error| JobError::unwritable(&playlist_dir, error))?;
    let mut segments: Vec<MediaSegment> = Vec::new();
    let mut version = None;
    let mut init: Option<(PathBuf, Vec<u8>)> = None;
    // MPEG-TS continuity counters per PID, run on across the joins.
    let mut counters: HashMap<u16, u8> = HashMap::new();
    for PartDir {
        dir: chunk_dir,
        start_seconds,
    } in parts
    {
        let part_path = chunk_dir.join(&playlist_name);
        let part = read_media(&part_path)?;
        let part_dir = part_path.parent().unwrap_or(chunk_dir);
        version = version.or(part.version);
        if layout.format == SegmentFormat::Fmp4 {
            let Some(map) = part.segments.first().and_then(|s| s.map.clone()) else {
                return Err(fail(format!(
                    "{} names no initialization section",
                    part_path.display()
                )));
            };
            let bytes = std::fs::read(part_dir.join(&map.uri))
                .map_err(|error| fail(format!("cannot read {}: {error}", map.uri)))?;
            match &init {
                None => {
                    write_file(&playlist_dir.join(&map.uri), &bytes)?;
                    init = Some((PathBuf::from(&map.uri), bytes));
                }
                Some((_, first)) if !same_but_the_start(first, &bytes) => {
                    let at = first
                        .iter()
                        .zip(&bytes)
                        .position(|(a, b)| a != b)
                        .unwrap_or(first.len().min(bytes.len()));
                    return Err(fail(format!(
                        "{stream}: chunk {} wrote an initialization section unlike the first chunk's ({} and {} bytes, differing from byte {at})",
                        chunk_dir.display(),
                        first.len(),
                        bytes.len()
                    )));
                }
                Some(_) => {}
            }
        }
        // fMP4 decode times start at zero in every chunk: moved on by where
        // the chunk starts, in the stream's own timescale.
        let shift = match &init {
            Some((_, first)) if layout.format == SegmentFormat::Fmp4 && *start_seconds > 0.0 => {
                let scale = fragments::media_timescale(first).ok_or_else(|| {
                    fail(format!(
                        "{stream}: the initialization section has no timescale"
                    ))
                })?;
                (start_seconds * f64::from(scale)).round() as u64
            }
            _ => 0,
        };
        for segment in part.segments {
            let from = part_dir.join(&segment.uri);
            let mut bytes = std::fs::read(&from)
                .map_err(|error| fail(format!("cannot read {}: {error}", from.display())))?;
            if shift > 0 {
                fragments::shift_decode_times(&mut bytes, shift)
                    .map_err(|error| fail(format!("segment {}: {error}", segment.uri)))?;
            }
            if layout.format == SegmentFormat::Mpegts {
                ts::renumber_continuity(&mut bytes, &mut counters)
                    .map_err(|error| fail(format!("segment {}: {error}", segment.uri)))?;
            }
            write_file(&playlist_dir.join(&segment.uri), &bytes)?;
            segments.push(segment);
        }
    }
    // One map, on the first segment, as a whole encode's playlist has it.
    for segment in segments.iter_mut().skip(1) {
        segment.map = None;
    }
    let longest = segments
        .iter()
        .map(|s| f64::from(s.duration))
        .fold(0.0, f64::max);
    let stitched = MediaPlaylist {
        version,
        target_duration: longest.round().max(1.0) as u64,
        media_sequence: 0,
        playlist_type: Some(MediaPlaylistType::Vod),
        independent_segments: true,
        end_list: true,
        segments,
        ..MediaPlaylist::default()
    };
    let mut bytes = Vec::new();
    stitched
        .write_to(&mut bytes)
        .map_err(|error| fail(format!("cannot write {playlist_name}: {error}")))?;
    std::fs::write(&playlist_path, bytes)
        .map_err(|error| JobError::unwritable(&playlist_path, error))
}

/// Whether two chunks' initialization sections are the same but for where
/// each chunk starts: ffmpeg's MP4 muxer places a stream that starts after
/// zero with an empty edit as long as that start (`elst`, first entry, its
/// segment duration), which is the one field that differs. The first
/// chunk's, kept for the output, places the whole stitched stream just as
/// a whole encode's does; every fragment carries its own decode time
/// (`tfdt`) on the common timeline.
fn same_but_the_start(first: &[u8], other: &[u8]) -> bool {
    if first.len() != other.len() {
        return false;
    }
    let Some(at) = first.windows(4).position(|w| w == b"elst") else {
        return first == other;
    };
    // After the type: version and flags (4 bytes), the entry count (4),
    // then the first entry's segment duration (4 bytes, 8 in version 1).
    let duration_at = at + 12;
    let duration_len = if first.get(at + 4) == Some(&1) { 8 } else { 4 };
    let masked = duration_at..duration_at + duration_len;
    first
        .iter()
        .zip(other)
        .enumerate()
        .all(|(index, (a, b))| a == b || masked.contains(&index))
}

/// Writes one file of the stitched output (the part it came from is
/// left as it was: a coordinator that dies stitching can stitch again).
fn write_file(to: &Path, bytes: &[u8]) -> Result<(), JobError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|error| JobError::unwritable(parent, error))?;
    }
    std::fs::write(to, bytes).map_err(|error| JobError::unwritable(to, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `elst` box (version 0) with one empty edit of `start` ticks.
    fn init_with_start(start: u32) -> Vec<u8> {
        let mut bytes = b"....moov....edts....elst".to_vec();
        bytes.extend([0, 0, 0, 0]);
        bytes.extend(1u32.to_be_bytes());
        bytes.extend(start.to_be_bytes());
        bytes.extend((-1i32).to_be_bytes());
        bytes.extend(b"....avcC-the-decoder-configuration");
        bytes
    }

    #[test]
    fn inits_may_differ_only_in_where_their_chunk_starts() {
        let first = init_with_start(1000);
        assert!(same_but_the_start(&first, &init_with_start(13000)));
        let mut other_config = init_with_start(13000);
        let last = other_config.len() - 1;
        other_config[last] ^= 1;
        assert!(!same_but_the_start(&first, &other_config));
        assert!(!same_but_the_start(&first, &first[..first.len() - 1]));
    }
}
