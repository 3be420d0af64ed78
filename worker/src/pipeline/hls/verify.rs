//! Verify: before anything is published, check the staged output against
//! the rules players rely on (Apple's HLS Authoring Specification for VOD
//! H.264/AAC), reading it back as a player would. Broken structure (a
//! missing segment, an unreadable playlist) fails as `verify_failed`; a
//! broken rule fails as `output_invalid`, naming the rule.
//!
//! - Master: `#EXT-X-INDEPENDENT-SEGMENTS`; one variant per planned rung with
//!   its RESOLUTION and FRAME-RATE, CODECS, the audio group when there is
//!   audio; BANDWIDTH and AVERAGE-BANDWIDTH within 10 % of what the segments
//!   measure; variants ordered by bandwidth; an I-frame playlist per rung.
//! - Media: VOD, `#EXT-X-ENDLIST`, TARGETDURATION the longest segment
//!   rounded up, every segment present, every video segment opening on a
//!   keyframe, segment boundaries at the same times in every rung, each
//!   stream as long as the source.
//! - Encryption: asked for, every segment is under AES-128 and the key is
//!   private; not asked for, nothing is encrypted.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use hlsmux_protocol::RungSummary;
use m3u8_rs::{MasterPlaylist, MediaPlaylist, VariantStream};

use crate::pipeline::JobError;
use crate::pipeline::container;
use crate::pipeline::encode::EncodePlan;
use crate::pipeline::hls::key::{self, KEY_BYTES};
use crate::pipeline::hls::layout::{AUDIO_RENDITION, Layout};
use crate::pipeline::hls::playlist::{fail, read_master, read_media};
use crate::pipeline::hls::rates::{self, Rates, SEGMENT_PREFIX_BYTES, segment_prefix};
use crate::pipeline::hls::rules::{
    AudioRendition, check_alignment, check_encryption, check_media, check_rates,
    check_variant_attributes, invalid,
};
use hlsmux_protocol::SegmentFormat;

/// Blocking (reads every playlist and the start of every segment): call it
/// from a blocking thread.
pub fn verify_output(
    dir: &Path,
    plan: &EncodePlan,
    expected_seconds: f64,
    encrypted: bool,
) -> Result<Vec<RungSummary>, JobError> {
    let key = if encrypted {
        key::check_key_file(dir).map_err(fail)?;
        Some(key::read_key(dir)?)
    } else {
        None
    };
    let layout = plan.layout;
    let master = read_master(&dir.join(layout.master()))?;
    if !master.independent_segments {
        return Err(invalid("master", "no #EXT-X-INDEPENDENT-SEGMENTS"));
    }
    let reader = Reader {
        dir,
        format: layout.format,
        key: key.as_ref(),
        expected_seconds,
        targets: RefCell::new(Vec::new()),
    };
    let audio = match &plan.audio {
        Some(_) => Some(reader.audio_rendition(&master, layout)?),
        None => {
            if !master.alternatives.is_empty() {
                return Err(invalid(
                    "master",
                    "an audio group for a source without audio",
                ));
            }
            None
        }
    };
    let variants: Vec<&VariantStream> = master.variants.iter().filter(|v| !v.is_i_frame).collect();
    if variants.len() != plan.rungs.len() {
        return Err(invalid(
            "master",
            &format!(
                "lists {} variants, {} were planned",
                variants.len(),
                plan.rungs.len()
            ),
        ));
    }
    if variants
        .windows(2)
        .any(|pair| pair[0].bandwidth > pair[1].bandwidth)
    {
        return Err(invalid("master", "variants are not ordered by BANDWIDTH"));
    }
    let mut boundaries: Vec<(String, Vec<f64>, f64)> = Vec::new();
    let mut summaries = Vec::with_capacity(plan.rungs.len());
    for rung in &plan.rungs {
        let uri = layout.media_playlist(&rung.name());
        let variant = variants
            .iter()
            .find(|v| v.uri == uri)
            .ok_or_else(|| invalid("master", &format!("no variant {uri} for a planned rung")))?;
        check_variant_attributes(variant, rung, audio.as_ref())?;
        let stream = reader.stream(&uri)?;
        reader.check_keyframes(&stream)?;
        let audio_rates = audio.as_ref().map_or(Rates::default(), |a| a.rates);
        check_rates(&uri, variant, stream.rates + audio_rates)?;
        reader.check_i_frames(&master, &layout.i_frame_playlist(&rung.name()), &stream)?;
        boundaries.push((
            uri.clone(),
            stream.boundaries(),
            1.0 / rung.frame_rate.as_f64(),
        ));
        summaries.push(RungSummary {
            width: rung.width,
            height: rung.height,
            video_bitrate: u64::from(rung.video_kbps) * 1000,
            playlist: uri,
        });
    }
    check_alignment(&boundaries)?;
    check_one_target_duration(&reader.targets.into_inner())?;
    Ok(summaries)
}

