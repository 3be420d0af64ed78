//! Watches the shared storage. Each target is probed by writing, syncing,
//! reading back and removing a small file, on a thread of its own with a
//! timeout: an NFS server that stops answering can leave that thread stuck
//! in the kernel for good, so a stuck probe is never joined, never doubled
//! (one in flight per target), and the target is reported stuck until its
//! probe finishes. A target that must be a mount point and is not gets a
//! `mount <path>` attempt, with back-off. The output root and the work dir
//! must also have room: their free space is measured by the same probe
//! and compared with a minimum, or with what a job that did not fit asked
//! for, until there is that much again.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::statvfs::statvfs;
use tokio::process::Command;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::mountinfo;
use super::problem::{ProbeStep, StorageProblem};
use crate::metrics::WorkerMetrics;

const PROBE_PAYLOAD: &[u8] = b"hlsmux storage probe\n";
const REMOUNT_BACKOFF_MIN: Duration = Duration::from_secs(5);
const REMOUNT_BACKOFF_MAX: Duration = Duration::from_secs(300);
const MOUNT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, PartialEq)]
pub enum StorageHealth {
    Healthy,
    Unhealthy(StorageProblem),
}

impl StorageHealth {
    pub fn is_healthy(&self) -> bool {
        matches!(self, StorageHealth::Healthy)
    }
}

/// How the monitor is set up.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    /// Paths that must be mount points (and are probed).
    pub mounts: Vec<PathBuf>,
    /// Paths that are only probed (the roots, when no mounts are named).
    pub probed: Vec<PathBuf>,
    pub mountinfo: PathBuf,
    /// Run as `<command> <path>` to mount a missing mount point.
    pub mount_command: String,
    pub probe_timeout: Duration,
    /// How long a healthy result is trusted before probing again.
    pub check_interval: Duration,
    /// The probe file's name, unique to this worker process.
    pub probe_file_name: String,
    /// Paths whose volume must keep at least this many bytes free.
    pub room: Vec<(PathBuf, u64)>,
}

/// The result of one probe: the free bytes where they are measured.
type ProbeResult = Result<Option<u64>, StorageProblem>;

/// A probe running on its own thread, and when it started.
type InFlightProbe = (oneshot::Receiver<ProbeResult>, Instant);

struct Target {
    path: PathBuf,
    must_be_mount: bool,
    /// The least free space this target's volume must keep, if measured.
    min_free: Option<u64>,
    in_flight: Mutex<Option<InFlightProbe>>,
    /// When the next `mount` may be tried, and the back-off after it.
    remount: Mutex<(Instant, Duration)>,
}

pub struct StorageMonitor {
    config: StorageConfig,
    targets: Vec<Target>,
    last: Mutex<Option<(Instant, StorageHealth)>>,
    /// Room asked for beyond the minimum (a job that did not fit), per
    /// target path, until the volume has it.
    wanted: Mutex<HashMap<PathBuf, u64>>,
    metrics: Arc<WorkerMetrics>,
}

