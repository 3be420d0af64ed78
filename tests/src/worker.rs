//! A real `hlsmux-worker` process in a test's world.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use hlsmux_protocol::MuxerId;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::{TestEnv, binaries};

/// What a test may change about a worker.
#[derive(Clone, Debug, Default)]
pub struct WorkerOptions {
    /// An ffmpeg other than the one on PATH (a wrapper, for faults).
    pub ffmpeg: Option<PathBuf>,
    /// Consumers the muxer queue must show before the worker counts as up
    /// (default 1; more when several workers share a muxer; 0 waits only
    /// for the worker to declare its queue).
    pub expected_consumers: Option<u32>,
    /// Extra `HLSMUX_*` variables.
    pub env: Vec<(String, String)>,
    /// A configuration file, passed with `--config`.
    pub config_file: Option<PathBuf>,
    /// Contents of the kernel command line the worker reads (by default it
    /// reads a file that does not exist, so it sees no boot options).
    pub kernel_cmdline: Option<String>,
    /// Leave `HLSMUX_MUXER_ID` unset, so the file or command line decide.
    pub omit_muxer_env: bool,
    /// Write the worker's logs, at debug level, into this file.
    pub log_file: Option<PathBuf>,
}

impl WorkerOptions {
    /// A worker with one setting (`HLSMUX_*` variable) changed.
    pub fn setting(variable: &str, value: impl Into<String>) -> Self {
        Self {
            env: vec![(variable.to_owned(), value.into())],
            ..Self::default()
        }
    }

