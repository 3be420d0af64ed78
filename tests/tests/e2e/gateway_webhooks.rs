//! Webhooks over HTTP (issue 23): a job submitted with a `callback_url` is
//! POSTed its final event, signed with its token's secret (HMAC-SHA256
//! over the timestamp and the body), retried with back-off until the
//! receiver answers 2xx, each attempt visible in `GET /v1/jobs/{id}`. The
//! delivery state is in RabbitMQ: a callback owed when the gateway is
//! killed is delivered by the next gateway, even for a job that ended
//! while no gateway ran. Callbacks to hosts the token does not name, by a
//! token without a secret, or to non-HTTP URLs are refused; a receiver
//! that never acknowledges is given up after the last attempt.

use std::time::Duration;

use hlsmux_gateway::webhooks::sign;
use hlsmux_tests::gateway::{TestGateway, token_entry};
use hlsmux_tests::media::Clip;
use hlsmux_tests::webhook_receiver::{Received, WebhookReceiver};
use hlsmux_tests::{PATIENCE, TestEnv};
use serde_json::{Value, json};

const CMS: &str = "t0ken-for-the-cms";
const SECRET: &str = "a-secret-the-cms-and-the-gateway-share";
const NO_SECRET: &str = "t0ken-without-a-webhook-secret";

/// A token file: the CMS's token may have callbacks to `receiver`.
fn token_file(receiver: &WebhookReceiver) -> String {
    let mut file = token_entry("cms", CMS, &["submit", "read"]);
    file.push_str(&format!(
        "webhook_secret = \"{SECRET}\"\ncallback_hosts = [\"127.0.0.1:{}\"]\n",
        receiver.address.port()
    ));
    file.push_str(&token_entry("plain", NO_SECRET, &["submit", "read"]));
    file
}

/// Checks one delivery as a receiver would: signed by the secret within
/// five minutes, about `job`, which ended `state`.
fn assert_signed_delivery(received: &Received, job: &str, state: &str) {
    let signature = received
        .headers
        .get("hlsmux-signature")
        .expect("a signature header");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        sign::verify(SECRET, signature, &received.body, now, 300),
        "the signature {signature} verifies"
    );
    assert!(!sign::verify(
        "another secret entirely",
        signature,
        &received.body,
        now,
        300
    ));
    assert_eq!(received.json["job_id"], job, "{}", received.json);
    assert_eq!(received.json["state"], state, "{}", received.json);
    assert_eq!(received.json["event"]["job_id"], job);
    assert_eq!(
        received.headers.get("hlsmux-delivery").map(String::as_str),
        received.json["delivery_id"].as_str()
    );
}

async fn callback_state(gateway: &TestGateway, job: &str, state: &str) -> Value {
    let body = gateway
        .job_until(CMS, job, &format!("had its callback {state}"), |body| {
            body["callback"]["state"] == state
        })
        .await;
    body["callback"].clone()
}

