//! `hlsmux-worker`: the daemon each Pi runs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hlsmux_worker::{app::Worker, config::Settings, shutdown, telemetry};
use tokio_util::sync::CancellationToken;

/// Consumes one muxer's hlsmux jobs and writes multi-bitrate HLS.
///
/// Settings come from built-in defaults, then the --config file, then
/// HLSMUX_* environment variables (HLSMUX_AMQP_URL, HLSMUX_MUXER_ID, ...).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file.
    #[arg(long, short, env = "HLSMUX_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init();
    let settings = match Settings::load(args.config.as_deref()) {
        Ok((settings, origins)) => {
            for origin in origins {
                tracing::info!(source = %origin.source, "setting {} = {}", origin.key, origin.value);
            }
            settings
        }
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::from(2);
        }
    };
    let settings_addr = settings.metrics_addr;
    let worker = match Worker::build(settings).await {
        Ok(worker) => worker,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::from(2);
        }
    };
    let metrics_listener = match tokio::net::TcpListener::bind(settings_addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(
                "cannot serve metrics on {settings_addr} ({error}): set metrics_addr (HLSMUX_METRICS_ADDR) to a free HOST:PORT"
            );
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