    /// A worker that splits inputs of 10 s and more into 6 s chunks of 2 s
    /// segments (issue 21), with one ffmpeg thread (two workers share the
    /// machine's two cores), whose ffmpeg reads at `pace` times real time
    /// (see [`paced_ffmpeg`](crate::media::paced_ffmpeg)): at 2 a chunk
    /// takes 3 s, so a second worker, which looks for chunks every second,
    /// comes in while the first encodes one.
    pub fn splitting(test: &TestEnv, pace: u32) -> Self {
        Self {
            ffmpeg: Some(crate::media::paced_ffmpeg(test.path(), pace)),
            env: [
                ("HLSMUX_SPLIT_MIN_SECONDS", "10"),
                ("HLSMUX_CHUNK_SECONDS", "6"),
                ("HLSMUX_SEGMENT_SECONDS", "2"),
                ("HLSMUX_FFMPEG_THREADS", "1"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .to_vec(),
            ..Self::default()
        }
    }

    /// The same, counting on `consumers` consumers of the muxer's queue.
    pub fn consumers(self, consumers: u32) -> Self {
        Self {
            expected_consumers: Some(consumers),
            ..self
        }
    }

    /// A worker whose ffmpeg reads at real-time speed (see
    /// [`realtime_ffmpeg`](crate::media::realtime_ffmpeg)): an N-second clip
    /// takes about N seconds, time for a test to act mid-job.
    pub fn realtime(test: &TestEnv) -> Self {
        Self {
            ffmpeg: Some(crate::media::realtime_ffmpeg(test.path())),
            ..Self::default()
        }
    }
}

/// Workers spawned by this test binary, to name their log files.
static SPAWNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A worker that refused to start.
#[derive(Debug)]
pub struct StartupFailure {
    pub code: Option<i32>,
    pub stderr: String,
}

pub struct TestWorker {
    child: Child,
    pub muxer: MuxerId,
    /// Where this worker serves /metrics, /healthz and /readyz.
    pub metrics_addr: SocketAddr,
}

impl TestWorker {
    pub(crate) async fn spawn(test: &TestEnv, muxer: MuxerId, options: WorkerOptions) -> Self {
        match Self::try_spawn(test, muxer, &options).await {
            Ok(worker) => worker,
            Err(said) => panic!("worker for muxer {muxer} exited at start; it said:\n{said}"),
        }
    }

    async fn try_spawn(
        test: &TestEnv,
        muxer: MuxerId,
        options: &WorkerOptions,
    ) -> Result<Self, String> {
        let spawned = SPAWNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The worker takes any free port and says which in this file.
        let addr_file = test.path().join(format!("metrics-addr-{muxer}-{spawned}"));
        let mut command = Self::command(test, muxer, options);
        command.env("HLSMUX_METRICS_ADDR_FILE", &addr_file);
        // Without TEST_LOG the worker's errors still go to a file, quoted
        // if it dies at start.
        let start_log = test.path().join(format!("worker-{muxer}-{spawned}.log"));
        match std::env::var("TEST_LOG") {
            _ if options.log_file.is_some() => {
                let path = options.log_file.as_ref().expect("checked");
                let file = std::fs::File::create(path).expect("log file");
                command.env("RUST_LOG", "debug").stderr(file)
            }
            Ok(level) if !level.is_empty() => {
                let level = if level == "1" {
                    "info".to_owned()
                } else {
                    level
                };
                command.env("RUST_LOG", level).stderr(Stdio::inherit())
            }
            _ => {
                let file = std::fs::File::create(&start_log).expect("log file");
                command.env("RUST_LOG", "warn,lapin=off").stderr(file)
            }
        };
        let mut child = command.spawn().expect("worker starts");
        let consumers = options.expected_consumers.unwrap_or(1);
        let ready = async {
            // The worker says where it serves metrics before it consumes;
            // the consumer count alone would not do when another worker
            // of the muxer already consumes.
            let metrics_addr = read_address_file(&addr_file).await;
            let up = test
                .pool
                .wait_for_consumers(muxer, consumers, crate::PATIENCE)
                .await;
            (metrics_addr, up)
        };
        let metrics_addr = tokio::select! {
            (metrics_addr, up) = ready => {
                assert!(up, "worker for muxer {muxer} never consumed its queue");
                metrics_addr
            }
            status = child.wait() => {
                let said = std::fs::read_to_string(&start_log).unwrap_or_default();
                return Err(format!("{status:?}: {said}"));
            }
        };
        Ok(Self {
            child,
            muxer,
            metrics_addr,
        })
    }

    /// Runs a worker that is expected to refuse to start, and says how.
    pub(crate) async fn expect_startup_failure(
        test: &TestEnv,
        muxer: MuxerId,
        options: WorkerOptions,
    ) -> StartupFailure {
        let mut command = Self::command(test, muxer, &options);
        command.env("RUST_LOG", "error").stderr(Stdio::piped());
        let output = tokio::time::timeout(crate::PATIENCE, command.output())
            .await
            .expect("the worker gave up in time")
            .expect("worker runs");
        StartupFailure {
            code: output.status.code(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn command(test: &TestEnv, muxer: MuxerId, options: &WorkerOptions) -> Command {
        let cmdline = test.path().join(format!("cmdline-{muxer}"));
        if let Some(contents) = &options.kernel_cmdline {
            std::fs::write(&cmdline, contents).expect("write kernel command line");
        }
        let mut command = Command::new(binaries::worker());
        command
            .envs(test.hlsmux_env())
            .env("HLSMUX_KERNEL_CMDLINE", &cmdline)
            .env("HLSMUX_WORK_DIR", test.work_dir())
            .env("HLSMUX_METRICS_ADDR", "127.0.0.1:0")
            // No SoC sources unless a test provides them: this machine's own
            // thermal zones must not leak into the results.
            .env("HLSMUX_THERMAL_ZONE", test.path().join("no-thermal-zone"))
            .env("HLSMUX_THROTTLING_COMMAND", test.path().join("no-vcgencmd"))
            .env("HLSMUX_FFMPEG_THREADS", "1")
            // Tests name the encoder to skip the hardware trials at start-up;
            // the `auto` path has a test of its own.
            .env("HLSMUX_ENCODER", "libx264")
            .env("HLSMUX_X264_PRESET", "ultrafast")
            .env("HLSMUX_SEGMENT_SECONDS", "2")
            // Room for test jobs, not a Pi pool's: a shared test machine's
            // disk may have less than the default gigabyte free.
            .env("HLSMUX_OUTPUT_MIN_FREE_BYTES", "16777216")
            .env("HLSMUX_WORK_MIN_FREE_BYTES", "1048576")
            .env("HLSMUX_REQUEUE_DELAY_SECONDS", "1")
            // Tests that stop a worker mid-job expect it to give the job
            // back at once; the grace period has a test of its own.
            .env("HLSMUX_SHUTDOWN_GRACE_SECONDS", "0")
            .envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        if !options.omit_muxer_env {
            command.env("HLSMUX_MUXER_ID", muxer.to_string());
        }
        if let Some(file) = &options.config_file {
            command.arg("--config").arg(file);
        }
        if let Some(ffmpeg) = &options.ffmpeg {
            command.env("HLSMUX_FFMPEG", ffmpeg);
        }
        command
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id().expect("running")).expect("pid fits"))
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signal delivered");
    }

    /// SIGTERM, as systemd stops it, and the exit status.
    pub async fn stop(mut self, timeout: Duration) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .expect("worker stops in time after SIGTERM")
            .expect("worker exit status")
    }

    /// SIGKILL, as a crash or power loss would end it; waits for it to go.
    pub async fn kill(mut self) {
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait().await;
    }

    /// Waits up to `timeout` for the process to end by itself; true if it did.
    pub async fn exited_within(&mut self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .is_ok()
    }

    /// Its `/metrics` text.
    pub async fn metrics(&self) -> String {
        crate::http::get(self.metrics_addr, "/metrics").await.1
    }

    /// Waits until the worker's `/metrics` show it in `state` (`idle`,
    /// `drained`, `quarantined`, ...); fails the test if it never is.
    pub async fn wait_for_state(&self, state: &str) {
        let deadline = tokio::time::Instant::now() + crate::PATIENCE;
        loop {
            let metrics = self.metrics().await;
            let name = hlsmux_worker::metrics::names::WORKER_STATE;
            if hlsmux_worker::metrics::sample(&metrics, name, &[("state", state)]) == Some(1.0) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the worker never became {state}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The socket address a worker wrote to `file`, once it has.
async fn read_address_file(file: &Path) -> SocketAddr {
    let deadline = tokio::time::Instant::now() + crate::PATIENCE;
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            return text
                .trim()
                .parse()
                .expect("the worker writes a socket address");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never wrote {}",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
