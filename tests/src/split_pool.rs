//! A pool that splits long jobs (issue 21), in a test's world: the clip
//! the split tests share, the workers, and where their chunks wait.

use std::path::PathBuf;

use hlsmux_protocol::JobId;

use crate::media::Clip;
use crate::{TestEnv, TestWorker, WorkerOptions};

/// A 24 s 270p clip: four 6 s chunks on a splitting worker.
pub fn long_clip() -> Clip {
    Clip {
        width: 480,
        height: 270,
        seconds: 24,
        fps: 25,
        ..Clip::default()
    }
}

/// Two splitting workers of muxer 1, their ffmpeg at `pace` times real
/// time (see [`WorkerOptions::splitting`]).
pub async fn pool_of_two(test: &TestEnv, pace: u32) -> [TestWorker; 2] {
    let first = test
        .worker_with(1, WorkerOptions::splitting(test, pace).consumers(1))
        .await;
    let second = test
        .worker_with(1, WorkerOptions::splitting(test, pace).consumers(2))
        .await;
    [first, second]
}

/// How a `done` event names the worker of a chunk (`host#pid`).
pub fn chunk_label(worker: &TestWorker) -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    format!("{host}#{}", worker.pid())
}

/// Where a job's chunks wait to be stitched.
pub fn chunk_store(test: &TestEnv, job: JobId) -> PathBuf {
    test.output_root()
        .join(".hlsmux")
        .join("chunks")
        .join(job.to_string())
}
