//! The worker picks its encoder by trial: on this machine, with no Pi, GPU
//! or VAAPI device, `auto` must end at libx264; a named encoder that fails
//! its trial stops the worker at start-up with the reason.

use hlsmux_protocol::JobState;
use hlsmux_tests::media::Clip;
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions, hls};

#[tokio::test]
async fn auto_falls_back_to_libx264_here_and_hardware_decoding_falls_back_to_software() {
    let test = TestEnv::new("encoder-auto").await;
    let env = vec![
        ("HLSMUX_ENCODER".to_owned(), "auto".to_owned()),
        ("HLSMUX_HW_DECODE".to_owned(), "1".to_owned()),
    ];
    let _worker = test
        .worker_with(
            1,
            WorkerOptions {
                env,
                ..WorkerOptions::default()
            },
        )
        .await;
    let clip = Clip::default()
        .write(&test.media_root().join("clip.mp4"))
        .await;
    let mut events = test.pool.events().await;
    let run = test.submit_ok(&clip, &["--muxer", "1", "--json"]).await;
    let job_id = run.submitted_job_id();
    let done = events.final_event(job_id, PATIENCE).await;
    let JobState::Done { encoder, .. } = done.state else {
        panic!("job done: {done:#?}");
    };
    assert_eq!(encoder, "libx264");
}

#[tokio::test]
async fn a_named_encoder_that_fails_its_trial_stops_the_worker_with_the_reason() {
    let test = TestEnv::new("encoder-named").await;
    let env = vec![("HLSMUX_ENCODER".to_owned(), "h264_nvenc".to_owned())];
    let failure = test
        .failed_worker(
            1,
            WorkerOptions {
                env,
                ..WorkerOptions::default()
            },
        )
        .await;
    assert_eq!(failure.code, Some(2), "{failure:#?}");
    assert!(
        failure
            .stderr
            .contains("encoder h264_nvenc failed its one-second trial encode"),
        "{}",
        failure.stderr
    );
}

#[tokio::test]
async fn every_segment_starts_with_a_keyframe_and_a_middle_one_decodes_alone() {
    let test = TestEnv::new("segments-alone").await;
    let _worker = test.worker(1).await;
    let clip = Clip {
        seconds: 5,
        ..Clip::default()
    }
    .write(&test.media_root().join("clip.mp4"))
    .await;
    test.submit_ok(&clip, &["--muxer", "1", "--segment-length", "1", "--wait"])
        .await;
    let master = test.output_root().join("clip.mp4.hls/master.m3u8");
    for variant in hls::read_master(&master).variants {
        let dir = master
            .parent()
            .expect("dir")
            .join(&variant.uri)
            .parent()
            .expect("variant dir")
            .to_owned();
        let mut segments: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "ts"))
            .collect();
        segments.sort();
        assert!(
            segments.len() >= 4,
            "1 s segments of a 5 s clip: {segments:?}"
        );
        for segment in &segments {
            assert!(
                hls::starts_with_keyframe(segment).await,
                "{} starts with a keyframe",
                segment.display()
            );
        }
        let middle = &segments[segments.len() / 2];
        hls::decode(middle)
            .await
            .unwrap_or_else(|e| panic!("{} decodes alone: {e}", middle.display()));
    }
}
