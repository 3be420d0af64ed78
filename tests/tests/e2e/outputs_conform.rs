//! Inputs that need care come out as conformant HLS: the conformance
//! checker finds no broken rule, ffmpeg reads every variant back, and
//! hls.js in Chromium plays each and switches rungs.
//! Each kind is generated with ffmpeg: plain H.264 with stereo audio, no
//! audio, two audio tracks in two languages, portrait, a phone clip stored
//! sideways with rotation metadata, odd dimensions, interlaced MPEG-2,
//! variable frame rate, HEVC, 60 fps and a 4K source; and the plain clip
//! again in fMP4 segments.

use hlsmux_protocol::{JobRequest, JobState, MuxerId, RelativePath, SegmentFormat};
use hlsmux_tests::conformance::{Expected, assert_conforms, broken_rules};
use hlsmux_tests::media::{Clip, SourceCodec};
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions, hls, player};

struct Kind {
    file: &'static str,
    clip: Clip,
    format: SegmentFormat,
}

fn kinds() -> Vec<Kind> {
    // 360 lines: two rungs (360p and 234p), so alignment and switching
    // have something to compare.
    // Four seconds of one-second segments: two to play, a switch, and
    // more to play on the other rung.
    let clip = Clip {
        width: 640,
        height: 360,
        seconds: 4,
        ..Clip::default()
    };
    let kind = |file, clip: Clip| Kind {
        file,
        clip,
        format: SegmentFormat::Mpegts,
    };
    vec![
        kind("plain.mp4", clip),
        Kind {
            format: SegmentFormat::Fmp4,
            ..kind("fragmented.mp4", clip)
        },
        kind(
            "silent.mp4",
            Clip {
                audio: false,
                ..clip
            },
        ),
        kind(
            "two-languages.mkv",
            Clip {
                audio_languages: &["eng", "fre"],
                ..clip
            },
        ),
        kind(
            "portrait.mp4",
            Clip {
                width: 360,
                height: 640,
                ..clip
            },
        ),
        kind(
            "sideways.mp4",
            Clip {
                rotation: 90,
                ..clip
            },
        ),
        kind(
            "odd.mp4",
            Clip {
                width: 641,
                height: 361,
                ..clip
            },
        ),
        kind(
            "interlaced.ts",
            Clip {
                width: 720,
                height: 576,
                codec: SourceCodec::InterlacedMpeg2,
                ..clip
            },
        ),
        // A 16:9 picture stored as 720x576 (PAL widescreen): shown, and
        // encoded, 1024 wide.
        kind(
            "anamorphic.mp4",
            Clip {
                width: 720,
                height: 576,
                sample_aspect: Some((64, 45)),
                ..clip
            },
        ),
        kind(
            "variable-rate.mkv",
            Clip {
                variable_frame_rate: true,
                ..clip
            },
        ),
        kind(
            "hevc.mp4",
            Clip {
                codec: SourceCodec::Hevc,
                ..clip
            },
        ),
        kind("sixty.mp4", Clip { fps: 60, ..clip }),
        // The ladder tops out at max_rung_lines (1080): checked below.
        kind(
            "uhd.mp4",
            Clip {
                width: 3840,
                height: 2160,
                fps: 10,
                ..clip
            },
        ),
    ]
}

