//! Master: describe what ffmpeg actually wrote, and write the playlists
//! players start from. Each variant's BANDWIDTH (peak) and AVERAGE-BANDWIDTH
//! are measured from its segments, its CODECS read from the stream itself;
//! the shared audio rendition is an `#EXT-X-MEDIA` group; each video rung
//! gets an I-frame playlist for trick play; each media playlist's
//! TARGETDURATION is its longest segment rounded up.

use std::io::Read;
use std::path::Path;

use m3u8_rs::{
    AlternativeMedia, AlternativeMediaType, ByteRange, ClosedCaptionGroupId, MasterPlaylist,
    MediaPlaylist, MediaPlaylistType, MediaSegment, Resolution, VariantStream,
};

use super::JobError;
use super::encode::EncodePlan;
use super::ladder::Rung;
use super::layout::AUDIO_RENDITION;
use super::segment::{self, SegmentFacts};
use super::ts::PACKET_BYTES;
use super::verify::{fail, read, read_media};
use hlsmux_protocol::SegmentFormat;

/// How much of a segment is read first to describe it: the headers and,
/// nearly always, the whole first picture (whole TS packets). Segments are
/// on shared storage, so the rest is never read unless the first picture
/// runs on, and then in growing steps up to [`SEGMENT_PREFIX_MAX_BYTES`],
/// which even a 4K keyframe fits in.
pub const SEGMENT_PREFIX_BYTES: usize = PACKET_BYTES * 2 * 1024;
const SEGMENT_PREFIX_MAX_BYTES: usize = SEGMENT_PREFIX_BYTES * 16;
/// Playlist versions: 6 for the master (FRAME-RATE, no PROGRAM-ID); at
/// least 4 for I-frame playlists (byte ranges), their media playlist's when
/// higher (7 for fMP4).
const MASTER_VERSION: usize = 6;
const I_FRAME_VERSION: usize = 4;
const AUDIO_GROUP: &str = AUDIO_RENDITION;

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
fn measure(segments: &[(f64, u64)], target_duration: u64) -> Rates {
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

/// The longest segment, rounded up: every `#EXTINF` fits under it.
pub fn target_duration(media: &MediaPlaylist) -> u64 {
    let longest = media
        .segments
        .iter()
        .map(|s| f64::from(s.duration))
        .fold(0.0, f64::max);
    longest.ceil().max(1.0) as u64
}

/// The first part of a segment file, as read from disk.
pub fn segment_prefix(path: &Path, limit: usize) -> Result<Vec<u8>, JobError> {
    let mut prefix = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(limit as u64).read_to_end(&mut prefix))
        .map_err(|error| fail(format!("cannot read {}: {error}", path.display())))?;
    Ok(prefix)
}

/// One media playlist of the output, with its segment sizes and (fMP4)
/// its initialization section.
struct Stream {
    uri: String,
    format: SegmentFormat,
    media: MediaPlaylist,
    sizes: Vec<u64>,
    init: Option<Vec<u8>>,
}

impl Stream {
    /// Reads `uri`'s playlist, fixes its TARGETDURATION and rewrites it.
    fn read(dir: &Path, uri: String, format: SegmentFormat) -> Result<Stream, JobError> {
        let path = dir.join(&uri);
        let mut media = read_media(&path)?;
        media.target_duration = target_duration(&media);
        write_playlist(&path, |out| media.write_to(out))?;
        let segment_dir = path.parent().unwrap_or(dir);
        let sizes = media
            .segments
            .iter()
            .map(|segment| {
                std::fs::metadata(segment_dir.join(&segment.uri))
                    .map(|m| m.len())
                    .map_err(|error| fail(format!("{uri}: segment {}: {error}", segment.uri)))
            })
            .collect::<Result<Vec<u64>, JobError>>()?;
        let init = match media.segments.first().and_then(|s| s.map.as_ref()) {
            Some(map) => Some(read(&segment_dir.join(&map.uri))?),
            None => None,
        };
        Ok(Stream {
            uri,
            format,
            media,
            sizes,
            init,
        })
    }

    fn rates(&self) -> Rates {
        measure_playlist(&self.media, &self.sizes)
    }

    fn segment_dir(&self, dir: &Path) -> std::path::PathBuf {
        dir.join(&self.uri)
            .parent()
            .map_or_else(|| dir.to_owned(), Path::to_owned)
    }

