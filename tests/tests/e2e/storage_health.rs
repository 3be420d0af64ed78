//! While its shared storage is missing or hung, a worker takes no jobs (they
//! wait in the queue), keeps answering, and resumes by itself when the
//! storage is back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hlsmux_protocol::{JobState, MuxerId};
use hlsmux_tests::media::{Clip, write_script};
use hlsmux_tests::{PATIENCE, TestEnv, TestWorker, WorkerOptions};
use nix::sys::stat::Mode;

const ROOT_ONLY: &str = "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw\n";

fn mountinfo_with(mounts: &[&Path]) -> String {
    let mut text = ROOT_ONLY.to_owned();
    for (index, mount) in mounts.iter().enumerate() {
        text.push_str(&format!(
            "{} 22 0:{} / {} rw,relatime shared:{} - nfs 192.168.1.2:/volume1/{index} rw,vers=3,hard\n",
            41 + index,
            36 + index,
            mount.display(),
            20 + index
        ));
    }
    text
}

async fn wait_for_consumers(test: &TestEnv, muxer: MuxerId, consumers: u32) {
    let deadline = Instant::now() + PATIENCE;
    while test.pool.ready_and_consumers(muxer).await.1 != consumers {
        assert!(
            Instant::now() < deadline,
            "consumers never became {consumers}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn submit(test: &TestEnv, clip: &Path, name: &str) -> hlsmux_protocol::JobId {
    let run = test
        .submit_ok(clip, &["--muxer", "1", "--name", name, "--json"])
        .await;
    run.submitted_job_id()
}

#[tokio::test]
async fn a_missing_mount_keeps_jobs_queued_until_it_is_mounted_again() {
    let test = TestEnv::new("mount-missing").await;
    let (media, output) = (test.media_root(), test.output_root());
    let mountinfo = test.path().join("mountinfo");
    std::fs::write(&mountinfo, mountinfo_with(&[&output])).expect("write mountinfo");
    let calls = test.path().join("mount-calls");
    let mount = write_script(
        &test.path().join("mount"),
        &format!("echo \"$@\" >> {}\nexit 32", calls.display()),
    );
    let options = WorkerOptions {
        expected_consumers: Some(0),
        env: vec![
            (
                "HLSMUX_STORAGE_MOUNTS".into(),
                format!("{},{}", media.display(), output.display()),
            ),
            ("HLSMUX_MOUNTINFO".into(), mountinfo.display().to_string()),
            ("HLSMUX_MOUNT_COMMAND".into(), mount.display().to_string()),
        ],
        ..WorkerOptions::default()
    };
    let _worker = test.worker_with(1, options).await;
    let muxer = MuxerId::new(1).expect("valid");
    let clip = Clip::default()
        .write(&test.elsewhere().join("clip.mp4"))
        .await;
    let mut events = test.pool.events().await;
    let job = submit(&test, &clip, "waits.hls").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        test.pool.ready_and_consumers(muxer).await,
        (1, 0),
        "the job waits in the queue"
    );
    let tried = std::fs::read_to_string(&calls).expect("the worker tried to mount");
    assert!(
        tried.lines().any(|line| Path::new(line.trim()) == media),
        "{tried}"
    );

    std::fs::write(&mountinfo, mountinfo_with(&[&media, &output])).expect("mounted again");
    let done = events.final_event(job, PATIENCE).await;
    assert!(matches!(done.state, JobState::Done { .. }), "{done:#?}");
}

/// Makes the worker's next storage probe hang in `open`, as on a dead NFS
/// server, by putting a FIFO (with no reader) where its probe file goes.
fn hang_probe(root: &Path, worker: &TestWorker) -> PathBuf {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let fifo = root.join(format!(".hlsmux-probe-{host}-{}", worker.pid()));
    nix::unistd::mkfifo(&fifo, Mode::S_IRUSR | Mode::S_IWUSR).expect("mkfifo");
    fifo
}

#[tokio::test]
async fn a_hung_storage_probe_stops_consumption_within_the_timeout_and_recovery_resumes_it() {
    let test = TestEnv::new("probe-hangs").await;
    let options = WorkerOptions {
        env: vec![
            ("HLSMUX_STORAGE_PROBE_TIMEOUT_SECONDS".into(), "1".into()),
            ("HLSMUX_STORAGE_CHECK_INTERVAL_SECONDS".into(), "1".into()),
        ],
        ..WorkerOptions::default()
    };
    let worker = test.worker_with(1, options.clone()).await;
    let muxer = MuxerId::new(1).expect("valid");
    let fifo = hang_probe(&test.media_root(), &worker);
    let hung_at = Instant::now();
    wait_for_consumers(&test, muxer, 0).await;
    assert!(
        hung_at.elapsed() < Duration::from_secs(10),
        "noticed within a few probe timeouts"
    );

    let clip = Clip::default()
        .write(&test.elsewhere().join("clip.mp4"))
        .await;
    let mut events = test.pool.events().await;
    let job = submit(&test, &clip, "after-recovery.hls").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        test.pool.ready_and_consumers(muxer).await,
        (1, 0),
        "the job waits in the queue"
    );

    // The server answers again: the stuck open() completes, the FIFO goes.
    let reader = std::thread::spawn(move || std::fs::read(&fifo).map(|_| fifo));
    let fifo = reader
        .join()
        .expect("reader thread")
        .expect("read the fifo");
    std::fs::remove_file(&fifo).expect("remove fifo");
    let done = events.final_event(job, PATIENCE).await;
    assert!(matches!(done.state, JobState::Done { .. }), "{done:#?}");

    // Hung again, the worker still answers a stop at once: nothing waits
    // on the stuck probe.
    let _fifo = hang_probe(&test.media_root(), &worker);
    wait_for_consumers(&test, muxer, 0).await;
    let stopping = Instant::now();
    let status = worker.stop(PATIENCE).await;
    assert!(status.success(), "{status:?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "stopped in {:?}",
        stopping.elapsed()
    );
}

