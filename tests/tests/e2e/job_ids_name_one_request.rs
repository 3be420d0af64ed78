//! A job's ID names one request for ever. A message reusing a finished
//! job's ID for another request (another output, another job's output,
//! another input) is refused as `duplicate_job_id`, goes to the
//! dead-letter queue, and changes nothing: no output is written or
//! overwritten, the first job stays `done` (for the CLI too), and nothing
//! it names is opened. The same request again (a redelivery) still passes.

use std::time::Duration;

use hlsmux_protocol::{EventState, FailureReason, JobRequest, JobState, MuxerId, RelativePath};
use hlsmux_tests::canary;
use hlsmux_tests::media::Clip;
use hlsmux_tests::{PATIENCE, TestEnv, count_events};

#[tokio::test]
async fn a_reused_job_id_is_refused_and_the_first_job_stands() {
    let test = TestEnv::new("duplicate-id").await;
    let mut worker = test.worker(1).await;
    let mut events = test.pool.events().await;
    let media = test.media_root();
    for name in ["a.mp4", "b.mp4"] {
        Clip {
            seconds: 2,
            ..Clip::default()
        }
        .write(&media.join(name))
        .await;
    }
    // The canary: a FIFO outside the media root, reached through a link
    // inside it. Anything that opened it would block there.
    let canary = test.elsewhere().join("canary.ts");
    canary::fifo(&canary);
    std::os::unix::fs::symlink(&canary, media.join("link.mp4")).expect("link");

    let muxer = MuxerId::new(1).expect("valid");
    let job = |input: &str, output: &str| {
        JobRequest::new(
            muxer,
            RelativePath::parse(input).expect("valid"),
            RelativePath::parse(output).expect("valid"),
        )
    };
    let first = job("a.mp4", "a.hls");
    let other = job("b.mp4", "b.hls");
    for finished in [&first, &other] {
        test.pool.publish_job(finished).await;
        let end = events.final_event(finished.job_id, PATIENCE).await;
        assert!(matches!(end.state, JobState::Done { .. }), "{end:#?}");
    }
    let other_record =
        std::fs::read(test.output_root().join("b.hls/.hlsmux-job.json")).expect("b's record");

    let reuse = |input: &str, output: &str| JobRequest {
        job_id: first.job_id,
        ..job(input, output)
    };
    let forged = [
        ("another output", reuse("a.mp4", "again.hls")),
        ("another job's output", reuse("b.mp4", "b.hls")),
        ("another input", reuse("link.mp4", "linked.hls")),
    ];
    for (count, (what, message)) in forged.iter().enumerate() {
        test.pool.publish_job(message).await;
        let refused = events
            .wait_for_nth(
                &format!("the refusal of {what}"),
                |event| event.job_id == first.job_id && event.state.is_refused_duplicate(),
                count + 1,
                PATIENCE,
            )
            .await;
        let JobState::Failed { reason, message } = &refused.state else {
            unreachable!("a refusal is a failure")
        };
        assert_eq!(*reason, FailureReason::DuplicateJobId, "{what}");
        assert!(
            message.contains("a.hls") && message.contains("new ID"),
            "{what}: the reason names the first request and what to do: {message}"
        );
    }
    // The same request again passes as a redelivery: nothing new.
    test.pool.publish_job(&first).await;
    assert_eq!(test.pool.wait_for_dead_letters(3, PATIENCE).await, 3);

    let history = test.pool.history(Duration::from_secs(1)).await;
    assert_eq!(count_events(&history, first.job_id, EventState::Done), 1);
    assert_eq!(
        count_events(&history, first.job_id, EventState::Started),
        1,
        "no message reusing the ID was started"
    );
    for output in ["again.hls", "linked.hls"] {
        assert!(
            !test.output_root().join(output).exists(),
            "{output} written"
        );
    }
    assert_eq!(
        std::fs::read(test.output_root().join("b.hls/.hlsmux-job.json")).expect("b's record"),
        other_record,
        "the other job's output is untouched"
    );
    assert!(test.output_root().join("a.hls/master.m3u8").exists());
    let canary_text = canary.display().to_string();
    assert!(
        history
            .iter()
            .all(|event| !format!("{event:?}").contains(&canary_text)),
        "the canary appears in no event"
    );

    // The CLI still says the first job is done.
    let status = test.cli(&["jobs", "--json"]).await;
    assert_eq!(status.code, Some(0), "{status:#?}");
    let summary = status
        .json_lines()
        .into_iter()
        .find(|line| line["job_id"] == first.job_id.to_string())
        .unwrap_or_else(|| panic!("job listed: {status:#?}"));
    assert_eq!(summary["state"], "done", "{summary}");
    let watch = test.cli(&["watch", &first.job_id.to_string()]).await;
    assert_eq!(
        watch.code,
        Some(0),
        "watching the job ends at its done: {watch:#?}"
    );

    assert!(
        !canary::fifo_has_reader(&canary),
        "nothing holds the canary open"
    );
    assert!(worker.is_running(), "the worker is still up");
}
