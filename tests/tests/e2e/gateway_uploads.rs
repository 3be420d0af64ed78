//! Uploads over HTTP (issue 23): a program sends the video itself, not a
//! path. It is streamed into the media root's `incoming/` under a hidden
//! name, appears under its own name only once whole (never replacing a
//! file there), and is muxed like any other input. Too large, too slow
//! (slow loris), empty, badly named or hostile uploads are refused with
//! their own codes, and leave nothing behind: no file in `incoming/`, no
//! job, and the canary outside the media root untouched.

use std::time::Duration;

use hlsmux_tests::gateway::TestGateway;
use hlsmux_tests::http::{Streamed, encode_query_value, streamed_request};
use hlsmux_tests::media::Clip;
use hlsmux_tests::{TestEnv, WorkerOptions};
use serde_json::Value;

const SUBMITTER: &str = "t0ken-for-the-upload-form";
const READER: &str = "t0ken-for-a-dashboard";

fn tokens() -> [(&'static str, &'static [&'static str]); 2] {
    [(SUBMITTER, &["submit", "read"]), (READER, &["read"])]
}

/// `POST /v1/jobs?{query}` with `token`, a body of `pieces` of type
/// `content_type`, sent with `pause` between pieces (chunked when
/// `content_length` is `None`); the status and the raw reply.
async fn send(
    gateway: &TestGateway,
    query: &str,
    token: &str,
    content_type: &str,
    body: (Option<u64>, Vec<Vec<u8>>, Duration),
) -> (u16, String) {
    let bearer = format!("Bearer {token}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", content_type),
    ];
    let (content_length, pieces, pause) = body;
    streamed_request(
        gateway.address,
        "POST",
        &format!("/v1/jobs?{query}"),
        Streamed {
            headers: &headers,
            content_length,
            pieces,
            pause,
        },
    )
    .await
}

/// Uploads `bytes` as a video in 64 KiB pieces; the status and reply.
async fn upload(gateway: &TestGateway, query: &str, token: &str, bytes: &[u8]) -> (u16, Value) {
    let pieces = bytes.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
    let body = (Some(bytes.len() as u64), pieces, Duration::ZERO);
    let (status, text) = send(gateway, query, token, "video/mp4", body).await;
    (
        status,
        serde_json::from_str(text.trim()).unwrap_or(Value::Null),
    )
}

/// Polls `GET /v1/jobs/{id}` until the job is done or failed; its state.
async fn ended(gateway: &TestGateway, job: &str) -> String {
    let body = gateway
        .job_until(READER, job, "ended", |body| {
            body["job"]["state"] == "done" || body["job"]["state"] == "failed"
        })
        .await;
    body["job"]["state"].as_str().unwrap_or_default().to_owned()
}

/// Every file under `incoming/`, hidden ones included.
fn incoming(test: &TestEnv) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(test.media_root().join("incoming"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn an_uploaded_video_lands_whole_in_incoming_and_is_muxed() {
    let test = TestEnv::new("gateway-upload").await;
    let _worker = test.worker_with(1, WorkerOptions::default()).await;
    let gateway = TestGateway::spawn(&test, &tokens()).await;
    let clip = test.elsewhere().join("talk.mp4");
    Clip::default().write(&clip).await;
    let bytes = std::fs::read(&clip).expect("clip");

    let name = "talk #1.mp4";
    let query = format!("filename={}&segment_seconds=2", encode_query_value(name));
    let (status, accepted) = upload(&gateway, &query, SUBMITTER, &bytes).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["input"], "incoming/talk #1.mp4");
    assert_eq!(
        std::fs::read(test.media_root().join("incoming/talk #1.mp4")).expect("landed"),
        bytes,
        "the upload landed byte for byte"
    );
    // The same name again: a second file beside it, the first untouched.
    let (status, second) = upload(&gateway, &query, SUBMITTER, &bytes[..bytes.len() / 2]).await;
    assert_eq!(status, 202, "{second}");
    let second_input = second["input"].as_str().expect("input");
    assert!(
        second_input.starts_with("incoming/talk #1-"),
        "{second_input}"
    );
    assert_eq!(
        std::fs::read(test.media_root().join("incoming/talk #1.mp4")).expect("kept"),
        bytes
    );
    assert!(
        incoming(&test).iter().all(|name| !name.starts_with('.')),
        "no temporary file is left: {:?}",
        incoming(&test)
    );

    let job = accepted["job_id"].as_str().expect("job ID");
    assert_eq!(ended(&gateway, job).await, "done");
    assert!(
        test.output_root()
            .join("incoming/talk #1.mp4.hls/master.m3u8")
            .exists()
    );
    // The half file is not a video: its job fails with the input's reason.
    let half = second["job_id"].as_str().expect("job ID");
    assert_eq!(ended(&gateway, half).await, "failed");
}

#[tokio::test]
async fn uploads_too_large_too_slow_or_hostile_are_refused_and_leave_nothing() {
    let test = TestEnv::new("gateway-upload-refusals").await;
    let _worker = test.worker(1).await;
    let limit = 100_000_u64;
    let gateway = TestGateway::spawn_with(
        &test,
        &tokens(),
        &[
            "--max-upload-bytes",
            &limit.to_string(),
            "--upload-window-seconds",
            "1",
            "--upload-min-bytes-per-second",
            "2000",
        ],
    )
    .await;
    let canary = test.elsewhere().join("canary.mp4");
    Clip::default().write(&canary).await;
    let canary_bytes = std::fs::read(&canary).expect("canary");
    let small = vec![7_u8; 10_000];

    let cases: [(&str, &str, &[u8], u16, &str); 8] = [
        (
            "filename=../elsewhere/canary.mp4",
            SUBMITTER,
            &small,
            400,
            "bad_filename",
        ),
        (
            "filename=.talk.mp4.part",
            SUBMITTER,
            &small,
            400,
            "bad_filename",
        ),
        ("segment_seconds=2", SUBMITTER, &small, 400, "bad_filename"),
        (
            "filename=a.mp4&input=../elsewhere/canary.mp4",
            SUBMITTER,
            &small,
            400,
            "bad_query",
        ),
        (
            "filename=a.mp4&shell=rm",
            SUBMITTER,
            &small,
            400,
            "bad_query",
        ),
        (
            "filename=a.mp4&name=../../etc",
            SUBMITTER,
            &small,
            400,
            "bad_name",
        ),
        ("filename=a.mp4", READER, &small, 403, "forbidden"),
        ("filename=a.mp4", SUBMITTER, b"", 400, "input_unusable"),
    ];
    for (query, token, bytes, want_status, want_code) in cases {
        let (status, reply) = upload(&gateway, query, token, bytes).await;
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (want_status, Some(want_code)),
            "{query}: {reply}"
        );
    }

    // Declared too large: refused before a byte of the body is read.
    let (status, text) = send(
        &gateway,
        "filename=big.mp4",
        SUBMITTER,
        "video/mp4",
        (Some(limit * 10), vec![], Duration::ZERO),
    )
    .await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("upload_too_large"), "{text}");

    // Chunked, no length declared, and past the limit: cut off there.
    let (status, text) = send(
        &gateway,
        "filename=big.mp4",
        SUBMITTER,
        "video/mp4",
        (
            None,
            vec![vec![1_u8; 32 * 1024]; 8],
            Duration::from_millis(10),
        ),
    )
    .await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("upload_too_large"), "{text}");

    // A slow loris: 10 bytes every 300 ms against a floor of 2000 a second.
    let started = std::time::Instant::now();
    let (status, text) = send(
        &gateway,
        "filename=slow.mp4",
        SUBMITTER,
        "video/mp4",
        (
            Some(50_000),
            vec![vec![2_u8; 10]; 100],
            Duration::from_millis(300),
        ),
    )
    .await;
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("upload_too_slow"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the slow upload was cut off, not sat through ({:?})",
        started.elapsed()
    );

    // Not a video type, not JSON.
    let (status, text) = send(
        &gateway,
        "filename=a.mp4",
        SUBMITTER,
        "text/plain",
        (Some(5), vec![b"hello".to_vec()], Duration::ZERO),
    )
    .await;
    assert_eq!(status, 415, "{text}");
    assert!(text.contains("unsupported_media_type"), "{text}");

    assert_eq!(
        incoming(&test),
        Vec::<String>::new(),
        "nothing was left in incoming/"
    );
    assert_eq!(std::fs::read(&canary).expect("canary"), canary_bytes);
    assert!(
        !test
            .media_root()
            .join("../elsewhere/canary.mp4.hls")
            .exists()
    );
    let (ready, _consumers) = test
        .pool
        .ready_and_consumers(hlsmux_protocol::MuxerId::new(1).expect("valid"))
        .await;
    assert_eq!(ready, 0, "no job was queued");
}

