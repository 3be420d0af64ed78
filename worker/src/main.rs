//! `hlsmux-worker`: the daemon each Pi runs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hlsmux_telemetry::{LogFormat, TelemetryConfig};
use hlsmux_worker::app::{Worker, startup};
use hlsmux_worker::config::{self, Settings};
use hlsmux_worker::shutdown;
use tokio_util::sync::CancellationToken;

/// Consumes one muxer's hlsmux jobs and writes multi-bitrate HLS.
///
/// Settings come from built-in defaults, then the --config file, then the
/// kernel command line (muxid=, muxhwdec=), then HLSMUX_* environment
/// variables (HLSMUX_AMQP_URL, HLSMUX_MUXER_ID, ...).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file.
    #[arg(long, short, env = "HLSMUX_CONFIG")]
    config: Option<PathBuf>,
    /// Log lines as `text` (for people) or `json` (for machines).
    #[arg(long, env = "HLSMUX_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// OTLP/HTTP endpoint to export traces to (none: no export).
    #[arg(long, env = "HLSMUX_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let telemetry = hlsmux_telemetry::init(TelemetryConfig {
        service_name: "hlsmux-worker",
        default_filter: "info,lapin=warn",
        format: args.log_format,
        otlp_endpoint: args.otlp_endpoint.as_deref(),
    });
    let _telemetry = match telemetry {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("hlsmux-worker: {error}");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::load(args.config.as_deref()) {
        Ok((settings, origins)) => {
            for origin in origins {
                tracing::info!(source = %origin.source, "setting {} = {}", origin.key, origin.value);
            }
            if let Some(warning) = args.config.as_deref().and_then(config::exposed_secret) {
                tracing::warn!("{warning}");
            }
            settings
        }
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::from(2);
        }
    };
    let service = settings.service.clone();
    let worker = match Worker::build(settings).await {
        Ok(worker) => worker,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::from(2);
        }
    };
    let metrics_listener = match startup::bind_metrics(&service).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::from(2);
        }
    };
    let shutdown_token = CancellationToken::new();
    if let Err(error) = shutdown::cancel_on_signals(shutdown_token.clone()) {
        tracing::error!("cannot listen for signals: {error}");
        return ExitCode::FAILURE;
    }
    worker.run(metrics_listener, shutdown_token).await;
    ExitCode::SUCCESS
}
