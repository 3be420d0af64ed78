//! Faults of the broker itself, which touch every connection on it: a
//! RabbitMQ restart, and RabbitMQ's consumer timeout firing under a long
//! encode. They change the shared broker, so they are ignored in the
//! parallel run and run alone afterwards (`scripts/test` does both).

use std::process::Command;
use std::time::Duration;

use hlsmux_protocol::{EventState, MuxerId};
use hlsmux_tests::count_events;
use hlsmux_tests::media::Clip;
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions, hls};
use hlsmux_worker::metrics::{names, sample};

fn rabbitmqctl(args: &[&str]) -> String {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Sets broker application settings for one test and puts the old values
/// back when dropped, even if the test fails.
struct BrokerSettings {
    saved: Vec<(&'static str, String)>,
}

impl BrokerSettings {
    fn set(values: &[(&'static str, u64)]) -> Self {
        let mut saved = Vec::new();
        for (key, value) in values {
            let old = rabbitmqctl(&["eval", &format!("application:get_env(rabbit, {key}).")]);
            saved.push((*key, old));
            rabbitmqctl(&[
                "eval",
                &format!("application:set_env(rabbit, {key}, {value})."),
            ]);
        }
        Self { saved }
    }
}

impl Drop for BrokerSettings {
    fn drop(&mut self) {
        for (key, old) in &self.saved {
            // `{ok,Value}` or `undefined`.
            let restore = match old.strip_prefix("{ok,").and_then(|v| v.strip_suffix('}')) {
                Some(value) => format!("application:set_env(rabbit, {key}, {value})."),
                None => format!("application:unset_env(rabbit, {key})."),
            };
            let _ = Command::new("rabbitmqctl")
                .args(["eval", &restore])
                .output();
        }
    }
}

async fn slow_worker_and_clip(test: &TestEnv, seconds: u32) -> std::path::PathBuf {
    Clip {
        seconds,
        ..Clip::default()
    }
    .write(&test.media_root().join("long.mp4"))
    .await
}

#[tokio::test]
#[ignore = "restarts the shared broker: run alone (scripts/test does)"]
async fn a_broker_restart_mid_encode_and_while_idle_loses_nothing() {
    let test = TestEnv::new("broker-restart").await;
    let worker = test.worker_with(1, WorkerOptions::realtime(&test)).await;
    let clip = slow_worker_and_clip(&test, 8).await;
    let mut events = test.pool.events().await;
    let clip_arg = clip.display().to_string();
    let waiting = test.cli_spawn(&["submit", &clip_arg, "--muxer", "1", "--wait", "--json"]);
    let progress = events.wait_for_encoding(None).await;
    let job_id = progress.job_id;

    rabbitmqctl(&["stop_app"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);

    let run = waiting.finish(PATIENCE * 3).await;
    assert_eq!(run.code, Some(0), "--wait survives the restart: {run:#?}");
    let history = test.pool.history(Duration::from_secs(3)).await;
    assert_eq!(
        count_events(&history, job_id, EventState::Done),
        1,
        "exactly one done"
    );
    hls::decode(&test.output_root().join("long.mp4.hls/master.m3u8"))
        .await
        .expect("the output decodes");
    assert!(hls::staging_leftovers(&test.output_root()).is_empty());

    // And once more with the worker idle: it reconnects and serves.
    rabbitmqctl(&["stop_app"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);
    let short = Clip::default()
        .write(&test.media_root().join("after.mp4"))
        .await;
    let after = test.submit_ok(&short, &["--muxer", "1", "--wait"]).await;
    assert!(after.stdout.contains("master.m3u8"), "{after:#?}");
    let reconnects = sample(&worker.metrics().await, names::BROKER_RECONNECTS, &[]);
    assert!(reconnects >= Some(2.0), "{reconnects:?}");
    test.pool
        .assert_queue_empties(MuxerId::new(1).expect("valid"))
        .await;
}

#[tokio::test]
#[ignore = "changes the shared broker's consumer timeout: run alone (scripts/test does)"]
async fn a_consumer_timeout_shorter_than_the_encode_still_ends_in_one_done() {
    // RabbitMQ closes the channel of a delivery unacked for longer than
    // consumer_timeout, checked on each channel tick. Both are lowered for
    // this test (channels opened from now on tick every second).
    let _settings =
        BrokerSettings::set(&[("consumer_timeout", 3000), ("channel_tick_interval", 1000)]);
    let test = TestEnv::new("consumer-timeout").await;
    let worker = test.worker_with(1, WorkerOptions::realtime(&test)).await;
    let clip = slow_worker_and_clip(&test, 10).await;
    let run = test.submit_ok(&clip, &["--muxer", "1", "--json"]).await;
    let job_id = run.submitted_job_id();

    let deadline = tokio::time::Instant::now() + PATIENCE * 2;
    loop {
        let history = test.pool.history(Duration::from_millis(500)).await;
        if count_events(&history, job_id, EventState::Done) > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no done: {history:#?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    test.pool
        .assert_queue_empties(MuxerId::new(1).expect("valid"))
        .await;
    let history = test.pool.history(Duration::from_secs(2)).await;
    assert_eq!(
        count_events(&history, job_id, EventState::Done),
        1,
        "exactly one done"
    );
    assert_eq!(count_events(&history, job_id, EventState::Failed), 0);
    let reconnects = sample(&worker.metrics().await, names::BROKER_RECONNECTS, &[]);
    assert!(
        reconnects >= Some(1.0),
        "the broker did close the channel under the job: {reconnects:?}"
    );
    hls::decode(&test.output_root().join("long.mp4.hls/master.m3u8"))
        .await
        .expect("the output decodes");
    assert!(hls::staging_leftovers(&test.output_root()).is_empty());
}
