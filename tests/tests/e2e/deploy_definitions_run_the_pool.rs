//! The rendered RabbitMQ definitions, imported into a scratch vhost of the
//! real broker, give the policies and queues the pool needs, and their
//! three users can do their jobs and no more: a worker running as the
//! worker user serves the imported muxer queue; the submit tool as the
//! submit user queues a video, follows it to `done` and can cancel a job,
//! and is refused everything else (the default exchange and so every
//! queue, forged events and dead letters, deleting or creating the pool's
//! names, drain and the dead-letter queue); the operator user can also
//! drain, resume and read the dead-letter queue.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use hlsmux_amqp::{is_access_refused, publish_json};
use hlsmux_protocol::{JobId, MuxerId};
use lapin::options::{
    BasicGetOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::process::Command;

use hlsmux_tests::CliRun;
use hlsmux_tests::gateway::TestGateway;
use hlsmux_tests::media::Clip;
use hlsmux_tests::webhook_receiver::WebhookReceiver;
use hlsmux_tests::{PATIENCE, TestEnv};
use serde_json::json;

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
    users: [String; 3],
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

/// The example inventory, rendered with its own vhost, namespace and
/// users, and its definitions imported into the real broker.
struct ImportedPool {
    test: TestEnv,
    vhost: String,
    namespace: String,
    /// The rendered files.
    out: PathBuf,
    _scratch: Scratch,
}

#[derive(Clone, Copy)]
enum User {
    Submit,
    Operator,
}

impl ImportedPool {
    async fn render_and_import(test_name: &str) -> Self {
        let test = TestEnv::new(test_name).await;
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let (vhost, namespace) = (format!("t-deploy-{suffix}"), format!("t-deploy-{suffix}"));
        let users = [
            format!("t-worker-{suffix}"),
            format!("t-submit-{suffix}"),
            format!("t-operator-{suffix}"),
        ];
        let scratch = Scratch {
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
            .replace(
                "operator_user = \"hlsmux-operator\"",
                &format!("operator_user = \"{}\"", users[2]),
            )
            .replace("history_max_age = \"7D\"", "history_max_age = \"3D\"")
            // The CMS's webhooks come to the test's receiver.
            .replace("cms.example.lan", "127.0.0.1")
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
        // Through stdin: the file is private to this user (mode 0600), and
        // the broker runs as another.
        let definitions =
            std::fs::read(out.join("rabbitmq/definitions.json")).expect("definitions");
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
        Self {
            test,
            vhost,
            namespace,
            out,
            _scratch: scratch,
        }
    }

    /// The rendered broker URL of `user`.
    fn url(&self, user: User) -> String {
        let env_file = match user {
            User::Submit => "submit/hlsmux.env",
            User::Operator => "operator/hlsmux.env",
        };
        let env_file = self.out.join(env_file);
        assert_eq!(setting(&env_file, "HLSMUX_NAMESPACE"), self.namespace);
        setting(&env_file, "HLSMUX_AMQP_URL")
    }

    /// The submit tool run as `user`, with the rendered environment.
    async fn cli_as(&self, user: User, args: &[&str]) -> CliRun {
        let url = self.url(user);
        self.test
            .cli_with_env(
                args,
                &[
                    ("HLSMUX_AMQP_URL", url.as_str()),
                    ("HLSMUX_NAMESPACE", self.namespace.as_str()),
                ],
            )
            .await
    }

    /// A worker as the worker user, with the rendered settings (muxer 1,
    /// the first Pi's boot line).
    async fn start_worker(&self) -> tokio::process::Child {
        let worker_url = std::fs::read_to_string(self.out.join("pi-root/etc/hlsmux/worker.toml"))
            .expect("worker settings")
            .lines()
            .find_map(|l| l.strip_prefix("amqp_url = "))
            .expect("amqp_url")
            .trim_matches('"')
            .to_owned();
        let cmdline = self.test.path().join("cmdline");
        std::fs::write(
            &cmdline,
            std::fs::read_to_string(self.out.join("tftp/1a2b3c4d/cmdline.txt")).expect("boot"),
        )
        .expect("cmdline");
        Command::new(hlsmux_tests::worker_binary())
            .arg("--config")
            .arg(self.out.join("pi-root/etc/hlsmux/worker.toml"))
            .env("HLSMUX_AMQP_URL", &worker_url)
            .env("HLSMUX_KERNEL_CMDLINE", &cmdline)
            .env("HLSMUX_MEDIA_ROOT", self.test.media_root())
            .env("HLSMUX_OUTPUT_ROOT", self.test.output_root())
            .env("HLSMUX_WORK_DIR", self.test.work_dir())
            .env("HLSMUX_STORAGE_MOUNTS", "")
            .env("HLSMUX_METRICS_ADDR", "127.0.0.1:0")
            .env("HLSMUX_ENCODER", "libx264")
            .env("HLSMUX_X264_PRESET", "ultrafast")
            .env("HLSMUX_FFMPEG_THREADS", "1")
            .env(
                "HLSMUX_THERMAL_ZONE",
                self.test.path().join("no-thermal-zone"),
            )
            .env(
                "HLSMUX_THROTTLING_COMMAND",
                self.test.path().join("no-vcgencmd"),
            )
            .env("HLSMUX_HW_DECODE", "false")
            .env("RUST_LOG", "warn,lapin=off")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("worker starts")
    }

    fn name(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.namespace)
    }
}

/// Publishes `body` as `user` would, on a channel of its own, and says
/// whether the broker refused it for lack of permission.
async fn publish_refused(
    connection: &Connection,
    exchange: &str,
    routing_key: &str,
    body: &serde_json::Value,
) -> bool {
    let channel = confirming_channel(connection).await;
    let published = publish_json(
        &channel,
        exchange,
        routing_key,
        "forged",
        body,
        false,
        FieldTable::default(),
    )
    .await;
    matches!(published, Err(hlsmux_amqp::PublishError::Broker(ref error)) if is_access_refused(error))
}

async fn confirming_channel(connection: &Connection) -> Channel {
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");
    channel
}

fn refused<T>(result: lapin::Result<T>) -> bool {
    result.is_err_and(|error| is_access_refused(&error))
}

#[tokio::test]
async fn imported_definitions_give_policies_queues_and_least_privilege_users_that_run_the_pool() {
    let pool = ImportedPool::render_and_import("definitions").await;
    let (test, vhost, namespace) = (&pool.test, &pool.vhost, &pool.namespace);
    // The policies, read back from the broker.
    let policies: Vec<serde_json::Value> = serde_json::from_str(
        &rabbitmqctl(&["list_policies", "-q", "-p", vhost, "--formatter", "json"]).await,
    )
    .expect("policies JSON");
    // A policy's definition, which rabbitmqctl prints as JSON text.
    let definition_of = |name: &str| -> serde_json::Value {
        let policy = policies
            .iter()
            .find(|p| p["name"] == format!("{namespace}-{name}"))
            .unwrap_or_else(|| panic!("{name} policy: {policies:#?}"));
        match &policy["definition"] {
            serde_json::Value::String(text) => serde_json::from_str(text).expect("definition"),
            other => other.clone(),
        }
    };
    let muxer_queues = definition_of("muxer-queues");
    assert_eq!(muxer_queues["delivery-limit"], 5, "{muxer_queues}");
    assert_eq!(
        muxer_queues["dead-letter-exchange"],
        format!("{namespace}.dead-letter")
    );
    assert_eq!(muxer_queues["dead-letter-strategy"], "at-least-once");
    let tidy_queues = definition_of("tidy-queues");
    assert_eq!(tidy_queues["delivery-limit"], 5, "{tidy_queues}");
    let history = definition_of("event-history");
    assert_eq!(history["max-age"], "3D", "{history}");

    // The queues each Pi's muxer needs exist before any worker ran, with
    // their policy applied.
    let queues = rabbitmqctl(&["list_queues", "-q", "-p", vhost, "name", "policy"]).await;
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
    let mut worker = pool.start_worker().await;

    // The submit tool as the submit user, with the rendered environment.
    let clip = Clip::default()
        .write(&test.media_root().join("clip.mp4"))
        .await;
    let clip = clip.to_str().expect("utf-8");
    let run = pool
        .cli_as(User::Submit, &["submit", clip, "--muxer", "1", "--wait"])
        .await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(test.output_root().join("clip.mp4.hls/master.m3u8").exists());
    let workers = pool.cli_as(User::Submit, &["workers", "--json"]).await;
    assert_eq!(workers.code, Some(0), "{workers:#?}");
    let status = pool.cli_as(User::Submit, &["jobs", "--json"]).await;
    assert_eq!(status.code, Some(0), "{status:#?}");
    // Cancelling writes to the cancellations stream (a job not yet started
    // is cancelled unseen, so any ID will do).
    let never_started = JobId::generate().to_string();
    let cancel = pool.cli_as(User::Submit, &["cancel", &never_started]).await;
    assert_eq!(cancel.code, Some(0), "{cancel:#?}");
    assert!(
        worker.try_wait().expect("worker state").is_none(),
        "the worker runs on"
    );
    let _ = worker.kill().await;
}

#[tokio::test]
async fn the_submit_user_may_queue_follow_and_cancel_and_nothing_else() {
    let pool = ImportedPool::render_and_import("submit-refusals").await;
    let test = &pool.test;
    // A file outside the media root that a forged tidy request names.
    let canary = test.elsewhere().join("canary.mp4");
    std::fs::write(&canary, b"canary: must never move or be read").expect("canary");
    let muxer = MuxerId::new(1).expect("valid");
    let tidy = serde_json::json!({
        "schema": 1,
        "job_id": JobId::generate(),
        "input": "../elsewhere/canary.mp4",
        "output": "canary.mp4.hls",
    });
    let job = serde_json::json!({ "job_id": JobId::generate(), "input": "canary.mp4" });

    let connection = Connection::connect(&pool.url(User::Submit), ConnectionProperties::default())
        .await
        .expect("the submit user logs in");
    // The default exchange reaches every queue: none of it is the submit
    // user's.
    for queue in [
        pool.name(&format!("tidy.{muxer}")),
        pool.name(&format!("tidy-delay.{muxer}")),
        pool.name(&format!("muxer.{muxer}")),
        pool.name("dead-letter-notices"),
        pool.name("heartbeats"),
        pool.name("cancellations"),
        pool.name("control-log"),
        pool.name("chunks.libx264"),
    ] {
        assert!(
            publish_refused(&connection, "", &queue, &tidy).await,
            "the submit user wrote into {queue} through the default exchange"
        );
    }
    // Nor can it forge an outcome or a dead letter, or command a muxer.
    let forged_done = serde_json::json!({ "job_id": JobId::generate(), "state": "done" });
    for (exchange, key) in [
        (pool.name("events"), "x.done".to_owned()),
        (pool.name("dead-letter"), String::new()),
        (pool.name("control-commands"), muxer.to_string()),
    ] {
        assert!(
            publish_refused(&connection, &exchange, &key, &forged_done).await,
            "the submit user published to {exchange}"
        );
    }
    // Nor take, read or delete what the pool relies on, nor create names.
    let channel = || async { connection.create_channel().await.expect("channel") };
    for queue in [
        pool.name(&format!("muxer.{muxer}")),
        pool.name("dead-letter"),
        pool.name("chunks.libx264"),
    ] {
        let taken = channel()
            .await
            .basic_get(queue.as_str().into(), BasicGetOptions::default())
            .await;
        assert!(refused(taken), "the submit user read {queue}");
    }
    for queue in [
        pool.name("event-history"),
        pool.name(&format!("muxer.{muxer}")),
    ] {
        let deleted = channel()
            .await
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
        assert!(refused(deleted), "the submit user deleted {queue}");
    }
    let deleted = channel()
        .await
        .exchange_delete(
            pool.name("jobs").as_str().into(),
            ExchangeDeleteOptions::default(),
        )
        .await;
    assert!(
        refused(deleted),
        "the submit user deleted the jobs exchange"
    );
    let made = channel()
        .await
        .queue_declare(
            pool.name("muxer.9").as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await;
    assert!(refused(made), "the submit user made a muxer queue");
    // What it may do works: a job into the jobs exchange (routed to the
    // imported muxer queue, waiting there) and a cancellation.
    assert!(
        !publish_refused(&connection, &pool.name("jobs"), &muxer.to_string(), &job).await,
        "the submit user may queue jobs"
    );
    assert!(
        !publish_refused(&connection, &pool.name("cancel-requests"), "", &job).await,
        "the submit user may cancel"
    );
    let _ = tokio::time::timeout(PATIENCE, connection.close(200, "done".into())).await;

    // Through the CLI: operator commands say which user they need.
    for command in [&["drain", "1"][..], &["dlq", "list"]] {
        let run = pool.cli_as(User::Submit, command).await;
        assert_eq!(
            run.code,
            Some(3),
            "{command:?} as the submit user: {run:#?}"
        );
        assert!(
            run.stderr.contains("refused this broker user") && run.stderr.contains("operator user"),
            "{run:#?}"
        );
    }
    // The operator may drain, resume and read the dead-letter queue.
    for command in [&["drain", "1"][..], &["resume", "1"], &["dlq", "list"]] {
        let run = pool.cli_as(User::Operator, command).await;
        assert_eq!(run.code, Some(0), "{command:?} as the operator: {run:#?}");
    }
    let connection =
        Connection::connect(&pool.url(User::Operator), ConnectionProperties::default())
            .await
            .expect("the operator logs in");
    assert!(
        publish_refused(&connection, "", &pool.name(&format!("tidy.{muxer}")), &tidy).await,
        "the operator wrote through the default exchange"
    );
    assert!(
        publish_refused(&connection, &pool.name("events"), "x.done", &forged_done).await,
        "the operator forged an event"
    );
    let _ = tokio::time::timeout(PATIENCE, connection.close(200, "done".into())).await;

    assert_eq!(
        std::fs::read(&canary).expect("the canary stays where it was"),
        b"canary: must never move or be read"
    );
}

/// A rendered file's `name token=… webhook_secret=…` line for `name`.
fn handed_out(out: &Path, name: &str) -> (String, String) {
    let text = std::fs::read_to_string(out.join("gateway/tokens.txt")).expect("tokens.txt");
    let line = text
        .lines()
        .find(|line| line.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in tokens.txt: {text}"));
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|part| part.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} in {line}"))
            .to_owned()
    };
    (field("token"), field("webhook_secret"))
}

#[tokio::test]
async fn the_rendered_gateway_serves_as_the_submit_user_and_refuses_what_it_may_not() {
    let pool = ImportedPool::render_and_import("gateway").await;
    let (test, out) = (&pool.test, &pool.out);
    let _worker = pool.start_worker().await;
    let env_file = out.join("gateway/gateway.env");
    assert_eq!(
        setting(&env_file, "HLSMUX_AMQP_URL"),
        pool.url(User::Submit),
        "the gateway is the submit user"
    );
    let receiver = WebhookReceiver::start(&[], 200).await;
    let gateway = TestGateway::spawn_rendered(
        test,
        &out.join("gateway/gateway-tokens.toml"),
        &[
            ("HLSMUX_AMQP_URL", &setting(&env_file, "HLSMUX_AMQP_URL")),
            ("HLSMUX_NAMESPACE", &setting(&env_file, "HLSMUX_NAMESPACE")),
        ],
    )
    .await;
    let (cms, secret) = handed_out(out, "cms");
    let (dashboard, _) = handed_out(out, "dashboard");
    let canary = test.elsewhere().join("canary.mp4");
    Clip::default().write(&canary).await;
    let canary_bytes = std::fs::read(&canary).expect("canary");

    // A program uploads a clip with a callback, and is called back signed.
    let clip = std::fs::read(&canary).expect("clip");
    let bearer = format!("Bearer {cms}");
    let callback = format!("http://{}/hooks", receiver.address);
    let (status, text) = hlsmux_tests::http::request(
        gateway.address,
        "POST",
        &format!(
            "/v1/jobs?filename=clip.mp4&muxer=1&callback_url={}",
            hlsmux_tests::http::encode_query_value(&callback)
        ),
        &[
            ("Authorization", bearer.as_str()),
            ("Content-Type", "video/mp4"),
        ],
        &clip,
    )
    .await;
    assert_eq!(status, 202, "{text}");
    let accepted: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let job = accepted["job_id"].as_str().expect("job ID").to_owned();
    let delivered = receiver.wait_for(1, PATIENCE).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(hlsmux_gateway::webhooks::sign::verify(
        &secret,
        &delivered[0].headers["hlsmux-signature"],
        &delivered[0].body,
        now,
        300
    ));
    assert_eq!(delivered[0].json["job_id"], job.as_str());
    assert_eq!(delivered[0].json["state"], "done", "{}", delivered[0].json);
    assert!(
        test.output_root()
            .join("incoming/clip.mp4.hls/master.m3u8")
            .exists()
    );

    // Each refusal, as the rendered tokens and the submit user.
    let cases = [
        (
            &cms,
            json!({ "input": "../elsewhere/canary.mp4" }),
            400,
            "input_outside_root",
        ),
        (
            &cms,
            json!({ "input": "incoming/clip.mp4", "name": "../../elsewhere" }),
            400,
            "bad_name",
        ),
        (
            &cms,
            json!({ "input": "incoming/clip.mp4", "callback_url": "http://10.1.2.3/steal" }),
            403,
            "callback_not_allowed",
        ),
        (
            &dashboard,
            json!({ "input": "incoming/clip.mp4" }),
            403,
            "forbidden",
        ),
    ];
    for (token, body, want_status, want_code) in cases {
        let (status, reply) = gateway.call("POST", "/v1/jobs", token, Some(&body)).await;
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (want_status, Some(want_code)),
            "{body}: {reply}"
        );
    }
    let (status, text) = hlsmux_tests::http::request(
        gateway.address,
        "POST",
        "/v1/jobs?filename=..%2Felsewhere%2Fcanary.mp4",
        &[
            ("Authorization", bearer.as_str()),
            ("Content-Type", "video/mp4"),
        ],
        b"not the canary",
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("bad_filename"), "{text}");
    assert_eq!(std::fs::read(&canary).expect("canary"), canary_bytes);
    assert_eq!(
        receiver.received().len(),
        1,
        "one callback, for the one job"
    );
}
