//! `hlsmux`, the command people type: submits videos to the pool through
//! RabbitMQ and follows them to their HLS output.

pub mod broker;
pub mod cancel;
pub mod cli;
pub mod control;
pub mod dlq;
pub mod error;
pub mod follow;
pub mod history;
pub mod input;
pub mod pool;
pub mod submit;

use cli::{Cli, Command};
use error::CliError;

/// Runs one parsed command line until it ends or Ctrl-C, which ends
/// `watch` (of every job) normally and anything else as interrupted.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let interrupt_ends_it = matches!(&cli.command, Command::Watch(args) if args.job.is_none());
    tokio::select! {
        result = run_command(cli) => result,
        _ = tokio::signal::ctrl_c() => {
            if interrupt_ends_it { Ok(()) } else { Err(CliError::Interrupted) }
        }
    }
}

async fn run_command(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Submit(args) => submit::run(&cli.pool, args).await,
        Command::Dlq(command) => dlq::run(&cli.pool, command).await,
        Command::Jobs(args) => history::jobs(&cli.pool, args).await,
        Command::Status(args) => history::status(&cli.pool, args).await,
        Command::Workers(args) => pool::workers(&cli.pool, args).await,
        Command::Watch(args) => history::watch(&cli.pool, args).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "hlsmux", &mut std::io::stdout());
            Ok(())
        }
        Command::Cancel(args) => cancel::run(&cli.pool, args).await,
        Command::Drain(args) => control::set_drained(&cli.pool, args.muxer, true).await,
        Command::Resume(args) => control::set_drained(&cli.pool, args.muxer, false).await,
    }
}
