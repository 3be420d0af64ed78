//! Running ffmpeg as a supervised child: progress, stalls, cancellation,
//! its stderr kept for the log, and no orphan left behind by a crash.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::health::storage::fault::StorageFault;
use crate::pipeline::JobError;
use crate::pipeline::input::probe::last_lines;

use super::oom;
use super::progress::{EncodeProgress, ProgressParser};

/// How many of ffmpeg's last error lines a failure message quotes.
const STDERR_TAIL_LINES: usize = 5;

/// The running encode's process group is recorded in the work dir, in a
/// file named after the worker's process: a worker killed outright
/// (SIGKILL, OOM) leaves its ffmpeg running, and the next worker to start
/// there stops it.
fn encoder_record(work_dir: &Path) -> PathBuf {
    work_dir.join(format!("encoder.{}.pgid", std::process::id()))
}

/// Blocking. Stops encoders that workers which no longer run left behind
/// in `work_dir`, where the recorded process group still runs ffmpeg (so a
/// reused ID is left alone).
pub fn stop_orphaned_encoders(work_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(worker_pid) = name
            .strip_prefix("encoder.")
            .and_then(|rest| rest.strip_suffix(".pgid"))
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let worker_alive = nix::sys::signal::kill(Pid::from_raw(worker_pid), None).is_ok();
        if worker_alive {
            continue;
        }
        let pgid = std::fs::read_to_string(entry.path())
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok());
        let _ = std::fs::remove_file(entry.path());
        let Some(pgid) = pgid else { continue };
        let runs_ffmpeg = std::fs::read(format!("/proc/{pgid}/cmdline"))
            .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("ffmpeg"));
        if runs_ffmpeg {
            tracing::warn!(
                pgid,
                worker_pid,
                "stopping an encoder left running by a killed worker"
            );
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

/// One ffmpeg run: what to run, where it writes and where it logs.
pub struct FfmpegRun<'a> {
    pub ffmpeg: &'a Path,
    pub args: &'a [OsString],
    /// Where ffmpeg writes its output: named when the volume refuses.
    pub output_dir: &'a Path,
    /// While it runs, its process group is recorded here.
    pub work_dir: &'a Path,
    /// All of its error output goes here.
    pub log_path: &'a Path,
    pub stall_timeout: Duration,
    /// The cgroup `memory.events` that counts out-of-memory kills.
    pub memory_events: Option<&'a Path>,
}

/// Runs ffmpeg, publishing progress on `progress`. ffmpeg is killed and
/// awaited when `cancel` fires, or when its output time has not advanced
/// for the stall timeout. A storage error in its output (no room, a
/// read-only volume) is the volume's fault whatever ffmpeg's exit status:
/// its HLS muxer can end with success after failing to write a playlist.
pub async fn run_ffmpeg(
    run: FfmpegRun<'_>,
    progress: &watch::Sender<Option<EncodeProgress>>,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    let child = Command::new(run.ffmpeg)
        .args(run.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that stopping it also stops anything it
        // (or a wrapper script around it) started.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| JobError::ToolUnavailable {
            program: run.ffmpeg.to_owned(),
            source,
        })?;
    let pgid_record = encoder_record(run.work_dir);
    let kills_before = run.memory_events.and_then(oom::oom_kills);
    if let Some(pid) = child.id() {
        let _ = tokio::fs::write(&pgid_record, pid.to_string()).await;
    }
    let result = supervise(child, &run, progress, cancel)
        .await
        .map_err(|error| blame_out_of_memory(error, &run, kills_before));
    let _ = tokio::fs::remove_file(&pgid_record).await;
    result
}

