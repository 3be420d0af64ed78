//! The rules verify holds a staged output to, one function each, so a
//! broken one names itself in `output_invalid`.

use crate::pipeline::JobError;
use crate::pipeline::hls::playlist::fail;
use crate::pipeline::hls::rates::{self, Rates};
use crate::pipeline::plan::ladder::Rung;
use m3u8_rs::{KeyMethod, MediaPlaylist, VariantStream};
use std::path::Path;

/// How far a variant's total duration may stray from the source's.
pub const DURATION_TOLERANCE_SECONDS: f64 = 0.5;
/// How far a declared BANDWIDTH or AVERAGE-BANDWIDTH may stray from the
/// measured rate.
pub const BANDWIDTH_TOLERANCE: f64 = 0.10;

pub(super) struct AudioRendition {
    pub(super) rates: Rates,
}

pub(super) fn check_variant_attributes(
    variant: &VariantStream,
    rung: &Rung,
    audio: Option<&AudioRendition>,
) -> Result<(), JobError> {
    let name = &variant.uri;
    let resolution = variant.resolution.map(|r| (r.width, r.height));
    if resolution != Some((u64::from(rung.width), u64::from(rung.height))) {
        return Err(invalid(
            name,
            &format!(
                "RESOLUTION is {resolution:?}, {}x{} was planned",
                rung.width, rung.height
            ),
        ));
    }
    let planned_rate = rung.frame_rate.as_f64();
    if variant
        .frame_rate
        .is_none_or(|rate| (rate - planned_rate).abs() > 0.001)
    {
        return Err(invalid(
            name,
            &format!(
                "FRAME-RATE is {:?}, {planned_rate:.3} was planned",
                variant.frame_rate
            ),
        ));
    }
    let codecs = variant.codecs.as_deref().unwrap_or_default();
    let has_video = codecs.split(',').any(|c| c.starts_with("avc1."));
    let has_audio = codecs.split(',').any(|c| c.starts_with("mp4a.40."));
    if !has_video || has_audio != audio.is_some() {
        return Err(invalid(
            name,
            &format!("CODECS is {codecs:?}, which does not name what the variant holds"),
        ));
    }
    if audio.is_some() && variant.audio.is_none() {
        return Err(invalid(name, "names no AUDIO group"));
    }
    Ok(())
}

pub(super) fn check_rates(
    name: &str,
    variant: &VariantStream,
    measured: Rates,
) -> Result<(), JobError> {
    let close = |declared: u64, measured: u64| {
        measured > 0
            && (declared as f64 - measured as f64).abs() <= BANDWIDTH_TOLERANCE * measured as f64
    };
    if !close(variant.bandwidth, measured.peak) {
        return Err(invalid(
            name,
            &format!(
                "BANDWIDTH is {}, the segments peak at {} b/s",
                variant.bandwidth, measured.peak
            ),
        ));
    }
    let average = variant.average_bandwidth.unwrap_or(0);
    if !close(average, measured.average) {
        return Err(invalid(
            name,
            &format!(
                "AVERAGE-BANDWIDTH is {average}, the segments average {} b/s",
                measured.average
            ),
        ));
    }
    Ok(())
}

/// Every rung's segments end at the same times, within one frame of the
/// slower of two rungs: players switch rungs at any boundary.
pub(super) fn check_alignment(rungs: &[(String, Vec<f64>, f64)]) -> Result<(), JobError> {
    let Some((first_name, first, first_frame)) = rungs.first() else {
        return Ok(());
    };
    for (name, ends, frame) in &rungs[1..] {
        let tolerance = first_frame.max(*frame) + 1e-3;
        let aligned = ends.len() == first.len()
            && ends
                .iter()
                .zip(first)
                .all(|(a, b)| (a - b).abs() <= tolerance);
        if !aligned {
            return Err(invalid(
                name,
                &format!("its segments do not end at the same times as {first_name}'s"),
            ));
        }
    }
    Ok(())
}

