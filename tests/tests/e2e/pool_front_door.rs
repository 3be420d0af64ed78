//! The CLI as the pool's front door: the job history read back from the
//! broker's event stream (`hlsmux jobs`, `hlsmux status`), and taking a
//! muxer out of service and back without logging into a Pi (`hlsmux drain`,
//! `hlsmux resume`), with a worker's own lock file winning.

use std::time::Duration;

use hlsmux_protocol::MuxerId;
use hlsmux_tests::media::Clip;
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions};

/// Two 2-second clips named `names` in `media`, and `empty.mp4`, which fails.
async fn two_clips_and_an_empty_file(media: &std::path::Path, names: [&str; 2]) {
    for name in names {
        Clip {
            seconds: 2,
            ..Clip::default()
        }
        .write(&media.join(name))
        .await;
    }
    std::fs::write(media.join("empty.mp4"), b"").expect("empty input");
}

#[tokio::test]
async fn jobs_and_status_read_the_history_back_from_the_broker() {
    let test = TestEnv::new("history").await;
    let _worker = test.worker(1).await;
    let media = test.media_root();
    two_clips_and_an_empty_file(&media, ["one.mp4", "two.mp4"]).await;
    let mut ids = Vec::new();
    for (name, code) in [("one.mp4", 0), ("two.mp4", 0), ("empty.mp4", 1)] {
        let path = media.join(name).display().to_string();
        let run = test
            .cli(&[
                "submit",
                &path,
                "--muxer",
                "1",
                "--wait",
                "--json",
                "--no-probe",
            ])
            .await;
        assert_eq!(run.code, Some(code), "{run:#?}");
        ids.push(run.submitted_job_id().to_string());
    }

    // Nobody was listening when these events were published except the
    // submitting CLIs, long gone: the history has them.
    let listed = test.cli(&["jobs", "--json"]).await;
    assert_eq!(listed.code, Some(0), "{listed:#?}");
    let jobs = listed.json_lines();
    assert_eq!(jobs.len(), 3, "{jobs:#?}");
    for (job, (id, state)) in jobs.iter().zip(ids.iter().zip(["done", "done", "failed"])) {
        assert_eq!(job["job_id"], id.as_str());
        assert_eq!(job["state"], state, "{job:#?}");
        assert_eq!(job["muxer_id"], 1);
    }
    assert_eq!(jobs[0]["input"], "one.mp4");
    assert!(jobs[0]["realtime_factor"].as_f64().is_some_and(|f| f > 0.0));
    assert_eq!(jobs[2]["reason"], "input_unreadable");

    let failed = test.cli(&["jobs", "--state", "failed", "--json"]).await;
    assert_eq!(failed.json_lines().len(), 1, "{failed:#?}");
    let table = test.cli(&["jobs"]).await;
    assert!(table.stdout.contains("input_unreadable"), "{table:#?}");
    let other_muxer = test.cli(&["jobs", "--muxer", "2", "--json"]).await;
    assert!(other_muxer.json_lines().is_empty(), "{other_muxer:#?}");

    let timeline = test.cli(&["status", &ids[0]]).await;
    assert_eq!(timeline.code, Some(0), "{timeline:#?}");
    let states: Vec<&str> = timeline
        .stdout
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .collect();
    assert_eq!(states, ["started", "done"], "{timeline:#?}");
    let unknown = test
        .cli(&["status", "00000000-0000-4000-8000-000000000000"])
        .await;
    assert_eq!(unknown.code, Some(2), "{unknown:#?}");
}

#[tokio::test]
async fn the_history_keeps_the_retention_of_whoever_created_it() {
    let test = TestEnv::new("retention").await;
    let stream = test.pool.topology().event_history_stream();
    let retention = |arguments: &std::collections::BTreeMap<String, serde_json::Value>| {
        (
            arguments.get("x-max-age").cloned(),
            arguments.get("x-max-length-bytes").cloned(),
        )
    };
    let created = test.pool.queue_arguments(&stream).await.expect("declared");
    assert_eq!(
        retention(&created),
        (Some("7D".into()), Some((1u64 << 30).into())),
        "the built-in retention: {created:?}"
    );

    // A pool whose first worker is configured otherwise gets its retention.
    test.pool.delete_queue(&stream).await;
    let mut options = WorkerOptions::default();
    options
        .env
        .push(("HLSMUX_HISTORY_MAX_AGE".into(), "12h".into()));
    options
        .env
        .push(("HLSMUX_HISTORY_MAX_BYTES".into(), "5000000".into()));
    let worker = test.worker_with(1, options).await;
    let created = test.pool.queue_arguments(&stream).await.expect("declared");
    assert_eq!(
        retention(&created),
        (Some("12h".into()), Some(5_000_000u64.into())),
        "{created:?}"
    );

    // Programs configured otherwise use the stream as it is, without the
    // broker refusing their declaration.
    let listed = test.cli(&["jobs", "--json"]).await;
    assert_eq!(listed.code, Some(0), "{listed:#?}");
    worker.kill().await;
    let mut options = WorkerOptions::default();
    options
        .env
        .push(("HLSMUX_HISTORY_MAX_AGE".into(), "30D".into()));
    let _worker = test.worker_with(1, options).await;
    let kept = test.pool.queue_arguments(&stream).await.expect("declared");
    assert_eq!(retention(&kept).0, Some("12h".into()), "{kept:?}");

    // A retention RabbitMQ would not understand stops the worker at start.
    let mut options = WorkerOptions::default();
    options
        .env
        .push(("HLSMUX_HISTORY_MAX_AGE".into(), "7 days".into()));
    let failure = test.failed_worker(2, options).await;
    assert!(failure.stderr.contains("history_max_age"), "{failure:?}");
}