async fn supervise(
    mut child: tokio::process::Child,
    run: &FfmpegRun<'_>,
    progress: &watch::Sender<Option<EncodeProgress>>,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    enum Cut {
        Cancelled,
        Stalled,
    }
    let finished = tokio::select! {
        outcome = async {
            tokio::join!(
                read_progress(stdout, progress),
                keep_stderr(stderr, run.log_path),
                child.wait(),
            )
        } => Ok(outcome),
        () = cancel.cancelled() => Err(Cut::Cancelled),
        () = stalled(progress.subscribe(), run.stall_timeout) => Err(Cut::Stalled),
    };
    let ((), kept, status) = match finished {
        Ok(outcome) => outcome,
        Err(cut) => {
            // Never leave an orphan ffmpeg writing into a directory we delete.
            if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.kill().await;
            return Err(match cut {
                Cut::Cancelled => JobError::Interrupted,
                Cut::Stalled => JobError::Stalled {
                    seconds: run.stall_timeout.as_secs(),
                },
            });
        }
    };
    let status = status.map_err(|source| JobError::ToolUnavailable {
        program: run.ffmpeg.to_owned(),
        source,
    })?;
    if let Some((fault, words)) = kept.storage_fault {
        return Err(JobError::Storage {
            fault,
            path: run.output_dir.to_owned(),
            cause: words.to_owned(),
        });
    }
    if status.success() {
        return Ok(());
    }
    let stderr_tail = last_lines(&kept.tail, STDERR_TAIL_LINES);
    if let Some(signal) = status.signal() {
        // Killed from outside (a crash, the kernel's OOM killer): the
        // machine's trouble, not necessarily the input's.
        let signal =
            Signal::try_from(signal).map_or_else(|_| format!("signal {signal}"), |s| s.to_string());
        return Err(JobError::EncoderCrashed {
            signal,
            stderr_tail,
        });
    }
    Err(JobError::EncodeFailed {
        status: status.to_string(),
        stderr_tail,
    })
}

/// A crash by SIGKILL, said to be the kernel's out-of-memory killer when
/// the cgroup's `oom_kill` count went up meanwhile.
fn blame_out_of_memory(mut error: JobError, run: &FfmpegRun<'_>, before: Option<u64>) -> JobError {
    if let JobError::EncoderCrashed { signal, .. } = &mut error
        && let (Some(file), Some(before)) = (run.memory_events, before)
        && let Some(after) = oom::oom_kills(file).filter(|after| *after > before)
    {
        *signal = format!(
            "{signal} from the kernel's out-of-memory killer ({}: oom_kill {before} -> {after}; give the worker more memory or plan fewer rungs)",
            file.display()
        );
    }
    error
}

/// Resolves once ffmpeg's output time has not advanced for `limit` (from
/// the start, or from its last advance). Never resolves after ffmpeg ends.
async fn stalled(mut progress: watch::Receiver<Option<EncodeProgress>>, limit: Duration) {
    let mut reached = progress.borrow_and_update().map(|p| p.out_seconds);
    let mut deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, progress.changed()).await {
            Err(_) => return,
            Ok(Err(_)) => std::future::pending().await,
            Ok(Ok(())) => {
                let now = progress.borrow_and_update().map(|p| p.out_seconds);
                if now > reached {
                    reached = now;
                    deadline = Instant::now() + limit;
                }
            }
        }
    }
}

async fn read_progress(
    stdout: Option<impl AsyncRead + Unpin>,
    progress: &watch::Sender<Option<EncodeProgress>>,
) {
    let Some(stdout) = stdout else { return };
    let mut lines = BufReader::new(stdout).lines();
    let mut parser = ProgressParser::default();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(update) = parser.feed(&line) {
            progress.send_replace(Some(update));
        }
    }
}

/// What was kept of ffmpeg's error output.
struct KeptStderr {
    /// The last lines, for the failure message.
    tail: String,
    /// The first storage error it reported, anywhere in its output.
    storage_fault: Option<(StorageFault, &'static str)>,
}

/// Collects ffmpeg's error output: the last lines in memory for the failure
/// message, all of it in the log file for whoever investigates.
async fn keep_stderr(stderr: Option<impl AsyncRead + Unpin>, log_path: &Path) -> KeptStderr {
    let mut kept = KeptStderr {
        tail: String::new(),
        storage_fault: None,
    };
    let Some(stderr) = stderr else {
        return kept;
    };
    let mut log = tokio::fs::File::create(log_path).await.ok();
    let mut tail: VecDeque<String> = VecDeque::with_capacity(STDERR_TAIL_LINES + 1);
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(file) = log.as_mut()
            && file
                .write_all(format!("{line}\n").as_bytes())
                .await
                .is_err()
        {
            log = None;
        }
        if kept.storage_fault.is_none() {
            kept.storage_fault = StorageFault::in_ffmpeg_line(&line);
        }
        tail.push_back(line);
        if tail.len() > STDERR_TAIL_LINES {
            tail.pop_front();
        }
    }
    kept.tail = Vec::from(tail).join("\n");
    kept
}