#[tokio::test]
async fn a_finished_job_is_called_back_signed_and_retried_until_acknowledged() {
    let test = TestEnv::new("gateway-webhook").await;
    let _worker = test.worker(1).await;
    let receiver = WebhookReceiver::start(&[503, 500], 200).await;
    let gateway = TestGateway::spawn_with_token_file(
        &test,
        &token_file(&receiver),
        &["--webhook-first-retry-ms", "200"],
    )
    .await;
    Clip::default()
        .write(&test.media_root().join("talk.mp4"))
        .await;
    let url = format!("http://{}/hooks/hlsmux", receiver.address);
    let job = gateway
        .submit(CMS, &json!({ "input": "talk.mp4", "callback_url": url }))
        .await;

    let callback = callback_state(&gateway, &job, "delivered").await;
    let received = receiver.wait_for(3, PATIENCE).await;
    for delivery in &received {
        assert_signed_delivery(delivery, &job, "done");
    }
    let ids: std::collections::HashSet<&str> = received
        .iter()
        .filter_map(|r| r.json["delivery_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 3, "each attempt has its own delivery ID");
    let attempts = callback["attempts"].as_array().expect("attempts");
    let statuses: Vec<Option<u64>> = attempts.iter().map(|a| a["status"].as_u64()).collect();
    assert_eq!(statuses, [Some(503), Some(500), Some(200)], "{callback}");
    assert_eq!(attempts[2]["acknowledged"], true);
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("503"))
    );
    // Acknowledged: no more attempts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.received().len(), 3);
    let (_, metrics) = hlsmux_tests::http::get(gateway.address, "/metrics").await;
    let attempts = |outcome| {
        hlsmux_worker::metrics::sample(
            &metrics,
            hlsmux_gateway::WEBHOOK_ATTEMPTS,
            &[("outcome", outcome)],
        )
    };
    assert_eq!(
        (attempts("failed"), attempts("acknowledged")),
        (Some(2.0), Some(1.0)),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_callback_owed_when_the_gateway_dies_is_delivered_by_the_next_one() {
    let test = TestEnv::new("gateway-webhook-restart").await;
    let _worker = test.worker(1).await;
    let receiver = WebhookReceiver::start(&[], 503).await;
    let tokens = token_file(&receiver);
    let arguments = [
        "--webhook-first-retry-ms",
        "200",
        "--webhook-max-attempts",
        "1000",
    ];
    Clip::default()
        .write(&test.media_root().join("first.mp4"))
        .await;
    Clip::default()
        .write(&test.media_root().join("second.mp4"))
        .await;
    let url = format!("http://{}/hooks", receiver.address);
    let mut events = test.pool.events().await;

    // The first job ends and is called back, refused, while the gateway runs.
    let gateway = TestGateway::spawn_with_token_file(&test, &tokens, &arguments).await;
    let first = gateway
        .submit(CMS, &json!({ "input": "first.mp4", "callback_url": url }))
        .await;
    receiver.wait_for(2, PATIENCE).await;
    // The second is submitted, and the gateway is killed before it ends.
    let second = gateway
        .submit(CMS, &json!({ "input": "second.mp4", "callback_url": url }))
        .await;
    drop(gateway);
    let second_id = second.parse().expect("a job ID");
    let ended = events.final_event(second_id, PATIENCE).await;
    assert!(ended.state.is_final());
    let refused_before = receiver.received().len();
    receiver.answer(200);

    // A new gateway delivers both, from the log and the history alone.
    let gateway = TestGateway::spawn_with_token_file(&test, &tokens, &arguments).await;
    let first_callback = callback_state(&gateway, &first, "delivered").await;
    let second_callback = callback_state(&gateway, &second, "delivered").await;
    let received = receiver.received();
    assert!(received.len() > refused_before);
    for job in [&first, &second] {
        let delivered: Vec<&Received> = received
            .iter()
            .filter(|r| r.json["job_id"] == job.as_str())
            .collect();
        assert!(!delivered.is_empty(), "{job} was called back");
        for delivery in delivered {
            assert_signed_delivery(delivery, job, "done");
        }
    }
    // The first job's attempts before the restart are still on record.
    let attempts = first_callback["attempts"].as_array().expect("attempts");
    assert!(attempts.len() >= 3, "{first_callback}");
    assert_eq!(attempts[0]["status"], 503);
    assert_eq!(attempts.last().expect("last")["status"], 200);
    assert_eq!(
        second_callback["attempts"].as_array().map(Vec::len),
        Some(1),
        "the second job's first attempt, by the new gateway, was acknowledged: {second_callback}"
    );
}

#[tokio::test]
async fn callbacks_to_other_hosts_or_without_a_secret_are_refused_and_an_unacknowledged_one_is_given_up()
 {
    let test = TestEnv::new("gateway-webhook-refusals").await;
    let _worker = test.worker(1).await;
    let receiver = WebhookReceiver::start(&[], 500).await;
    let gateway = TestGateway::spawn_with_token_file(
        &test,
        &token_file(&receiver),
        &[
            "--webhook-first-retry-ms",
            "100",
            "--webhook-max-attempts",
            "2",
        ],
    )
    .await;
    Clip::default()
        .write(&test.media_root().join("talk.mp4"))
        .await;
    let good = format!("http://{}/hooks", receiver.address);
    let cases = [
        (
            CMS,
            "http://10.0.0.1:8080/internal".to_owned(),
            403,
            "callback_not_allowed",
        ),
        (
            CMS,
            format!("http://127.0.0.1:{}/", receiver.address.port() + 1),
            403,
            "callback_not_allowed",
        ),
        (
            CMS,
            "file:///etc/passwd".to_owned(),
            400,
            "bad_callback_url",
        ),
        (
            CMS,
            format!("http://user:pw@{}/hooks", receiver.address),
            400,
            "bad_callback_url",
        ),
        (CMS, "not a url".to_owned(), 400, "bad_callback_url"),
        (NO_SECRET, good.clone(), 403, "callback_not_allowed"),
    ];
    for (token, url, want_status, want_code) in cases {
        let (status, reply) = gateway
            .call(
                "POST",
                "/v1/jobs",
                token,
                Some(&json!({ "input": "talk.mp4", "callback_url": url })),
            )
            .await;
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (want_status, Some(want_code)),
            "{url}: {reply}"
        );
    }
    let (ready, _) = test
        .pool
        .ready_and_consumers(hlsmux_protocol::MuxerId::new(1).expect("valid"))
        .await;
    assert_eq!(ready, 0, "no refused submission was queued");
    assert!(receiver.received().is_empty());

    let job = gateway
        .submit(CMS, &json!({ "input": "talk.mp4", "callback_url": good }))
        .await;
    let callback = callback_state(&gateway, &job, "given_up").await;
    assert_eq!(
        callback["attempts"].as_array().map(Vec::len),
        Some(2),
        "{callback}"
    );
    assert!(
        callback["reason"]
            .as_str()
            .is_some_and(|r| r.contains("2 attempts")),
        "{callback}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.received().len(), 2, "no attempt after giving up");
    let (_, metrics) = hlsmux_tests::http::get(gateway.address, "/metrics").await;
    assert_eq!(
        hlsmux_worker::metrics::sample(&metrics, hlsmux_gateway::WEBHOOKS_GIVEN_UP, &[]),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_receiver_that_answers_202_acknowledges_later_once_and_only_what_is_awaited() {
    let test = TestEnv::new("gateway-webhook-late-ack").await;
    let _worker = test.worker(1).await;
    let receiver = WebhookReceiver::start(&[], 202).await;
    let gateway = TestGateway::spawn_with_token_file(
        &test,
        &token_file(&receiver),
        &[
            "--webhook-first-retry-ms",
            "200",
            "--webhook-ack-timeout-ms",
            "5000",
        ],
    )
    .await;
    Clip::default()
        .write(&test.media_root().join("talk.mp4"))
        .await;
    let url = format!("http://{}/hooks", receiver.address);
    let job = gateway
        .submit(CMS, &json!({ "input": "talk.mp4", "callback_url": url }))
        .await;

    // Answered 202 and not acknowledged in time: delivered again.
    let received = receiver.wait_for(2, PATIENCE).await;
    let delivery = |r: &Received| r.json["delivery_id"].as_str().expect("id").to_owned();
    let (first, second) = (delivery(&received[0]), delivery(&received[1]));
    assert_signed_delivery(&received[1], &job, "done");
    // The gateway records the second attempt once its answer is in.
    gateway
        .job_until(CMS, &job, "recorded a second attempt", |body| {
            body["callback"]["attempts"].as_array().map(Vec::len) == Some(2)
        })
        .await;
    let ack = |id: &str, token: &str| {
        let path = format!("/v1/webhooks/{id}/ack");
        let token = token.to_owned();
        let gateway = &gateway;
        async move { gateway.call("POST", &path, &token, None).await }
    };
    let refusals = [
        (ack(&first, CMS).await, 409, "ack_stale"),
        (ack(&second, NO_SECRET).await, 403, "forbidden"),
        (
            ack("0b9c6c1e-0000-4000-8000-000000000000", CMS).await,
            404,
            "unknown_delivery",
        ),
        (ack("not-a-delivery", CMS).await, 400, "unknown_delivery"),
    ];
    for ((status, reply), want_status, want_code) in refusals {
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (want_status, Some(want_code)),
            "{reply}"
        );
    }
    let (status, acknowledged) = ack(&second, CMS).await;
    assert_eq!(
        (status, &acknowledged["state"]),
        (200, &json!("delivered")),
        "{acknowledged}"
    );
    // The same acknowledgement again is a replay.
    let (status, replayed) = ack(&second, CMS).await;
    assert_eq!(
        (status, replayed["error"]["code"].as_str()),
        (409, Some("ack_replayed")),
        "{replayed}"
    );
    let callback = callback_state(&gateway, &job, "delivered").await;
    let attempts = callback["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{callback}");
    assert_eq!(attempts[1]["acknowledged"], true);
    assert!(attempts[1]["acknowledged_at"].is_string(), "{callback}");
    // Acknowledged: past the acknowledgement timeout, nothing more is sent.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(receiver.received().len(), 2);
}
