//! A worker serves Prometheus metrics, liveness and readiness over HTTP:
//! what it did, what it runs on, and whether it can take work.

use std::time::{Duration, Instant};

use hlsmux_tests::media::{Clip, write_script};
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions, http};
use hlsmux_worker::metrics::{names, sample};

#[tokio::test]
async fn a_worker_that_finished_a_job_exports_what_it_did_and_what_it_runs_on() {
    let test = TestEnv::new("metrics").await;
    let zone = test.path().join("thermal_zone0_temp");
    std::fs::write(&zone, "48312\n").expect("write thermal zone");
    let vcgencmd = write_script(
        &test.path().join("vcgencmd"),
        r#"[ "$1" = get_throttled ] && echo throttled=0x50005"#,
    );
    let options = WorkerOptions {
        env: vec![
            ("HLSMUX_THERMAL_ZONE".into(), zone.display().to_string()),
            (
                "HLSMUX_THROTTLING_COMMAND".into(),
                format!("{} get_throttled", vcgencmd.display()),
            ),
        ],
        ..WorkerOptions::default()
    };
    let worker = test.worker_with(1, options).await;
    let clip = Clip::default()
        .write(&test.media_root().join("clip.mp4"))
        .await;
    test.submit_ok(&clip, &["--muxer", "1", "--wait"]).await;

    // The worker counts the job once its `done` is confirmed and read back
    // from the history, a moment after `--wait` saw it, and is idle again
    // once it has acknowledged the job (a moment later still, on a loaded
    // machine).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let (status, text) = http::get(worker.metrics_addr, "/metrics").await;
        assert_eq!(status, 200);
        let counted = sample(&text, names::JOBS_FINISHED, &[("outcome", "done")]).is_some()
            && sample(&text, names::WORKER_STATE, &[("state", "idle")]) == Some(1.0);
        if counted || tokio::time::Instant::now() >= deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let value = |name: &str, labels: &[(&str, &str)]| sample(&text, name, labels);
    assert_eq!(
        value(
            names::JOBS_FINISHED,
            &[("outcome", "done"), ("muxer_id", "1")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value("hlsmux_job_duration_seconds_count", &[]), Some(1.0));
    assert_eq!(
        value("hlsmux_job_media_duration_seconds_sum", &[]).map(|s| s.round()),
        Some(3.0)
    );
    assert_eq!(
        value(
            names::ENCODER_INFO,
            &[("encoder", "libx264"), ("result", "chosen")]
        ),
        Some(1.0)
    );
    assert_eq!(value(names::WORKER_STATE, &[("state", "idle")]), Some(1.0));
    assert_eq!(value(names::BROKER_CONNECTED, &[]), Some(1.0));
    let media = test.media_root().display().to_string();
    assert_eq!(
        value(names::STORAGE_HEALTHY, &[("path", &media)]),
        Some(1.0)
    );
    assert!(
        value(
            "hlsmux_storage_probe_duration_seconds_count",
            &[("path", &media)]
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(value(names::SOC_TEMPERATURE, &[]), Some(48.312));
    assert_eq!(
        value(names::SOC_THROTTLING, &[("flag", "under_voltage")]),
        Some(1.0)
    );
    assert_eq!(
        value(names::SOC_THROTTLING, &[("flag", "frequency_capped")]),
        Some(0.0)
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            line.contains("muxer_id=\"1\""),
            "every series names its muxer: {line}"
        );
    }

    assert_eq!(http::get(worker.metrics_addr, "/healthz").await.0, 200);
    assert_eq!(http::get(worker.metrics_addr, "/readyz").await.0, 200);

    std::fs::write(test.work_dir().join("hlsmux.lock"), b"").expect("drain");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = http::get(worker.metrics_addr, "/readyz").await;
        if status == 503 {
            assert!(body.contains("drained"), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never turned unready while drained"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        http::get(worker.metrics_addr, "/healthz").await.0,
        200,
        "alive all the same"
    );
    let (_, text) = http::get(worker.metrics_addr, "/metrics").await;
    assert_eq!(
        sample(&text, names::WORKER_STATE, &[("state", "drained")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_machine_without_thermal_zone_or_vcgencmd_exports_no_soc_series() {
    let test = TestEnv::new("metrics-absent").await;
    let worker = test.worker(1).await;
    let (status, text) = http::get(worker.metrics_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(sample(&text, names::SOC_TEMPERATURE, &[]), None, "{text}");
    assert_eq!(sample(&text, names::SOC_THROTTLING, &[]), None, "{text}");
    assert_eq!(sample(&text, names::BROKER_CONNECTED, &[]), Some(1.0));
    assert_eq!(http::get(worker.metrics_addr, "/nope").await.0, 404);
}
