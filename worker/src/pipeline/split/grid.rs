//! Where a long input is cut: one global segment grid for every rung, and
//! chunks of whole segments along it, so every chunk boundary is a
//! segment boundary (an IDR picture in every rung) and the stitched
//! playlists need no discontinuity.

use serde::{Deserialize, Serialize};

/// One chunk: a stretch of the source encoded on its own.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub index: u32,
    /// Where it starts in the source, in seconds from the source's start.
    pub start_seconds: f64,
    /// How long it is; the last chunk runs to the source's end.
    pub seconds: f64,
    /// The global number of its first segment.
    pub first_segment: u64,
}

/// The chunks of a source, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChunkGrid {
    pub segment_seconds: u32,
    pub chunks: Vec<Chunk>,
}

impl ChunkGrid {
    /// Cuts `source_seconds` into chunks of about `chunk_seconds`, each a
    /// whole number of `segment_seconds` segments. A last chunk shorter
    /// than half a chunk joins the one before, so no chunk is a sliver.
    pub fn new(source_seconds: f64, segment_seconds: u32, chunk_seconds: u32) -> Self {
        let segment = f64::from(segment_seconds.max(1));
        let per_chunk = (f64::from(chunk_seconds) / segment).round().max(1.0) as u64;
        let segments = (source_seconds / segment).ceil().max(1.0) as u64;
        let mut starts: Vec<u64> = (0..segments).step_by(per_chunk as usize).collect();
        if starts.len() > 1 {
            let last = starts[starts.len() - 1];
            if (segments - last) * 2 < per_chunk {
                starts.pop();
            }
        }
        let chunks = starts
            .iter()
            .enumerate()
            .map(|(index, first)| {
                let start_seconds = *first as f64 * segment;
                let end = match starts.get(index + 1) {
                    Some(next) => *next as f64 * segment,
                    None => source_seconds,
                };
                Chunk {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    start_seconds,
                    seconds: end - start_seconds,
                    first_segment: *first,
                }
            })
            .collect();
        Self {
            segment_seconds: segment_seconds.max(1),
            chunks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_whole_segments_and_cover_the_source() {
        let grid = ChunkGrid::new(250.0, 5, 60);
        let starts: Vec<f64> = grid.chunks.iter().map(|c| c.start_seconds).collect();
        assert_eq!(starts, vec![0.0, 60.0, 120.0, 180.0]);
        let last = grid.chunks.last().expect("chunks");
        assert!(
            (last.seconds - 70.0).abs() < 1e-9,
            "the short tail joins: {last:?}"
        );
        assert_eq!(last.first_segment, 36);
        let total: f64 = grid.chunks.iter().map(|c| c.seconds).sum();
        assert!((total - 250.0).abs() < 1e-9);
    }

    #[test]
    fn a_chunk_length_that_is_not_whole_segments_is_rounded_to_them() {
        let grid = ChunkGrid::new(20.0, 2, 5);
        // 5 s rounds to 3 segments of 2 s (6 s).
        let starts: Vec<f64> = grid.chunks.iter().map(|c| c.start_seconds).collect();
        assert_eq!(starts, vec![0.0, 6.0, 12.0]);
        assert_eq!(grid.chunks[2].seconds, 8.0, "the 2 s tail joins the last");
    }

    #[test]
    fn a_short_source_is_one_chunk() {
        let grid = ChunkGrid::new(3.5, 2, 60);
        assert_eq!(grid.chunks.len(), 1);
        assert_eq!(grid.chunks[0].seconds, 3.5);
    }
}