#[tokio::test]
async fn drain_and_resume_take_a_muxer_out_of_service_and_back() {
    let test = TestEnv::new("remote-drain").await;
    let muxer = MuxerId::new(2).expect("valid");
    let worker = test.worker(2).await;
    let drained = test.cli(&["drain", "2"]).await;
    assert_eq!(drained.code, Some(0), "{drained:#?}");
    worker.wait_for_state("drained").await;

    let clip = Clip {
        seconds: 2,
        ..Clip::default()
    }
    .write(&test.media_root().join("held.mp4"))
    .await;
    test.submit_ok(&clip, &["--muxer", "2"]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        test.pool.ready_and_consumers(muxer).await,
        (1, 0),
        "the job waits while the muxer is drained"
    );

    // The worker's own lock file wins over a remote resume.
    let lock = test.work_dir().join("hlsmux.lock");
    std::fs::write(&lock, b"").expect("lock");
    assert_eq!(test.cli(&["resume", "2"]).await.code, Some(0));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(test.pool.ready_and_consumers(muxer).await, (1, 0));
    std::fs::remove_file(&lock).expect("unlock");

    worker.wait_for_state("idle").await;
    test.pool.assert_queue_empties(muxer).await;
    assert!(
        test.output_root()
            .join("held.mp4.hls/master.m3u8")
            .is_file(),
        "the held job ran after resume"
    );
}

