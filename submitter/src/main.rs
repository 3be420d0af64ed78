//! `hlsmux`: the pool's command-line front door.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use hlsmux_submitter::cli::Cli;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // lapin logs every closed channel as an error, including the expected
    // "no such queue" of a muxer lookup; our own errors say what matters.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,lapin=off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match hlsmux_submitter::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hlsmux: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
