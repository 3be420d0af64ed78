//! `hlsmux-gateway`: arguments, telemetry, the broker, the token file, the
//! listener; then serve until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hlsmux_gateway::tokens::Tokens;
use hlsmux_gateway::{Gateway, GatewaySettings, UploadLimits, WebhookSettings};
use hlsmux_submitter::broker::Broker;
use hlsmux_submitter::cli::PoolArgs;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(name = "hlsmux-gateway", about = "The pool's HTTP jobs API")]
struct Args {
    /// Where to listen (port 0: any free port, written to --address-file).
    #[arg(long, env = "HLSMUX_GATEWAY_LISTEN", default_value = "127.0.0.1:8480")]
    listen: SocketAddr,
    /// The token file (TOML: name, sha256 of the token, rights).
    #[arg(long, env = "HLSMUX_GATEWAY_TOKENS")]
    tokens: PathBuf,
    /// A file to write the address listened on to, once listening.
    #[arg(long)]
    address_file: Option<PathBuf>,
    /// The largest upload accepted, in bytes.
    #[arg(long, env = "HLSMUX_GATEWAY_MAX_UPLOAD_BYTES", default_value_t = UploadLimits::default().max_bytes)]
    max_upload_bytes: u64,
    /// An upload slower than this on average over any window of
    /// --upload-window-seconds is cut off (slow loris).
    #[arg(long, env = "HLSMUX_GATEWAY_UPLOAD_MIN_BYTES_PER_SECOND", default_value_t = UploadLimits::default().min_bytes_per_second)]
    upload_min_bytes_per_second: u64,
    #[arg(long, env = "HLSMUX_GATEWAY_UPLOAD_WINDOW_SECONDS", default_value_t = UploadLimits::default().window.as_secs())]
    upload_window_seconds: u64,
    /// The wait before a failed webhook is tried again (doubling after
    /// each failure, up to ten minutes).
    #[arg(
        long,
        env = "HLSMUX_GATEWAY_WEBHOOK_FIRST_RETRY_MS",
        default_value_t = 5000
    )]
    webhook_first_retry_ms: u64,
    /// Attempts before a webhook is given up.
    #[arg(long, env = "HLSMUX_GATEWAY_WEBHOOK_MAX_ATTEMPTS", default_value_t = WebhookSettings::default().max_attempts)]
    webhook_max_attempts: u32,
    /// How long a receiver that answered 202 has to acknowledge the
    /// delivery (POST /v1/webhooks/{delivery_id}/ack) before it is sent again.
    #[arg(
        long,
        env = "HLSMUX_GATEWAY_WEBHOOK_ACK_TIMEOUT_MS",
        default_value_t = 600_000
    )]
    webhook_ack_timeout_ms: u64,
    #[command(flatten)]
    pool: PoolArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let telemetry = hlsmux_telemetry::init(hlsmux_telemetry::TelemetryConfig {
        service_name: "hlsmux-gateway",
        default_filter: "info,lapin=off",
        format: args.pool.log_format,
        otlp_endpoint: args.pool.otlp_endpoint.as_deref(),
    });
    // Held to the end: dropping it flushes the traces.
    let _telemetry = match telemetry {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("hlsmux-gateway: {error}");
            return ExitCode::FAILURE;
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hlsmux-gateway: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let tokens = Tokens::load(&args.tokens).map_err(|error| error.to_string())?;
    let broker = Broker::connect(&args.pool)
        .await
        .map_err(|error| error.to_string())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.listen))?;
    if let Some(file) = &args.address_file {
        let address = listener.local_addr().map_err(|error| error.to_string())?;
        std::fs::write(file, address.to_string())
            .map_err(|error| format!("cannot write {}: {error}", file.display()))?;
    }
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        stop.cancel();
    });
    let upload_limits = UploadLimits {
        max_bytes: args.max_upload_bytes,
        window: std::time::Duration::from_secs(args.upload_window_seconds.max(1)),
        min_bytes_per_second: args.upload_min_bytes_per_second,
    };
    let settings = GatewaySettings {
        media_root: args.pool.media_root.clone(),
        output_root: args.pool.output_root.clone(),
        upload_limits,
        webhooks: WebhookSettings {
            first_retry: std::time::Duration::from_millis(args.webhook_first_retry_ms),
            max_attempts: args.webhook_max_attempts.max(1),
            ack_timeout: std::time::Duration::from_millis(args.webhook_ack_timeout_ms),
            ..WebhookSettings::default()
        },
    };
    Gateway::new(broker, tokens, settings)
        .serve(listener, shutdown)
        .await;
    Ok(())
}
