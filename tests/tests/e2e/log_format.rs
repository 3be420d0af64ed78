//! `HLSMUX_LOG_FORMAT=json` makes every log line a JSON object, for log
//! shippers; text stays the default for people.

use hlsmux_tests::{TestEnv, WorkerOptions};

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let test = TestEnv::new("log-json").await;
    let failure = test
        .failed_worker(
            1,
            WorkerOptions {
                kernel_cmdline: Some("muxid=two".into()),
                omit_muxer_env: true,
                env: vec![("HLSMUX_LOG_FORMAT".into(), "json".into())],
                ..WorkerOptions::default()
            },
        )
        .await;
    assert_eq!(failure.code, Some(2), "{failure:#?}");
    let lines: Vec<serde_json::Value> = failure
        .stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}")))
        .collect();
    let error = lines
        .iter()
        .find(|line| line["level"] == "ERROR")
        .unwrap_or_else(|| panic!("an error line: {lines:#?}"));
    let message = error["fields"]["message"].as_str().expect("message field");
    assert!(message.contains("muxid=\"two\""), "{message}");
}
