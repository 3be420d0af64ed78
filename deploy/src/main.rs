use std::process::ExitCode;

use clap::Parser;
use hlsmux_deploy::cli::{Cli, run};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hlsmux-deploy: {error}");
            ExitCode::from(2)
        }
    }
}
