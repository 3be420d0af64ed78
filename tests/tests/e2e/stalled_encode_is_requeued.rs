//! An ffmpeg that stops making progress (here: stopped with SIGSTOP, as a
//! hung hardware encoder or a stuck NFS read would leave it) is killed after
//! the stall timeout, its job requeued with reason `stalled` and counted in
//! the metrics, and the job completes on the next attempt.

use std::time::{Duration, Instant};

use hlsmux_protocol::{JobState, RequeueReason};
use hlsmux_tests::media::{Clip, write_script};
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions, hls};
use hlsmux_worker::metrics::{names, sample};

const STALL_TIMEOUT_SECONDS: u64 = 3;

#[tokio::test]
async fn a_frozen_encode_is_killed_requeued_and_then_completed() {
    let test = TestEnv::new("stall").await;
    let first_attempt = test.path().join("first-attempt-done");
    // The first encode freezes itself two seconds in; later ones run free.
    let ffmpeg = write_script(
        &test.path().join("ffmpeg-freezing"),
        &format!(
            r#"case "$*" in *var_stream_map*)
  if [ ! -e '{marker}' ]; then
    touch '{marker}'
    (sleep 2; kill -STOP $$) &
    exec ffmpeg -re "$@"
  fi;;
esac
exec ffmpeg "$@""#,
            marker = first_attempt.display()
        ),
    );
    let worker = test
        .worker_with(
            1,
            WorkerOptions {
                ffmpeg: Some(ffmpeg),
                env: vec![(
                    "HLSMUX_STALL_TIMEOUT_SECONDS".into(),
                    STALL_TIMEOUT_SECONDS.to_string(),
                )],
                ..WorkerOptions::default()
            },
        )
        .await;
    let clip = Clip {
        seconds: 8,
        ..Clip::default()
    }
    .write(&test.media_root().join("frozen.mp4"))
    .await;
    let mut events = test.pool.events().await;
    let submitted = Instant::now();
    let run = test.submit_ok(&clip, &["--muxer", "1", "--json"]).await;
    let job_id = run.submitted_job_id();

    let requeued = events
        .wait_for(
            "the stalled job requeued",
            |e| e.job_id == job_id && matches!(e.state, JobState::Requeued { .. }),
            PATIENCE,
        )
        .await;
    let stalled_after = submitted.elapsed();
    let JobState::Requeued { reason, message } = &requeued.state else {
        unreachable!("a requeued event");
    };
    assert_eq!(*reason, RequeueReason::Stalled, "{message}");
    assert!(
        stalled_after < Duration::from_secs(2 + STALL_TIMEOUT_SECONDS + 10),
        "noticed within the stall timeout, not after the whole encode: {stalled_after:?}"
    );
    assert!(
        events
            .seen()
            .iter()
            .all(|e| e.job_id != job_id || !e.state.is_final()),
        "a stall is not a failure"
    );

    let done = events.final_event(job_id, PATIENCE).await;
    assert!(
        matches!(done.state, JobState::Done { .. }),
        "the next attempt completes: {done:#?}"
    );
    let metrics = worker.metrics().await;
    assert_eq!(sample(&metrics, names::ENCODE_STALLS, &[]), Some(1.0));
    assert_eq!(
        sample(
            &metrics,
            names::JOBS_FINISHED,
            &[("outcome", "requeued"), ("reason", "stalled")]
        ),
        Some(1.0)
    );
    assert!(hls::staging_leftovers(&test.output_root()).is_empty());
    let frozen = std::process::Command::new("pgrep")
        .args(["-f", &clip.display().to_string()])
        .output()
        .expect("pgrep");
    assert!(
        frozen.stdout.is_empty(),
        "no frozen ffmpeg left behind: {}",
        String::from_utf8_lossy(&frozen.stdout)
    );
}
