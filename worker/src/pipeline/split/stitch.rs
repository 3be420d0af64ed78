//! Stitch: the chunks of a split job, each encoded into a directory of its
//! own with globally numbered segments on the source's timeline, become
//! one output laid out exactly as a whole encode's: every rung's segments
//! moved into the staging directory and listed in one media playlist, the
//! MPEG-TS continuity counters renumbered so they run on across the joins
//! (each chunk's muxer started them afresh), and for fMP4 one
//! initialization section, which every chunk must have written the same.
//! What follows (master, timing, encryption, verify) is a whole encode's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hlsmux_protocol::SegmentFormat;
use m3u8_rs::{MediaPlaylist, MediaPlaylistType, MediaSegment};

use crate::pipeline::JobError;
use crate::pipeline::container::ts;
use crate::pipeline::hls::layout::Layout;
use crate::pipeline::hls::playlist::{fail, read_media};

/// Blocking. Stitches `stream`'s (a rung's) parts from `chunk_dirs`, in
/// order, into `staging`.
pub fn stitch_stream(
    staging: &Path,
    chunk_dirs: &[PathBuf],
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
    for chunk_dir in chunk_dirs {
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
                    move_file(&part_dir.join(&map.uri), &playlist_dir.join(&map.uri))?;
                    init = Some((PathBuf::from(&map.uri), bytes));
                }
                Some((_, first)) if *first != bytes => {
                    return Err(fail(format!(
                        "{stream}: chunk {} wrote an initialization section unlike the first chunk's",
                        chunk_dir.display()
                    )));
                }
                Some(_) => {}
            }
        }
        for segment in part.segments {
            move_file(
                &part_dir.join(&segment.uri),
                &playlist_dir.join(&segment.uri),
            )?;
            segments.push(segment);
        }
    }
    if layout.format == SegmentFormat::Mpegts {
        renumber_continuity(&playlist_dir, &segments)?;
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

/// Renumbers every segment's continuity counters in order, so each PID's
/// run on from the previous segment's.
fn renumber_continuity(dir: &Path, segments: &[MediaSegment]) -> Result<(), JobError> {
    let mut counters: HashMap<u16, u8> = HashMap::new();
    for segment in segments {
        let path = dir.join(&segment.uri);
        let mut bytes = std::fs::read(&path)
            .map_err(|error| fail(format!("cannot read {}: {error}", segment.uri)))?;
        ts::renumber_continuity(&mut bytes, &mut counters)
            .map_err(|error| fail(format!("segment {}: {error}", segment.uri)))?;
        std::fs::write(&path, bytes).map_err(|error| JobError::unwritable(&path, error))?;
    }
    Ok(())
}

fn move_file(from: &Path, to: &Path) -> Result<(), JobError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|error| JobError::unwritable(parent, error))?;
    }
    std::fs::rename(from, to).map_err(|error| {
        fail(format!(
            "cannot move {} to {}: {error}",
            from.display(),
            to.display()
        ))
    })
}
