//! A worker holds one job at a time: the rest stay ready in the queue for
//! any other worker of the same muxer.

use hlsmux_protocol::{JobRequest, JobState, MuxerId, RelativePath};
use hlsmux_tests::media::{Clip, realtime_ffmpeg};
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions};

#[tokio::test]
async fn a_busy_worker_holds_one_unacked_job_and_leaves_the_rest_ready() {
    let test = TestEnv::new("prefetch").await;
    let options = WorkerOptions {
        ffmpeg: Some(realtime_ffmpeg(test.path())),
        ..WorkerOptions::default()
    };
    let _worker = test.worker_with(1, options).await;
    Clip {
        width: 320,
        height: 180,
        seconds: 8,
        audio: false,
        ..Clip::default()
    }
    .write(&test.media_root().join("slow.mp4"))
    .await;
    let mut events = test.pool.events().await;
    let muxer = MuxerId::new(1).expect("valid");
    let jobs: Vec<JobRequest> = ["first.hls", "second.hls"]
        .iter()
        .map(|name| {
            JobRequest::new(
                muxer,
                RelativePath::parse("slow.mp4").expect("valid"),
                RelativePath::parse(name).expect("valid"),
            )
        })
        .collect();
    for job in &jobs {
        test.pool.publish_job(job).await;
    }

    events
        .wait_for(
            "first job encoding",
            |e| e.job_id == jobs[0].job_id && matches!(e.state, JobState::Progress { .. }),
            PATIENCE,
        )
        .await;
    // Wait for statistics that show this worker and both jobs, then look
    // at how the two jobs are split between held and waiting.
    let counts = test
        .pool
        .settled_queue_counts(
            muxer,
            |c| c.consumers == 1 && c.ready + c.unacked == 2,
            PATIENCE,
        )
        .await;
    assert_eq!((counts.unacked, counts.ready), (1, 1), "{counts:?}");
    assert!(
        !events.seen().iter().any(|e| e.job_id == jobs[1].job_id),
        "the second job must not start while the first encodes"
    );

    for job in &jobs {
        let done = events.final_event(job.job_id, PATIENCE).await;
        assert!(matches!(done.state, JobState::Done { .. }), "{done:#?}");
    }
    assert_eq!(test.pool.ready_and_consumers(muxer).await, (0, 1));
}
