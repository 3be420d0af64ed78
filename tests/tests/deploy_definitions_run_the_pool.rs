//! The rendered RabbitMQ definitions, imported into a scratch vhost of the
//! real broker, give the policies and queues the pool needs, and their two
//! users can do their jobs and no more: a worker running as the worker user
//! serves the imported muxer queue, the submit tool as the submit user
//! queues a video, follows it to `done` and can cancel a job, and the
//! submit user cannot create a muxer queue or take a job.

use std::path::Path;
use std::process::Stdio;

use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use tokio::process::Command;

use hlsmux_tests::media::Clip;
use hlsmux_tests::{PATIENCE, TestEnv};

async fn rabbitmqctl(args: &[&str]) -> String {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .await
        .expect("rabbitmqctl runs");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Deletes the scratch vhost and users however the test ends.
struct Scratch {
    vhost: String,
    users: [String; 2],
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.vhost])
            .output();
        for user in &self.users {
            let _ = std::process::Command::new("rabbitmqctl")
                .args(["delete_user", user])
                .output();
        }
    }
}

fn setting(file: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(file).expect("rendered file");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} in {}", file.display()))
        .to_owned()
}

#[tokio::test]
async fn imported_definitions_give_policies_queues_and_least_privilege_users_that_run_the_pool() {
    let test = TestEnv::new("definitions").await;
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (vhost, namespace) = (format!("t-deploy-{suffix}"), format!("t-deploy-{suffix}"));
    let users = [format!("t-worker-{suffix}"), format!("t-submit-{suffix}")];
    let _scratch = Scratch {
        vhost: vhost.clone(),
        users: users.clone(),
    };

    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/inventory.example.toml"),
    )
    .expect("example inventory");
    let inventory_text = example
        .replace("hosts = [\"192.168.1.2\"]", "hosts = [\"127.0.0.1\"]")
        .replace("vhost = \"hlsmux\"", &format!("vhost = \"{vhost}\""))
        .replace(
            "namespace = \"hlsmux\"",
            &format!("namespace = \"{namespace}\""),
        )
        .replace(
            "worker_user = \"hlsmux-worker\"",
            &format!("worker_user = \"{}\"", users[0]),
        )
        .replace(
            "submit_user = \"hlsmux-submit\"",
            &format!("submit_user = \"{}\"", users[1]),
        )
        .replace("history_max_age = \"7D\"", "history_max_age = \"3D\"")
        .replace("example-secrets.toml", "secrets.toml");
    let inventory = test.path().join("inventory.toml");
    std::fs::write(&inventory, inventory_text).expect("inventory");
    let out = test.path().join("rendered");
    let status = Command::new(hlsmux_tests::deploy_binary())
        .arg("--inventory")
        .arg(&inventory)
        .args(["render", "--out"])
        .arg(&out)
        .status()
        .await
        .expect("hlsmux-deploy runs");
    assert!(status.success());
    // Through stdin: the file is private to this user (mode 0600), and the
    // broker runs as another.
    let definitions = std::fs::read(out.join("rabbitmq/definitions.json")).expect("definitions");
    let mut import = Command::new("rabbitmqctl")
        .args(["import_definitions", "--format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rabbitmqctl runs");
    let mut stdin = import.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, &definitions)
        .await
        .expect("definitions sent");
    drop(stdin);
    let imported = import.wait_with_output().await.expect("rabbitmqctl ends");
    assert!(
        imported.status.success(),
        "import_definitions: {}",
        String::from_utf8_lossy(&imported.stderr)
    );

    // The policies, read back from the broker.
    let policies: Vec<serde_json::Value> = serde_json::from_str(
        &rabbitmqctl(&["list_policies", "-q", "-p", &vhost, "--formatter", "json"]).await,
    )
    .expect("policies JSON");
    let muxer_policy = policies
        .iter()
        .find(|p| p["name"] == format!("{namespace}-muxer-queues"))
        .unwrap_or_else(|| panic!("muxer queue policy: {policies:#?}"));
    let definition: serde_json::Value = match &muxer_policy["definition"] {
        serde_json::Value::String(text) => serde_json::from_str(text).expect("definition"),
        other => other.clone(),
    };
    assert_eq!(definition["delivery-limit"], 5, "{definition}");
    assert_eq!(
        definition["dead-letter-exchange"],
        format!("{namespace}.dead-letter")
    );
    assert_eq!(definition["dead-letter-strategy"], "at-least-once");
    let history_policy = policies
        .iter()
        .find(|p| p["name"] == format!("{namespace}-event-history"))
        .unwrap_or_else(|| panic!("history policy: {policies:#?}"));
    assert!(
        history_policy["definition"].to_string().contains("3D"),
        "{history_policy}"
    );

    // The queues each Pi's muxer needs exist before any worker ran, with
    // their policy applied.
    let queues = rabbitmqctl(&["list_queues", "-q", "-p", &vhost, "name", "policy"]).await;
    for muxer in [1, 2] {
        let name = format!("{namespace}.muxer.{muxer}");
        assert!(
            queues
                .lines()
                .any(|l| l.starts_with(&name) && l.contains(&format!("{namespace}-muxer-queues"))),
            "{name} with its policy: {queues}"
        );
    }

    // A worker as the worker user, with the rendered settings.
    let worker_url = std::fs::read_to_string(out.join("pi-root/etc/hlsmux/worker.toml"))
        .expect("worker settings")
        .lines()
        .find_map(|l| l.strip_prefix("amqp_url = "))
        .expect("amqp_url")
        .trim_matches('"')
        .to_owned();
    let cmdline = test.path().join("cmdline");
    std::fs::write(
        &cmdline,
        std::fs::read_to_string(out.join("tftp/1a2b3c4d/cmdline.txt")).expect("boot"),
    )
    .expect("cmdline");
    let mut worker = Command::new(hlsmux_tests::worker_binary())
        .arg("--config")
        .arg(out.join("pi-root/etc/hlsmux/worker.toml"))
        .env("HLSMUX_AMQP_URL", &worker_url)
        .env("HLSMUX_KERNEL_CMDLINE", &cmdline)
        .env("HLSMUX_MEDIA_ROOT", test.media_root())
        .env("HLSMUX_OUTPUT_ROOT", test.output_root())
        .env("HLSMUX_WORK_DIR", test.work_dir())
        .env("HLSMUX_STORAGE_MOUNTS", "")
        .env("HLSMUX_METRICS_ADDR", "127.0.0.1:0")
        .env("HLSMUX_ENCODER", "libx264")
        .env("HLSMUX_X264_PRESET", "ultrafast")
        .env("HLSMUX_FFMPEG_THREADS", "1")
        .env("HLSMUX_THERMAL_ZONE", test.path().join("no-thermal-zone"))
        .env("HLSMUX_THROTTLING_COMMAND", test.path().join("no-vcgencmd"))
        .env("HLSMUX_HW_DECODE", "false")
        .env("RUST_LOG", "warn,lapin=off")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("worker starts");

    // The submit tool as the submit user, with the rendered environment.
    let env_file = out.join("submit/hlsmux.env");
    let submit_url = setting(&env_file, "HLSMUX_AMQP_URL");
    assert_eq!(setting(&env_file, "HLSMUX_NAMESPACE"), namespace);
    let clip = Clip::default()
        .write(&test.media_root().join("clip.mp4"))
        .await;
    let run = test
        .cli_with_env(
            &[
                "submit",
                clip.to_str().expect("utf-8"),
                "--muxer",
                "1",
                "--wait",
            ],
            &[
                ("HLSMUX_AMQP_URL", submit_url.as_str()),
                ("HLSMUX_NAMESPACE", namespace.as_str()),
            ],
        )
        .await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(test.output_root().join("clip.mp4.hls/master.m3u8").exists());
    let pool = test
        .cli_with_env(
            &["workers", "--json"],
            &[
                ("HLSMUX_AMQP_URL", submit_url.as_str()),
                ("HLSMUX_NAMESPACE", namespace.as_str()),
            ],
        )
        .await;
    assert_eq!(pool.code, Some(0), "{pool:#?}");
    // Cancelling writes to the cancellations stream (a job not yet started
    // is cancelled unseen, so any ID will do).
    let never_started = hlsmux_protocol::JobId::generate().to_string();
    let cancel = test
        .cli_with_env(
            &["cancel", &never_started],
            &[
                ("HLSMUX_AMQP_URL", submit_url.as_str()),
                ("HLSMUX_NAMESPACE", namespace.as_str()),
            ],
        )
        .await;
    assert_eq!(cancel.code, Some(0), "{cancel:#?}");
    assert!(
        worker.try_wait().expect("worker state").is_none(),
        "the worker runs on"
    );

    // The submit user can neither make a muxer queue nor take a job.
    let connection = Connection::connect(&submit_url, ConnectionProperties::default())
        .await
        .expect("the submit user logs in");
    let channel = connection.create_channel().await.expect("channel");
    let made = channel
        .queue_declare(
            format!("{namespace}.muxer.9").as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await;
    assert!(made.is_err_and(|e| e.to_string().contains("ACCESS_REFUSED")));
    let channel = connection.create_channel().await.expect("channel");
    let taken = channel
        .basic_get(
            format!("{namespace}.muxer.2").as_str().into(),
            BasicGetOptions::default(),
        )
        .await;
    assert!(taken.is_err_and(|e| e.to_string().contains("ACCESS_REFUSED")));
    let _ = tokio::time::timeout(PATIENCE, connection.close(200, "done".into())).await;
    let _ = worker.kill().await;
}
