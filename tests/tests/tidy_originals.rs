//! A finished job's original moves into `originals/` after the configured
//! delay, kept by the broker across worker restarts; an input whose output
//! is not complete is never moved.

use std::path::Path;
use std::time::{Duration, Instant};

use hlsmux_protocol::{JobId, MuxerId, RelativePath, TidyRequest};
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
