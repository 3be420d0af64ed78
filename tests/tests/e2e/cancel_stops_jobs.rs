//! `hlsmux cancel`: a running job stops within seconds, a queued job fails
//! as `cancelled` without being encoded (even when its worker starts after
//! the cancellation), nothing is published or dead-lettered, the input
//! stays, and an ended job cannot be cancelled.

use std::path::Path;
use std::time::Duration;

use hlsmux_protocol::{EventState, FailureReason, JobState, MuxerId};
use hlsmux_tests::media::Clip;
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions, hls};

/// How soon a running job must stop once cancelled: the cancellation
/// crosses the broker and ffmpeg is killed, with room for a slow machine.
const STOPS_WITHIN: Duration = Duration::from_secs(20);

fn assert_cancelled(state: &JobState) {
    let JobState::Failed { reason, message } = state else {
        panic!("the job fails as cancelled: {state:#?}");
    };
    assert_eq!(*reason, FailureReason::Cancelled, "{message}");
    assert!(
        message.contains("cancelled by") && message.contains('@'),
        "the message says who cancelled it: {message}"
    );
}

/// A cancelled job leaves nothing behind but its input: acknowledged, not
/// dead-lettered, no output, no staging.
async fn assert_nothing_left_but_the_input(test: &TestEnv, output: &str, input: &Path) {
    test.pool
        .assert_queue_empties(MuxerId::new(1).expect("valid"))
        .await;
    assert_eq!(test.pool.dead_letters().await, 0, "not dead-lettered");
    assert!(
        !test.output_root().join(output).exists(),
        "nothing published"
    );
    assert!(
        hls::staging_leftovers(&test.output_root()).is_empty(),
        "staging removed"
    );
    assert!(input.exists(), "the input stays");
}

#[tokio::test]
async fn cancelling_the_job_in_hand_stops_it_publishes_nothing_and_the_worker_goes_on() {
    let test = TestEnv::new("cancel-running").await;
    let _worker = test.worker_with(1, WorkerOptions::realtime(&test)).await;
    let clip = Clip {
        seconds: 20,
        ..Clip::default()
    }
    .write(&test.media_root().join("long.mp4"))
    .await;
    let mut events = test.pool.events().await;
    let job = test
        .submit_ok(&clip, &["--muxer", "1", "--json"])
        .await
        .submitted_job_id();
    events.wait_for_encoding(Some(job)).await;

    let cancelled = test
        .cli_spawn(&["cancel", &job.to_string(), "--wait"])
        .finish(STOPS_WITHIN)
        .await;
    assert_eq!(cancelled.code, Some(0), "{cancelled:#?}");
    assert!(
        cancelled.stderr.contains("running on muxer 1"),
        "says where the job was: {cancelled:#?}"
    );
    let end = events.final_event(job, PATIENCE).await;
    assert_cancelled(&end.state);
    assert_eq!(events.count(job, EventState::Done), 0);

    assert_nothing_left_but_the_input(&test, "long.mp4.hls", &clip).await;

    // The worker is free again, and the cancellation is of that job only.
    let short = Clip::default()
        .write(&test.media_root().join("short.mp4"))
        .await;
    let next = test
        .submit_ok(&short, &["--muxer", "1", "--json"])
        .await
        .submitted_job_id();
    let done = events.final_event(next, PATIENCE).await;
    assert!(matches!(done.state, JobState::Done { .. }), "{done:#?}");
}

#[tokio::test]
async fn a_job_cancelled_while_queued_fails_unencoded_when_a_worker_takes_it() {
    let test = TestEnv::new("cancel-queued").await;
    // A worker declares the muxer's queue, then stops: the job waits there.
    test.worker(1).await.stop(Duration::from_secs(20)).await;
    let clip = Clip::default()
        .write(&test.media_root().join("queued.mp4"))
        .await;
    let mut events = test.pool.events().await;
    let job = test
        .submit_ok(&clip, &["--muxer", "1", "--json"])
        .await
        .submitted_job_id();

    let cancelled = test.cli(&["cancel", &job.to_string(), "--json"]).await;
    assert_eq!(cancelled.code, Some(0), "{cancelled:#?}");
    let lines = cancelled.json_lines();
    assert_eq!(lines.len(), 1, "{cancelled:#?}");
    assert_eq!(lines[0]["state"], "cancel_requested");
    assert_eq!(lines[0]["job_id"], job.to_string());
    let sent = test.pool.cancellations(Duration::from_secs(1)).await;
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].job_id, job);

    // This worker starts after the cancellation and reads it from the
    // cancellations stream before or while it takes the job.
    let _worker = test.worker(1).await;
    let end = events.final_event(job, PATIENCE).await;
    assert_cancelled(&end.state);
    events.drain(Duration::from_secs(1)).await;
    assert_eq!(
        (
            events.count(job, EventState::Started),
            events.count(job, EventState::Progress)
        ),
        (0, 0),
        "never started: {:#?}",
        events.seen()
    );
    assert_nothing_left_but_the_input(&test, "queued.mp4.hls", &clip).await;
}

#[tokio::test]
async fn an_ended_job_cannot_be_cancelled_and_nothing_is_sent() {
    let test = TestEnv::new("cancel-ended").await;
    let _worker = test.worker(1).await;
    let clip = Clip::default()
        .write(&test.media_root().join("done.mp4"))
        .await;
    let mut events = test.pool.events().await;
    let job = test
        .submit_ok(&clip, &["--muxer", "1", "--json"])
        .await
        .submitted_job_id();
    let done = events.final_event(job, PATIENCE).await;
    assert!(matches!(done.state, JobState::Done { .. }), "{done:#?}");

    let refused = test.cli(&["cancel", &job.to_string()]).await;
    assert_eq!(refused.code, Some(2), "{refused:#?}");
    assert!(
        refused.stderr.contains("already ended (done)") && refused.stderr.contains("nothing sent"),
        "{refused:#?}"
    );
    assert!(
        test.pool
            .cancellations(Duration::from_secs(1))
            .await
            .is_empty(),
        "no cancellation was sent"
    );
    let master = test.output_root().join("done.mp4.hls/master.m3u8");
    assert!(master.exists(), "the output stays");

    let not_a_job = test.cli(&["cancel", "not-a-job-id"]).await;
    assert_eq!(not_a_job.code, Some(2), "{not_a_job:#?}");
}