/// Checks a media playlist's own rules; returns its segments' sizes.
pub(super) fn check_media(
    name: &str,
    media: &MediaPlaylist,
    dir: &Path,
    expected_seconds: f64,
) -> Result<Vec<u64>, JobError> {
    if !media.end_list {
        return Err(invalid(name, "no #EXT-X-ENDLIST: it is unfinished"));
    }
    if media.playlist_type != Some(m3u8_rs::MediaPlaylistType::Vod) {
        return Err(invalid(name, "#EXT-X-PLAYLIST-TYPE is not VOD"));
    }
    if media.segments.is_empty() {
        return Err(fail(format!("{name} lists no segments")));
    }
    let target = rates::target_duration(media);
    if media.target_duration < target {
        return Err(invalid(
            name,
            &format!(
                "#EXT-X-TARGETDURATION is {}, less than its longest segment rounded, {target}",
                media.target_duration
            ),
        ));
    }
    check_no_sliver(name, media)?;
    if let Some(map) = media.segments.first().and_then(|s| s.map.as_ref()) {
        let size = std::fs::metadata(dir.join(&map.uri))
            .map(|m| m.len())
            .unwrap_or(0);
        if size == 0 {
            return Err(fail(format!(
                "{name}: initialization section {} is missing or empty",
                map.uri
            )));
        }
    }
    let mut sizes = Vec::with_capacity(media.segments.len());
    for segment in &media.segments {
        let size = std::fs::metadata(dir.join(&segment.uri))
            .map(|m| m.len())
            .unwrap_or(0);
        if size == 0 {
            return Err(fail(format!(
                "{name}: segment {} is missing or empty",
                segment.uri
            )));
        }
        sizes.push(size);
    }
    let total: f64 = media.segments.iter().map(|s| f64::from(s.duration)).sum();
    if (total - expected_seconds).abs() > DURATION_TOLERANCE_SECONDS {
        return Err(invalid(
            name,
            &format!("lasts {total:.2} s, the source {expected_seconds:.2} s"),
        ));
    }
    Ok(sizes)
}

/// No segment but the last is shorter than a tenth of the target
/// duration: a sliver costs a player a request and a switch point for
/// nothing (the last one ends where the source does, which the total
/// duration check holds it to).
fn check_no_sliver(name: &str, media: &MediaPlaylist) -> Result<(), JobError> {
    let least = media.target_duration as f64 / 10.0;
    let before_last = media.segments.len().saturating_sub(1);
    match media.segments[..before_last]
        .iter()
        .find(|segment| f64::from(segment.duration) < least)
    {
        Some(sliver) => Err(invalid(
            name,
            &format!(
                "segment {} lasts {:.3} s, under a tenth of the target duration {} s",
                sliver.uri, sliver.duration, media.target_duration
            ),
        )),
        None => Ok(()),
    }
}

pub(super) fn check_encryption(
    name: &str,
    media: &MediaPlaylist,
    encrypted: bool,
) -> Result<(), JobError> {
    for segment in &media.segments {
        let method = segment.key.as_ref().map(|key| &key.method);
        let sealed = matches!(method, Some(KeyMethod::AES128));
        if encrypted && !sealed {
            return Err(fail(format!(
                "{name}: segment {} is not under an AES-128 key",
                segment.uri
            )));
        }
        if !encrypted && method.is_some_and(|m| *m != KeyMethod::None) {
            return Err(fail(format!(
                "{name}: segment {} is encrypted, which was not asked for",
                segment.uri
            )));
        }
    }
    Ok(())
}

/// A rule of the output broken, in `name` (a playlist).
pub(super) fn invalid(name: &str, rule: &str) -> JobError {
    JobError::OutputInvalid(format!("{name}: {rule}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use m3u8_rs::MediaSegment;

    fn playlist(durations: &[f32]) -> MediaPlaylist {
        MediaPlaylist {
            target_duration: 2,
            segments: durations
                .iter()
                .enumerate()
                .map(|(index, duration)| MediaSegment {
                    uri: format!("s{index}.ts"),
                    duration: *duration,
                    ..MediaSegment::default()
                })
                .collect(),
            ..MediaPlaylist::default()
        }
    }

    #[test]
    fn a_sliver_is_refused_except_at_the_very_end() {
        assert!(check_no_sliver("a", &playlist(&[2.0, 2.0, 0.1])).is_ok());
        let error = check_no_sliver("a", &playlist(&[2.0, 0.1, 2.0]))
            .expect_err("a sliver mid-playlist")
            .to_string();
        assert!(
            error.contains("s1.ts") && error.contains("a tenth"),
            "{error}"
        );
    }
}
