//! Verify: before anything is published, check what ffmpeg wrote: the master
//! playlist lists every planned rung, every media playlist is complete, every
//! segment it names exists, each variant lasts as long as the source, and an
//! output that should be encrypted is, under a private key (and one that
//! should not, is not).

use std::path::Path;

use hlsmux_protocol::RungSummary;
use m3u8_rs::{MasterPlaylist, MediaPlaylist};

use super::JobError;
use super::encode::MASTER_PLAYLIST;
use super::encrypt;
use super::ladder::Rung;

/// How far a variant's total duration may stray from the source's.
pub const DURATION_TOLERANCE_SECONDS: f64 = 0.5;

/// Blocking (reads every playlist and stats every segment): call it from a
/// blocking thread.
pub fn verify_output(
    dir: &Path,
    rungs: &[Rung],
    expected_seconds: f64,
    encrypted: bool,
) -> Result<Vec<RungSummary>, JobError> {
    if encrypted {
        encrypt::check_key_file(dir).map_err(fail)?;
    }
    let master = read_master(&dir.join(MASTER_PLAYLIST))?;
    let variants: Vec<_> = master.variants.iter().filter(|v| !v.is_i_frame).collect();
    if variants.len() != rungs.len() {
        return Err(fail(format!(
            "master playlist lists {} variants, {} were planned",
            variants.len(),
            rungs.len()
        )));
    }
    let mut summaries = Vec::with_capacity(rungs.len());
    for (variant, rung) in variants.into_iter().zip(rungs) {
        let resolution = variant.resolution.map(|r| (r.width, r.height));
        if resolution != Some((u64::from(rung.width), u64::from(rung.height))) {
            return Err(fail(format!(
                "variant {} has resolution {resolution:?}, {}x{} was planned",
                variant.uri, rung.width, rung.height
            )));
        }
        if variant.bandwidth == 0 {
            return Err(fail(format!("variant {} has no BANDWIDTH", variant.uri)));
        }
        let playlist_path = dir.join(&variant.uri);
        let media = read_media(&playlist_path)?;
        let variant_dir = playlist_path.parent().unwrap_or(dir);
        check_media(&variant.uri, &media, variant_dir, expected_seconds)?;
        check_encryption(&variant.uri, &media, encrypted)?;
        summaries.push(RungSummary {
            width: rung.width,
            height: rung.height,
            video_bitrate: u64::from(rung.video_kbps) * 1000,
            playlist: variant.uri.clone(),
        });
    }
    Ok(summaries)
}

fn check_media(
    name: &str,
    media: &MediaPlaylist,
    variant_dir: &Path,
    expected_seconds: f64,
) -> Result<(), JobError> {
    if !media.end_list {
        return Err(fail(format!(
            "{name} has no #EXT-X-ENDLIST: it is unfinished"
        )));
    }
    if media.segments.is_empty() {
        return Err(fail(format!("{name} lists no segments")));
    }
    for segment in &media.segments {
        let path = variant_dir.join(&segment.uri);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if size == 0 {
            return Err(fail(format!(
                "{name}: segment {} is missing or empty",
                segment.uri
            )));
        }
    }
    let total: f64 = media.segments.iter().map(|s| f64::from(s.duration)).sum();
    if (total - expected_seconds).abs() > DURATION_TOLERANCE_SECONDS {
        return Err(fail(format!(
            "{name} lasts {total:.2} s, the source {expected_seconds:.2} s"
        )));
    }
    Ok(())
}

fn check_encryption(name: &str, media: &MediaPlaylist, encrypted: bool) -> Result<(), JobError> {
    for segment in &media.segments {
        let method = segment.key.as_ref().map(|key| &key.method);
        let sealed = matches!(method, Some(m3u8_rs::KeyMethod::AES128));
        if encrypted && !sealed {
            return Err(fail(format!(
                "{name}: segment {} is not under an AES-128 key",
                segment.uri
            )));
        }
        if !encrypted && method.is_some_and(|m| *m != m3u8_rs::KeyMethod::None) {
            return Err(fail(format!(
                "{name}: segment {} is encrypted, which was not asked for",
                segment.uri
            )));
        }
    }
    Ok(())
}

pub(super) fn read_master(path: &Path) -> Result<MasterPlaylist, JobError> {
    let bytes = read(path)?;
    m3u8_rs::parse_master_playlist_res(&bytes)
        .map_err(|_| fail(format!("{} is not a valid master playlist", path.display())))
}

