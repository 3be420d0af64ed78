//! Stopping a worker (SIGTERM, as systemd does) mid-encode gives its job
//! back to the queue, leaves nothing half-written, and another worker of the
//! same muxer finishes it.

use std::time::Duration;

use hlsmux_protocol::{JobState, MuxerId};
use hlsmux_tests::media::Clip;
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions, hls};

#[tokio::test]
async fn sigterm_mid_encode_requeues_the_job_and_another_worker_finishes_it() {
    let test = TestEnv::new("sigterm").await;
    let slow = WorkerOptions::realtime(&test);
    let stopping = test.worker_with(1, slow).await;
    let clip = Clip {
        seconds: 8,
        ..Clip::default()
    }
    .write(&test.media_root().join("long.mp4"))
    .await;
    let mut events = test.pool.events().await;
    let run = test.submit_ok(&clip, &["--muxer", "1", "--json"]).await;
    let job_id = run.submitted_job_id();
    events.wait_for_encoding(Some(job_id)).await;

    let status = stopping.stop(Duration::from_secs(20)).await;
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let muxer = MuxerId::new(1).expect("valid");
    assert_eq!(
        test.pool.ready_and_consumers(muxer).await,
        (1, 0),
        "the job is back in the queue"
    );
    assert!(
        hls::staging_leftovers(&test.output_root()).is_empty(),
        "staging removed"
    );
    assert!(
        !test.output_root().join("incoming").exists()
            && !test.output_root().join("long.mp4.hls").exists()
    );
    assert!(
        !events
            .seen()
            .iter()
            .any(|e| e.job_id == job_id && e.state.is_final()),
        "an interrupted job is neither done nor failed"
    );

    let _successor = test.worker(1).await;
    let done = events.final_event(job_id, PATIENCE).await;
    let JobState::Done { reused, .. } = done.state else {
        panic!("the successor finishes the job: {done:#?}");
    };
    assert!(!reused);
    let restarted = events
        .seen()
        .iter()
        .filter(|e| e.job_id == job_id)
        .any(|e| {
            matches!(
                e.state,
                JobState::Started {
                    redelivered: true,
                    ..
                }
            )
        });
    assert!(restarted, "the successor sees it as a redelivery");
    hls::decode(&test.output_root().join("long.mp4.hls/master.m3u8"))
        .await
        .expect("decodes");
}

#[tokio::test]
async fn sigterm_lets_a_job_finish_within_the_grace_period_and_takes_no_other() {
    let test = TestEnv::new("sigterm-grace").await;
    let stopping = test
        .worker_with(
            1,
            WorkerOptions {
                env: vec![("HLSMUX_SHUTDOWN_GRACE_SECONDS".into(), "30".into())],
                ..WorkerOptions::realtime(&test)
            },
        )
        .await;
    let clip = Clip {
        seconds: 4,
        ..Clip::default()
    }
    .write(&test.media_root().join("short.mp4"))
    .await;
    let mut events = test.pool.events().await;
    let first = test
        .submit_ok(&clip, &["--muxer", "1", "--json", "--name", "first.hls"])
        .await
        .submitted_job_id();
    let second = test
        .submit_ok(&clip, &["--muxer", "1", "--json", "--name", "second.hls"])
        .await
        .submitted_job_id();
    events.wait_for_encoding(Some(first)).await;

    let status = stopping.stop(Duration::from_secs(30)).await;
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    events.drain(Duration::from_secs(1)).await;
    let ends: Vec<_> = events
        .seen()
        .iter()
        .filter(|e| e.state.is_final())
        .collect();
    assert_eq!(ends.len(), 1, "{ends:#?}");
    assert_eq!(ends[0].job_id, first);
    assert!(
        matches!(ends[0].state, JobState::Done { .. }),
        "the job in hand finished within the grace period: {:#?}",
        ends[0]
    );
    assert!(
        events.seen().iter().all(|e| e.job_id != second),
        "the queued job was not started"
    );
    let muxer = MuxerId::new(1).expect("valid");
    assert_eq!(
        test.pool.ready_and_consumers(muxer).await,
        (1, 0),
        "the second job waits in the queue"
    );
    hls::decode(&test.output_root().join("first.hls/master.m3u8"))
        .await
        .expect("decodes");
}
