//! Files in deploy/ pass the real tools that read them.

use std::path::Path;

use tokio::process::Command;

/// Runs `systemd-analyze verify` on `unit` and returns everything it said.
async fn verify_unit(unit: &Path) -> (bool, String) {
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
        .await
        .expect("systemd-analyze runs (scripts/provision installs systemd)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

/// The worker unit, pointed at the binary under test (verify checks that
/// ExecStart names an executable).
fn unit_with_binary(dir: &Path, transform: impl Fn(String) -> String) -> std::path::PathBuf {
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/hlsmux-worker.service");
    let text = std::fs::read_to_string(source).expect("unit file");
    let worker = hlsmux_tests::worker_binary();
    let text = text.replace(
        "/usr/local/bin/hlsmux-worker",
        &worker.display().to_string(),
    );
    let path = dir.join("hlsmux-worker.service");
    std::fs::write(&path, transform(text)).expect("write unit");
    path
}

#[tokio::test]
async fn the_worker_unit_passes_systemd_analyze_verify_without_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, said) = verify_unit(&unit_with_binary(dir.path(), |text| text)).await;
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );

    // The check itself can fail: a broken copy is reported.
    let broken = unit_with_binary(dir.path(), |text| {
        text.replace("Restart=always", "Restart=sometimes")
    });
    let (_, said) = verify_unit(&broken).await;
    assert!(
        said.contains("restart specifier"),
        "a broken unit must be reported: {said:?}"
    );
}

#[test]
fn the_worker_unit_says_what_a_pi_worker_needs() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/hlsmux-worker.service"),
    )
    .expect("unit file");
    for line in [
        "User=hlsmux",
        "Restart=always",
        "After=network-online.target remote-fs.target",
        "RequiresMountsFor=/srv/hlsmux/media /srv/hlsmux/output",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=90",
        "SupplementaryGroups=video render",
    ] {
        assert!(unit.lines().any(|l| l.trim() == line), "missing {line}");
    }
    assert!(
        !unit.contains("PrivateDevices=yes"),
        "would hide the hardware encoder"
    );
}

fn deploy_file(relative: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy")
            .join(relative),
    )
    .unwrap_or_else(|e| panic!("deploy/{relative}: {e}"))
}

/// The value of `key = value` (TOML, rabbitmq.conf) or `Key=value` (systemd)
/// in `text`.
fn setting(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.split_once('=')?;
            (name.trim() == key).then(|| value.trim().trim_matches('"').to_owned())
        })
}

#[test]
fn systemd_waits_longer_than_the_workers_grace_period_before_killing_it() {
    let unit = deploy_file("systemd/hlsmux-worker.service");
    let config = deploy_file("worker.example.toml");
    let stop_timeout: u64 = setting(&unit, "TimeoutStopSec")
        .and_then(|v| v.parse().ok())
        .expect("TimeoutStopSec in seconds");
    let grace: u64 = setting(&config, "shutdown_grace_seconds")
        .and_then(|v| v.parse().ok())
        .expect("shutdown_grace_seconds");
    // The grace period, then requeueing and closing the connection.
    assert!(
        stop_timeout >= grace + 30,
        "TimeoutStopSec={stop_timeout} leaves too little after a {grace} s grace period"
    );
}

#[test]
fn the_broker_config_lets_a_long_encode_hold_its_job() {
    let conf = deploy_file("rabbitmq/rabbitmq.conf");
    let timeout_ms: u64 = setting(&conf, "consumer_timeout")
        .and_then(|v| v.parse().ok())
        .expect("consumer_timeout in milliseconds");
    assert!(
        timeout_ms >= 12 * 3600 * 1000,
        "consumer_timeout {timeout_ms} ms is shorter than a long Pi encode"
    );
}
