//! A soak: a hundred small jobs over two workers of one muxer while one of
//! them is killed (SIGKILL) and restarted again and again. Every job ends
//! `done` exactly once with exactly one output, the queues end empty and no
//! staging is left behind.

use std::collections::HashMap;
use std::time::Duration;

use hlsmux_protocol::{EventState, JobId, JobRequest, JobState, MuxerId, RelativePath};
use hlsmux_tests::media::Clip;
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions, hls};

const JOBS: usize = 100;
const KILLS: usize = 4;

#[tokio::test]
async fn a_hundred_jobs_survive_a_worker_killed_again_and_again() {
    let test = TestEnv::new("soak").await;
    let muxer = MuxerId::new(1).expect("valid");
    Clip {
        width: 160,
        height: 90,
        seconds: 1,
        audio: false,
        ..Clip::default()
    }
    .write(&test.media_root().join("tiny.mp4"))
    .await;
    let steady = test.worker(1).await;
    let second = WorkerOptions {
        expected_consumers: Some(2),
        ..WorkerOptions::default()
    };
    let mut crashing = test.worker_with(1, second).await;
    let mut events = test.pool.events().await;

    let mut jobs: Vec<JobId> = Vec::with_capacity(JOBS);
    for index in 0..JOBS {
        let job = JobRequest::new(
            muxer,
            RelativePath::parse("tiny.mp4").expect("valid"),
            RelativePath::parse(&format!("soak/job-{index:03}.hls")).expect("valid"),
        );
        jobs.push(job.job_id);
        test.pool.publish_job(&job).await;
    }

    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        crashing.kill().await;
        crashing = test
            .worker_with(
                1,
                WorkerOptions {
                    expected_consumers: Some(0),
                    ..WorkerOptions::default()
                },
            )
            .await;
    }

    for job in &jobs {
        events.final_event(*job, PATIENCE * 3).await;
    }
    events.drain(Duration::from_secs(3)).await;
    let mut ends: HashMap<JobId, (usize, usize)> = HashMap::new();
    for event in events.seen() {
        let entry = ends.entry(event.job_id).or_default();
        match event.state.event_state() {
            EventState::Done => entry.0 += 1,
            EventState::Failed => entry.1 += 1,
            _ => {}
        }
    }
    for job in &jobs {
        assert_eq!(ends.get(job), Some(&(1, 0)), "job {job}: (done, failed)");
    }
    let redelivered = events
        .seen()
        .iter()
        .filter(|e| {
            matches!(
                e.state,
                JobState::Started {
                    redelivered: true,
                    ..
                }
            )
        })
        .count();
    assert!(redelivered >= 1, "the kills interrupted jobs in hand");
    let outputs = std::fs::read_dir(test.output_root().join("soak"))
        .expect("outputs")
        .flatten()
        .filter(|entry| entry.path().join("master.m3u8").is_file())
        .count();
    assert_eq!(outputs, JOBS, "one output per job");
    assert!(hls::staging_leftovers(&test.output_root()).is_empty());
    test.pool.assert_queue_empties(muxer).await;
    assert_eq!(test.pool.dead_letters().await, 0);
    drop(steady);
}
