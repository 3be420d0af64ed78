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

/// An `hlsmux` run still going (a `--wait` a test disturbs meanwhile).
pub struct RunningCli {
    child: tokio::process::Child,
}

impl RunningCli {
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
    pub async fn finish(self, timeout: std::time::Duration) -> CliRun {
        let output = tokio::time::timeout(timeout, self.child.wait_with_output())
            .await
            .expect("hlsmux finishes in time")
            .expect("hlsmux output");
        CliRun {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
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
        RunningCli { child }
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
