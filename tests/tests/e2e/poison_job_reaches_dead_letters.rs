//! A job that kills its worker every time is not retried forever: after
//! the muxer queue's delivery limit the broker dead-letters it, a worker
//! reports it `failed` (`retries_exhausted`), `hlsmux dlq list` shows it,
//! and `hlsmux dlq retry` brings it back once the cause is gone.

use std::time::Duration;

use hlsmux_protocol::{DELIVERY_LIMIT, FailureReason, JobState};
use hlsmux_tests::media::{Clip, write_script};
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions};

#[tokio::test]
async fn a_job_that_crashes_its_worker_every_time_is_dead_lettered_and_can_be_retried() {
    let test = TestEnv::new("poison").await;
    let poison_switch = test.path().join("poison-on");
    std::fs::write(&poison_switch, b"").expect("switch");
    // While the switch exists, encoding the poison input kills the worker
    // (the wrapper's parent) outright, as a crash in the worker would.
    let ffmpeg = write_script(
        &test.path().join("ffmpeg-poison"),
        &format!(
            r#"case "$*" in *poison*) [ -e '{}' ] && kill -9 $PPID && sleep 5;; esac
exec ffmpeg "$@""#,
            poison_switch.display()
        ),
    );
    let options = WorkerOptions {
        ffmpeg: Some(ffmpeg),
        ..WorkerOptions::default()
    };
    let clip = Clip::default()
        .write(&test.media_root().join("poison.mp4"))
        .await;
    let mut events = test.pool.events().await;
    let mut worker = test.worker_with(1, options.clone()).await;
    let run = test.submit_ok(&clip, &["--muxer", "1", "--json"]).await;
    let job_id = run.submitted_job_id();

    // Restart the worker each time it dies, as systemd would.
    let mut deaths = 0;
    loop {
        if worker.exited_within(Duration::from_secs(10)).await {
            deaths += 1;
            assert!(deaths <= DELIVERY_LIMIT + 1, "the job kept coming back");
            worker = test
                .worker_with(
                    1,
                    WorkerOptions {
                        expected_consumers: Some(0),
                        ..options.clone()
                    },
                )
                .await;
        } else if events
            .seen()
            .iter()
            .any(|e| e.job_id == job_id && e.state.is_final())
        {
            break;
        } else {
            events.drain(Duration::from_millis(200)).await;
        }
    }
    let failed = events.final_event(job_id, PATIENCE).await;
    let JobState::Failed { reason, message } = &failed.state else {
        panic!("the job ends failed: {failed:#?}");
    };
    assert_eq!(*reason, FailureReason::RetriesExhausted);
    assert!(message.contains("dlq retry"), "{message}");
    assert!(deaths >= DELIVERY_LIMIT, "the worker died {deaths} times");
    assert!(worker.is_running(), "the last worker lives on");
    assert_eq!(test.pool.wait_for_dead_letters(1, PATIENCE).await, 1);

    let listed = test.cli(&["dlq", "list", "--json"]).await;
    assert_eq!(listed.code, Some(0), "{listed:#?}");
    let lines = listed.json_lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["job_id"], job_id.to_string());
    assert_eq!(lines[0]["death_reason"], "delivery_limit");
    assert_eq!(
        test.pool.dead_letters().await,
        1,
        "listing leaves the dead letter in place"
    );

    std::fs::remove_file(&poison_switch).expect("cause fixed");
    let unknown = test
        .cli(&["dlq", "retry", "00000000-0000-4000-8000-000000000000"])
        .await;
    assert_eq!(unknown.code, Some(2), "{unknown:#?}");
    assert!(unknown.stderr.contains("not in the dead-letter queue"));
    let retried = test.cli(&["dlq", "retry", &job_id.to_string()]).await;
    assert_eq!(retried.code, Some(0), "{retried:#?}");
    let done = events
        .wait_for(
            "the retried job done",
            |e| e.job_id == job_id && matches!(e.state, JobState::Done { .. }),
            PATIENCE,
        )
        .await;
    assert!(matches!(done.state, JobState::Done { reused: false, .. }));
    assert_eq!(test.pool.dead_letters().await, 0);
}
