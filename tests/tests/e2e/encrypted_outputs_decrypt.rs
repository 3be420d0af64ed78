//! `hlsmux submit --encrypt`: every segment of every variant is AES-128
//! encrypted under a fresh private key, each with its own IV, and decrypts
//! back to the whole video; the workers' default and key URI prefix apply
//! when the job does not say otherwise.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hlsmux_tests::media::Clip;
use hlsmux_tests::{TestEnv, WorkerOptions, conformance, hls};

const CLIP_SECONDS: u32 = 4;
const CLIP_FPS: u64 = 25;

/// Every `#EXT-X-KEY` line of every media playlist (variants and the audio
/// rendition) of the output whose master playlist is `master`.
fn key_lines(master: &Path) -> Vec<String> {
    let dir = master.parent().expect("output dir");
    hls::media_playlists(master)
        .into_iter()
        .flat_map(|uri| {
            let text = std::fs::read_to_string(dir.join(uri)).expect("media playlist");
            text.lines()
                .filter(|line| line.starts_with("#EXT-X-KEY"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether `segment` reads as plain MPEG-TS: a sync byte every 188 bytes.
fn is_plain_transport_stream(segment: &Path) -> bool {
    let bytes = std::fs::read(segment).expect("segment");
    bytes.len() >= 188 * 4 && (0..4).all(|packet| bytes[packet * 188] == 0x47)
}

fn segments(master: &Path) -> Vec<std::path::PathBuf> {
    let dir = master.parent().expect("output dir");
    hls::media_playlists(master)
        .into_iter()
        .flat_map(|uri| {
            let playlist = dir.join(uri);
            let bytes = std::fs::read(&playlist).expect("media playlist");
            let media = m3u8_rs::parse_media_playlist_res(&bytes).expect("parses");
            let variant_dir = playlist.parent().expect("variant dir").to_owned();
            media
                .segments
                .into_iter()
                .map(move |segment| variant_dir.join(segment.uri))
        })
        .collect()
}

#[tokio::test]
async fn an_encrypted_output_has_a_private_key_an_iv_per_segment_and_decodes_whole() {
    let test = TestEnv::new("encrypt").await;
    let _worker = test.worker(1).await;
    let clip_settings = Clip {
        seconds: CLIP_SECONDS,
        ..Clip::default()
    };
    let clip = clip_settings
        .write(&test.media_root().join("secret.mp4"))
        .await;
    let run = test
        .submit_ok(
            &clip,
            &[
                "--muxer",
                "1",
                "--encrypt",
                "--segment-length",
                "1",
                "--wait",
            ],
        )
        .await;
    assert!(
        run.stderr
            .contains("encrypted (AES-128); its key is secret.mp4.hls/encryption.key"),
        "{run:#?}"
    );

    let output = test.output_root().join("secret.mp4.hls");
    let key = output.join("encryption.key");
    assert_eq!(std::fs::read(&key).expect("key").len(), 16);
    let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only the worker's user reads the key");

    let master = output.join("master.m3u8");
    let lines = key_lines(&master);
    let segments = segments(&master);
    assert!(segments.len() >= 2 * CLIP_SECONDS as usize, "{segments:?}");
    assert_eq!(lines.len(), segments.len(), "one key line per segment");
    let mut ivs: Vec<&str> = lines
        .iter()
        .map(|line| {
            assert!(
                line.starts_with("#EXT-X-KEY:METHOD=AES-128,URI=\"../encryption.key\",IV=0x"),
                "{line}"
            );
            line.rsplit("IV=").next().expect("iv")
        })
        .collect();
    ivs.sort_unstable();
    ivs.dedup();
    assert_eq!(ivs.len(), segments.len(), "no IV used twice under the key");
    for segment in &segments {
        assert!(!is_plain_transport_stream(segment), "{}", segment.display());
    }

    hls::decode(&master)
        .await
        .expect("every variant decrypts and decodes cleanly");
    for variant in &hls::read_master(&master).variants {
        let frames = hls::video_frames(&output.join(&variant.uri)).await;
        if variant.is_i_frame {
            // One keyframe per one-second segment, each a byte range of an
            // encrypted segment that decrypts on its own.
            assert_eq!(frames, u64::from(CLIP_SECONDS), "{}", variant.uri);
        } else {
            assert_eq!(
                frames,
                u64::from(CLIP_SECONDS) * CLIP_FPS,
                "{} decrypts to the whole video",
                variant.uri
            );
        }
    }
    conformance::assert_conforms(&master, clip_settings.into()).await;
}

#[tokio::test]
async fn the_workers_default_and_key_server_prefix_apply_unless_the_job_says_otherwise() {
    let test = TestEnv::new("encrypt-default").await;
    let mut options = WorkerOptions::default();
    options.env.push(("HLSMUX_ENCRYPT".into(), "true".into()));
    options.env.push((
        "HLSMUX_KEY_URI_PREFIX".into(),
        "https://keys.example.com/hls/".into(),
    ));
    let _worker = test.worker_with(1, options).await;
    let clip = Clip::default()
        .write(&test.media_root().join("a.mp4"))
        .await;

    test.submit_ok(&clip, &["--muxer", "1", "--wait", "--name", "default.hls"])
        .await;
    let master = test.output_root().join("default.hls/master.m3u8");
    let lines = key_lines(&master);
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            line.contains("URI=\"https://keys.example.com/hls/default.hls/encryption.key\""),
            "{line}"
        );
    }

    test.submit_ok(
        &clip,
        &[
            "--muxer",
            "1",
            "--wait",
            "--name",
            "plain.hls",
            "--no-encrypt",
        ],
    )
    .await;
    let master = test.output_root().join("plain.hls/master.m3u8");
    assert!(key_lines(&master).is_empty());
    assert!(!master.with_file_name("encryption.key").exists());
    for segment in segments(&master) {
        assert!(is_plain_transport_stream(&segment), "{}", segment.display());
    }
}