impl StorageMonitor {
    pub fn new(config: StorageConfig, metrics: Arc<WorkerMetrics>) -> Self {
        let target = |path: &PathBuf, must_be_mount| Target {
            path: path.clone(),
            must_be_mount,
            min_free: None,
            in_flight: Mutex::new(None),
            remount: Mutex::new((Instant::now(), REMOUNT_BACKOFF_MIN)),
        };
        let mut targets: Vec<Target> = config
            .mounts
            .iter()
            .map(|path| target(path, true))
            .chain(config.probed.iter().map(|path| target(path, false)))
            .collect();
        for (path, min_free) in &config.room {
            match targets.iter_mut().find(|t| &t.path == path) {
                Some(existing) => existing.min_free = Some(*min_free),
                None => targets.push(Target {
                    min_free: Some(*min_free),
                    ..target(path, false)
                }),
            }
        }
        Self {
            config,
            targets,
            last: Mutex::new(None),
            wanted: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Asks for `bytes` free at `path` (a room target) before the worker
    /// takes another job: a job that did not fit waits for its room.
    pub fn want_room(&self, path: &Path, bytes: u64) {
        if let Ok(mut wanted) = self.wanted.lock() {
            wanted.insert(path.to_owned(), bytes);
        }
    }

    /// The result of the last check, if there was one.
    pub fn last_health(&self) -> Option<StorageHealth> {
        self.last
            .lock()
            .ok()
            .and_then(|last| last.as_ref().map(|(_, health)| health.clone()))
    }

    /// The storage's health: probed now when `fresh`, when the last result
    /// was unhealthy (so recovery is seen at once), or when the last healthy
    /// result is older than the check interval.
    pub async fn health(&self, fresh: bool) -> StorageHealth {
        if !fresh
            && let Some((at, StorageHealth::Healthy)) =
                self.last.lock().map(|l| l.clone()).ok().flatten()
            && at.elapsed() < self.config.check_interval
        {
            return StorageHealth::Healthy;
        }
        let health = self.check().await;
        let previous = self
            .last
            .lock()
            .ok()
            .and_then(|mut last| last.replace((Instant::now(), health.clone())))
            .map(|(_, health)| health);
        match (&previous, &health) {
            (Some(StorageHealth::Unhealthy(_)), StorageHealth::Healthy) => {
                info!("storage healthy again")
            }
            (_, StorageHealth::Unhealthy(reason)) if previous.as_ref() != Some(&health) => {
                warn!(%reason, "storage unhealthy")
            }
            _ => {}
        }
        health
    }

    async fn check(&self) -> StorageHealth {
        let mountinfo_text = if self.targets.iter().any(|t| t.must_be_mount) {
            match tokio::fs::read_to_string(&self.config.mountinfo).await {
                Ok(text) => Some(text),
                Err(error) => {
                    return StorageHealth::Unhealthy(StorageProblem::MountTableUnreadable {
                        path: self.config.mountinfo.clone(),
                        source: Arc::new(error),
                    });
                }
            }
        } else {
            None
        };
        // Every target is checked (and its metrics updated); the first
        // failure is the reason given.
        let mut first_failure = None;
        for target in &self.targets {
            let mounted = target.must_be_mount.then(|| {
                mountinfo_text
                    .as_deref()
                    .is_some_and(|text| mountinfo::is_mount_point(text, &target.path))
            });
            let result = if mounted == Some(false) {
                self.try_mount(target).await;
                Err(StorageProblem::NotMounted {
                    path: target.path.clone(),
                })
            } else {
                self.probe(target)
                    .await
                    .and_then(|free| self.enough_room(target, free))
            };
            self.metrics
                .storage_checked(&target.path, mounted, result.is_ok());
            if let Err(reason) = result {
                first_failure.get_or_insert(reason);
            }
        }
        if let Some(reason) = first_failure {
            return StorageHealth::Unhealthy(reason);
        }
        StorageHealth::Healthy
    }

    /// Whether a measured target has the room it must keep.
    fn enough_room(&self, target: &Target, free: Option<u64>) -> Result<(), StorageProblem> {
        let (Some(min_free), Some(free)) = (target.min_free, free) else {
            return Ok(());
        };
        self.metrics.storage_free(&target.path, free);
        let mut wanted = self
            .wanted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let needed = wanted
            .get(&target.path)
            .map_or(min_free, |asked| min_free.max(*asked));
        if free < needed {
            return Err(StorageProblem::Full {
                path: target.path.clone(),
                free_bytes: free,
                needed_bytes: needed,
            });
        }
        wanted.remove(&target.path);
        Ok(())
    }

    /// Probes one target, or waits on the probe already in flight.
    async fn probe(&self, target: &Target) -> ProbeResult {
        let pending = target
            .in_flight
            .lock()
            .ok()
            .and_then(|mut slot| slot.take());
        let (mut receiver, started) = match pending {
            Some(pending) => pending,
            None => {
                let (sender, receiver) = oneshot::channel();
                let file = target.path.join(&self.config.probe_file_name);
                // A plain thread, detached: if the kernel never returns, it
                // must not hold a slot of the runtime's blocking pool.
                let path = target.path.clone();
                let measure = target.min_free.is_some();
                std::thread::Builder::new()
                    .name("storage-probe".into())
                    .spawn(move || {
                        let _ = sender.send(probe_file(&path, &file, measure));
                    })
                    .map_err(|error| StorageProblem::ProbeNotStarted {
                        path: target.path.clone(),
                        source: Arc::new(error),
                    })?;
                (receiver, Instant::now())
            }
        };
        let left = self.config.probe_timeout.saturating_sub(started.elapsed());
        let outcome = tokio::time::timeout(left, &mut receiver).await;
        let passed = matches!(outcome, Ok(Ok(Ok(_))));
        self.metrics.storage_probed(
            &target.path,
            passed.then(|| started.elapsed().as_secs_f64()),
        );
        match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StorageProblem::ProbeLost {
                path: target.path.clone(),
            }),
            Err(_) => {
                let stuck_for = started.elapsed().as_secs();
                if let Ok(mut slot) = target.in_flight.lock() {
                    *slot = Some((receiver, started));
                }
                Err(StorageProblem::ProbeStuck {
                    path: target.path.clone(),
                    seconds: stuck_for,
                })
            }
        }
    }