/// Apple's HLS Authoring Specification: every media playlist of a
/// presentation (I-frame playlists too) has the same TARGETDURATION.
fn check_one_target_duration(targets: &[(String, u64)]) -> Result<(), JobError> {
    let Some((_, first)) = targets.first() else {
        return Ok(());
    };
    if targets.iter().all(|(_, target)| target == first) {
        return Ok(());
    }
    let listed: Vec<String> = targets
        .iter()
        .map(|(uri, target)| format!("{uri} {target}"))
        .collect();
    Err(invalid(
        "presentation",
        &format!(
            "media playlists differ in TARGETDURATION ({})",
            listed.join(", ")
        ),
    ))
}

/// One media playlist, read and measured.
struct Stream {
    uri: String,
    dir: PathBuf,
    media: MediaPlaylist,
    rates: Rates,
}

impl Stream {
    /// Where each segment ends, in seconds from the start.
    fn boundaries(&self) -> Vec<f64> {
        self.media
            .segments
            .iter()
            .scan(0.0, |end, segment| {
                *end += f64::from(segment.duration);
                Some(*end)
            })
            .collect()
    }
}

struct Reader<'a> {
    dir: &'a Path,
    format: SegmentFormat,
    key: Option<&'a [u8; KEY_BYTES]>,
    expected_seconds: f64,
    /// Every media playlist's TARGETDURATION read so far.
    targets: RefCell<Vec<(String, u64)>>,
}