#[tokio::test]
async fn every_kind_of_input_yields_conformant_hls_that_ffmpeg_and_hls_js_play() {
    let test = TestEnv::new("conform").await;
    let _worker = test
        .worker_with(1, WorkerOptions::setting("HLSMUX_FFMPEG_THREADS", "2"))
        .await;
    let mut events = test.pool.events().await;
    let mut failures = Vec::new();
    let mut masters = Vec::new();
    for kind in kinds() {
        kind.clip.write(&test.media_root().join(kind.file)).await;
        let mut job = JobRequest::new(
            MuxerId::new(1).expect("valid"),
            RelativePath::parse(kind.file).expect("valid"),
            RelativePath::parse(&format!("{}.hls", kind.file)).expect("valid"),
        );
        job.segment_seconds = Some(1);
        job.segment_format = Some(kind.format);
        test.pool.publish_job(&job).await;
        let done = events.final_event(job.job_id, PATIENCE).await;
        let JobState::Done { rungs, .. } = &done.state else {
            failures.push(format!("{}: {:?}", kind.file, done.state));
            continue;
        };
        let dir = job.output.under(&test.output_root());
        let expected = Expected::from(kind.clip);
        let master = dir.join("master.m3u8");
        for rule in broken_rules(&master, expected).await {
            failures.push(format!("{}: {rule}", kind.file));
        }
        masters.push(master);
        if let Err(error) = hls::decode(&dir.join("master.m3u8")).await {
            failures.push(format!(
                "{}: ffmpeg cannot read it back: {error}",
                kind.file
            ));
        }
        if expected.max_lines >= 360 && rungs.len() < 2 {
            failures.push(format!(
                "{}: one rung, nothing to switch to: {rungs:?}",
                kind.file
            ));
        }
        if kind.file == "uhd.mp4" && rungs.iter().any(|r| r.height > 1080) {
            failures.push(format!("uhd.mp4: a rung above 1080p: {rungs:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    match player::missing() {
        Some(reason) => eprintln!("not played in a browser: {reason}"),
        None => {
            // One segment on the new rung: these clips are short.
            player::play(&masters, 1, 1)
                .await
                .unwrap_or_else(|reports| panic!("hls.js did not play every kind: {reports}"));
        }
    }
}

#[tokio::test]
async fn the_audio_track_in_the_configured_language_is_chosen() {
    let test = TestEnv::new("conform-language").await;
    let _worker = test
        .worker_with(1, WorkerOptions::setting("HLSMUX_AUDIO_LANGUAGE", "fre"))
        .await;
    let clip = Clip {
        width: 320,
        height: 180,
        seconds: 2,
        audio_languages: &["eng", "fre"],
        ..Clip::default()
    }
    .write(&test.media_root().join("film.mkv"))
    .await;
    test.submit_ok(&clip, &["--muxer", "1", "--wait"]).await;
    let master = hls::read_master(&test.output_root().join("film.mkv.hls/master.m3u8"));
    let audio = &master.alternatives;
    assert_eq!(audio.len(), 1, "{audio:?}");
    assert_eq!(audio[0].language.as_deref(), Some("fre"));
    // The French track is the 880 Hz tone: its rendition decodes to it.
    let rendition = test.output_root().join("film.mkv.hls/audio/index.m3u8");
    assert_eq!((hls::tone_frequency(&rendition).await / 10.0).round(), 88.0);
}

#[tokio::test]
async fn the_seed_naming_reproduces_the_seeds_flat_layout_and_conforms() {
    let test = TestEnv::new("conform-seed-naming").await;
    let _worker = test.worker(1).await;
    let clip = Clip {
        width: 320,
        height: 180,
        seconds: 2,
        ..Clip::default()
    };
    let path = clip.write(&test.media_root().join("show.mp4")).await;
    let run = test
        .submit_ok(
            &path,
            &["--muxer", "1", "--wait", "--json", "--naming", "seed"],
        )
        .await;
    let done = run.json_lines().pop().expect("done event");
    assert_eq!(done["master_playlist"], "show.mp4.hls/manifest_master.m3u8");

    let dir = test.output_root().join("show.mp4.hls");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("output")
        .map(|entry| {
            let entry = entry.expect("entry");
            assert!(entry.path().is_file(), "flat: {}", entry.path().display());
            entry.file_name().to_string_lossy().into_owned()
        })
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    assert!(
        names.contains(&"manifest_master.m3u8".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"manifest_audio.m3u8".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"media_audio_00000.ts".to_owned()),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("manifest_") || n.starts_with("media_")),
        "{names:?}"
    );
    assert_conforms(&dir.join("manifest_master.m3u8"), Expected::from(clip)).await;
    hls::decode(&dir.join("manifest_master.m3u8"))
        .await
        .expect("ffmpeg reads it back");
}

#[tokio::test]
async fn a_source_without_audio_gets_a_silent_track_only_when_configured() {
    let test = TestEnv::new("conform-silent-audio").await;
    let _worker = test
        .worker_with(1, WorkerOptions::setting("HLSMUX_SILENT_AUDIO", "true"))
        .await;
    let clip = Clip {
        seconds: 3,
        audio: false,
        ..Clip::default()
    };
    let path = clip.write(&test.media_root().join("mute.mp4")).await;
    test.submit_ok(&path, &["--muxer", "1", "--wait", "--segment-length", "1"])
        .await;
    let master = test.output_root().join("mute.mp4.hls/master.m3u8");
    let with_silence = Expected {
        audio: true,
        ..Expected::from(clip)
    };
    assert_conforms(&master, with_silence).await;
    let rendition = test.output_root().join("mute.mp4.hls/audio/index.m3u8");
    assert_eq!(hls::stream_types(&rendition).await, ["audio"]);
    assert_eq!(hls::tone_frequency(&rendition).await, 0.0, "silence");
}

#[tokio::test]
async fn five_second_segments_get_a_keyframe_at_most_every_two_seconds() {
    let test = TestEnv::new("conform-keyframes").await;
    let _worker = test
        .worker_with(1, WorkerOptions::setting("HLSMUX_SEGMENT_SECONDS", "5"))
        .await;
    let source = Clip {
        width: 320,
        height: 180,
        seconds: 6,
        ..Clip::default()
    };
    let clip = source.write(&test.media_root().join("talk.mp4")).await;
    test.submit_ok(&clip, &["--muxer", "1", "--wait"]).await;
    // Keyframes every 5/3 s: the segment boundary at 5 s is the third.
    assert_conforms(
        &test.output_root().join("talk.mp4.hls/master.m3u8"),
        Expected::from(source),
    )
    .await;
}

/// The checker is no rubber stamp: an HLS output cut by plain ffmpeg with
/// a keyframe only every 5 s, pixels 4:3 wide, and audio 200 ms behind
/// the pictures breaks exactly those rules.
#[tokio::test]
async fn the_checker_names_the_timing_rules_plain_ffmpeg_breaks() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path();
    let args: Vec<String> = [
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=25:duration=6",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=6",
        "-filter_complex",
        "[0:v]setsar=4/3[v];[1:a]asetpts=PTS+0.2/TB[a]",
        "-map",
        "[v]",
        "-map",
        "[a]",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-threads",
        "1",
        "-g",
        "125",
        "-sc_threshold",
        "0",
        "-c:a",
        "aac",
        "-f",
        "hls",
        "-hls_time",
        "6",
        "-hls_playlist_type",
        "vod",
        "-var_stream_map",
        "v:0,agroup:audio,name:video a:0,agroup:audio,name:audio",
        "-master_pl_name",
        "master.m3u8",
    ]
    .map(String::from)
    .into_iter()
    .chain([
        "-hls_segment_filename".to_owned(),
        out.join("%v/s%d.ts").display().to_string(),
        out.join("%v/index.m3u8").display().to_string(),
    ])
    .collect();
    hlsmux_tests::media::run_ffmpeg(&args).await;
    let expected = Expected {
        seconds: 6.0,
        audio: true,
        max_lines: 180,
        portrait: false,
        fps: 25.0,
        keyframe_seconds: 2.0,
        display_aspect: 16.0 / 9.0 * 4.0 / 3.0,
    };
    let broken = broken_rules(&out.join("master.m3u8"), expected).await;
    for rule in [
        "keyframes 5.000 s apart",
        "pixels are not square (sample aspect 4:3)",
        "more than a frame apart",
    ] {
        assert!(
            broken.iter().any(|b| b.contains(rule)),
            "the checker missed {rule:?}: {broken:#?}"
        );
    }
}
