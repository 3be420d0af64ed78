//! The drain lock file takes a worker out of service gracefully: the job in
//! hand finishes, queued jobs stay in the queue, and removing the file lets
//! them through.

use std::time::Duration;

use hlsmux_protocol::{JobRequest, JobState, MuxerId, RelativePath};
use hlsmux_tests::media::{Clip, realtime_ffmpeg};
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions};

#[tokio::test]
async fn a_drain_lock_finishes_the_job_in_hand_and_holds_the_rest_until_removed() {
    let test = TestEnv::new("drain-lock").await;
    let worker = test
        .worker_with(
            1,
            WorkerOptions {
                ffmpeg: Some(realtime_ffmpeg(test.path())),
                ..WorkerOptions::default()
            },
        )
        .await;
    Clip {
        seconds: 4,
        ..Clip::default()
    }
    .write(&test.media_root().join("clip.mp4"))
    .await;
    let muxer = MuxerId::new(1).expect("valid");
    let job = |name: &str| {
        JobRequest::new(
            muxer,
            RelativePath::parse("clip.mp4").expect("valid"),
            RelativePath::parse(name).expect("valid"),
        )
    };
    let (in_hand, queued) = (job("in-hand.hls"), job("queued.hls"));
    let mut events = test.pool.events().await;

    test.pool.publish_job(&in_hand).await;
    events.wait_for_encoding(Some(in_hand.job_id)).await;
    let lock = test.work_dir().join("hlsmux.lock");
    std::fs::write(&lock, b"maintenance\n").expect("create drain lock");
    test.pool.publish_job(&queued).await;

    let done = events.final_event(in_hand.job_id, PATIENCE).await;
    assert!(
        matches!(done.state, JobState::Done { .. }),
        "the job in hand finishes: {done:#?}"
    );
    let deadline = std::time::Instant::now() + PATIENCE;
    while test.pool.ready_and_consumers(muxer).await != (1, 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never stopped consuming"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        test.pool.ready_and_consumers(muxer).await,
        (1, 0),
        "the queued job stays ready"
    );
    assert!(
        !events.seen().iter().any(|e| e.job_id == queued.job_id),
        "the queued job was not started while drained"
    );

    std::fs::remove_file(&lock).expect("remove drain lock");
    let done = events.final_event(queued.job_id, PATIENCE).await;
    assert!(matches!(done.state, JobState::Done { .. }), "{done:#?}");
    drop(worker);
}

#[tokio::test]
async fn a_worker_started_with_the_lock_present_takes_nothing_until_it_goes() {
    let test = TestEnv::new("drain-at-start").await;
    let lock = test.work_dir().join("hlsmux.lock");
    std::fs::write(&lock, b"").expect("create drain lock");
    let worker = test
        .worker_with(
            1,
            WorkerOptions {
                expected_consumers: Some(0),
                ..WorkerOptions::default()
            },
        )
        .await;
    let muxer = MuxerId::new(1).expect("valid");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        test.pool.ready_and_consumers(muxer).await,
        (0, 0),
        "no consumer under the lock"
    );
    let clip = Clip::default()
        .write(&test.media_root().join("clip.mp4"))
        .await;
    let run = test.submit_ok(&clip, &["--muxer", "1", "--json"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(test.pool.ready_and_consumers(muxer).await, (1, 0));

    let job_id = run.submitted_job_id();
    let mut events = test.pool.events().await;
    std::fs::remove_file(&lock).expect("remove drain lock");
    let done = events.final_event(job_id, PATIENCE).await;
    assert!(matches!(done.state, JobState::Done { .. }), "{done:#?}");
    drop(worker);
}
