//! Drain and quarantine hold for chunks as for jobs (issue 21): a drained
//! worker takes no chunks of another worker's split job, and a worker
//! whose encoder keeps crashing on chunks quarantines itself and takes no
//! more, while a healthy worker finishes the job.

use std::time::{Duration, Instant};

use hlsmux_protocol::JobState;
use hlsmux_tests::media::write_script;
use hlsmux_tests::split_pool::{chunk_label, long_clip};
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions};
use hlsmux_worker::metrics::{names, sample};

/// Submits the clip to muxer 1 and returns who encoded each chunk.
async fn chunk_workers(test: &TestEnv) -> Vec<String> {
    let input = long_clip().write(&test.media_root().join("long.mp4")).await;
    let mut events = test.pool.events().await;
    let job = test
        .submit_ok(&input, &["--muxer", "1", "--json"])
        .await
        .submitted_job_id();
    let end = events.final_event(job, PATIENCE).await;
    let JobState::Done { chunks, .. } = end.state else {
        panic!("the job is done: {end:#?}");
    };
    assert_eq!(chunks.len(), 4, "{chunks:#?}");
    chunks.into_iter().map(|c| c.worker).collect()
}

#[tokio::test]
async fn a_drained_worker_takes_no_chunks() {
    let test = TestEnv::new("split-drained").await;
    let coordinator = test
        .worker_with(1, WorkerOptions::splitting(&test, 1).consumers(1))
        .await;
    let lock = test.path().join("drained-worker.lock");
    std::fs::write(&lock, b"maintenance").expect("drain lock");
    let mut drained_options = WorkerOptions::splitting(&test, 2).consumers(1);
    drained_options
        .env
        .push(("HLSMUX_DRAIN_LOCK".into(), lock.display().to_string()));
    let drained = test.worker_with(1, drained_options).await;
    drained.wait_for_state("drained").await;

    let workers = chunk_workers(&test).await;
    assert!(
        workers.iter().all(|w| *w == chunk_label(&coordinator)),
        "only the coordinator encoded chunks: {workers:?}"
    );
    assert_eq!(
        sample(&drained.metrics().await, names::CHUNKS_ENCODED, &[]),
        Some(0.0)
    );
}

#[tokio::test]
async fn a_worker_whose_encoder_crashes_on_chunks_quarantines_itself() {
    let test = TestEnv::new("split-sick").await;
    // Crashes (SIGSEGV) on every HLS encode; the start-up trials pass.
    let crashing = write_script(
        &test.path().join("ffmpeg-crashing"),
        r#"case "$*" in *var_stream_map*|*hls_segment_filename*) kill -SEGV $$;; esac
exec ffmpeg "$@""#,
    );
    let coordinator = test
        .worker_with(1, WorkerOptions::splitting(&test, 1).consumers(1))
        .await;
    // On muxer 2: it never takes muxer 1's job, only its chunks.
    let mut sick_options = WorkerOptions::splitting(&test, 1).consumers(1);
    sick_options.ffmpeg = Some(crashing);
    sick_options.env.extend([
        ("HLSMUX_QUARANTINE_AFTER".to_owned(), "2".to_owned()),
        (
            "HLSMUX_QUARANTINE_COOLDOWN_SECONDS".to_owned(),
            "600".to_owned(),
        ),
    ]);
    let sick = test.worker_with(2, sick_options).await;

    let workers = chunk_workers(&test).await;
    assert!(
        workers.iter().all(|w| *w == chunk_label(&coordinator)),
        "the healthy worker encoded every chunk: {workers:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = sick.metrics().await;
        let quarantined = sample(&metrics, names::WORKER_STATE, &[("state", "quarantined")]);
        if quarantined == Some(1.0) {
            assert_eq!(sample(&metrics, names::QUARANTINES, &[]), Some(1.0));
            assert_eq!(sample(&metrics, names::CHUNKS_ENCODED, &[]), Some(0.0));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sick worker quarantined itself: state {quarantined:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
