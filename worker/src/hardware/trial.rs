//! One trial run of ffmpeg at start-up (an encoder's, a decoder's): it
//! works when ffmpeg ends well within the timeout; otherwise the last lines
//! of its errors say why not.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::pipeline::input::probe::last_lines;

/// A trial that takes longer than this has failed.
pub const TRIAL_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(ffmpeg: &Path, args: &[String]) -> Result<(), String> {
    let run = Command::new(ffmpeg)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(TRIAL_TIMEOUT, run)
        .await
        .map_err(|_| format!("no result within {} s", TRIAL_TIMEOUT.as_secs()))?
        .map_err(|error| error.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(last_lines(&String::from_utf8_lossy(&output.stderr), 2))
    }
}
