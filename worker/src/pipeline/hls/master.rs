//! Master: describe what ffmpeg actually wrote, and write the playlists
//! players start from. Each variant's BANDWIDTH (peak) and AVERAGE-BANDWIDTH
//! are measured from its segments, its CODECS read from the stream itself;
//! the shared audio rendition is an `#EXT-X-MEDIA` group; each video rung
//! gets an I-frame playlist for trick play; every media playlist gets one
//! TARGETDURATION, the least all their segments allow.

use std::path::Path;

use m3u8_rs::{
    AlternativeMedia, AlternativeMediaType, ByteRange, ClosedCaptionGroupId, MasterPlaylist,
    MediaPlaylist, MediaPlaylistType, MediaSegment, Resolution, VariantStream,
};

use crate::pipeline::JobError;
use crate::pipeline::container::ts::PACKET_BYTES;
use crate::pipeline::container::{self, SegmentFacts};
use crate::pipeline::encode::EncodePlan;
use crate::pipeline::hls::layout::AUDIO_RENDITION;
use crate::pipeline::hls::playlist::{fail, read, read_media};
use crate::pipeline::hls::rates::{
    Rates, SEGMENT_PREFIX_BYTES, SEGMENT_PREFIX_MAX_BYTES, measure, measure_playlist,
    segment_prefix, target_duration,
};
use crate::pipeline::plan::ladder::Rung;
use hlsmux_protocol::SegmentFormat;

/// Playlist versions: 6 for the master (FRAME-RATE, no PROGRAM-ID); at
/// least 4 for I-frame playlists (byte ranges), their media playlist's when
/// higher (7 for fMP4).
const MASTER_VERSION: usize = 6;
const I_FRAME_VERSION: usize = 4;
const AUDIO_GROUP: &str = AUDIO_RENDITION;
/// The language of an audio track that does not say (ISO 639-2).
pub const UNDETERMINED_LANGUAGE: &str = "und";

/// The playlists master wrote, as written: what encrypt rewrites, handed
/// over in memory rather than read back from the staging directory.
#[derive(Clone, Debug, Default)]
pub struct Presentation {
    pub master: MasterPlaylist,
    /// Every media playlist (variants' and renditions'), by URI.
    pub media: Vec<(String, MediaPlaylist)>,
    /// Every I-frame playlist, by URI.
    pub i_frames: Vec<(String, MediaPlaylist)>,
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
    /// Reads `uri`'s playlist, sets its TARGETDURATION to `target` and
    /// rewrites it.
    fn read(
        dir: &Path,
        uri: String,
        format: SegmentFormat,
        target: u64,
    ) -> Result<Stream, JobError> {
        let path = dir.join(&uri);
        let mut media = read_media(&path)?;
        media.target_duration = target;
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
            let facts = container::read(self.format, self.init.as_deref(), &bytes)
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

/// One TARGETDURATION for every media playlist of the presentation
/// (Apple's HLS Authoring Specification: they MUST all be the same): the
/// least that every segment of every one of them fits under.
fn common_target_duration(dir: &Path, plan: &EncodePlan) -> Result<u64, JobError> {
    let audio = plan
        .audio
        .as_ref()
        .map(|_| plan.layout.media_playlist(AUDIO_RENDITION));
    let rungs = plan
        .rungs
        .iter()
        .map(|rung| plan.layout.media_playlist(&rung.name()));
    audio.into_iter().chain(rungs).try_fold(1, |target, uri| {
        Ok(target.max(target_duration(&read_media(&dir.join(uri))?)))
    })
}

/// Blocking (reads every playlist and the start of every segment). Writes
/// the master playlist of the output staged in `dir`, encoded as `plan`
/// says, and each rung's I-frame playlist.
pub fn write_master(dir: &Path, plan: &EncodePlan) -> Result<Presentation, JobError> {
    let mut presentation = Presentation::default();
    let target = common_target_duration(dir, plan)?;
    let audio = match plan.audio {
        Some(_) => {
            let uri = plan.layout.media_playlist(AUDIO_RENDITION);
            let stream = Stream::read(dir, uri, plan.layout.format, target)?;
            presentation
                .media
                .push((stream.uri.clone(), stream.media.clone()));
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
        let stream = Stream::read(dir, uri, plan.layout.format, target)?;
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
        let (i_frame_playlist, i_frame_rates) = write_i_frame_playlist(dir, &uri, &stream, &facts)?;
        presentation.i_frames.push((uri.clone(), i_frame_playlist));
        let mut i_frames = variant(rung, &uri, i_frame_rates, video_codec, false);
        i_frames.is_i_frame = true;
        i_frames.frame_rate = None;
        i_frames.closed_captions = None;
        variants.push(i_frames);
        presentation.media.push((stream.uri, stream.media));
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
    write_playlist(&dir.join(plan.layout.master()), |out| master.write_to(out))?;
    presentation.master = master;
    Ok(presentation)
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
        // Apple's authoring specification: every audio rendition says its
        // language; an untagged source's is undetermined (ISO 639-2 `und`).
        language: Some(language.unwrap_or_else(|| UNDETERMINED_LANGUAGE.to_owned())),
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
) -> Result<(MediaPlaylist, Rates), JobError> {
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
    let rates = measure(&measured, playlist.target_duration);
    Ok((playlist, rates))
}

fn write_playlist(
    path: &Path,
    write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
) -> Result<(), JobError> {
    let mut bytes = Vec::new();
    write(&mut bytes)
        .and_then(|()| std::fs::write(path, &bytes))
        .map_err(|error| JobError::unwritable(path, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_picture_longer_than_the_first_read_is_read_to_its_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let picture_packets = SEGMENT_PREFIX_BYTES / PACKET_BYTES * 3;
        let (bytes, end) = crate::pipeline::container::ts::fixtures::segment(picture_packets);
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
}
