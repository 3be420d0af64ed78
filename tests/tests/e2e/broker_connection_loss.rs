//! A worker and the submit tool survive losing their broker connection
//! (closed by the broker, as a restart or a network cut would): the worker
//! reconnects and serves again, a job encoding meanwhile completes exactly
//! once, and `hlsmux submit --wait` reconnects and still reports the end.

use std::time::Duration;

use hlsmux_protocol::EventState;
use hlsmux_tests::media::Clip;
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions, hls};
use hlsmux_worker::metrics::{names, sample};

#[tokio::test]
async fn an_idle_worker_reconnects_and_takes_the_next_job() {
    let test = TestEnv::new("conn-idle").await;
    let worker = test.worker(1).await;
    let closed = test
        .pool
        .close_connections(&test.pool.worker_connection_name())
        .await;
    assert_eq!(closed, 1);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let metrics = worker.metrics().await;
        let reconnects = sample(&metrics, names::BROKER_RECONNECTS, &[]);
        let connected = sample(&metrics, names::BROKER_CONNECTED, &[]);
        if reconnects == Some(1.0) && connected == Some(1.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker did not reconnect: {reconnects:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let clip = Clip::default()
        .write(&test.media_root().join("after.mp4"))
        .await;
    let run = test.submit_ok(&clip, &["--muxer", "1", "--wait"]).await;
    assert!(run.stdout.contains("master.m3u8"), "{run:#?}");
}

#[tokio::test]
async fn a_job_encoding_through_a_lost_connection_completes_once_and_wait_follows_it() {
    let test = TestEnv::new("conn-busy").await;
    let _worker = test.worker_with(1, WorkerOptions::realtime(&test)).await;
    let clip = Clip {
        seconds: 6,
        ..Clip::default()
    }
    .write(&test.media_root().join("long.mp4"))
    .await;
    let mut events = test.pool.events().await;
    let clip_arg = clip.display().to_string();
    let waiting = test.cli_spawn(&["submit", &clip_arg, "--muxer", "1", "--wait", "--json"]);
    let started = events.wait_for_encoding(None).await;
    let job_id = started.job_id;

    let closed_workers = test
        .pool
        .close_connections(&test.pool.worker_connection_name())
        .await;
    let closed_clis = test
        .pool
        .close_connections(&test.pool.cli_connection_name())
        .await;
    assert_eq!((closed_workers, closed_clis), (1, 1));

    let run = waiting.finish(PATIENCE * 2).await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stderr.contains("reconnect"), "{run:#?}");
    let lines = run.json_lines();
    assert!(
        lines
            .iter()
            .any(|l| l["state"] == "done" && l["job_id"] == job_id.to_string()),
        "--wait saw the job end: {lines:#?}"
    );

    events.final_event(job_id, PATIENCE).await;
    events.drain(Duration::from_secs(3)).await;
    assert_eq!(
        events.count(job_id, EventState::Done),
        1,
        "exactly one done"
    );
    test.pool
        .assert_queue_empties(hlsmux_protocol::MuxerId::new(1).expect("valid"))
        .await;
    assert!(hls::staging_leftovers(&test.output_root()).is_empty());
    hls::decode(&test.output_root().join("long.mp4.hls/master.m3u8"))
        .await
        .expect("the output decodes");
}

#[tokio::test]
async fn several_broker_urls_fail_over_past_a_node_that_does_not_answer() {
    let test = TestEnv::new("failover").await;
    // A cluster whose first node is down: nothing listens on port 1.
    let urls = format!(
        "amqp://guest:down-node-secret@127.0.0.1:1/%2f, {}",
        test.pool.amqp_url()
    );
    let mut options = WorkerOptions::default();
    options.env.push(("HLSMUX_AMQP_URL".into(), urls.clone()));
    let _worker = test.worker_with(1, options).await;

    let clip = Clip::default()
        .write(&test.media_root().join("clip.mp4"))
        .await;
    let env = [("HLSMUX_AMQP_URL", urls.as_str())];
    let run = test
        .cli_with_env(
            &[
                "submit",
                clip.to_str().expect("utf-8"),
                "--muxer",
                "1",
                "--wait",
            ],
            &env,
        )
        .await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(test.output_root().join("clip.mp4.hls/master.m3u8").exists());

    // With no node answering, the error names every node, and no password.
    let down =
        "amqp://guest:down-node-secret@127.0.0.1:1/%2f, amqp://guest:other-secret@127.0.0.1:2/%2f";
    let run = test
        .cli_with_env(&["jobs"], &[("HLSMUX_AMQP_URL", down)])
        .await;
    assert_eq!(run.code, Some(3), "{run:#?}");
    assert!(
        run.stderr
            .contains("amqp://guest@127.0.0.1:1/%2f, amqp://guest@127.0.0.1:2/%2f"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("secret"), "{}", run.stderr);
}

#[tokio::test]
async fn a_job_the_broker_keeps_refusing_is_retried_then_given_up_naming_the_node() {
    let test = TestEnv::new("refused-publish").await;
    test.pool
        .declare_refusing_muxer_queue(hlsmux_protocol::MuxerId::new(1).expect("valid"))
        .await;
    let clip = Clip::default()
        .write(&test.media_root().join("clip.mp4"))
        .await;
    let started = tokio::time::Instant::now();
    let run = test
        .cli(&["submit", clip.to_str().expect("utf-8"), "--muxer", "1"])
        .await;
    assert_eq!(run.code, Some(3), "the broker's exit code: {run:#?}");
    assert!(
        run.stderr
            .contains("RabbitMQ at amqp://guest@127.0.0.1:5672")
            && run.stderr.contains("would not take the message")
            && run.stderr.contains("8 times"),
        "names the node, how often it refused, and what to check: {run:#?}"
    );
    assert!(!run.stderr.contains("guest:guest"), "no password: {run:#?}");
    // Retried with pauses (about 16 s), not given up at the first refusal.
    assert!(started.elapsed() > Duration::from_secs(10), "{run:#?}");
}
