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

impl CliRun {
    pub(crate) async fn run(test: &TestEnv, args: &[&str]) -> Self {
        let output = Command::new(binaries::cli())
            .args(args)
            .envs(test.hlsmux_env())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .await
            .expect("hlsmux runs");
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
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
