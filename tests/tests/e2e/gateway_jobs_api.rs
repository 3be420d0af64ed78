//! The HTTP front door (issue 23, its first part): a program submits a
//! video by its path under the media root, follows it to `done` and reads
//! the pool over HTTP, and cancels a running job; every refusal is JSON
//! with a stable code: no token, an unknown token, a token without the
//! right, a path out of the media root (a canary outside it is never
//! read), a missing input, a malformed or oversized body.

use hlsmux_tests::gateway::{TestGateway, token_entry};
use hlsmux_tests::media::Clip;
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions};
use serde_json::{Value, json};

const SUBMITTER: &str = "t0ken-for-the-cms";
const READER: &str = "t0ken-for-a-dashboard";
const OPERATOR: &str = "t0ken-for-the-operator";

async fn gateway(test: &TestEnv) -> TestGateway {
    TestGateway::spawn(
        test,
        &[
            (SUBMITTER, &["submit", "read", "cancel"]),
            (READER, &["read"]),
            (OPERATOR, &["admin"]),
        ],
    )
    .await
}

/// Polls `GET /v1/jobs/{id}` until the job's state is `state`.
async fn wait_for_state(gateway: &TestGateway, job: &str, state: &str) -> Value {
    gateway
        .job_until(READER, job, &format!("reached {state}"), |body| {
            body["job"]["state"] == state
        })
        .await
}