    /// What the segment at `index` holds, read from as few of its first
    /// bytes as hold its first picture.
    fn facts(&self, dir: &Path, index: usize) -> Result<SegmentFacts, JobError> {
        let segment = &self.media.segments[index];
        let path = self.segment_dir(dir).join(&segment.uri);
        let size = usize::try_from(self.sizes[index]).unwrap_or(usize::MAX);
        let mut limit = SEGMENT_PREFIX_BYTES;
        loop {
            let bytes = segment_prefix(&path, limit)?;
            let facts = segment::read(self.format, self.init.as_deref(), &bytes)
                .map_err(|error| fail(format!("{}: segment {} {error}", self.uri, segment.uri)))?;
            let whole = bytes.len() >= size;
            // A TS picture that reaches the end of what was read may go on.
            let picture_whole = match self.format {
                SegmentFormat::Mpegts => facts
                    .first_frame_bytes
                    .is_some_and(|end| end + PACKET_BYTES <= bytes.len()),
                SegmentFormat::Fmp4 => facts.first_frame_bytes.is_some(),
            };
            if whole || picture_whole || limit >= SEGMENT_PREFIX_MAX_BYTES {
                return Ok(facts);
            }
            limit *= 4;
        }
    }
}

/// Blocking (reads every playlist and the start of every segment). Writes
/// the master playlist of the output staged in `dir`, encoded as `plan`
/// says, and each rung's I-frame playlist.
pub fn write_master(dir: &Path, plan: &EncodePlan) -> Result<(), JobError> {
    let audio = match plan.audio {
        Some(_) => {
            let uri = plan.layout.media_playlist(AUDIO_RENDITION);
            let stream = Stream::read(dir, uri, plan.layout.format)?;
            let codec = stream.facts(dir, 0)?.audio_codec.ok_or_else(|| {
                fail(format!(
                    "{}: no AAC stream in the first segment",
                    stream.uri
                ))
            })?;
            Some((stream.rates(), codec))
        }
        None => None,
    };
    let mut variants = Vec::with_capacity(plan.rungs.len() * 2);
    for rung in &plan.rungs {
        let uri = plan.layout.media_playlist(&rung.name());
        let stream = Stream::read(dir, uri, plan.layout.format)?;
        let facts = (0..stream.media.segments.len())
            .map(|index| stream.facts(dir, index))
            .collect::<Result<Vec<SegmentFacts>, JobError>>()?;
        let video_codec = facts
            .first()
            .and_then(|f| f.video_codec.clone())
            .ok_or_else(|| {
                fail(format!(
                    "{}: no H.264 sequence header in the first segment",
                    stream.uri
                ))
            })?;
        let video_rates = stream.rates();
        let (rates, codecs) = match &audio {
            Some((audio_rates, audio_codec)) => (
                video_rates + *audio_rates,
                format!("{video_codec},{audio_codec}"),
            ),
            None => (video_rates, video_codec.clone()),
        };
        variants.push(variant(rung, &stream.uri, rates, codecs, audio.is_some()));
        let uri = plan.layout.i_frame_playlist(&rung.name());
        let i_frame_rates = write_i_frame_playlist(dir, &uri, &stream, &facts)?;
        let mut i_frames = variant(rung, &uri, i_frame_rates, video_codec, false);
        i_frames.is_i_frame = true;
        i_frames.frame_rate = None;
        i_frames.closed_captions = None;
        variants.push(i_frames);
    }
    // Lowest first, as players list them; I-frame streams after the rest.
    variants.sort_by_key(|v| (v.is_i_frame, v.bandwidth));
    let master = MasterPlaylist {
        version: Some(MASTER_VERSION),
        variants,
        independent_segments: true,
        alternatives: audio.iter().map(|_| audio_rendition(plan)).collect(),
        ..MasterPlaylist::default()
    };
    write_playlist(&dir.join(plan.layout.master()), |out| master.write_to(out))
}

fn variant(rung: &Rung, uri: &str, rates: Rates, codecs: String, audio: bool) -> VariantStream {
    VariantStream {
        uri: uri.to_owned(),
        bandwidth: rates.peak,
        average_bandwidth: Some(rates.average),
        codecs: Some(codecs),
        resolution: Some(Resolution {
            width: u64::from(rung.width),
            height: u64::from(rung.height),
        }),
        // Three decimals, as the authoring specification writes them.
        frame_rate: Some((rung.frame_rate.as_f64() * 1000.0).round() / 1000.0),
        audio: audio.then(|| AUDIO_GROUP.to_owned()),
        closed_captions: Some(ClosedCaptionGroupId::None),
        ..VariantStream::default()
    }
}