pub(super) fn read_media(path: &Path) -> Result<MediaPlaylist, JobError> {
    let bytes = read(path)?;
    m3u8_rs::parse_media_playlist_res(&bytes)
        .map_err(|_| fail(format!("{} is not a valid media playlist", path.display())))
}

pub(super) fn read(path: &Path) -> Result<Vec<u8>, JobError> {
    std::fs::read(path).map_err(|error| fail(format!("cannot read {}: {error}", path.display())))
}

pub(super) fn fail(detail: String) -> JobError {
    JobError::VerifyFailed(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNGS: [Rung; 2] = [
        Rung {
            width: 640,
            height: 360,
            video_kbps: 800,
        },
        Rung {
            width: 426,
            height: 240,
            video_kbps: 400,
        },
    ];

    /// Writes a two-variant output like ffmpeg's, each variant `segments`
    /// segments of 2 s.
    fn write_output(dir: &Path, segments: usize) {
        std::fs::write(
            dir.join(MASTER_PLAYLIST),
            "#EXTM3U\n#EXT-X-VERSION:6\n\
             #EXT-X-STREAM-INF:BANDWIDTH=1020800,RESOLUTION=640x360\na/index.m3u8\n\n\
             #EXT-X-STREAM-INF:BANDWIDTH=580800,RESOLUTION=426x240\nb/index.m3u8\n",
        )
        .expect("write master");
        for variant in ["a", "b"] {
            let variant_dir = dir.join(variant);
            std::fs::create_dir_all(&variant_dir).expect("mkdir");
            let mut playlist = String::from(
                "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n",
            );
            for index in 0..segments {
                playlist.push_str(&format!("#EXTINF:2.000000,\nsegment_{index}.ts\n"));
                std::fs::write(variant_dir.join(format!("segment_{index}.ts")), b"ts")
                    .expect("write");
            }
            playlist.push_str("#EXT-X-ENDLIST\n");
            std::fs::write(variant_dir.join("index.m3u8"), playlist).expect("write playlist");
        }
    }

    #[test]
    fn a_complete_output_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_output(dir.path(), 2);
        let summaries = verify_output(dir.path(), &RUNGS, 4.2, false).expect("verifies");
        assert_eq!(summaries[1].playlist, "b/index.m3u8");
        assert_eq!(summaries[1].video_bitrate, 400_000);
    }

    #[test]
    fn a_missing_segment_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_output(dir.path(), 2);
        std::fs::remove_file(dir.path().join("b/segment_1.ts")).expect("remove");
        let error = verify_output(dir.path(), &RUNGS, 4.0, false).expect_err("missing segment");
        assert!(error.to_string().contains("segment_1.ts"), "{error}");
    }

    #[test]
    fn a_short_output_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_output(dir.path(), 2);
        let error = verify_output(dir.path(), &RUNGS, 6.0, false).expect_err("too short");
        assert!(error.to_string().contains("lasts 4.00 s"), "{error}");
    }

    #[test]
    fn an_unfinished_playlist_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_output(dir.path(), 1);
        let path = dir.path().join("a/index.m3u8");
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replace("#EXT-X-ENDLIST\n", "")).expect("write");
        let error = verify_output(dir.path(), &RUNGS, 2.0, false).expect_err("unfinished");
        assert!(error.to_string().contains("ENDLIST"), "{error}");
    }

    #[test]
    fn encryption_is_checked_both_ways() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_output(dir.path(), 2);
        let error = verify_output(dir.path(), &RUNGS, 4.0, true).expect_err("no key");
        assert!(error.to_string().contains("encryption.key"), "{error}");
        encrypt::encrypt_output(dir.path(), "a.hls", "").expect("encrypts");
        verify_output(dir.path(), &RUNGS, 4.0, true).expect("encrypted as asked");
        let error = verify_output(dir.path(), &RUNGS, 4.0, false).expect_err("not asked");
        assert!(error.to_string().contains("not asked for"), "{error}");
    }

    #[test]
    fn a_missing_rung_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_output(dir.path(), 1);
        let three = [
            RUNGS[0],
            RUNGS[1],
            Rung {
                width: 320,
                height: 180,
                video_kbps: 200,
            },
        ];
        let error = verify_output(dir.path(), &three, 2.0, false).expect_err("rung missing");
        assert!(error.to_string().contains("3 were planned"), "{error}");
    }
}
