//! A dead-letter notice is a claim, not a fact: a worker reports a job
//! `failed (retries_exhausted)` on one only when the job has not finished
//! `done`. A notice forged for a finished job changes nothing; one for a
//! job that never finished is still reported, which shows the worker did
//! read the notices.

use hlsmux_protocol::{EventState, FailureReason, JobRequest, JobState, MuxerId, RelativePath};
use hlsmux_tests::media::Clip;
use hlsmux_tests::{PATIENCE, TestEnv, count_events};
use std::time::Duration;

#[tokio::test]
async fn a_delivery_limit_notice_for_a_finished_job_changes_nothing() {
    let test = TestEnv::new("forged-notice").await;
    let _worker = test.worker(1).await;
    let mut events = test.pool.events().await;
    Clip {
        seconds: 2,
        ..Clip::default()
    }
    .write(&test.media_root().join("a.mp4"))
    .await;
    let muxer = MuxerId::new(1).expect("valid");
    let job = |name: &str| {
        JobRequest::new(
            muxer,
            RelativePath::parse("a.mp4").expect("valid"),
            RelativePath::parse(name).expect("valid"),
        )
    };
    let finished = job("finished.hls");
    test.pool.publish_job(&finished).await;
    let end = events.final_event(finished.job_id, PATIENCE).await;
    assert!(matches!(end.state, JobState::Done { .. }), "{end:#?}");

    let never_ran = job("never-ran.hls");
    for forged in [&finished, &never_ran] {
        let body = serde_json::to_vec(forged).expect("serialises");
        test.pool
            .publish_dead_letter_notice(&body, forged.job_id, "delivery_limit")
            .await;
    }
    // Notices are read in order: once the second is reported, the first
    // was handled.
    let reported = events.final_event(never_ran.job_id, PATIENCE).await;
    assert!(
        matches!(
            reported.state,
            JobState::Failed {
                reason: FailureReason::RetriesExhausted,
                ..
            }
        ),
        "{reported:#?}"
    );
    let history = test.pool.history(Duration::from_secs(1)).await;
    assert_eq!(
        count_events(&history, finished.job_id, EventState::Failed),
        0,
        "the finished job stays done"
    );
    assert_eq!(count_events(&history, finished.job_id, EventState::Done), 1);
}