fn audio_rendition(plan: &EncodePlan) -> AlternativeMedia {
    let language = plan
        .audio
        .as_ref()
        .and_then(|a| a.language())
        .map(str::to_owned);
    AlternativeMedia {
        media_type: AlternativeMediaType::Audio,
        uri: Some(plan.layout.media_playlist(AUDIO_RENDITION)),
        group_id: AUDIO_GROUP.to_owned(),
        name: language.clone().unwrap_or_else(|| "Main".to_owned()),
        language,
        default: true,
        autoselect: true,
        // The encoder downmixes to stereo (`-ac 2`).
        channels: Some("2".to_owned()),
        ..AlternativeMedia::default()
    }
}

/// Writes the I-frame playlist `uri` of a rung's `stream`, whose segments
/// hold `facts`: one entry per segment (each opens on its keyframe), the
/// byte range from the segment's start through its first picture, so the
/// tables come with it.
fn write_i_frame_playlist(
    dir: &Path,
    uri: &str,
    stream: &Stream,
    facts: &[SegmentFacts],
) -> Result<Rates, JobError> {
    let mut segments = Vec::with_capacity(stream.media.segments.len());
    let mut measured = Vec::with_capacity(stream.media.segments.len());
    for (segment, facts) in stream.media.segments.iter().zip(facts) {
        let length = facts.first_frame_bytes.ok_or_else(|| {
            fail(format!(
                "{}: segment {} holds no picture",
                stream.uri, segment.uri
            ))
        })? as u64;
        measured.push((f64::from(segment.duration), length));
        segments.push(MediaSegment {
            uri: segment.uri.clone(),
            duration: segment.duration,
            byte_range: Some(ByteRange {
                length,
                offset: Some(0),
            }),
            // fMP4: the same initialization section as the media playlist.
            map: segment.map.clone(),
            ..MediaSegment::default()
        });
    }
    let playlist = MediaPlaylist {
        version: Some(stream.media.version.unwrap_or(0).max(I_FRAME_VERSION)),
        target_duration: stream.media.target_duration,
        segments,
        end_list: true,
        playlist_type: Some(MediaPlaylistType::Vod),
        i_frames_only: true,
        ..MediaPlaylist::default()
    };
    write_playlist(&dir.join(uri), |out| playlist.write_to(out))?;
    Ok(measure(&measured, playlist.target_duration))
}

fn write_playlist(
    path: &Path,
    write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
) -> Result<(), JobError> {
    let mut bytes = Vec::new();
    write(&mut bytes)
        .and_then(|()| std::fs::write(path, &bytes))
        .map_err(|error| JobError::OutputUnwritable {
            path: path.to_owned(),
            detail: error.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_first_picture_longer_than_the_first_read_is_read_to_its_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let picture_packets = SEGMENT_PREFIX_BYTES / PACKET_BYTES * 3;
        let (bytes, end) = super::super::ts::fixtures::segment(picture_packets);
        std::fs::write(dir.path().join("s.ts"), &bytes).expect("segment");
        let stream = Stream {
            uri: "index.m3u8".into(),
            format: SegmentFormat::Mpegts,
            media: MediaPlaylist {
                segments: vec![MediaSegment {
                    uri: "s.ts".into(),
                    duration: 2.0,
                    ..MediaSegment::default()
                }],
                ..MediaPlaylist::default()
            },
            sizes: vec![bytes.len() as u64],
            init: None,
        };
        let facts = stream.facts(dir.path(), 0).expect("reads");
        assert!(end > SEGMENT_PREFIX_BYTES, "the picture outgrows one read");
        assert_eq!(facts.first_frame_bytes, Some(end));
        assert_eq!(facts.video_codec.as_deref(), Some("avc1.64001f"));
    }

    #[test]
    fn target_duration_rounds_the_longest_segment_up() {
        let mut media = MediaPlaylist::default();
        for seconds in [2.0, 2.020_133, 1.2] {
            media.segments.push(MediaSegment {
                duration: seconds,
                ..MediaSegment::default()
            });
        }
        assert_eq!(target_duration(&media), 3);
        media.segments.remove(1);
        assert_eq!(target_duration(&media), 2);
    }
}