#[tokio::test]
async fn a_program_submits_follows_and_reads_the_pool_over_http() {
    let test = TestEnv::new("gateway-jobs").await;
    let _worker = test.worker(1).await;
    let gateway = gateway(&test).await;
    std::fs::create_dir_all(test.media_root().join("uploads")).expect("uploads");
    Clip::default()
        .write(&test.media_root().join("uploads/talk.mp4"))
        .await;

    let (status, health) = gateway.call("GET", "/healthz", "", None).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (status, _) = gateway.call("GET", "/readyz", "", None).await;
    assert_eq!(status, 200);

    let submission = json!({ "input": "uploads/talk.mp4", "segment_seconds": 2 });
    let (status, accepted) = gateway
        .call("POST", "/v1/jobs", SUBMITTER, Some(&submission))
        .await;
    assert_eq!(status, 202, "{accepted}");
    let job = accepted["job_id"].as_str().expect("a job ID").to_owned();
    assert_eq!(accepted["output"], "uploads/talk.mp4.hls");

    let done = wait_for_state(&gateway, &job, "done").await;
    let states: Vec<&str> = done["events"]
        .as_array()
        .expect("a timeline")
        .iter()
        .filter_map(|event| event["state"].as_str())
        .collect();
    assert!(
        states.contains(&"started") && states.last() == Some(&"done"),
        "{states:?}"
    );
    assert!(
        test.output_root()
            .join("uploads/talk.mp4.hls/master.m3u8")
            .exists()
    );

    let (status, listed) = gateway
        .call("GET", "/v1/jobs?state=done&muxer=1", READER, None)
        .await;
    assert_eq!(status, 200, "{listed}");
    assert!(
        listed["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .any(|j| j["job_id"] == job.as_str())
    );
    // `since`: the jobs with an event at or after a time.
    let updated = done["job"]["updated_at"].as_str().expect("updated_at");
    let since = |time: &str| {
        format!(
            "/v1/jobs?since={}",
            hlsmux_tests::http::encode_query_value(time)
        )
    };
    let (status, recent) = gateway.call("GET", &since(updated), READER, None).await;
    assert_eq!(status, 200, "{recent}");
    assert!(
        recent["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .any(|j| j["job_id"] == job.as_str()),
        "since its last event: {recent}"
    );
    let (status, later) = gateway
        .call("GET", &since("2099-01-01T00:00:00Z"), READER, None)
        .await;
    assert_eq!((status, &later["jobs"]), (200, &json!([])), "{later}");
    let (status, pool) = gateway.call("GET", "/v1/workers", READER, None).await;
    assert_eq!(status, 200, "{pool}");
    assert_eq!(pool["workers"].as_array().map(Vec::len), Some(1), "{pool}");

    let (status, metrics) = hlsmux_tests::http::get(gateway.address, "/metrics").await;
    assert_eq!(status, 200);
    let labels = [("method", "POST"), ("route", "/v1/jobs"), ("status", "202")];
    assert_eq!(
        hlsmux_worker::metrics::sample(&metrics, hlsmux_gateway::REQUESTS, &labels),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_running_job_is_cancelled_over_http_and_an_ended_one_cannot_be() {
    let test = TestEnv::new("gateway-cancel").await;
    let _worker = test.worker_with(1, WorkerOptions::realtime(&test)).await;
    let gateway = gateway(&test).await;
    Clip {
        seconds: 20,
        ..Clip::default()
    }
    .write(&test.media_root().join("long.mp4"))
    .await;
    let job = gateway
        .submit(SUBMITTER, &json!({ "input": "long.mp4" }))
        .await;
    wait_for_state(&gateway, &job, "running").await;
    let (status, refused) = gateway
        .call("DELETE", &format!("/v1/jobs/{job}"), READER, None)
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, cancelled) = gateway
        .call("DELETE", &format!("/v1/jobs/{job}"), SUBMITTER, None)
        .await;
    assert_eq!(status, 202, "{cancelled}");
    let failed = wait_for_state(&gateway, &job, "failed").await;
    assert_eq!(failed["job"]["reason"], "cancelled", "{failed}");
    assert!(
        failed["job"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("gateway token")),
        "the message says who: {failed}"
    );
    assert!(!test.output_root().join("long.mp4.hls").exists());
    let (status, again) = gateway
        .call("DELETE", &format!("/v1/jobs/{job}"), OPERATOR, None)
        .await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("already_ended")),
        "{again}"
    );
}

/// A request, and the status and code it must be refused with: method,
/// path, token, body, status, code.
type Refusal<'a> = (&'a str, &'a str, &'a str, Option<Value>, u16, &'a str);

#[tokio::test]
async fn every_refusal_is_json_with_its_own_code_and_nothing_outside_the_root_is_read() {
    let test = TestEnv::new("gateway-refusals").await;
    let _worker = test.worker(1).await;
    let gateway = gateway(&test).await;
    let canary = test.elsewhere().join("canary.mp4");
    Clip::default().write(&canary).await;
    let canary_bytes = std::fs::read(&canary).expect("canary");
    // A link inside the media root that points out of it.
    std::os::unix::fs::symlink(&canary, test.media_root().join("link.mp4")).expect("symlink");
    std::fs::write(test.media_root().join("empty.mp4"), b"").expect("empty");
    // In the output root: a playlist linking out, and a staged (hidden) one.
    std::os::unix::fs::symlink(&canary, test.output_root().join("link.m3u8")).expect("symlink");
    std::fs::create_dir_all(test.output_root().join(".staging")).expect("staging");
    std::fs::write(test.output_root().join(".staging/index.m3u8"), "#EXTM3U\n").expect("staged");

    let submit = |input: &str| json!({ "input": input });
    let cases: Vec<Refusal> = vec![
        (
            "POST",
            "/v1/jobs",
            "",
            Some(submit("talk.mp4")),
            401,
            "unauthorized",
        ),
        (
            "POST",
            "/v1/jobs",
            "not-a-known-token",
            Some(submit("talk.mp4")),
            401,
            "bad_token",
        ),
        (
            "POST",
            "/v1/jobs",
            READER,
            Some(submit("talk.mp4")),
            403,
            "forbidden",
        ),
        (
            "POST",
            "/v1/jobs",
            SUBMITTER,
            Some(submit("../elsewhere/canary.mp4")),
            400,
            "input_outside_root",
        ),
        (
            "POST",
            "/v1/jobs",
            SUBMITTER,
            Some(submit("/etc/passwd")),
            400,
            "input_outside_root",
        ),
        (
            "POST",
            "/v1/jobs",
            SUBMITTER,
            Some(submit("link.mp4")),
            400,
            "input_outside_root",
        ),
        (
            "POST",
            "/v1/jobs",
            SUBMITTER,
            Some(submit("missing.mp4")),
            400,
            "input_missing",
        ),
        (
            "POST",
            "/v1/jobs",
            SUBMITTER,
            Some(submit("empty.mp4")),
            400,
            "input_unusable",
        ),
        (
            "POST",
            "/v1/jobs",
            SUBMITTER,
            Some(json!({ "input": "x.mp4", "name": "../../etc" })),
            400,
            "bad_name",
        ),
        (
            "POST",
            "/v1/jobs",
            SUBMITTER,
            Some(json!({ "input": "x.mp4", "shell": "rm -rf /" })),
            400,
            "bad_body",
        ),
        ("GET", "/v1/jobs/not-an-id", READER, None, 400, "bad_job_id"),
        (
            "GET",
            "/v1/jobs/0b9c6c1e-0000-4000-8000-000000000000",
            READER,
            None,
            404,
            "not_found",
        ),
        (
            "GET",
            "/v1/jobs?since=yesterday",
            READER,
            None,
            400,
            "bad_query",
        ),
        (
            "GET",
            "/v1/jobs?state=everything",
            READER,
            None,
            400,
            "bad_query",
        ),
        ("GET", "/v1/admin", OPERATOR, None, 404, "no_such_route"),
        (
            "GET",
            "/v1/outputs/link.m3u8",
            READER,
            None,
            400,
            "output_outside_root",
        ),
        (
            "GET",
            "/v1/outputs/../elsewhere/canary.mp4",
            READER,
            None,
            400,
            "output_outside_root",
        ),
        (
            "GET",
            "/v1/outputs/%2e%2e%2felsewhere%2fcanary.mp4",
            READER,
            None,
            400,
            "output_outside_root",
        ),
        (
            "GET",
            "/v1/outputs/.staging/index.m3u8",
            READER,
            None,
            404,
            "not_found",
        ),
        (
            "GET",
            "/v1/outputs/gateway-tokens.toml",
            READER,
            None,
            404,
            "not_found",
        ),
        (
            "GET",
            "/v1/outputs/missing/master.m3u8",
            READER,
            None,
            404,
            "not_found",
        ),
        (
            "GET",
            "/v1/outputs/link.m3u8",
            "",
            None,
            401,
            "unauthorized",
        ),
    ];
    for (method, path, token, body, want_status, want_code) in cases {
        let (status, reply) = gateway.call(method, path, token, body.as_ref()).await;
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (want_status, Some(want_code)),
            "{method} {path} with {body:?}: {reply}"
        );
        assert!(
            reply["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{reply}"
        );
    }
    // A body past the limit is refused before it is read whole.
    let oversized = vec![b'x'; hlsmux_gateway::MAX_BODY_BYTES + 1];
    let (status, text) = hlsmux_tests::http::request(
        gateway.address,
        "POST",
        "/v1/jobs",
        &[("Authorization", &format!("Bearer {SUBMITTER}"))],
        &oversized,
    )
    .await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("body_too_large"), "{text}");

    assert_eq!(std::fs::read(&canary).expect("canary"), canary_bytes);
    assert_eq!(
        test.pool.dead_letters().await,
        0,
        "nothing reached the pool"
    );
    let (ready, _consumers) = test
        .pool
        .ready_and_consumers(hlsmux_protocol::MuxerId::new(1).expect("valid"))
        .await;
    assert_eq!(ready, 0, "no job was queued");
}