#[tokio::test]
async fn a_job_whose_storage_fails_mid_encode_is_requeued_not_failed() {
    let test = TestEnv::new("storage-mid-encode").await;
    let output = test.output_root();
    let mountinfo = test.path().join("mountinfo");
    std::fs::write(&mountinfo, mountinfo_with(&[&output])).expect("write mountinfo");
    let options = WorkerOptions {
        ffmpeg: Some(hlsmux_tests::media::realtime_ffmpeg(test.path())),
        env: vec![
            ("HLSMUX_STORAGE_MOUNTS".into(), output.display().to_string()),
            ("HLSMUX_MOUNTINFO".into(), mountinfo.display().to_string()),
            ("HLSMUX_MOUNT_COMMAND".into(), "false".into()),
        ],
        ..WorkerOptions::default()
    };
    let _worker = test.worker_with(1, options).await;
    let muxer = MuxerId::new(1).expect("valid");
    let clip = Clip {
        seconds: 6,
        ..Clip::default()
    }
    .write(&test.media_root().join("clip.mp4"))
    .await;
    let mut events = test.pool.events().await;
    let job = submit(&test, &clip, "shows/clip.hls").await;
    events.wait_for_encoding(Some(job)).await;

    // The output mount goes away under ffmpeg: its directory empties and
    // the mount leaves the mount table.
    std::fs::write(&mountinfo, ROOT_ONLY).expect("unmounted");
    std::fs::remove_dir_all(output.join("shows")).expect("the mount's contents vanish");
    wait_for_consumers(&test, muxer, 0).await;
    let deadline = Instant::now() + PATIENCE;
    while test.pool.ready_and_consumers(muxer).await != (1, 0) {
        assert!(
            Instant::now() < deadline,
            "the job never went back to the queue"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !events
            .seen()
            .iter()
            .any(|e| e.job_id == job && e.state.is_final()),
        "not failed, not done: {:#?}",
        events.seen()
    );
    assert_eq!(test.pool.dead_letters().await, 0);

    std::fs::write(&mountinfo, mountinfo_with(&[&output])).expect("mounted again");
    let done = events.final_event(job, PATIENCE).await;
    assert!(matches!(done.state, JobState::Done { .. }), "{done:#?}");
}