    /// Runs the mount command for a missing mount point, at most once per
    /// back-off period.
    async fn try_mount(&self, target: &Target) {
        let due = target
            .remount
            .lock()
            .is_ok_and(|slot| Instant::now() >= slot.0);
        if !due {
            return;
        }
        let mut words = self.config.mount_command.split_whitespace();
        let Some(program) = words.next() else { return };
        self.metrics.remount_attempted(&target.path);
        let run = Command::new(program)
            .args(words)
            .arg(&target.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output();
        let outcome = match tokio::time::timeout(MOUNT_COMMAND_TIMEOUT, run).await {
            Ok(Ok(output)) if output.status.success() => Ok(()),
            Ok(Ok(output)) => Err(String::from_utf8_lossy(&output.stderr).trim().to_owned()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("timed out".into()),
        };
        if let Ok(mut slot) = target.remount.lock() {
            let delay = slot.1;
            *slot = (Instant::now() + delay, (delay * 2).min(REMOUNT_BACKOFF_MAX));
            match outcome {
                Ok(()) => info!(path = %target.path.display(), "mounted"),
                Err(error) => {
                    warn!(path = %target.path.display(), %error, retry_in = ?delay, "mount failed")
                }
            }
        }
    }
}

/// Write, sync, read back, remove `file` in `target`, and with `measure`
/// the free bytes of its volume. Blocking, possibly forever.
fn probe_file(target: &Path, file_path: &Path, measure: bool) -> ProbeResult {
    let failed = |step: ProbeStep| {
        move |error: std::io::Error| StorageProblem::ProbeFailed {
            path: target.to_owned(),
            step,
            file: file_path.to_owned(),
            source: Arc::new(error),
        }
    };
    let mut file = File::create(file_path).map_err(failed(ProbeStep::Create))?;
    file.write_all(PROBE_PAYLOAD)
        .map_err(failed(ProbeStep::Write))?;
    file.sync_all().map_err(failed(ProbeStep::Sync))?;
    drop(file);
    let back = std::fs::read(file_path).map_err(failed(ProbeStep::ReadBack))?;
    std::fs::remove_file(file_path).map_err(failed(ProbeStep::Remove))?;
    if back != PROBE_PAYLOAD {
        return Err(StorageProblem::ProbeMismatch {
            path: target.to_owned(),
            file: file_path.to_owned(),
        });
    }
    if !measure {
        return Ok(None);
    }
    free_bytes(target)
        .map(Some)
        .map_err(failed(ProbeStep::MeasureRoom))
}

/// Blocking. The bytes an unprivileged writer may still use on the volume
/// of `path` (the root reserve aside).
// The counts are u32 on 32-bit targets (a 32-bit Raspberry Pi OS).
#[allow(clippy::useless_conversion)]
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let volume = statvfs(path)?;
    Ok(u64::from(volume.blocks_available()).saturating_mul(u64::from(volume.fragment_size())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Arc<WorkerMetrics> {
        Arc::new(WorkerMetrics::new(
            hlsmux_protocol::MuxerId::new(1).expect("valid"),
            "test",
        ))
    }

    fn config(dir: &Path) -> StorageConfig {
        StorageConfig {
            mounts: Vec::new(),
            probed: vec![dir.to_owned()],
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            mount_command: "mount".into(),
            probe_timeout: Duration::from_millis(500),
            check_interval: Duration::from_secs(60),
            probe_file_name: ".hlsmux-probe-test".into(),
            room: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_writable_directory_is_healthy_and_the_probe_file_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let monitor = StorageMonitor::new(config(dir.path()), metrics());
        assert_eq!(monitor.health(true).await, StorageHealth::Healthy);
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
    }

    #[tokio::test]
    async fn a_missing_directory_is_unhealthy() {
        let monitor = StorageMonitor::new(config(Path::new("/nonexistent/hlsmux")), metrics());
        assert!(matches!(
            monitor.health(true).await,
            StorageHealth::Unhealthy(StorageProblem::ProbeFailed {
                step: ProbeStep::Create,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn a_probe_that_hangs_is_reported_stuck_and_not_started_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join(".hlsmux-probe-test");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        let monitor = StorageMonitor::new(config(dir.path()), metrics());
        let started = Instant::now();
        let first = monitor.health(true).await;
        assert!(
            matches!(
                &first,
                StorageHealth::Unhealthy(StorageProblem::ProbeStuck { .. })
            ),
            "{first:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "answered within the timeout"
        );
        let again = Instant::now();
        let second = monitor.health(true).await;
        assert!(
            matches!(
                &second,
                StorageHealth::Unhealthy(StorageProblem::ProbeStuck { .. })
            ),
            "{second:?}"
        );
        assert!(
            again.elapsed() < Duration::from_millis(100),
            "the stuck probe is not waited on again"
        );

        // Unblock the writer: the stuck probe finishes (a FIFO cannot be
        // synced, so it fails), then a fresh probe on a plain file passes.
        let reader = std::thread::spawn(move || std::fs::read(&fifo).map(|_| fifo));
        let fifo = reader.join().expect("reader").expect("read fifo");
        std::fs::remove_file(&fifo).expect("remove fifo");
        let mut health = monitor.health(true).await;
        for _ in 0..10 {
            if health.is_healthy() {
                break;
            }
            health = monitor.health(true).await;
        }
        assert_eq!(health, StorageHealth::Healthy);
    }

    #[tokio::test]
    async fn a_missing_mount_is_unhealthy_and_mounting_is_tried_with_back_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mountinfo = dir.path().join("mountinfo");
        std::fs::write(&mountinfo, "22 1 0:21 / / rw - ext4 /dev/sda1 rw\n").expect("write");
        let calls = dir.path().join("calls");
        let script = dir.path().join("mount");
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho \"$@\" >> {}\nexit 32\n", calls.display()),
        )
        .expect("write");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let media = dir.path().join("media");
        std::fs::create_dir(&media).expect("mkdir");
        let monitor = StorageMonitor::new(
            StorageConfig {
                mounts: vec![media.clone()],
                probed: Vec::new(),
                mountinfo: mountinfo.clone(),
                mount_command: script.display().to_string(),
                ..config(dir.path())
            },
            metrics(),
        );
        let health = monitor.health(true).await;
        assert!(
            matches!(
                &health,
                StorageHealth::Unhealthy(StorageProblem::NotMounted { .. })
            ),
            "{health:?}"
        );
        let _ = monitor.health(true).await;
        let tried = std::fs::read_to_string(&calls).expect("mount was tried");
        assert_eq!(
            tried.lines().collect::<Vec<_>>(),
            [media.display().to_string()],
            "once, then back-off"
        );

        std::fs::write(
            &mountinfo,
            format!(
                "22 1 0:21 / / rw - ext4 /dev/sda1 rw\n41 22 0:36 / {} rw - nfs nas:/media rw\n",
                media.display()
            ),
        )
        .expect("write");
        assert_eq!(monitor.health(false).await, StorageHealth::Healthy);
    }
}
