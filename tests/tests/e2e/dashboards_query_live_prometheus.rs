//! The shipped Prometheus config and Grafana dashboard work against the real
//! thing: a real Prometheus scrapes a worker that has just finished a job,
//! a gateway that has called a program back (and RabbitMQ's own plugin), and every query of every panel, and the
//! measure of every example alert rule, must be valid and return series.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hlsmux_tests::gateway::{TestGateway, token_entry};
use hlsmux_tests::media::{Clip, write_script};
use hlsmux_tests::webhook_receiver::WebhookReceiver;
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions, http};
use tokio::process::{Child, Command};

fn repository_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn dashboard() -> serde_json::Value {
    let text = std::fs::read_to_string(repository_file("grafana/dashboards/hlsmux-pool.json"))
        .expect("dashboard");
    serde_json::from_str(&text).expect("the dashboard is valid JSON")
}

/// Every PromQL expression of the dashboard, with Grafana's variables set
/// as "All" would set them.
fn panel_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let expr = expr
                .replace("$muxer", ".*")
                .replace("$instance", ".*")
                .replace("$__rate_interval", "1m");
            queries.push((panel["title"].as_str().unwrap_or("?").to_owned(), expr));
        }
    }
    queries
}

async fn promtool_check(config: &Path) -> (bool, String) {
    let output = Command::new("promtool")
        .args(["check", "config"])
        .arg(config)
        .output()
        .await
        .expect("promtool runs (scripts/provision installs prometheus)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

async fn query(prometheus: std::net::SocketAddr, expr: &str) -> serde_json::Value {
    let path = format!("/api/v1/query?query={}", http::encode_query_value(expr));
    let (_, body) = http::get(prometheus, &path).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("Prometheus answered {body:?}: {e}"))
}

async fn wait_for_series(prometheus: std::net::SocketAddr, expr: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !matches!(http::try_get(prometheus, "/-/ready").await, Ok((200, _))) {
        assert!(Instant::now() < deadline, "Prometheus never became ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        let answer = query(prometheus, expr).await;
        if answer["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{expr} never returned a series: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn start_prometheus(config: &Path, data: &Path, address: std::net::SocketAddr) -> Child {
    Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address={address}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus starts")
}

#[test]
fn the_dashboard_is_what_grafana_provisioning_accepts() {
    let dashboard = dashboard();
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 30));
    assert!(dashboard["uid"].as_str().is_some_and(|uid| !uid.is_empty()));
    let panels = dashboard["panels"].as_array().expect("panels");
    let ids: HashSet<u64> = panels.iter().filter_map(|p| p["id"].as_u64()).collect();
    assert_eq!(ids.len(), panels.len(), "panel IDs are unique");
    let provisioning = std::fs::read_to_string(repository_file(
        "grafana/provisioning/datasources/hlsmux.yml",
    ))
    .expect("datasource");
    let uid = provisioning
        .lines()
        .find_map(|line| line.trim().strip_prefix("uid:"))
        .map(str::trim)
        .expect("the datasource has a uid");
    for panel in panels {
        assert_eq!(
            panel["datasource"]["uid"], uid,
            "panel {} uses the provisioned datasource",
            panel["title"]
        );
        for target in panel["targets"].as_array().expect("targets") {
            assert_eq!(target["datasource"]["uid"], uid);
        }
    }
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(
        variables,
        ["muxer", "instance"],
        "panels are templated by muxer and worker"
    );
}

#[tokio::test]
async fn every_panel_query_returns_series_from_a_live_prometheus() {
    let test = TestEnv::new("dashboards").await;
    let zone = test.path().join("thermal_zone0_temp");
    std::fs::write(&zone, "52000\n").expect("thermal zone");
    let vcgencmd = write_script(&test.path().join("vcgencmd"), r#"echo throttled=0x0"#);
    let options = WorkerOptions {
        env: vec![
            ("HLSMUX_THERMAL_ZONE".into(), zone.display().to_string()),
            (
                "HLSMUX_THROTTLING_COMMAND".into(),
                vcgencmd.display().to_string(),
            ),
        ],
        ..WorkerOptions::default()
    };
    let worker = test.worker_with(1, options).await;
    let clip = Clip::default()
        .write(&test.media_root().join("clip.mp4"))
        .await;
    test.submit_ok(&clip, &["--muxer", "1", "--wait"]).await;

    // A gateway that has answered requests and called a program back.
    let receiver = WebhookReceiver::start(&[], 200).await;
    let mut tokens = token_entry("cms", "t0ken-for-the-dashboard-test", &["submit", "read"]);
    tokens.push_str(&format!(
        "webhook_secret = \"a-secret-for-the-dashboard-test\"\ncallback_hosts = [\"127.0.0.1:{}\"]\n",
        receiver.address.port()
    ));
    let gateway = TestGateway::spawn_with_token_file(&test, &tokens, &[]).await;
    let callback = format!("http://{}/hooks", receiver.address);
    gateway
        .submit(
            "t0ken-for-the-dashboard-test",
            &serde_json::json!({ "input": "clip.mp4", "muxer": 1, "callback_url": callback }),
        )
        .await;
    receiver.wait_for(1, PATIENCE).await;

    // The shipped scrape config, pointed at this test's worker and broker.
    let shipped = repository_file("deploy/example/prometheus/prometheus.yml");
    let (valid, said) = promtool_check(&shipped).await;
    assert!(valid, "promtool: {said}");
    let targets = test.path().join("targets");
    std::fs::create_dir(&targets).expect("targets dir");
    std::fs::write(
        targets.join("HLSPi1.yml"),
        format!(
            "- targets: [\"{}\"]\n  labels:\n    pool: test\n",
            worker.metrics_addr
        ),
    )
    .expect("file_sd targets");
    let config = std::fs::read_to_string(&shipped)
        .expect("config")
        .replace(
            "/etc/prometheus/hlsmux-targets",
            &targets.display().to_string(),
        )
        .replace("192.168.1.2:15692", "127.0.0.1:15692")
        .replace("127.0.0.1:8480", &gateway.address.to_string())
        .replace("scrape_interval: 15s", "scrape_interval: 1s");
    let config_path = test.path().join("prometheus.yml");
    std::fs::write(&config_path, config).expect("write config");
    let alerts = repository_file("deploy/example/prometheus/hlsmux-alerts.yml");
    std::fs::copy(&alerts, test.path().join("hlsmux-alerts.yml")).expect("alert rules beside it");
    let (valid, said) = promtool_check(&config_path).await;
    assert!(valid && !said.contains("WARNING"), "promtool: {said}");

    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        listener.local_addr().expect("address")
    };
    let data = test.path().join("prometheus-data");
    let _prometheus = start_prometheus(&config_path, &data, address);
    wait_for_series(address, r#"up{job="hlsmux-workers"} == 1"#).await;
    wait_for_series(address, r#"up{job="rabbitmq"} == 1"#).await;
    wait_for_series(address, r#"up{job="hlsmux-gateway"} == 1"#).await;
    wait_for_series(address, "hlsmux_gateway_webhook_attempts_total").await;
    // Rates and increases need a few samples.
    wait_for_series(address, "count_over_time(hlsmux_worker_info[1m]) >= 3").await;

    for variable in [
        "hlsmux_worker_info",
        r#"hlsmux_worker_info{muxer_id=~".*"}"#,
    ] {
        wait_for_series(address, variable).await;
    }
    let mut failures = Vec::new();
    for (title, expr) in panel_queries(&dashboard()) {
        let answer = query(address, &expr).await;
        let series = answer["data"]["result"].as_array().map_or(0, Vec::len);
        if answer["status"] != "success" || series == 0 {
            failures.push(format!("{title}: {expr} -> {answer}"));
        }
    }
    // Each alert rule's measure (its expression before the threshold)
    // returns series too: no rule watches a metric that does not exist.
    let rules = std::fs::read_to_string(&alerts).expect("alert rules");
    for expr in rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("expr: "))
    {
        let measure = [" < ", " == ", " > "]
            .iter()
            .find_map(|op| expr.split_once(op).map(|(left, _)| left))
            .unwrap_or(expr);
        let answer = query(address, measure).await;
        let series = answer["data"]["result"].as_array().map_or(0, Vec::len);
        if answer["status"] != "success" || series == 0 {
            failures.push(format!("alert rule: {measure} -> {answer}"));
        }
    }
    assert!(
        failures.is_empty(),
        "panels and rules without data:\n{}",
        failures.join("\n")
    );
}
