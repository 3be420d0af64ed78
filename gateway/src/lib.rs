//! `hlsmux-gateway`: the pool's HTTP front door for programs (a CMS, an
//! upload form, a recording system) and for people (a web page). It
//! speaks to the pool only through RabbitMQ and the shared media root,
//! with the CLI's own code, as the broker's submit user: queue, follow,
//! cancel and keep its webhook log, nothing else.
//!
//! - `routes` (method and path to handler), `query` (query strings),
//!   `api_error` (every refusal as JSON with a stable code), `body`
//!   (whole or streamed), `tokens` (bearer tokens, stored hashed, with
//!   rights);
//! - `jobs` (submit, look up, cancel, the pool, through
//!   `hlsmux_submitter`), `upload` (a streamed file into `incoming/`),
//!   `events` (a job's events live, as Server-Sent Events), `index` (every
//!   job's state in memory, from the event history);
//! - `webhooks` (signed callbacks, their state in the broker), `outputs`
//!   (published HLS files, for players), `ui` (the web page), `metrics`.

mod api_error;
mod body;
mod events;
mod index;
mod jobs;
mod metrics;
mod outputs;
mod query;
mod routes;
pub mod tokens;
mod ui;
mod upload;
pub mod webhooks;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use hlsmux_submitter::broker::Broker;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

pub use metrics::{EVENT_STREAMS, REQUESTS, UPLOADED_BYTES, WEBHOOK_ATTEMPTS, WEBHOOKS_GIVEN_UP};
pub use routes::MAX_BODY_BYTES;
use tokens::Tokens;
pub use upload::UploadLimits;
pub use webhooks::WebhookSettings;

/// How long a client may take to send its request head: a slow one holds
/// a connection, and no more than this.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where the gateway finds the pool's files, and its limits.
pub struct GatewaySettings {
    /// Inputs, and uploads into its `incoming/`.
    pub media_root: PathBuf,
    /// Published outputs, for the page's player (none: not served).
    pub output_root: Option<PathBuf>,
    pub upload_limits: UploadLimits,
    pub webhooks: WebhookSettings,
}

/// The gateway's state, shared by every connection.
pub struct Gateway {
    broker: Broker,
    tokens: Tokens,
    media_root: PathBuf,
    output_root: Option<PathBuf>,
    metrics: Arc<metrics::GatewayMetrics>,
    index: index::JobIndex,
    upload_limits: UploadLimits,
    webhooks: webhooks::Webhooks,
}

impl Gateway {
    pub fn new(broker: Broker, tokens: Tokens, settings: GatewaySettings) -> Self {
        let metrics = Arc::new(metrics::GatewayMetrics::default());
        Self {
            broker,
            tokens,
            media_root: settings.media_root,
            output_root: settings.output_root,
            upload_limits: settings.upload_limits,
            webhooks: webhooks::Webhooks::new(settings.webhooks, Arc::clone(&metrics)),
            metrics,
            index: index::JobIndex::default(),
        }
    }

    /// Serves HTTP/1 on `listener` until `shutdown`.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) {
        let gateway = Arc::new(self);
        let media_root = gateway.media_root.clone();
        tokio::task::spawn_blocking(move || {
            let swept = upload::sweep_abandoned(&media_root, upload::ABANDONED_AFTER);
            if swept > 0 {
                info!(swept, "removed uploads abandoned a day or more ago");
            }
        });
        let indexing = Arc::clone(&gateway);
        let stop_indexing = shutdown.clone();
        tokio::spawn(async move {
            indexing
                .index
                .follow(&indexing.broker, &stop_indexing)
                .await;
        });
        let delivering = Arc::clone(&gateway);
        let stop_delivering = shutdown.clone();
        tokio::spawn(async move {
            delivering
                .webhooks
                .run(
                    &delivering.broker,
                    &delivering.index,
                    &delivering.tokens,
                    &stop_delivering,
                )
                .await;
        });
        info!(address = ?listener.local_addr().ok(), "gateway listening");
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        debug!(%error, "accept failed");
                        continue;
                    }
                },
                () = shutdown.cancelled() => return,
            };
            let gateway = Arc::clone(&gateway);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let gateway = Arc::clone(&gateway);
                    async move { Ok::<_, Infallible>(gateway.respond(request).await) }
                });
                let mut builder = http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT);
                if let Err(error) = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!(%peer, %error, "connection ended");
                }
            });
        }
    }
}
