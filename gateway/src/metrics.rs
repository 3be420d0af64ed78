//! The gateway's Prometheus metrics: requests by route and status, the
//! event streams open now, webhook attempts by outcome and those given up,
//! and the bytes uploaded.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

pub const REQUESTS: &str = "hlsmux_gateway_requests_total";
pub const EVENT_STREAMS: &str = "hlsmux_gateway_event_streams";
pub const WEBHOOK_ATTEMPTS: &str = "hlsmux_gateway_webhook_attempts_total";
pub const WEBHOOKS_GIVEN_UP: &str = "hlsmux_gateway_webhooks_given_up_total";
pub const UPLOADED_BYTES: &str = "hlsmux_gateway_uploaded_bytes_total";

pub struct GatewayMetrics {
    registry: Registry,
    requests: IntCounterVec,
    pub event_streams: IntGauge,
    webhook_attempts: IntCounterVec,
    webhooks_given_up: IntCounter,
    uploaded_bytes: IntCounter,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(REQUESTS, "Requests answered, by method, route and status."),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let event_streams = IntGauge::new(
            EVENT_STREAMS,
            "Server-Sent Event streams open now (clients following a job).",
        )
        .expect("valid metric");
        let webhook_attempts = IntCounterVec::new(
            Opts::new(
                WEBHOOK_ATTEMPTS,
                "Webhook deliveries attempted, by outcome (acknowledged, awaiting_ack, failed).",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let webhooks_given_up = IntCounter::new(
            WEBHOOKS_GIVEN_UP,
            "Webhooks given up: every attempt failed, or their token is gone.",
        )
        .expect("valid metric");
        let uploaded_bytes = IntCounter::new(
            UPLOADED_BYTES,
            "Bytes of uploads received whole into incoming/.",
        )
        .expect("valid metric");
        for metric in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(event_streams.clone()),
            Box::new(webhook_attempts.clone()),
            Box::new(webhooks_given_up.clone()),
            Box::new(uploaded_bytes.clone()),
        ] {
            registry.register(metric).expect("unique");
        }
        Self {
            registry,
            requests,
            event_streams,
            webhook_attempts,
            webhooks_given_up,
            uploaded_bytes,
        }
    }
}

impl GatewayMetrics {
    pub fn answered(&self, method: &str, route: &str, status: u16) {
        self.requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
    }

    /// One webhook attempt: `acknowledged`, `awaiting_ack` or `failed`.
    pub fn webhook_attempted(&self, outcome: &str) {
        self.webhook_attempts.with_label_values(&[outcome]).inc();
    }

    pub fn webhook_given_up(&self) {
        self.webhooks_given_up.inc();
    }

    pub fn uploaded(&self, bytes: u64) {
        self.uploaded_bytes.inc_by(bytes);
    }

    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}
