//! A full or read-only output volume never turns good jobs into failures.
//! On real small filesystems (a tmpfs mounted by the test, which needs
//! root; skipped, saying why, otherwise): a volume without room takes no
//! job (it waits in the queue, the worker is `storage-full` and unready)
//! until room returns; a volume filling mid-encode requeues the job as
//! `storage_full`, removes its staging, and the job completes once there is
//! room, `done` once; a volume remounted read-only mid-job requeues it as
//! `storage_unhealthy` and the worker recovers when it is writable again;
//! a full work dir is reported and the worker stays up.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hlsmux_protocol::{EventState, JobId, JobState, MuxerId, RequeueReason};
use hlsmux_tests::media::Clip;
use hlsmux_tests::{EventLog, PATIENCE, TestEnv, TestWorker, WorkerOptions, count_events, http};

/// A tmpfs mounted over a test directory, unmounted on drop.
struct SmallVolume {
    at: PathBuf,
}

impl SmallVolume {
    /// `None` (the test then skips) where this process may not mount.
    fn mount(at: &Path, megabytes: u32) -> Option<Self> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: mounting a small tmpfs needs root");
            return None;
        }
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount runs");
        if !mounted.success() {
            eprintln!("skipped: cannot mount a tmpfs at {}", at.display());
            return None;
        }
        Some(Self { at: at.to_owned() })
    }

    fn remount(&self, mode: &str) {
        let done = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.at)
            .status()
            .expect("mount runs");
        assert!(done.success(), "remount {mode}");
    }

    /// Fills the volume until a write fails, leaving `keep` bytes or less.
    fn fill(&self, keep: u64) -> PathBuf {
        let filler = self.at.join("filler");
        let mut file = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0x55_u8; 64 * 1024];
        while free_bytes(&self.at) > keep + chunk.len() as u64 {
            if file.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallVolume {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

fn free_bytes(path: &Path) -> u64 {
    hlsmux_worker::health::storage::free_bytes(path).expect("statvfs")
}

fn room(output_min_free: &str, work_min_free: &str) -> Vec<(String, String)> {
    vec![
        (
            "HLSMUX_OUTPUT_MIN_FREE_BYTES".into(),
            output_min_free.into(),
        ),
        ("HLSMUX_WORK_MIN_FREE_BYTES".into(), work_min_free.into()),
        ("HLSMUX_STORAGE_CHECK_INTERVAL_SECONDS".into(), "1".into()),
    ]
}

async fn readyz(worker: &TestWorker) -> (u16, String) {
    http::get(worker.metrics_addr, "/readyz").await
}

/// Waits until the worker is `storage-full`, and checks that `/readyz`
/// answers 503 saying so and naming `volume`.
async fn wait_until_full_at(worker: &TestWorker, volume: &Path) {
    worker.wait_for_state("storage-full").await;
    let (status, body) = readyz(worker).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("storage full") && body.contains(&volume.display().to_string()),
        "/readyz says why: {body}"
    );
}

/// Staging directories anywhere under the output root.
fn staging_left(output_root: &Path) -> Vec<PathBuf> {
    let mut left = Vec::new();
    let mut dirs = vec![output_root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable").flatten() {
            let path = entry.path();
            if path.to_string_lossy().ends_with(".partial") {
                left.push(path);
            } else if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                dirs.push(path);
            }
        }
    }
    left
}

async fn wait_until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A worker encoding a 6-second clip at real-time speed: time to act on
/// its volume mid-encode.
async fn encoding_a_clip(test: &TestEnv) -> (TestWorker, EventLog, JobId) {
    let worker = test
        .worker_with(
            1,
            WorkerOptions {
                env: room("1048576", "1048576"),
                ..WorkerOptions::realtime(test)
            },
        )
        .await;
    let clip = Clip {
        seconds: 6,
        ..Clip::default()
    }
    .write(&test.elsewhere().join("clip.mp4"))
    .await;
    let mut events = test.pool.events().await;
    let job = test
        .submit_ok(&clip, &["--muxer", "1", "--json"])
        .await
        .submitted_job_id();
    events.wait_for_encoding(Some(job)).await;
    (worker, events, job)
}

/// The reason and message of the job's first `requeued` event.
async fn requeued(events: &mut EventLog, job: JobId) -> (RequeueReason, String) {
    let requeued = events
        .wait_for(
            "the job requeued",
            |event| event.job_id == job && matches!(event.state, JobState::Requeued { .. }),
            PATIENCE,
        )
        .await;
    match requeued.state {
        JobState::Requeued { reason, message } => (reason, message),
        _ => unreachable!("matched above"),
    }
}

