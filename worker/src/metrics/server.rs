//! Serves `/metrics` (Prometheus text), `/healthz` (the process answers) and
//! `/readyz` (connected to the broker, storage healthy, not drained) over
//! HTTP/1 with hyper, on a listener the caller binds.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::WorkerMetrics;
use crate::hardware::soc::SocSensor;
use crate::health::storage::{StorageHealth, StorageMonitor};
use hlsmux_protocol::WorkerState;

/// What the endpoints look at.
pub struct Endpoints {
    pub metrics: Arc<WorkerMetrics>,
    pub state: watch::Receiver<WorkerState>,
    pub storage: Arc<StorageMonitor>,
    pub quarantine: Arc<crate::health::quarantine::Quarantine>,
    pub soc: SocSensor,
}

impl Endpoints {
    async fn respond(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
        }
        match request.uri().path() {
            "/metrics" => {
                // Read the SoC at scrape time: fresh, and absent where absent.
                let reading = self.soc.read().await;
                self.metrics.record_soc(
                    &self.soc.thermal_zone,
                    reading.temperature_celsius,
                    reading.throttling,
                );
                let mut response = text(StatusCode::OK, self.metrics.render());
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(
                        "text/plain; version=0.0.4; charset=utf-8",
                    ),
                );
                response
            }
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/readyz" => match self.not_ready_because() {
                None => text(StatusCode::OK, "ready\n".into()),
                Some(reason) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {reason}\n"),
                ),
            },
            _ => text(
                StatusCode::NOT_FOUND,
                "try /metrics, /healthz or /readyz\n".into(),
            ),
        }
    }

    fn not_ready_because(&self) -> Option<String> {
        if self.metrics.broker_connected.get() != 1 {
            return Some("not connected to RabbitMQ".into());
        }
        if let Some(reasons) = self.quarantine.reasons() {
            return Some(format!("quarantined: {reasons}"));
        }
        if let Some(StorageHealth::Unhealthy(reason)) = self.storage.last_health() {
            let what = if reason.is_full() {
                "storage full"
            } else {
                "storage unhealthy"
            };
            return Some(format!("{what}: {reason}"));
        }
        let state = *self.state.borrow();
        if !matches!(state, WorkerState::Idle | WorkerState::Busy) {
            return Some(format!("worker is {state}"));
        }
        None
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

/// Serves until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, endpoints: Arc<Endpoints>, shutdown: CancellationToken) {
    if let Ok(address) = listener.local_addr() {
        info!(%address, "serving /metrics, /healthz and /readyz");
    }
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let endpoints = Arc::clone(&endpoints);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let endpoints = Arc::clone(&endpoints);
                async move { Ok::<_, Infallible>(endpoints.respond(&request).await) }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = connection => if let Err(error) = result { debug!(%error, "metrics connection") },
                () = shutdown.cancelled() => {}
            }
        });
    }
}
