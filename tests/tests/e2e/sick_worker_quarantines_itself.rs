//! A worker whose jobs keep failing for its own reasons (here its ffmpeg
//! crashes on every encode) quarantines itself instead of eating the queue:
//! a healthy worker of the same muxer does every job, and the sick one only
//! takes jobs again once its self-test passes.

use std::time::Duration;

use hlsmux_protocol::{JobState, MuxerId, RequeueReason};
use hlsmux_tests::media::{Clip, write_script};
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions};
use hlsmux_worker::metrics::{names, sample};

const JOBS: usize = 5;

#[tokio::test]
async fn a_worker_whose_encoder_keeps_crashing_quarantines_itself_while_a_healthy_one_works() {
    let test = TestEnv::new("quarantine").await;
    let sickness = test.path().join("sick");
    std::fs::write(&sickness, b"").expect("sick");
    // Crashes (SIGSEGV) on every HLS encode while the file exists; the
    // start-up checks and the self-test's clip making still work.
    let ffmpeg = write_script(
        &test.path().join("ffmpeg-crashing"),
        &format!(
            r#"case "$*" in *var_stream_map*) [ -e '{}' ] && kill -SEGV $$;; esac
exec ffmpeg "$@""#,
            sickness.display()
        ),
    );
    let sick = test
        .worker_with(
            1,
            WorkerOptions {
                ffmpeg: Some(ffmpeg),
                env: vec![
                    ("HLSMUX_QUARANTINE_AFTER".into(), "2".into()),
                    ("HLSMUX_QUARANTINE_COOLDOWN_SECONDS".into(), "2".into()),
                ],
                ..WorkerOptions::default()
            },
        )
        .await;
    let mut events = test.pool.events().await;
    let clip = Clip {
        seconds: 2,
        ..Clip::default()
    }
    .write(&test.media_root().join("clip.mp4"))
    .await;
    // The sick worker is alone at first: it takes the jobs and fails them.
    let mut jobs = Vec::new();
    for index in 0..JOBS {
        let name = format!("out/clip-{index}.hls");
        let run = test
            .submit_ok(&clip, &["--muxer", "1", "--json", "--name", &name])
            .await;
        jobs.push(run.submitted_job_id());
    }
    sick.wait_for_state("quarantined").await;
    events.drain(Duration::from_secs(1)).await;
    let crashes: Vec<_> = events
        .seen()
        .iter()
        .filter(|e| {
            matches!(
                e.state,
                JobState::Requeued {
                    reason: RequeueReason::EncoderCrashed,
                    ..
                }
            )
        })
        .collect();
    assert!(crashes.len() >= 2, "{crashes:#?}");
    assert!(
        events.seen().iter().all(|e| !e.state.is_final()),
        "crashes requeue, they do not fail the jobs"
    );

    // The cool-down passes and the self-test crashes too: still quarantined.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let metrics = sick.metrics().await;
    assert_eq!(
        sample(&metrics, names::WORKER_STATE, &[("state", "quarantined")]),
        Some(1.0)
    );
    assert_eq!(sample(&metrics, names::QUARANTINES, &[]), Some(1.0));
    let (status, body) = hlsmux_tests::http::get(sick.metrics_addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("quarantined") && body.contains("self-test failed"),
        "/readyz says why: {body}"
    );

    let _healthy = test
        .worker_with(
            1,
            WorkerOptions {
                expected_consumers: Some(1),
                ..WorkerOptions::default()
            },
        )
        .await;
    for job in &jobs {
        let end = events.final_event(*job, PATIENCE).await;
        assert!(
            matches!(&end.state, JobState::Done { .. }),
            "the healthy worker does every job: {end:#?}"
        );
        assert_ne!(end.worker, "", "{end:#?}");
    }

    // Cured, the sick worker passes its next self-test and serves again.
    std::fs::remove_file(&sickness).expect("cure");
    sick.wait_for_state("idle").await;
    test.pool
        .wait_for_consumers(MuxerId::new(1).expect("valid"), 2, PATIENCE)
        .await;
}
