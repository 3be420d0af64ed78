//! Rates: a stream's bits per second as the authoring specification
//! measures them, and the TARGETDURATION of a media playlist; plus how
//! much of a segment is read to describe it.

use std::io::Read;
use std::path::Path;

use m3u8_rs::MediaPlaylist;

use crate::pipeline::JobError;
use crate::pipeline::container::ts::PACKET_BYTES;
use crate::pipeline::hls::playlist::fail;

/// How much of a segment is read first to describe it: the headers and,
/// nearly always, the whole first picture (whole TS packets). Segments are
/// on shared storage, so the rest is never read unless the first picture
/// runs on, and then in growing steps up to [`SEGMENT_PREFIX_MAX_BYTES`],
/// which even a 4K keyframe fits in.
pub const SEGMENT_PREFIX_BYTES: usize = PACKET_BYTES * 2 * 1024;
pub const SEGMENT_PREFIX_MAX_BYTES: usize = SEGMENT_PREFIX_BYTES * 16;
/// A stream's rates in bits per second, as the authoring specification
/// defines them: the average over the whole playlist, and the peak over any
/// run of consecutive segments lasting 0.5 to 1.5 target durations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    pub peak: u64,
    pub average: u64,
}

impl std::ops::Add for Rates {
    type Output = Rates;
    fn add(self, other: Rates) -> Rates {
        Rates {
            peak: self.peak + other.peak,
            average: self.average + other.average,
        }
    }
}

/// Measures `(seconds, bytes)` segments under `target_duration`. A stream
/// shorter than half a target duration has only its average to go by.
pub fn measure(segments: &[(f64, u64)], target_duration: u64) -> Rates {
    let bits_per_second = |seconds: f64, bytes: u64| {
        if seconds > 0.0 {
            (bytes as f64 * 8.0 / seconds).round() as u64
        } else {
            0
        }
    };
    let total_seconds: f64 = segments.iter().map(|(seconds, _)| seconds).sum();
    let total_bytes: u64 = segments.iter().map(|(_, bytes)| bytes).sum();
    let average = bits_per_second(total_seconds, total_bytes);
    let (shortest, longest) = (0.5 * target_duration as f64, 1.5 * target_duration as f64);
    let mut peak = 0;
    for start in 0..segments.len() {
        let (mut seconds, mut bytes) = (0.0, 0);
        for &(segment_seconds, segment_bytes) in &segments[start..] {
            seconds += segment_seconds;
            bytes += segment_bytes;
            if seconds > longest + 1e-6 {
                break;
            }
            if seconds >= shortest - 1e-6 {
                peak = peak.max(bits_per_second(seconds, bytes));
            }
        }
    }
    Rates {
        peak: peak.max(average),
        average,
    }
}

/// Measures a media playlist whose segments hold `sizes` bytes, in order.
pub fn measure_playlist(media: &MediaPlaylist, sizes: &[u64]) -> Rates {
    let segments: Vec<(f64, u64)> = media
        .segments
        .iter()
        .map(|s| f64::from(s.duration))
        .zip(sizes.iter().copied())
        .collect();
    measure(&segments, media.target_duration)
}

/// The least TARGETDURATION this playlist's segments allow: RFC 8216
/// (4.3.3.1) asks that each `#EXTINF`, rounded to the nearest integer, be
/// no more than it. An AAC segment of 5.0155 s (AAC frames do not divide
/// 5 s) fits a target of 5, as its video does.
pub fn target_duration(media: &MediaPlaylist) -> u64 {
    let longest = media
        .segments
        .iter()
        .map(|s| f64::from(s.duration))
        .fold(0.0, f64::max);
    longest.round().max(1.0) as u64
}

/// The first part of a segment file, as read from disk.
pub fn segment_prefix(path: &Path, limit: usize) -> Result<Vec<u8>, JobError> {
    let mut prefix = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(limit as u64).read_to_end(&mut prefix))
        .map_err(|error| fail(format!("cannot read {}: {error}", path.display())))?;
    Ok(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use m3u8_rs::MediaSegment;

    #[test]
    fn the_average_is_all_bits_over_all_seconds() {
        let rates = measure(&[(2.0, 100_000), (2.0, 300_000)], 2);
        assert_eq!(rates.average, 800_000);
        assert_eq!(rates.peak, 1_200_000, "the busier segment alone");
    }

    #[test]
    fn a_short_last_segment_does_not_count_as_a_peak_on_its_own() {
        // 0.02 s with its tables would read as 150 kb/s alone.
        let rates = measure(&[(2.0, 50_000), (2.0, 50_000), (0.02, 376)], 2);
        assert_eq!(rates.peak, 200_000);
        let whole = measure(&[(0.5, 10_000)], 2);
        assert_eq!(whole.peak, whole.average, "shorter than half a target");
    }

    #[test]
    fn target_duration_is_the_longest_segment_rounded_to_the_nearest_second() {
        let mut media = MediaPlaylist::default();
        for seconds in [5.0, 5.015_51, 1.2] {
            media.segments.push(MediaSegment {
                duration: seconds,
                ..MediaSegment::default()
            });
        }
        assert_eq!(target_duration(&media), 5, "an AAC segment's 15 ms over");
        media.segments.push(MediaSegment {
            duration: 5.5,
            ..MediaSegment::default()
        });
        assert_eq!(target_duration(&media), 6);
    }
}
