//! One gateway on loopback under load (issue 23): 200 clients follow one
//! job's events at once while 500 status requests come in. Every follower
//! gets every event of the job, in order, to its `done`; every status
//! request is answered; the gateway's memory stays bounded.

use std::sync::Arc;
use std::time::Duration;

use hlsmux_tests::gateway::TestGateway;
use hlsmux_tests::media::Clip;
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions};
use serde_json::json;
use tokio::sync::Semaphore;

const TOKEN: &str = "load-test-token";
const FOLLOWERS: usize = 200;
const STATUS_REQUESTS: usize = 500;
/// Status requests in flight at once.
const STATUS_CONCURRENCY: usize = 50;
/// The gateway's resident set may not pass this (it held 32 MiB when this
/// was written: each follower costs a channel and a small buffer).
const PEAK_RSS_LIMIT_MIB: f64 = 256.0;

/// The `event:` lines of an SSE body, in order.
fn event_kinds(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|line| line.strip_prefix("event: "))
        .map(|kind| kind.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn two_hundred_followers_and_five_hundred_status_requests_are_all_served() {
    let test = TestEnv::new("gateway-load").await;
    // A job long enough that the followers join while it runs.
    let _worker = test.worker_with(1, WorkerOptions::realtime(&test)).await;
    let gateway = Arc::new(TestGateway::spawn(&test, &[(TOKEN, &["admin"])]).await);
    Clip {
        seconds: 6,
        ..Clip::default()
    }
    .write(&test.media_root().join("talk.mp4"))
    .await;
    let job = gateway.submit(TOKEN, &json!({ "input": "talk.mp4" })).await;
    let bearer = format!("Bearer {TOKEN}");

    let mut followers = Vec::with_capacity(FOLLOWERS);
    for _ in 0..FOLLOWERS {
        let (gateway, bearer) = (Arc::clone(&gateway), bearer.clone());
        let path = format!("/v1/jobs/{job}/events");
        followers.push(tokio::spawn(async move {
            let headers = [("Authorization", bearer.as_str())];
            tokio::time::timeout(
                PATIENCE,
                hlsmux_tests::http::request(gateway.address, "GET", &path, &headers, b""),
            )
            .await
        }));
    }
    let limit = Arc::new(Semaphore::new(STATUS_CONCURRENCY));
    let mut statuses = Vec::with_capacity(STATUS_REQUESTS);
    for _ in 0..STATUS_REQUESTS {
        let (gateway, limit, job) = (Arc::clone(&gateway), Arc::clone(&limit), job.clone());
        statuses.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.expect("semaphore");
            gateway
                .call("GET", &format!("/v1/jobs/{job}"), TOKEN, None)
                .await
                .0
        }));
    }

    let mut answered = 0;
    for status in statuses {
        assert_eq!(status.await.expect("task"), 200, "a status request failed");
        answered += 1;
    }
    assert_eq!(answered, STATUS_REQUESTS);
    let mut complete = 0;
    let mut first: Option<Vec<String>> = None;
    for follower in followers {
        let (status, body) = follower
            .await
            .expect("task")
            .expect("the stream ended within the patience");
        assert_eq!(status, 200, "{body}");
        let kinds = event_kinds(&body);
        assert_eq!(
            kinds.first().map(String::as_str),
            Some("started"),
            "{kinds:?}"
        );
        assert_eq!(kinds.last().map(String::as_str), Some("done"), "{kinds:?}");
        // Progress events are the same for everyone: they are the history.
        match &first {
            None => first = Some(kinds),
            Some(first) => assert_eq!(&kinds, first, "every follower saw the same events"),
        }
        complete += 1;
    }
    assert_eq!(complete, FOLLOWERS, "no follower dropped");
    let peak = gateway.peak_rss_mib();
    eprintln!("gateway peak RSS with {FOLLOWERS} followers: {peak:.1} MiB");
    assert!(peak < PEAK_RSS_LIMIT_MIB, "the gateway held {peak:.1} MiB");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, metrics) = hlsmux_tests::http::get(gateway.address, "/metrics").await;
    assert_eq!(
        hlsmux_worker::metrics::sample(&metrics, hlsmux_gateway::EVENT_STREAMS, &[]),
        Some(0.0),
        "every stream closed once its job ended"
    );
}
