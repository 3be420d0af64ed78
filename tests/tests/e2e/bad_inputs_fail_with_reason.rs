//! Every bad input ends in a `failed` event with its own reason code, is
//! dead-lettered rather than dropped, and leaves the worker running.

use hlsmux_protocol::{FailureReason, JobId, JobRequest, JobState, MuxerId, RelativePath};
use hlsmux_tests::media::{Clip, audio_only};
use hlsmux_tests::{PATIENCE, TestEnv};

fn reason_of(state: &JobState) -> Option<FailureReason> {
    match state {
        JobState::Failed { reason, .. } => Some(*reason),
        _ => None,
    }
}

#[tokio::test]
async fn bad_inputs_each_fail_with_their_reason_and_the_worker_stays_up() {
    let test = TestEnv::new("bad-inputs").await;
    let mut worker = test.worker(1).await;
    let mut events = test.pool.events().await;
    let media = test.media_root();
    std::fs::write(media.join("empty.mp4"), b"").expect("empty file");
    std::fs::write(
        media.join("notes.mp4"),
        b"this is a text file, not a video\n",
    )
    .expect("text file");
    audio_only(&media.join("song.m4a")).await;

    // Through the CLI, as a person would submit them.
    for (file, reason) in [
        ("empty.mp4", "input_unreadable"),
        ("notes.mp4", "probe_failed"),
        ("song.m4a", "no_video_stream"),
    ] {
        let path = media.join(file);
        let run = test
            .cli(&[
                "submit",
                path.to_str().expect("utf-8"),
                "--muxer",
                "1",
                "--wait",
                // The workers' checks are under test, not the CLI's.
                "--no-probe",
            ])
            .await;
        assert_eq!(run.code, Some(1), "{file}: {run:#?}");
        assert!(
            run.stderr.contains(&format!("failed ({reason})")),
            "{file}: {}",
            run.stderr
        );
    }

    // A path that does not exist can only arrive by message (the CLI
    // refuses it first), so publish one directly.
    let missing = JobRequest::new(
        MuxerId::new(1).expect("valid"),
        RelativePath::parse("gone/away.mp4").expect("valid"),
        RelativePath::parse("gone/away.mp4.hls").expect("valid"),
    );
    test.pool.publish_job(&missing).await;
    let failed = events.final_event(missing.job_id, PATIENCE).await;
    assert_eq!(
        reason_of(&failed.state),
        Some(FailureReason::InputMissing),
        "{failed:#?}"
    );

    // The failed jobs were dead-lettered, not dropped.
    assert_eq!(test.pool.wait_for_dead_letters(4, PATIENCE).await, 4);
    // Nothing was published for them.
    assert_eq!(test.outputs(), Vec::<String>::new());

    // And the worker still takes good work.
    assert!(worker.is_running());
    Clip::default().write(&media.join("good.mp4")).await;
    let run = test
        .cli(&[
            "submit",
            media.join("good.mp4").to_str().expect("utf-8"),
            "--muxer",
            "1",
            "--wait",
        ])
        .await;
    assert_eq!(run.code, Some(0), "{run:#?}");
}

#[tokio::test]
async fn malformed_messages_are_dead_lettered_with_a_bad_message_event() {
    let test = TestEnv::new("bad-messages").await;
    let mut worker = test.worker(1).await;
    let mut events = test.pool.events().await;
    let muxer = MuxerId::new(1).expect("valid");

    let not_json = JobId::generate();
    test.pool
        .publish_raw(muxer, b"{this is not json", Some(not_json))
        .await;
    let wrong_schema = JobId::generate();
    let body = format!(r#"{{"schema": 1, "job_id": "{wrong_schema}", "input": 42}}"#);
    test.pool.publish_raw(muxer, body.as_bytes(), None).await;
    let escaping = JobRequest::new(
        muxer,
        RelativePath::parse("x.mp4").expect("valid"),
        RelativePath::parse("x.hls").expect("valid"),
    );
    let mut value = serde_json::to_value(&escaping).expect("serialises");
    value["input"] = "../../etc/passwd".into();
    test.pool
        .publish_raw(
            muxer,
            &serde_json::to_vec(&value).expect("bytes"),
            Some(escaping.job_id),
        )
        .await;
    // No job ID anywhere: nothing to report against, still dead-lettered.
    test.pool.publish_raw(muxer, b"\x00\x01garbage", None).await;

    for job in [not_json, wrong_schema, escaping.job_id] {
        let failed = events.final_event(job, PATIENCE).await;
        assert_eq!(
            reason_of(&failed.state),
            Some(FailureReason::BadMessage),
            "{failed:#?}"
        );
    }
    assert_eq!(test.pool.wait_for_dead_letters(4, PATIENCE).await, 4);
    assert!(worker.is_running());
    assert_eq!(test.pool.ready_and_consumers(muxer).await, (0, 1));
}

#[tokio::test]
async fn the_cli_refuses_what_ffprobe_cannot_read_here_before_queueing_it() {
    let test = TestEnv::new("local-probe").await;
    let _worker = test.worker(1).await;
    let media = test.media_root();
    std::fs::write(
        media.join("notes.mp4"),
        b"this is a text file, not a video\n",
    )
    .expect("text file");
    audio_only(&media.join("song.m4a")).await;
    for (file, says) in [
        ("notes.mp4", "ffprobe cannot read it as media"),
        ("song.m4a", "no video stream (ffprobe sees: audio)"),
    ] {
        let path = media.join(file).display().to_string();
        let run = test.cli(&["submit", &path, "--muxer", "1"]).await;
        assert_eq!(run.code, Some(2), "{file}: {run:#?}");
        assert!(run.stderr.contains(says), "{file}: {}", run.stderr);
    }
    assert_eq!(
        test.pool
            .ready_and_consumers(MuxerId::new(1).expect("valid"))
            .await
            .0,
        0,
        "nothing was queued"
    );
}
