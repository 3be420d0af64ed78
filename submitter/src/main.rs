//! `hlsmux`: the pool's command-line front door.

use std::process::ExitCode;

use clap::Parser;
use hlsmux_submitter::cli::Cli;
use hlsmux_telemetry::TelemetryConfig;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // lapin logs every closed channel as an error, including the expected
    // "no such queue" of a muxer lookup; our own errors say what matters.
    let telemetry = hlsmux_telemetry::init(TelemetryConfig {
        service_name: "hlsmux",
        default_filter: "warn,lapin=off",
        format: cli.pool.log_format,
        otlp_endpoint: cli.pool.otlp_endpoint.as_deref(),
    });
    // Held to the end: dropping it flushes the job traces.
    let _telemetry = match telemetry {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("hlsmux: {error}");
            return ExitCode::from(hlsmux_submitter::error::exit::INPUT_ERROR);
        }
    };
    match hlsmux_submitter::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hlsmux: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
