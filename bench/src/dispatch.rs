//! Item 3: from publishing a job to its worker's `started` event, over jobs
//! whose input does not exist: the whole dispatch path (broker, worker,
//! event back through the broker) without an encode after it. Each job is
//! published once the previous one has ended, so the worker is idle.

use std::time::Instant;

use hlsmux_protocol::{EventState, JobRequest, MuxerId, RelativePath};
use hlsmux_tests::{PATIENCE, TestEnv};

/// Milliseconds from publish to `started`, one per job.
pub async fn latencies(test: &TestEnv, jobs: usize) -> Vec<f64> {
    let mut events = test.pool.events().await;
    let muxer = MuxerId::new(1).expect("valid");
    let mut latencies = Vec::with_capacity(jobs);
    for index in 0..jobs {
        let job = JobRequest::new(
            muxer,
            RelativePath::parse(&format!("missing/{index}.mp4")).expect("valid"),
            RelativePath::parse(&format!("missing/{index}.hls")).expect("valid"),
        );
        let id = job.job_id;
        let published = Instant::now();
        test.pool.publish_job(&job).await;
        events
            .wait_for(
                "started",
                |e| e.job_id == id && e.state.event_state() == EventState::Started,
                PATIENCE,
            )
            .await;
        latencies.push(published.elapsed().as_secs_f64() * 1000.0);
        events
            .wait_for(
                "failed",
                |e| e.job_id == id && e.state.event_state() == EventState::Failed,
                PATIENCE,
            )
            .await;
    }
    latencies
}