#[tokio::test]
async fn a_full_output_volume_takes_no_job_until_there_is_room() {
    let test = TestEnv::new("output-full").await;
    let Some(volume) = SmallVolume::mount(&test.output_root(), 16) else {
        return;
    };
    let filler = volume.fill(512 * 1024);
    let log = test.path().join("worker.log");
    let worker = test
        .worker_with(
            1,
            WorkerOptions {
                expected_consumers: Some(0),
                env: room("4194304", "1048576"),
                log_file: Some(log.clone()),
                ..WorkerOptions::default()
            },
        )
        .await;
    wait_until_full_at(&worker, &test.output_root()).await;
    let metrics = worker.metrics().await;
    let free = hlsmux_worker::metrics::sample(
        &metrics,
        hlsmux_worker::metrics::names::STORAGE_FREE_BYTES,
        &[("path", &test.output_root().display().to_string())],
    )
    .expect("the free space is exported");
    assert!(free < 1024.0 * 1024.0, "{free}");

    let muxer = MuxerId::new(1).expect("valid");
    let clip = Clip::default()
        .write(&test.elsewhere().join("clip.mp4"))
        .await;
    let mut events = test.pool.events().await;
    let run = test.submit_ok(&clip, &["--muxer", "1", "--json"]).await;
    let job = run.submitted_job_id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        test.pool.ready_and_consumers(muxer).await,
        (1, 0),
        "the job waits in the queue"
    );
    let pool = test.cli(&["workers", "--json"]).await;
    assert!(
        pool.stdout.contains("\"state\":\"storage-full\""),
        "hlsmux workers shows the state: {pool:#?}"
    );

    std::fs::remove_file(&filler).expect("room again");
    let done = events.final_event(job, PATIENCE).await;
    assert!(matches!(done.state, JobState::Done { .. }), "{done:#?}");
    assert_eq!(events.count(job, EventState::Started), 1);
    // Checking a fresh pool is not an error.
    let logged = std::fs::read_to_string(&log).expect("worker log");
    assert!(
        !logged.lines().any(|line| line.contains("ERROR")),
        "no error logged for expected conditions: {logged}"
    );
}

#[tokio::test]
async fn a_volume_filling_mid_encode_requeues_the_job_which_completes_once_there_is_room() {
    let test = TestEnv::new("fills-mid-job").await;
    let Some(volume) = SmallVolume::mount(&test.output_root(), 32) else {
        return;
    };
    let (worker, mut events, job) = encoding_a_clip(&test).await;
    let filler = volume.fill(0);

    let (reason, message) = requeued(&mut events, job).await;
    assert_eq!(reason, RequeueReason::StorageFull, "{message}");
    assert!(
        message.contains("output volume full") && message.contains("No space left on device"),
        "the reason says it plainly: {message}"
    );
    // And so does the CLI.
    let status = test.cli(&["status", &job.to_string()]).await;
    assert!(
        status
            .stdout
            .lines()
            .any(|line| line.contains("requeued")
                && line.contains("storage_full: output volume full")),
        "{status:#?}"
    );
    worker.wait_for_state("storage-full").await;
    let left = staging_left(&test.output_root());
    assert!(left.is_empty(), "staging removed: {left:?}");

    std::fs::remove_file(&filler).expect("room again");
    let done = events.final_event(job, PATIENCE).await;
    let JobState::Done {
        master_playlist, ..
    } = &done.state
    else {
        panic!("{done:#?}");
    };
    assert!(test.output_root().join(master_playlist).exists());
    let history = test.pool.history(Duration::from_secs(1)).await;
    assert_eq!(count_events(&history, job, EventState::Done), 1);
    assert_eq!(count_events(&history, job, EventState::Failed), 0);
}

#[tokio::test]
async fn a_volume_remounted_read_only_mid_job_requeues_it_and_the_worker_recovers() {
    let test = TestEnv::new("read-only").await;
    let Some(volume) = SmallVolume::mount(&test.output_root(), 32) else {
        return;
    };
    let (worker, mut events, job) = encoding_a_clip(&test).await;
    volume.remount("ro");

    let (reason, message) = requeued(&mut events, job).await;
    assert_eq!(reason, RequeueReason::StorageUnhealthy, "{message}");
    assert!(message.contains("Read-only file system"), "{message}");
    worker.wait_for_state("storage-unhealthy").await;
    let (status, body) = readyz(&worker).await;
    assert_eq!(status, 503, "{body}");

    volume.remount("rw");
    let done = events.final_event(job, PATIENCE).await;
    assert!(matches!(done.state, JobState::Done { .. }), "{done:#?}");
    let history = test.pool.history(Duration::from_secs(1)).await;
    assert_eq!(count_events(&history, job, EventState::Done), 1);
    assert_eq!(count_events(&history, job, EventState::Failed), 0);
    wait_until("the worker is ready again", async || {
        readyz(&worker).await.0 == 200
    })
    .await;
    assert!(staging_left(&test.output_root()).is_empty());
}

#[tokio::test]
async fn a_full_work_dir_is_reported_and_the_worker_stays_up() {
    let test = TestEnv::new("work-full").await;
    let Some(volume) = SmallVolume::mount(&test.work_dir(), 8) else {
        return;
    };
    let filler = volume.fill(256 * 1024);
    let mut worker = test
        .worker_with(
            1,
            WorkerOptions {
                expected_consumers: Some(0),
                env: room("1048576", "1048576"),
                ..WorkerOptions::default()
            },
        )
        .await;
    wait_until_full_at(&worker, &test.work_dir()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(worker.is_running(), "the worker stays up");

    std::fs::remove_file(&filler).expect("room again");
    worker.wait_for_state("idle").await;
    let muxer = MuxerId::new(1).expect("valid");
    wait_until("the worker consumes again", async || {
        test.pool.ready_and_consumers(muxer).await.1 == 1
    })
    .await;
}
