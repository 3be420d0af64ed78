//! The broker password never appears in what hlsmux writes: the worker's
//! logs (at debug level, through a reconnect), the CLI's output and errors,
//! the status events, or the metrics.

use std::process::Command;
use std::time::Duration;

use hlsmux_tests::media::Clip;
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions};

/// A broker user for one test, deleted when dropped.
struct BrokerUser {
    name: String,
}

impl BrokerUser {
    fn create(name: &str, password: &str) -> Self {
        for args in [
            vec!["add_user", name, password],
            vec!["set_permissions", "-p", "/", name, ".*", ".*", ".*"],
        ] {
            let status = Command::new("rabbitmqctl")
                .args(&args)
                .output()
                .expect("rabbitmqctl runs");
            assert!(status.status.success(), "rabbitmqctl {args:?}");
        }
        Self {
            name: name.to_owned(),
        }
    }
}

impl Drop for BrokerUser {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_user", &self.name])
            .output();
    }
}

#[tokio::test]
async fn the_broker_password_appears_in_no_log_event_metric_or_error() {
    let test = TestEnv::new("credentials").await;
    let tag = test.pool.namespace().to_owned();
    let password = format!("pw-{tag}-do-not-print");
    let _user = BrokerUser::create(&format!("user-{tag}"), &password);
    let url = format!("amqp://user-{tag}:{password}@127.0.0.1:5672/%2f");
    let log_file = test.path().join("worker.log");
    let worker = test
        .worker_with(
            1,
            WorkerOptions {
                env: vec![("HLSMUX_AMQP_URL".into(), url.clone())],
                log_file: Some(log_file.clone()),
                ..WorkerOptions::default()
            },
        )
        .await;

    Clip::default()
        .write(&test.media_root().join("good.mp4"))
        .await;
    std::fs::write(test.media_root().join("empty.mp4"), b"").expect("empty");
    let mut printed = String::new();
    for (file, code) in [("good.mp4", 0), ("empty.mp4", 1)] {
        let path = test.media_root().join(file).display().to_string();
        let run = test
            .cli(&[
                "submit",
                &path,
                "--no-probe",
                "--muxer",
                "1",
                "--wait",
                "--amqp-url",
                &url,
            ])
            .await;
        assert_eq!(run.code, Some(code), "{run:#?}");
        printed.push_str(&run.stdout);
        printed.push_str(&run.stderr);
    }
    let unreachable = format!("amqp://user-{tag}:{password}@127.0.0.1:1/%2f");
    let refused = test
        .cli(&[
            "submit",
            &test.media_root().join("good.mp4").display().to_string(),
            "--amqp-url",
            &unreachable,
        ])
        .await;
    assert_eq!(refused.code, Some(3), "{refused:#?}");
    assert!(
        refused.stderr.contains("cannot reach RabbitMQ"),
        "{refused:#?}"
    );
    printed.push_str(&refused.stderr);

    // A reconnect logs the connection again.
    assert_eq!(
        test.pool
            .close_connections(&test.pool.worker_connection_name())
            .await,
        1
    );
    test.pool
        .wait_for_consumers(
            hlsmux_protocol::MuxerId::new(1).expect("valid"),
            1,
            PATIENCE,
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let events = test.pool.history(Duration::from_secs(2)).await;
    assert!(events.len() >= 4, "{events:#?}");
    let events = serde_json::to_string(&events).expect("serialises");
    let metrics = worker.metrics().await;
    let logs = std::fs::read_to_string(&log_file).expect("worker log");
    assert!(
        logs.contains("worker ready"),
        "the log was captured: {logs}"
    );
    assert!(
        logs.contains("reconnecting"),
        "the reconnect was logged: {logs}"
    );
    for (what, text) in [
        ("worker log", &logs),
        ("CLI output", &printed),
        ("events", &events),
        ("metrics", &metrics),
    ] {
        assert!(!text.contains(&password), "the password is in the {what}");
    }
}

/// A URL that does not parse, with a password holding `,` and `@` (the
/// list separator, and what ends user information), and a bad port.
const BAD_URL: &str = "amqp://hlsmux:Zq9x,Kv7w@Jm3p@127.0.0.1:notaport/%2f";
const BAD_URL_SECRETS: [&str; 3] = ["Zq9x", "Kv7w", "Jm3p"];

#[tokio::test]
async fn a_url_that_does_not_parse_is_refused_without_its_password() {
    let test = TestEnv::new("credentials-bad-url").await;
    let by_flag = test.cli(&["--amqp-url", BAD_URL, "workers"]).await;
    let by_env = test
        .cli_with_env(&["workers"], &[("HLSMUX_AMQP_URL", BAD_URL)])
        .await;
    let worker = test
        .failed_worker(1, WorkerOptions::setting("HLSMUX_AMQP_URL", BAD_URL))
        .await;
    for (who, code, said) in [
        ("hlsmux --amqp-url", by_flag.code, &by_flag.stderr),
        ("hlsmux with HLSMUX_AMQP_URL", by_env.code, &by_env.stderr),
        ("hlsmux-worker", worker.code, &worker.stderr),
    ] {
        assert_eq!(code, Some(2), "{who} refuses it: {said}");
        assert!(said.contains("hlsmux@"), "{who} says which URL: {said}");
        for secret in BAD_URL_SECRETS {
            assert!(!said.contains(secret), "{who} printed {secret}: {said}");
        }
    }
}
