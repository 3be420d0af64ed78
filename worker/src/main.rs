//! `hlsmux-worker`: the daemon each Pi runs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hlsmux_telemetry::{LogFormat, TelemetryConfig};
use hlsmux_worker::app::{Worker, startup};
use hlsmux_worker::config::{self, Settings};
use hlsmux_worker::pipeline::plan::codec::{EncoderChoice, VideoEncoder};
use hlsmux_worker::preview::{self, Board};
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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Print the ladder and the exact ffmpeg command a worker would run for
    /// INPUT, without running it or touching the broker.
    #[command(
        after_help = "Examples:\n  hlsmux-worker plan film.mkv --board pi4\n  hlsmux-worker plan phone.mp4 --board pi4 --hwdec --json"
    )]
    Plan(PlanArgs),
}

#[derive(clap::Args)]
struct PlanArgs {
    /// The input video.
    input: PathBuf,
    /// The machine: its encoder (pi3, pi4: h264_v4l2m2m; pi5, generic:
    /// libx264).
    #[arg(long, value_enum, default_value = "generic")]
    board: Board,
    /// An encoder other than the board's (`h264_vaapi`, ...).
    #[arg(long, value_parser = parse_encoder)]
    encoder: Option<VideoEncoder>,
    /// Decode in hardware where the encoder's family can (muxhwdec=1).
    #[arg(long)]
    hwdec: bool,
    /// The machine's memory in MiB: the plan is held to half of it, as a
    /// worker there would hold it (default: this machine's, or
    /// memory_budget_mib).
    #[arg(long, value_name = "MIB")]
    ram_mib: Option<u64>,
    /// One JSON document instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_encoder(name: &str) -> Result<VideoEncoder, String> {
    match name.parse::<EncoderChoice>()? {
        EncoderChoice::Named(encoder) => Ok(encoder),
        EncoderChoice::Auto => {
            Err("name one encoder: auto is decided by trial on the machine".into())
        }
    }
}

/// `hlsmux-worker plan`: exit 0 with the plan, 2 when the input cannot be
/// planned (it does not probe, say).
async fn plan(settings: &Settings, args: PlanArgs) -> ExitCode {
    let encoder = args.encoder.unwrap_or(args.board.encoder());
    let mut settings = settings.clone();
    if let Some(cores) = args.board.cores() {
        settings.encoding.cores = cores;
    }
    if let Some(ram_mib) = args.ram_mib {
        settings.encoding.memory_budget_bytes = ram_mib * 1024 * 1024 / 2;
    }
    match preview::preview(&settings, &args.input, args.board, encoder, args.hwdec).await {
        Ok(preview) if args.json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&preview).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(preview) => {
            print!("{preview}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("hlsmux-worker: {error}");
            ExitCode::from(2)
        }
    }
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
            // `plan` prints only the plan.
            let origins = if args.command.is_none() {
                origins
            } else {
                Vec::new()
            };
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
    if let Some(Command::Plan(plan_args)) = args.command {
        return plan(&settings, plan_args).await;
    }
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
