//! The gateway's Prometheus metrics: requests by route and status, and
//! the event streams open now.

use prometheus::{Encoder, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

pub const REQUESTS: &str = "hlsmux_gateway_requests_total";
pub const EVENT_STREAMS: &str = "hlsmux_gateway_event_streams";

pub struct GatewayMetrics {
    registry: Registry,
    requests: IntCounterVec,
    pub event_streams: IntGauge,
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
        registry
            .register(Box::new(requests.clone()))
            .expect("unique");
        registry
            .register(Box::new(event_streams.clone()))
            .expect("unique");
        Self {
            registry,
            requests,
            event_streams,
        }
    }
}

impl GatewayMetrics {
    pub fn answered(&self, method: &str, route: &str, status: u16) {
        self.requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
    }

    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}