impl Reader<'_> {
    /// Reads and checks the media playlist at `uri`.
    fn stream(&self, uri: &str) -> Result<Stream, JobError> {
        let path = self.dir.join(uri);
        let media = read_media(&path)?;
        self.targets
            .borrow_mut()
            .push((uri.to_owned(), media.target_duration));
        let dir = path.parent().unwrap_or(self.dir).to_owned();
        let sizes = check_media(uri, &media, &dir, self.expected_seconds)?;
        check_encryption(uri, &media, self.key.is_some())?;
        let rates = rates::measure_playlist(&media, &sizes);
        Ok(Stream {
            uri: uri.to_owned(),
            dir,
            media,
            rates,
        })
    }

    fn audio_rendition(
        &self,
        master: &MasterPlaylist,
        layout: Layout,
    ) -> Result<AudioRendition, JobError> {
        let uri = layout.media_playlist(AUDIO_RENDITION);
        let rendition = master
            .alternatives
            .iter()
            .find(|a| a.uri.as_deref() == Some(uri.as_str()))
            .ok_or_else(|| invalid("master", &format!("no audio rendition {uri}")))?;
        if !rendition.default || !rendition.autoselect {
            return Err(invalid(
                "master",
                "the audio rendition is not DEFAULT and AUTOSELECT",
            ));
        }
        if rendition.language.as_deref().is_none_or(str::is_empty) {
            return Err(invalid("master", "the audio rendition has no LANGUAGE"));
        }
        let stream = self.stream(&uri)?;
        Ok(AudioRendition {
            rates: stream.rates,
        })
    }

    /// The first bytes of `segment`, decrypted when the output is.
    fn opening(&self, dir: &Path, segment: &m3u8_rs::MediaSegment) -> Result<Vec<u8>, JobError> {
        // The first picture's first bytes say whether it is a keyframe.
        let prefix = segment_prefix(&dir.join(&segment.uri), SEGMENT_PREFIX_BYTES)?;
        let plain = match (self.key, segment.key.as_ref()) {
            (Some(key), Some(attribute)) => {
                key::decrypt_prefix(key, attribute, &prefix).map_err(|error| {
                    fail(format!("segment {} does not decrypt: {error}", segment.uri))
                })?
            }
            _ => prefix,
        };
        Ok(plain)
    }

    fn check_keyframes(&self, stream: &Stream) -> Result<(), JobError> {
        for segment in &stream.media.segments {
            let opening = self.opening(&stream.dir, segment)?;
            let facts = container::read(self.format, None, &opening).map_err(|error| {
                invalid(&stream.uri, &format!("segment {} {error}", segment.uri))
            })?;
            if !facts.starts_with_keyframe {
                return Err(invalid(
                    &stream.uri,
                    &format!("segment {} does not open on a keyframe", segment.uri),
                ));
            }
        }
        Ok(())
    }

    fn check_i_frames(
        &self,
        master: &MasterPlaylist,
        uri: &str,
        stream: &Stream,
    ) -> Result<(), JobError> {
        if !master.variants.iter().any(|v| v.is_i_frame && v.uri == uri) {
            return Err(invalid("master", &format!("no I-frame stream {uri}")));
        }
        let media = read_media(&self.dir.join(uri))?;
        self.targets
            .borrow_mut()
            .push((uri.to_owned(), media.target_duration));
        if !media.i_frames_only || media.segments.len() != stream.media.segments.len() {
            return Err(invalid(
                uri,
                "is not an I-frames-only playlist with one entry per segment",
            ));
        }
        for segment in &media.segments {
            let size = std::fs::metadata(stream.dir.join(&segment.uri))
                .map(|m| m.len())
                .unwrap_or(0);
            let fits = segment
                .byte_range
                .as_ref()
                .is_some_and(|r| r.length > 0 && r.offset.unwrap_or(0) + r.length <= size);
            if !fits {
                return Err(invalid(
                    uri,
                    &format!("the byte range into {} is not inside it", segment.uri),
                ));
            }
        }
        check_encryption(uri, &media, self.key.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_media_playlist_must_share_one_target_duration() {
        let same = [
            ("a/index.m3u8".to_owned(), 5),
            ("audio/index.m3u8".to_owned(), 5),
        ];
        assert!(check_one_target_duration(&same).is_ok());
        let differ = [
            ("a/index.m3u8".to_owned(), 5),
            ("audio/index.m3u8".to_owned(), 6),
        ];
        let error = check_one_target_duration(&differ).expect_err("differ");
        assert!(error.to_string().contains("audio/index.m3u8 6"), "{error}");
    }

    #[test]
    fn rungs_whose_segments_end_apart_are_refused() {
        let aligned = [
            ("a".to_owned(), vec![2.0, 4.0, 5.0], 0.04),
            ("b".to_owned(), vec![2.0, 4.033, 5.0], 1.0 / 30.0),
        ];
        check_alignment(&aligned).expect("within a frame");
        let apart = [
            ("a".to_owned(), vec![2.0, 4.0, 5.0], 0.04),
            ("b".to_owned(), vec![2.5, 4.0, 5.0], 0.04),
        ];
        let error = check_alignment(&apart).expect_err("half a second apart");
        assert!(matches!(error, JobError::OutputInvalid(_)), "{error}");
    }

    #[test]
    fn declared_rates_must_be_within_ten_percent_of_the_measured_ones() {
        let variant = VariantStream {
            uri: "a/index.m3u8".into(),
            bandwidth: 1_000_000,
            average_bandwidth: Some(800_000),
            ..VariantStream::default()
        };
        let measured = Rates {
            peak: 950_000,
            average: 760_000,
        };
        check_rates("a", &variant, measured).expect("close enough");
        let error = check_rates(
            "a",
            &variant,
            Rates {
                peak: 1_300_000,
                average: 760_000,
            },
        )
        .expect_err("peak 30 % over");
        assert!(
            error.to_string().contains("BANDWIDTH is 1000000"),
            "{error}"
        );
    }

    #[test]
    fn a_playlist_must_be_vod_finished_and_its_target_no_less_than_its_longest_segment_rounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("s0.ts"), b"ts").expect("segment");
        let playlist = |target: u64, end: &str, kind: &str| {
            let text = format!(
                "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:{target}\n{kind}#EXTINF:2.020000,\ns0.ts\n{end}"
            );
            m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("parses")
        };
        let vod = "#EXT-X-PLAYLIST-TYPE:VOD\n";
        let end = "#EXT-X-ENDLIST\n";
        check_media("a", &playlist(2, end, vod), dir.path(), 2.0).expect("conforms");
        for (broken, rule) in [
            (playlist(1, end, vod), "TARGETDURATION is 1"),
            (playlist(2, "", vod), "ENDLIST"),
            (playlist(2, end, ""), "not VOD"),
        ] {
            let error = check_media("a", &broken, dir.path(), 2.0).expect_err(rule);
            assert!(matches!(error, JobError::OutputInvalid(_)), "{error}");
            assert!(error.to_string().contains(rule), "{error}");
        }
        let error = check_media("a", &playlist(2, end, vod), dir.path(), 6.0).expect_err("short");
        assert!(error.to_string().contains("lasts 2.02 s"), "{error}");
    }
}
