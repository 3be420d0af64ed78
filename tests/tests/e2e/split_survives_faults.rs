//! A split job through faults (issue 21): a chunk's worker killed outright
//! mid-chunk (its chunk is done again elsewhere, its half-written attempt
//! never used); the coordinator killed mid-job (the job comes back to
//! another worker, which reuses every chunk already finished: the `done`
//! event names the dead worker for them); two long jobs at once on two
//! workers (both finish: coordinators help each other, never wait on each
//! other); and a cancellation mid-job (every chunk stops, nothing is
//! published, nothing of the chunks is left); and forged chunk orders
//! (not JSON, an input outside the media root, a range before the start),
//! dropped without opening anything.

use std::path::Path;
use std::time::{Duration, Instant};

use hlsmux_protocol::{EventState, FailureReason, JobId, JobState};
use hlsmux_tests::conformance::{Expected, assert_conforms};
use hlsmux_tests::media::write_script;
use hlsmux_tests::split_pool::{chunk_label, chunk_store, long_clip, pool_of_two};
use hlsmux_tests::{PATIENCE, TestEnv, TestWorker, WorkerOptions, hls};
use hlsmux_worker::metrics::{names, sample};

/// The entries of `dir` whose names satisfy `wanted`.
fn entries(dir: &Path, wanted: impl Fn(&str) -> bool) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| wanted(name))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `dir` has an entry satisfying `wanted`, and returns it.
async fn wait_for_entry(dir: &Path, what: &str, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(found) = entries(dir, &wanted).into_iter().next() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "never saw {what} in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An attempt at a chunk by `worker` (`chunk-00002.attempt-<host>-<pid>-…`).
fn attempt_by(worker: &TestWorker) -> impl Fn(&str) -> bool {
    let pid = format!("-{}-", worker.pid());
    move |name: &str| {
        name.starts_with("chunk-") && name.contains(".attempt-") && name.contains(&pid)
    }
}

/// The `done` of `job`, with one `done` only.
async fn the_one_done(test: &TestEnv, events: &mut hlsmux_tests::EventLog, job: JobId) -> JobState {
    let end = events.final_event(job, PATIENCE).await;
    assert!(matches!(end.state, JobState::Done { .. }), "{end:#?}");
    events.drain(Duration::from_secs(2)).await;
    assert_eq!(events.count(job, EventState::Done), 1, "exactly one done");
    assert!(
        !chunk_store(test, job).exists(),
        "the chunks are gone once published"
    );
    assert!(hls::staging_leftovers(&test.output_root()).is_empty());
    end.state
}

#[tokio::test]
async fn a_chunk_worker_killed_mid_chunk_has_its_chunk_done_again_elsewhere() {
    let test = TestEnv::new("split-kill-helper").await;
    let coordinator = test
        .worker_with(1, WorkerOptions::splitting(&test, 2).consumers(1))
        .await;
    let input = long_clip().write(&test.media_root().join("long.mp4")).await;
    let mut events = test.pool.events().await;
    let job = test
        .submit_ok(&input, &["--muxer", "1", "--json"])
        .await
        .submitted_job_id();
    events
        .wait_for(
            "the job under way",
            |e| e.job_id == job && e.state.event_state() == EventState::Started,
            PATIENCE,
        )
        .await;
    // A helper at real time: its chunk takes 6 s, time to kill it inside.
    let helper = test
        .worker_with(1, WorkerOptions::splitting(&test, 1).consumers(2))
        .await;
    let store = chunk_store(&test, job);
    let attempt = wait_for_entry(&store, "the helper's attempt", attempt_by(&helper)).await;
    let attempt_dir = store.join(&attempt);
    let chunk = attempt.split('.').next().expect("chunk name").to_owned();
    // Mid-chunk: a segment written, the chunk not finished.
    wait_for_entry(&attempt_dir, "a segment of the helper's chunk", |name| {
        name.starts_with("234p")
    })
    .await;
    let helper_label = chunk_label(&helper);
    helper.kill().await;
    assert!(!store.join(&chunk).exists(), "{chunk} is not finished yet");

    let JobState::Done { chunks, .. } = the_one_done(&test, &mut events, job).await else {
        unreachable!("checked")
    };
    assert!(
        chunks.iter().all(|c| c.worker != helper_label),
        "nothing of the killed worker is used: {chunks:#?}"
    );
    assert!(
        chunks.iter().all(|c| c.worker == chunk_label(&coordinator)),
        "{chunks:#?}"
    );
    let master = test.output_root().join("long.mp4.hls").join("master.m3u8");
    assert_conforms(&master, Expected::from(long_clip())).await;
    hls::decode(&master).await.expect("the output decodes");
}

#[tokio::test]
async fn a_coordinator_killed_mid_job_is_replaced_and_its_finished_chunks_are_reused() {
    let test = TestEnv::new("split-kill-coordinator").await;
    let doomed = test
        .worker_with(1, WorkerOptions::splitting(&test, 2).consumers(1))
        .await;
    let input = long_clip().write(&test.media_root().join("long.mp4")).await;
    let mut events = test.pool.events().await;
    let job = test
        .submit_ok(&input, &["--muxer", "1", "--json"])
        .await
        .submitted_job_id();
    let store = chunk_store(&test, job);
    // One chunk finished (renamed into place), others still to do.
    let finished = wait_for_entry(&store, "a finished chunk", |name| {
        name.starts_with("chunk-") && !name.contains('.')
    })
    .await;
    let doomed_label = chunk_label(&doomed);
    doomed.kill().await;
    let done_before: Vec<String> = entries(&store, |name| {
        name.starts_with("chunk-") && !name.contains('.')
    });
    assert!(
        done_before.len() < 4,
        "the job was cut short: {done_before:?}"
    );
    assert!(
        !test.output_root().join("long.mp4.hls").exists(),
        "nothing published by the killed coordinator"
    );

    let successor = test
        .worker_with(1, WorkerOptions::splitting(&test, 2).consumers(1))
        .await;
    let JobState::Done { chunks, .. } = the_one_done(&test, &mut events, job).await else {
        unreachable!("checked")
    };
    assert_eq!(
        events.count(job, EventState::Started),
        2,
        "two coordinators"
    );
    // How it knows: a chunk encoded by a worker dead before the job ended
    // can only be in the output because the successor reused it.
    for name in &done_before {
        let index: u32 = name.trim_start_matches("chunk-").parse().expect("index");
        let chunk = chunks.iter().find(|c| c.index == index).expect("listed");
        assert_eq!(chunk.worker, doomed_label, "{finished} reused: {chunks:#?}");
    }
    assert!(
        chunks.iter().any(|c| c.worker == chunk_label(&successor)),
        "the successor did the rest: {chunks:#?}"
    );
    let master = test.output_root().join("long.mp4.hls").join("master.m3u8");
    assert_conforms(&master, Expected::from(long_clip())).await;
    hls::decode(&master).await.expect("the output decodes");
}

#[tokio::test]
async fn two_long_jobs_on_two_workers_both_finish() {
    let test = TestEnv::new("split-two-jobs").await;
    let _pool = pool_of_two(&test, 2).await;
    let a = long_clip().write(&test.media_root().join("a.mp4")).await;
    let b = long_clip().write(&test.media_root().join("b.mp4")).await;
    let mut events = test.pool.events().await;
    let run = test
        .submit_ok(&a, &["--muxer", "1", "--json"])
        .await
        .submitted_job_id();
    let other = test
        .submit_ok(&b, &["--muxer", "1", "--json"])
        .await
        .submitted_job_id();
    for job in [run, other] {
        let JobState::Done { chunks, .. } = the_one_done(&test, &mut events, job).await else {
            unreachable!("checked")
        };
        assert_eq!(chunks.len(), 4, "{chunks:#?}");
    }
    for name in ["a.mp4.hls", "b.mp4.hls"] {
        let master = test.output_root().join(name).join("master.m3u8");
        assert_conforms(&master, Expected::from(long_clip())).await;
    }
}

/// The processes whose parent is `pid`.
fn children(pid: nix::unistd::Pid) -> Vec<String> {
    entries(Path::new("/proc"), |name| {
        name.chars().all(|c| c.is_ascii_digit())
    })
    .into_iter()
    .filter(|child| {
        std::fs::read_to_string(format!("/proc/{child}/stat"))
            .ok()
            .and_then(|stat| {
                let after_name = stat.rsplit_once(')')?.1.to_owned();
                after_name.split_whitespace().nth(1).map(str::to_owned)
            })
            .is_some_and(|parent| parent == pid.to_string())
    })
    .collect()
}

#[tokio::test]
async fn cancelling_a_split_job_stops_every_chunk_and_publishes_nothing() {
    let test = TestEnv::new("split-cancel").await;
    let [first, second] = pool_of_two(&test, 1).await;
    let input = long_clip().write(&test.media_root().join("long.mp4")).await;
    let mut events = test.pool.events().await;
    let job = test
        .submit_ok(&input, &["--muxer", "1", "--json"])
        .await
        .submitted_job_id();
    let store = chunk_store(&test, job);
    // Both workers mid-chunk.
    wait_for_entry(&store, "the first worker's attempt", attempt_by(&first)).await;
    wait_for_entry(&store, "the second worker's attempt", attempt_by(&second)).await;
    test.cli(&["cancel", &job.to_string()]).await;
    let end = events.final_event(job, PATIENCE).await;
    let JobState::Failed { reason, .. } = &end.state else {
        panic!("the job fails as cancelled: {end:#?}");
    };
    assert_eq!(*reason, FailureReason::Cancelled);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let encoding: Vec<String> = [&first, &second]
            .iter()
            .flat_map(|worker| children(worker.pid()))
            .collect();
        if encoding.is_empty() && !store.exists() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ffmpeg still runs ({encoding:?}) or the chunks stay ({})",
            store.exists()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !test.output_root().join("long.mp4.hls").exists(),
        "nothing published"
    );
    assert!(hls::staging_leftovers(&test.output_root()).is_empty());
    assert_eq!(test.pool.dead_letters().await, 0, "not dead-lettered");
}