/// The events of an SSE response body (chunk-size lines skipped): each
/// event's id, type and data.
fn sse_events(body: &str) -> Vec<(u64, String, Value)> {
    let mut events = Vec::new();
    let (mut id, mut kind) = (None, None);
    for line in body.lines() {
        if let Some(value) = line.strip_prefix("id: ") {
            id = value.trim().parse().ok();
        } else if let Some(value) = line.strip_prefix("event: ") {
            kind = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("data: ") {
            let data = serde_json::from_str(value.trim()).expect("JSON data");
            events.push((
                id.take().expect("an id"),
                kind.take().expect("an event type"),
                data,
            ));
        }
    }
    events
}

/// Follows a job's events to their end (the stream closes after `done`).
async fn follow(
    gateway: &TestGateway,
    job: &str,
    last_event_id: Option<u64>,
) -> Vec<(u64, String, Value)> {
    let bearer = format!("Bearer {SUBMITTER}");
    let last = last_event_id.map(|id| id.to_string());
    let mut headers = vec![
        ("Authorization", bearer.as_str()),
        ("Accept", "text/event-stream"),
    ];
    if let Some(last) = &last {
        headers.push(("Last-Event-ID", last.as_str()));
    }
    let path = format!("/v1/jobs/{job}/events");
    let (status, body) = tokio::time::timeout(
        PATIENCE,
        hlsmux_tests::http::request(gateway.address, "GET", &path, &headers, b""),
    )
    .await
    .expect("the event stream ends after the job does");
    assert_eq!(status, 200, "{body}");
    sse_events(&body)
}

#[tokio::test]
async fn a_job_is_followed_live_as_server_sent_events_and_resumed_after_the_last_seen() {
    let test = TestEnv::new("gateway-events").await;
    let _worker = test.worker(1).await;
    let gateway = gateway(&test).await;
    Clip::default()
        .write(&test.media_root().join("talk.mp4"))
        .await;
    let job = gateway
        .submit(SUBMITTER, &json!({ "input": "talk.mp4" }))
        .await;

    let events = follow(&gateway, &job, None).await;
    let kinds: Vec<&str> = events.iter().map(|(_, kind, _)| kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"done"), "{kinds:?}");
    assert!(
        events
            .iter()
            .all(|(_, _, data)| data["job_id"] == job.as_str())
    );
    let ids: Vec<u64> = events.iter().map(|(id, _, _)| *id).collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "ids rise: {ids:?}"
    );

    // Resumed after the first event: the rest, and nothing twice.
    let resumed = follow(&gateway, &job, Some(ids[0])).await;
    let resumed_ids: Vec<u64> = resumed.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(resumed_ids, ids[1..], "resumed just after the last seen");

    let (status, refused) = gateway
        .call("GET", &format!("/v1/jobs/{job}/events"), "", None)
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
}