/// Polls `hlsmux workers --json` until `check` accepts the pool view.
async fn wait_for_pool(
    test: &TestEnv,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let run = test.cli(&["workers", "--json"]).await;
        assert_eq!(run.code, Some(0), "{run:#?}");
        let view: serde_json::Value =
            serde_json::from_str(run.stdout.trim()).expect("one JSON document");
        if check(&view) {
            return view;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {view:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn worker_of(view: &serde_json::Value, muxer: u64) -> Option<&serde_json::Value> {
    view["workers"]
        .as_array()?
        .iter()
        .find(|w| w["muxer_id"] == muxer)
}

#[tokio::test]
async fn workers_shows_the_pool_and_marks_a_silent_worker_lost() {
    let test = TestEnv::new("workers").await;
    let options = WorkerOptions::setting("HLSMUX_HEARTBEAT_INTERVAL_SECONDS", "1");
    let _one = test.worker_with(1, options.clone()).await;
    let two = test.worker_with(2, options).await;

    let view = wait_for_pool(&test, "both workers idle", |view| {
        [1, 2].iter().all(|muxer| {
            worker_of(view, *muxer).is_some_and(|w| w["state"] == "idle" && w["lost"] == false)
        })
    })
    .await;
    let one = worker_of(&view, 1).expect("muxer 1");
    assert_eq!(one["encoder"], "libx264");
    assert_eq!(one["interval_seconds"], 1);
    let queues = view["queues"].as_array().expect("queues");
    assert_eq!(queues.len(), 2, "{view:#}");
    assert!(
        queues
            .iter()
            .all(|q| q["consumers"] == 1 && q["ready"] == 0),
        "{view:#}"
    );

    two.kill().await;
    let started = tokio::time::Instant::now();
    let view = wait_for_pool(&test, "muxer 2's worker lost", |view| {
        worker_of(view, 2).is_some_and(|w| w["lost"] == true)
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "lost after three missed heartbeats, not much later: {:?}",
        started.elapsed()
    );
    assert_eq!(worker_of(&view, 1).expect("muxer 1")["lost"], false);
    let table = test.cli(&["workers"]).await;
    assert!(table.stdout.contains("lost"), "{table:#?}");
}

#[tokio::test]
async fn watch_follows_every_job_live_or_one_job_to_its_end() {
    let test = TestEnv::new("watch").await;
    let _worker = test.worker(1).await;
    let watching_all = test.cli_spawn(&["watch", "--json"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let media = test.media_root();
    let mut ids = Vec::new();
    for name in ["a.mp4", "b.mp4"] {
        let clip = Clip {
            seconds: 2,
            ..Clip::default()
        }
        .write(&media.join(name))
        .await;
        ids.push(
            test.submit_ok(&clip, &["--muxer", "1", "--json"])
                .await
                .submitted_job_id(),
        );
    }

    // One job, from its first event to its end (it may be over already).
    let one = test
        .cli_spawn(&["watch", &ids[1].to_string(), "--json"])
        .finish(PATIENCE)
        .await;
    assert_eq!(one.code, Some(0), "{one:#?}");
    let states: Vec<String> = one
        .json_lines()
        .iter()
        .map(|e| e["state"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        states.first().map(String::as_str),
        Some("started"),
        "{states:?}"
    );
    assert_eq!(
        states.last().map(String::as_str),
        Some("done"),
        "{states:?}"
    );

    // The live reader sees each job's end too (it may lag the history
    // reader above by a moment), and Ctrl-C ends it.
    for id in &ids {
        let job = format!("\"job_id\":\"{id}\"");
        watching_all
            .wait_for_line(
                &format!("{id} done"),
                |line| line.contains(&job) && line.contains("\"state\":\"done\""),
                PATIENCE,
            )
            .await;
    }
    let all = watching_all.interrupt().await;
    assert_eq!(all.code, Some(0), "Ctrl-C ends `watch` normally: {all:#?}");
    for id in &ids {
        let id = id.to_string();
        assert!(
            all.json_lines()
                .iter()
                .any(|e| e["job_id"] == id.as_str() && e["state"] == "done"),
            "watch saw {id} done: {all:#?}"
        );
    }
}

#[tokio::test]
async fn a_quoted_pattern_is_a_batch_spread_over_muxers_and_summed_up() {
    let test = TestEnv::new("batch").await;
    let _one = test.worker(1).await;
    let _two = test.worker(2).await;
    let media = test.media_root();
    two_clips_and_an_empty_file(&media, ["a.mp4", "b.mp4"]).await;
    // Passed as one argument, as a quoted pattern reaches the CLI.
    let pattern = media.join("*.mp4").display().to_string();
    let run = test
        .cli(&[
            "submit",
            "--muxer",
            "auto",
            "--auto-muxers",
            "1-2",
            "--wait",
            "--no-probe",
            &pattern,
        ])
        .await;
    assert_eq!(run.code, Some(1), "one job failed: {run:#?}");
    for muxer in ["queued for muxer 1", "queued for muxer 2"] {
        assert!(run.stderr.contains(muxer), "the batch is spread: {run:#?}");
    }
    assert!(run.stderr.contains("DETAIL"), "a summary table: {run:#?}");
    assert!(run.stderr.contains("2 done, 1 failed"), "{run:#?}");
    assert!(run.stderr.contains("input_unreadable"), "{run:#?}");
}

#[tokio::test]
async fn shell_completions_are_generated() {
    let test = TestEnv::new("completions").await;
    for shell in ["bash", "zsh", "fish"] {
        let run = test.cli(&["completions", shell]).await;
        assert_eq!(run.code, Some(0), "{run:#?}");
        for word in ["submit", "workers", "drain", "dlq"] {
            assert!(run.stdout.contains(word), "{shell} completes {word}");
        }
    }
}

#[tokio::test]
async fn progress_is_bars_on_a_terminal_and_plain_lines_through_a_pipe() {
    let test = TestEnv::new("terminal").await;
    let _worker = test.worker_with(1, WorkerOptions::realtime(&test)).await;
    let clip = Clip {
        seconds: 4,
        ..Clip::default()
    }
    .write(&test.media_root().join("bars.mp4"))
    .await;
    let clip = clip.display().to_string();

    // Through a pipe (as the harness runs it): lines, no bar.
    let piped = test
        .cli(&[
            "submit",
            &clip,
            "--muxer",
            "1",
            "--wait",
            "--name",
            "piped.hls",
        ])
        .await;
    assert_eq!(piped.code, Some(0), "{piped:#?}");
    assert!(piped.stderr.contains("started on muxer 1"), "{piped:#?}");
    assert!(piped.stderr.contains("done:"), "{piped:#?}");
    assert!(
        !piped.stderr.contains("=>"),
        "no bar through a pipe: {piped:#?}"
    );

    // Under a pseudo-terminal (`script`): a progress bar.
    let command = format!(
        "{} submit {clip} --muxer 1 --wait --name tty.hls",
        hlsmux_tests::cli_binary().display()
    );
    let output = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .envs(test.hlsmux_env())
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("script runs (util-linux)");
    let terminal = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{terminal}");
    assert!(
        terminal.contains("=>") && terminal.contains('%'),
        "a progress bar on a terminal: {terminal}"
    );
    assert!(terminal.contains("tty.hls/master.m3u8"), "{terminal}");
}