#[tokio::test]
async fn forged_chunk_orders_are_dropped_without_opening_anything() {
    let test = TestEnv::new("split-forged-orders").await;
    let worker = test
        .worker_with(1, WorkerOptions::splitting(&test, 2).consumers(1))
        .await;
    // A file outside the media root that a forged order names.
    let canary = test.elsewhere().join("canary.mp4");
    long_clip().write(&canary).await;
    let canary_bytes = std::fs::read(&canary).expect("canary");
    let request = |input: &str| {
        serde_json::json!({
            "schema": 1,
            "job_id": JobId::generate(),
            "muxer_id": 1,
            "input": input,
            "output": "forged.hls",
            "submitted_at": "2026-12-01T00:00:00Z",
        })
    };
    let order = |request: serde_json::Value, start: f64| {
        serde_json::to_vec(&serde_json::json!({
            "schema": 1,
            "request": request,
            "index": 0,
            "start_seconds": start,
            "seconds": 6.0,
            "first_segment": 0,
            "plan": "forged",
            "ordered_at": "2026-12-01T00:00:00Z",
        }))
        .expect("json")
    };
    let forged: [Vec<u8>; 3] = [
        b"not a chunk order".to_vec(),
        order(request("../elsewhere/canary.mp4"), 0.0),
        order(request("canary.mp4"), -6.0),
    ];
    for body in &forged {
        test.pool.publish_chunk_order("libx264", body).await;
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let dropped = sample(&worker.metrics().await, names::CHUNKS_DROPPED, &[]);
        if dropped == Some(3.0) {
            break;
        }
        assert!(Instant::now() < deadline, "dropped: {dropped:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let queue = test.pool.topology().chunk_queue("libx264");
    assert_eq!(
        test.pool.messages_in(&queue).await,
        0,
        "nothing left to retry"
    );
    assert_eq!(
        sample(&worker.metrics().await, names::CHUNKS_ENCODED, &[]),
        Some(0.0)
    );
    assert_eq!(std::fs::read(&canary).expect("canary"), canary_bytes);
    assert!(!test.output_root().join(".hlsmux").join("chunks").exists());
    assert!(!test.output_root().join("forged.hls").exists());
}

#[tokio::test]
async fn a_chunk_that_fails_for_the_input_fails_the_job_with_its_reason() {
    let test = TestEnv::new("split-chunk-fails").await;
    // An input whose second chunk (from 6 s) cannot be decoded, as ffmpeg
    // says of a damaged stretch; the rest of it encodes.
    let damaged = write_script(
        &test.path().join("ffmpeg-damaged-at-6s"),
        r#"case "$*" in *"-ss 6.000000"*) echo "Invalid data found when processing input" >&2; exit 1;; esac
exec ffmpeg -readrate 2 "$@""#,
    );
    let mut options = WorkerOptions::splitting(&test, 2).consumers(1);
    options.ffmpeg = Some(damaged);
    let _worker = test.worker_with(1, options).await;
    let input = long_clip().write(&test.media_root().join("long.mp4")).await;
    let mut events = test.pool.events().await;
    let job = test
        .submit_ok(&input, &["--muxer", "1", "--json"])
        .await
        .submitted_job_id();
    let end = events.final_event(job, PATIENCE).await;
    let JobState::Failed { reason, message } = &end.state else {
        panic!("the job fails: {end:#?}");
    };
    assert_eq!(*reason, FailureReason::EncodeFailed, "{message}");
    assert!(
        message.contains("chunk 1") && message.contains("Invalid data found"),
        "the reason names the chunk and what ffmpeg said: {message}"
    );
    assert!(
        !test.output_root().join("long.mp4.hls").exists(),
        "nothing published"
    );
    assert!(!chunk_store(&test, job).exists(), "the chunks are removed");
    assert_eq!(
        test.pool.wait_for_dead_letters(1, PATIENCE).await,
        1,
        "the job is dead-lettered, for `hlsmux dlq`"
    );
    assert!(input.exists(), "the input stays");
}
