//! Parses arguments, starts logging, runs the command; the only place that prints an error
//! and picks the exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use driftsweep::cli::{Cli, Command, PolicyCommand};
use driftsweep::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match &cli.command {
        Command::Run(args) => commands::run(args),
        Command::Policy(PolicyCommand::Check { file }) => commands::policy_check(file),
        Command::Policy(PolicyCommand::Schema) => commands::policy_schema(),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            let error = anyhow::Error::new(error);
            eprintln!("error: {error:#}");
            ExitCode::from(
                error
                    .downcast_ref::<commands::CommandError>()
                    .map_or(commands::EXIT_RUNTIME, commands::CommandError::exit_code),
            )
        }
    }
}

/// Human logs on a terminal, JSON lines otherwise (a CronJob's logs go to Cloud Logging).
/// `DRIFTSWEEP_LOG` sets the filter (default `warn`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DRIFTSWEEP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().with_current_span(false).init();
    }
}
