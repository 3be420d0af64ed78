//! One test's world: a temporary media root, output root and work dir, and
//! its own namespace on the real broker.

use std::path::{Path, PathBuf};

use hlsmux_protocol::MuxerId;
use tempfile::TempDir;

use crate::broker::{BrokerNode, TestPool};
use crate::cli::CliRun;
use crate::worker::{StartupFailure, TestWorker, WorkerOptions};

pub struct TestEnv {
    pub pool: TestPool,
    dir: TempDir,
}

impl TestEnv {
    pub async fn new(test_name: &str) -> Self {
        Self::with_pool(test_name, TestPool::new(test_name).await)
    }

    /// A test's world on the broker (or cluster) at `urls`, which the
    /// harness reaches through `own`.
    pub async fn on(test_name: &str, urls: &str, own: BrokerNode) -> Self {
        Self::with_pool(test_name, TestPool::on(test_name, urls, own).await)
    }

    fn with_pool(test_name: &str, pool: TestPool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("hlsmux-{test_name}-"))
            .tempdir()
            .expect("temporary directory");
        for sub in ["media", "out", "work", "elsewhere"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("create test directories");
        }
        Self { pool, dir }
    }

    pub fn media_root(&self) -> PathBuf {
        self.dir.path().join("media")
    }

    pub fn output_root(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// What the output root holds, by name, apart from the pool's own
    /// directory (the job ID register).
    pub fn outputs(&self) -> Vec<String> {
        std::fs::read_dir(self.output_root())
            .expect("output root")
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name != hlsmux_protocol::RESERVED_OUTPUT_DIR)
            .collect()
    }

    pub fn work_dir(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// A directory outside the media root, like a user's home.
    pub fn elsewhere(&self) -> PathBuf {
        self.dir.path().join("elsewhere")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The environment every hlsmux program of this test gets.
    pub fn hlsmux_env(&self) -> Vec<(String, String)> {
        vec![
            ("HLSMUX_AMQP_URL".into(), self.pool.amqp_url()),
            ("HLSMUX_NAMESPACE".into(), self.pool.namespace().into()),
            (
                "HLSMUX_MEDIA_ROOT".into(),
                self.media_root().display().to_string(),
            ),
            (
                "HLSMUX_OUTPUT_ROOT".into(),
                self.output_root().display().to_string(),
            ),
        ]
    }

    /// Starts a worker for `muxer` and waits until it consumes.
    pub async fn worker(&self, muxer: u16) -> TestWorker {
        self.worker_with(muxer, WorkerOptions::default()).await
    }

    pub async fn worker_with(&self, muxer: u16, options: WorkerOptions) -> TestWorker {
        let muxer = MuxerId::new(muxer).expect("valid muxer");
        self.pool.track_muxer(muxer);
        TestWorker::spawn(self, muxer, options).await
    }

    /// Runs a worker that must refuse to start, and returns why it did.
    pub async fn failed_worker(&self, muxer: u16, options: WorkerOptions) -> StartupFailure {
        let muxer = MuxerId::new(muxer).expect("valid muxer");
        TestWorker::expect_startup_failure(self, muxer, options).await
    }

    /// Runs `hlsmux submit FILE ARGS...` and requires it to succeed.
    pub async fn submit_ok(&self, file: &Path, args: &[&str]) -> CliRun {
        let mut command = vec!["submit", file.to_str().expect("UTF-8 test path")];
        command.extend_from_slice(args);
        let run = self.cli(&command).await;
        assert_eq!(run.code, Some(0), "{run:#?}");
        run
    }

    /// Runs `hlsmux` with `args` against this test's pool.
    /// Starts `hlsmux` with `args` without waiting for it.
    pub fn cli_spawn(&self, args: &[&str]) -> crate::cli::RunningCli {
        CliRun::spawn(self, args)
    }

    pub async fn cli(&self, args: &[&str]) -> CliRun {
        CliRun::run(self, args, &[]).await
    }

    /// As [`cli`](Self::cli), with extra environment variables.
    pub async fn cli_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> CliRun {
        CliRun::run(self, args, env).await
    }
}