#[tokio::test]
async fn a_large_upload_is_streamed_to_disk_not_held_in_memory() {
    let test = TestEnv::new("gateway-upload-memory").await;
    let _worker = test.worker(1).await;
    let gateway = TestGateway::spawn(&test, &tokens()).await;
    let (status, _) = gateway.call("GET", "/v1/jobs", READER, None).await;
    assert_eq!(status, 200);
    let before = gateway.peak_rss_mib();

    // 128 MiB in 1 MiB pieces; not a video, so its job fails, which is
    // beside the point here.
    let piece = vec![0x47_u8; 1024 * 1024];
    let pieces = vec![piece; 128];
    let (status, text) = send(
        &gateway,
        "filename=big.ts&muxer=1",
        SUBMITTER,
        "application/octet-stream",
        (Some(128 * 1024 * 1024), pieces, Duration::ZERO),
    )
    .await;
    assert_eq!(status, 202, "{text}");
    let landed = std::fs::metadata(test.media_root().join("incoming/big.ts")).expect("landed");
    assert_eq!(landed.len(), 128 * 1024 * 1024);
    let (_, metrics) = hlsmux_tests::http::get(gateway.address, "/metrics").await;
    assert_eq!(
        hlsmux_worker::metrics::sample(&metrics, hlsmux_gateway::UPLOADED_BYTES, &[]),
        Some(134_217_728.0),
        "{metrics}"
    );
    let after = gateway.peak_rss_mib();
    assert!(
        after - before < 48.0,
        "a 128 MiB upload raised the gateway's peak memory from {before:.0} to {after:.0} MiB"
    );
}
