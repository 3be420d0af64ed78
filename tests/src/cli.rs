//! Runs the real `hlsmux` command against a test's pool.

use std::process::Stdio;

use tokio::process::Command;

use crate::{TestEnv, binaries};

/// A finished `hlsmux` run.
#[derive(Debug)]
pub struct CliRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// An `hlsmux` run still going (a `--wait` a test disturbs meanwhile). Its
/// stdout is read as it comes, so a test can wait for a line.
pub struct RunningCli {
    child: tokio::process::Child,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
    reader: tokio::task::JoinHandle<()>,
}

impl RunningCli {
    fn new(mut child: tokio::process::Child) -> Self {
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let pipe = child.stdout.take().expect("stdout piped");
        let collected = stdout.clone();
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(mut text) = collected.lock() {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        });
        Self {
            child,
            stdout,
            reader,
        }
    }

    /// Waits until the run has printed a line on stdout that `matches`
    /// (`what` names it in the failure message).
    pub async fn wait_for_line(
        &self,
        what: &str,
        matches: impl Fn(&str) -> bool,
        timeout: std::time::Duration,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let printed = self.stdout.lock().map(|t| t.clone()).unwrap_or_default();
            if printed.lines().any(&matches) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "hlsmux never printed {what}; it printed:\n{printed}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Interrupts the run (Ctrl-C) and returns what it printed.
    pub async fn interrupt(self) -> CliRun {
        if let Some(pid) = self.child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGINT,
            );
        }
        self.finish(crate::PATIENCE).await
    }

    /// Waits for the run to end and returns what it printed.
    pub async fn finish(mut self, timeout: std::time::Duration) -> CliRun {
        let mut stderr = self.child.stderr.take().expect("stderr piped");
        let read_stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
            text
        });
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .expect("hlsmux finishes in time")
            .expect("hlsmux exit status");
        let _ = self.reader.await;
        let stderr = read_stderr.await.unwrap_or_default();
        let stdout = self.stdout.lock().map(|t| t.clone()).unwrap_or_default();
        CliRun {
            code: status.code(),
            stdout,
            stderr,
        }
    }
}

impl CliRun {
    fn command(test: &TestEnv, args: &[&str]) -> Command {
        let mut command = Command::new(binaries::cli());
        command
            .args(args)
            .envs(test.hlsmux_env())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    pub(crate) async fn run(test: &TestEnv, args: &[&str], env: &[(&str, &str)]) -> Self {
        let output = Self::command(test, args)
            .envs(env.iter().copied())
            .output()
            .await
            .expect("hlsmux runs");
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub(crate) fn spawn(test: &TestEnv, args: &[&str]) -> RunningCli {
        let child = Self::command(test, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hlsmux starts");
        RunningCli::new(child)
    }

    /// The ID of the first job a `submit --json` run queued.
    pub fn submitted_job_id(&self) -> hlsmux_protocol::JobId {
        let lines = self.json_lines();
        let submitted = lines
            .iter()
            .find(|line| line["state"] == "submitted")
            .unwrap_or_else(|| panic!("no submitted line: {self:#?}"));
        let id = submitted["job_id"].as_str().expect("a job ID");
        id.parse().unwrap_or_else(|_| panic!("not a job ID: {id}"))
    }

    /// The JSON lines the CLI printed with `--json`.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"))
            })
            .collect()
    }
}
