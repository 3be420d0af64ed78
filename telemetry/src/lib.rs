//! Logging and tracing for the hlsmux programs.
//!
//! Logs go to stderr as text or JSON lines, filtered by `RUST_LOG`. Spans
//! become OpenTelemetry traces exported over OTLP/HTTP only when an endpoint
//! is configured; otherwise nothing is exported and nothing complains. A
//! job's trace crosses the queue in its AMQP headers (W3C `traceparent`), so
//! the worker's spans hang under the submit tool's.

mod propagation;

pub use propagation::{extract_trace_context, inject_trace_context};

use std::io::IsTerminal;
use std::str::FromStr;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// For people: one readable line per event.
    #[default]
    Text,
    /// For machines: one JSON object per event.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?}: use text or json")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up trace export to {endpoint}: {detail}")]
pub struct TelemetryError {
    endpoint: String,
    detail: String,
}

/// Keeps trace export running; dropping it flushes what is pending.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// What a program asks of its telemetry.
pub struct TelemetryConfig<'a> {
    pub service_name: &'static str,
    /// The filter when `RUST_LOG` is not set.
    pub default_filter: &'a str,
    pub format: LogFormat,
    /// OTLP/HTTP traces endpoint (`http://collector:4318/v1/traces`).
    pub otlp_endpoint: Option<&'a str>,
}

/// Installs the global subscriber: logs, and traces when configured.
pub fn init(config: TelemetryConfig<'_>) -> Result<TelemetryGuard, TelemetryError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(config.default_filter));
    let provider = match config.otlp_endpoint.filter(|e| !e.is_empty()) {
        Some(endpoint) => Some(otlp_provider(config.service_name, endpoint)?),
        None => None,
    };
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer(config.service_name))
    });
    let registry = tracing_subscriber::registry().with(filter).with(traces);
    let ansi = std::io::stderr().is_terminal();
    match config.format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(ansi),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
    Ok(TelemetryGuard { provider })
}

fn otlp_provider(
    service: &'static str,
    endpoint: &str,
) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()
        .map_err(|error| TelemetryError {
            endpoint: endpoint.to_owned(),
            detail: error.to_string(),
        })?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build())
}
