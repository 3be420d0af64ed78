//! A finished job's original moves into `originals/` after the configured
//! delay, kept by the broker across worker restarts; an input whose output
//! is not complete is never moved; a forged tidy request moves nothing
//! (not a file outside the media root through a linked directory, not a
//! directory), and one that can never succeed is dropped, not retried for
//! ever.

use std::path::Path;
use std::time::{Duration, Instant};

use hlsmux_protocol::{JobId, JobRequest, JobState, MuxerId, RelativePath, TidyRequest};
use hlsmux_tests::media::Clip;
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions};

fn tidy_after(seconds: u32) -> WorkerOptions {
    WorkerOptions::setting("HLSMUX_TIDY_DELAY_SECONDS", seconds.to_string())
}

async fn wait_until_exists(path: &Path) {
    let deadline = Instant::now() + PATIENCE;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_original_moves_after_the_delay_even_when_no_worker_was_running_meanwhile() {
    let test = TestEnv::new("tidy-restart").await;
    let worker = test.worker_with(1, tidy_after(3)).await;
    std::fs::create_dir_all(test.media_root().join("shows")).expect("mkdir");
    let clip = Clip::default()
        .write(&test.media_root().join("shows/clip.mp4"))
        .await;
    test.submit_ok(&clip, &["--muxer", "1", "--wait"]).await;
    assert!(clip.exists(), "the original stays during the delay");

    // The worker goes away; the delay runs out in the broker meanwhile.
    worker.stop(PATIENCE).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(clip.exists(), "nobody moved it without a worker");

    let _successor = test.worker_with(1, tidy_after(3)).await;
    let moved = test.media_root().join("originals/shows/clip.mp4");
    wait_until_exists(&moved).await;
    assert!(!clip.exists());
    assert!(
        test.output_root()
            .join("shows/clip.mp4.hls/master.m3u8")
            .exists(),
        "the output stays"
    );
}

#[tokio::test]
async fn an_input_whose_output_is_not_complete_is_never_moved() {
    let test = TestEnv::new("tidy-incomplete").await;
    let _worker = test.worker_with(1, tidy_after(1)).await;
    let muxer = MuxerId::new(1).expect("valid");
    let orphan = Clip::default()
        .write(&test.media_root().join("orphan.mp4"))
        .await;
    let never_made = TidyRequest::new(
        JobId::generate(),
        RelativePath::parse("orphan.mp4").expect("valid"),
        RelativePath::parse("orphan.mp4.hls").expect("valid"),
    );
    test.pool
        .publish_tidy(muxer, &never_made, Duration::ZERO)
        .await;

    // A real job's tidy request queues behind it; once that one is done,
    // the orphan's request has been handled too.
    let clip = Clip::default()
        .write(&test.media_root().join("real.mp4"))
        .await;
    test.submit_ok(&clip, &["--muxer", "1", "--wait"]).await;
    wait_until_exists(&test.media_root().join("originals/real.mp4")).await;
    assert!(orphan.exists(), "no complete output: the original stays");
    assert!(!test.media_root().join("originals/orphan.mp4").exists());
}

#[tokio::test]
async fn forged_tidy_requests_move_nothing_and_a_hopeless_one_is_not_retried_for_ever() {
    let test = TestEnv::new("tidy-forged").await;
    // The worker schedules no tidying of its own (a request waiting its
    // delay at the head of the wait queue would hold the test's behind
    // it); it still handles what arrives. The test sends its own.
    let _worker = test
        .worker_with(1, WorkerOptions::setting("HLSMUX_TIDY_ORIGINALS", "false"))
        .await;
    let mut events = test.pool.events().await;
    let muxer = MuxerId::new(1).expect("valid");
    let media = test.media_root();
    Clip::default().write(&media.join("real.mp4")).await;
    let job = JobRequest::new(
        muxer,
        RelativePath::parse("real.mp4").expect("valid"),
        RelativePath::parse("real.mp4.hls").expect("valid"),
    );
    test.pool.publish_job(&job).await;
    let end = events.final_event(job.job_id, PATIENCE).await;
    assert!(matches!(end.state, JobState::Done { .. }), "{end:#?}");

    // The canary lies outside the media root, reached through a link to
    // its directory; beside it, a directory of the root.
    let canary = test.elsewhere().join("canary.mp4");
    std::fs::write(&canary, b"not yours").expect("canary");
    std::os::unix::fs::symlink(test.elsewhere(), media.join("link")).expect("link");
    std::fs::create_dir_all(media.join("shows")).expect("mkdir");
    let forged = |input: &str| TidyRequest {
        input: RelativePath::parse(input).expect("valid"),
        ..TidyRequest::new(job.job_id, job.input.clone(), job.output.clone())
    };
    for input in ["link/canary.mp4", "shows"] {
        test.pool
            .publish_tidy(muxer, &forged(input), Duration::ZERO)
            .await;
    }
    // The genuine request queues behind them: once it is done, they were
    // handled.
    test.pool
        .publish_tidy(muxer, &forged("real.mp4"), Duration::ZERO)
        .await;
    wait_until_exists(&media.join("originals/real.mp4")).await;
    assert_eq!(
        std::fs::read(&canary).expect("the canary stays"),
        b"not yours"
    );
    assert!(media.join("shows").is_dir(), "the directory stays");
    assert!(!media.join("originals/link").exists());
    assert!(!media.join("originals/shows").exists());

    // A move the tree makes impossible (`originals/sub` is a file) is
    // dropped, not requeued every few seconds for ever.
    std::fs::create_dir_all(media.join("sub")).expect("mkdir");
    Clip::default().write(&media.join("sub/second.mp4")).await;
    std::fs::write(media.join("originals/sub"), b"in the way").expect("file");
    let second = JobRequest::new(
        muxer,
        RelativePath::parse("sub/second.mp4").expect("valid"),
        RelativePath::parse("sub/second.mp4.hls").expect("valid"),
    );
    test.pool.publish_job(&second).await;
    let end = events.final_event(second.job_id, PATIENCE).await;
    assert!(matches!(end.state, JobState::Done { .. }), "{end:#?}");
    let hopeless = TidyRequest::new(second.job_id, second.input.clone(), second.output.clone());
    test.pool
        .publish_tidy(muxer, &hopeless, Duration::ZERO)
        .await;
    let tidy_queue = test.pool.topology().tidy_queue(muxer);
    let deadline = Instant::now() + PATIENCE;
    while test.pool.messages_in(&tidy_queue).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the hopeless request is still being retried"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(media.join("sub/second.mp4").exists(), "the original stays");
}