#[tokio::test]
async fn the_openapi_document_describes_what_the_gateway_does() {
    let test = TestEnv::new("gateway-openapi").await;
    let _worker = test.worker(1).await;
    // The operator may have callbacks (to a port nothing listens on).
    let mut tokens = token_entry("cms", SUBMITTER, &["submit", "read", "cancel"]);
    tokens.push_str(&token_entry("dashboard", READER, &["read"]));
    tokens.push_str(&token_entry("operator", OPERATOR, &["admin"]));
    tokens.push_str(
        "webhook_secret = \"a-secret-for-the-openapi-test\"\ncallback_hosts = [\"127.0.0.1:9\"]\n",
    );
    let gateway = TestGateway::spawn_with_token_file(&test, &tokens, &[]).await;
    let document: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../gateway/openapi.json"
        ))
        .expect("the document"),
    )
    .expect("JSON");
    let (status, served) = gateway.call("GET", "/openapi.json", "", None).await;
    assert_eq!((status, &served), (200, &document), "served as shipped");

    Clip::default()
        .write(&test.media_root().join("talk.mp4"))
        .await;
    let job = gateway
        .submit(SUBMITTER, &json!({ "input": "talk.mp4" }))
        .await;
    wait_for_state(&gateway, &job, "done").await;

    // Every documented property of a submission is one the gateway takes.
    let properties = document["components"]["schemas"]["Submission"]["properties"]
        .as_object()
        .expect("properties");
    let example = |name: &str| match name {
        "input" => json!("talk.mp4"),
        "name" => json!("every-option.hls"),
        "muxer" => json!(1),
        "segment_seconds" => json!(2),
        "encrypt" => json!(true),
        "callback_url" => json!("http://127.0.0.1:9/hooks"),
        other => properties[other]["enum"][0].clone(),
    };
    let every_option: serde_json::Map<String, Value> = properties
        .keys()
        .map(|name| (name.clone(), example(name)))
        .collect();
    let codes: Vec<&str> = document["components"]["schemas"]["Error"]["properties"]["error"]
        ["properties"]["code"]["enum"]
        .as_array()
        .expect("codes")
        .iter()
        .filter_map(Value::as_str)
        .collect();

    // Every code the gateway's source can refuse with is documented.
    for code in refusal_codes_in_the_source() {
        assert!(
            codes.contains(&code.as_str()),
            "the gateway refuses with {code}, which openapi.json does not list"
        );
    }

    // Every documented route answers, with a documented status, and any
    // refusal's code is a documented one.
    for (path, operations) in document["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            let concrete = path.replace("{id}", &job);
            let body = (method == "post" && path == "/v1/jobs")
                .then(|| Value::Object(every_option.clone()));
            let (status, reply) = gateway
                .call(&method.to_uppercase(), &concrete, OPERATOR, body.as_ref())
                .await;
            let documented: Vec<&String> = operation["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .collect();
            assert!(
                documented.iter().any(|code| **code == status.to_string()),
                "{method} {path}: {status} is not documented ({documented:?}): {reply}"
            );
            if let Some(code) = reply["error"]["code"].as_str() {
                assert!(
                    codes.contains(&code),
                    "{method} {path}: undocumented code {code}"
                );
                assert_ne!(
                    code, "no_such_route",
                    "{method} {path} is documented but not served"
                );
            }
            if method == "post" && path == "/v1/jobs" {
                assert_eq!(status, 202, "every documented option is taken: {reply}");
            }
        }
    }
}

/// The codes the gateway's source gives its refusals: the literal after a
/// `StatusCode::…,` or in `bad_request(…)`.
fn refusal_codes_in_the_source() -> Vec<String> {
    let mut directories = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../gateway/src"
    ))];
    let mut files = Vec::new();
    while let Some(directory) = directories.pop() {
        for entry in std::fs::read_dir(directory).expect("the gateway's source") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                directories.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let mut codes = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(file).expect("source");
        let compact: String = source.split_whitespace().collect();
        for marker in ["bad_request(\"", "StatusCode::"] {
            for (at, _) in compact.match_indices(marker) {
                let rest = &compact[at + marker.len()..];
                let rest = match marker {
                    "StatusCode::" => match rest.split_once(",\"") {
                        Some((status, after))
                            if status.chars().all(|c| c.is_ascii_uppercase() || c == '_') =>
                        {
                            after
                        }
                        _ => continue,
                    },
                    _ => rest,
                };
                if let Some((code, _)) = rest.split_once('"') {
                    codes.push(code.to_owned());
                }
            }
        }
    }
    codes.sort();
    codes.dedup();
    assert!(codes.len() > 20, "the scan found the codes: {codes:?}");
    codes
}
