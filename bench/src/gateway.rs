//! Item 10: the HTTP gateway. The latency of `GET /v1/jobs/{id}` (which
//! reads the event history), one request after another, and the
//! gateway's peak resident memory while 200 clients follow a running job
//! as Server-Sent Events.

use std::sync::Arc;
use std::time::Instant;

use hlsmux_tests::gateway::TestGateway;
use hlsmux_tests::media::Clip;
use hlsmux_tests::{TestEnv, WorkerOptions};
use serde_json::json;

use crate::measure::percentile;

const TOKEN: &str = "bench-token";
const FOLLOWERS: usize = 200;

pub struct GatewayFigures {
    /// Milliseconds per `GET /v1/jobs/{id}`.
    pub status_ms: Vec<f64>,
    pub peak_rss_mib: f64,
}

impl GatewayFigures {
    /// Item 10's rows of the table.
    pub fn print(&self) {
        let latency = format!(
            "{:.1} / {:.1}",
            percentile(&self.status_ms, 50.0),
            percentile(&self.status_ms, 99.0)
        );
        println!(
            "{:<50} {latency:<30} ",
            "10. gateway GET /v1/jobs/{id} p50 / p99, ms"
        );
        let rss = format!("{:.1}", self.peak_rss_mib);
        println!(
            "{:<50} {rss:<30} ",
            "10. gateway peak RSS, 200 followers, MiB"
        );
    }

    pub fn json(&self) -> serde_json::Value {
        json!({
            "status_ms": {
                "p50": percentile(&self.status_ms, 50.0),
                "p99": percentile(&self.status_ms, 99.0),
                "requests": self.status_ms.len(),
            },
            "peak_rss_mib_200_followers": self.peak_rss_mib,
        })
    }
}

pub async fn measure(requests: usize) -> GatewayFigures {
    let test = TestEnv::new("bench-gateway").await;
    let _worker = test.worker_with(1, WorkerOptions::realtime(&test)).await;
    let gateway = Arc::new(TestGateway::spawn(&test, &[(TOKEN, &["admin"])]).await);
    Clip {
        seconds: 10,
        ..Clip::default()
    }
    .write(&test.media_root().join("talk.mp4"))
    .await;
    let job = gateway.submit(TOKEN, &json!({ "input": "talk.mp4" })).await;
    let bearer = format!("Bearer {TOKEN}");
    let followers: Vec<_> = (0..FOLLOWERS)
        .map(|_| {
            let (gateway, bearer) = (Arc::clone(&gateway), bearer.clone());
            let path = format!("/v1/jobs/{job}/events");
            tokio::spawn(async move {
                let headers = [("Authorization", bearer.as_str())];
                hlsmux_tests::http::request(gateway.address, "GET", &path, &headers, b"").await
            })
        })
        .collect();
    let mut status_ms = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        let (status, _) = gateway
            .call("GET", &format!("/v1/jobs/{job}"), TOKEN, None)
            .await;
        status_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 200);
    }
    for follower in followers {
        let _ = follower.await;
    }
    GatewayFigures {
        status_ms,
        peak_rss_mib: gateway.peak_rss_mib(),
    }
}
