//! Parses arguments, starts logging, runs the command; the only place that prints an error
//! and picks the exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use driftsweep::cli::{Cli, Command, PolicyCommand};
use driftsweep::commands;

/// glibc raises its mmap threshold each time a large block is freed (up to 32 MB); past it,
/// large blocks come from the heap, whose freed pages stay with the process. An audit frees a
/// list page's body (hundreds of kilobytes) per request, so the threshold rose at once and
/// the bodies, then the records and findings, piled up in the heap. Pinned at glibc's own
/// default (128 KiB), large blocks stay mapped and go back when freed: at 27,000 objects the
/// peak RSS falls from 118 MB to about 100 MB for the same CPU (BENCHMARKS.md).
fn pin_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` sets an allocator parameter and takes no pointer; it runs first in
    // `main`, before any other thread exists. A refusal (0) leaves glibc's default behaviour.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

fn main() -> ExitCode {
    pin_mmap_threshold();
    let cli = Cli::parse();
    init_logging();
    // kube links rustls with ring and the Google crates with aws-lc-rs; with both present no
    // provider is chosen automatically, so choose one before the first TLS connection.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let result = match &cli.command {
        Command::Run(args) => commands::run(args),
        Command::Policy(PolicyCommand::Check { file }) => commands::policy_check(file),
        Command::Policy(PolicyCommand::Schema) => commands::policy_schema(),
        Command::Policy(PolicyCommand::Reference) => commands::policy_reference(),
        Command::Snapshot(args) => commands::snapshot(args),
        Command::Restore(args) => commands::restore(args),
        Command::Deploy(args) => commands::deploy(args),
        Command::Rollback(args) => commands::rollback(args),
        Command::History(args) => commands::history(args),
        Command::Version(args) => commands::version(args),
        Command::Lint(args) => commands::lint(args),
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

/// Human logs on a terminal; otherwise JSON lines with the fields Google Cloud Logging reads
/// (`severity`, `message`), since a CronJob's stderr goes there. `DRIFTSWEEP_LOG` sets the
/// filter (default `warn`).
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("DRIFTSWEEP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let registry = tracing_subscriber::registry().with(filter);
    if std::io::stderr().is_terminal() {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .init();
    } else {
        registry
            .with(tracing_stackdriver::layer().with_writer(std::io::stderr))
            .init();
    }
}
