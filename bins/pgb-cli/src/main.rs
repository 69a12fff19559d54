//! `pgb`: the command-line tool. It owns the process: arguments, environment, logging,
//! the runtime, signals and exit codes; the library crates do the work.

mod cli;
mod commands;
mod exit;
mod storage_url;

use std::io::IsTerminal;

use clap::Parser;

use crate::cli::{Cli, LogFormat};

/// A failure ready to report: one line, an exit code, and maybe a tool's stderr tail.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: i32,
    pub(crate) message: String,
    pub(crate) detail: Option<String>,
}

impl Failure {
    pub(crate) fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(exit::USAGE, message)
    }
}

impl From<pgb_core::Error> for Failure {
    fn from(e: pgb_core::Error) -> Self {
        Self {
            code: exit::of(&e),
            message: match exit::hint(&e) {
                Some(hint) => format!("{e}; {hint}"),
                None => e.to_string(),
            },
            detail: e.stderr_tail().map(str::to_owned),
        }
    }
}

impl From<storage_url::UrlError> for Failure {
    fn from(e: storage_url::UrlError) -> Self {
        let code = match e {
            storage_url::UrlError::Invalid { .. } => exit::USAGE,
            storage_url::UrlError::Config { .. } => exit::REPOSITORY,
        };
        Self::new(code, e.to_string())
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    // RUST_LOG wins when set; opendal's request-level logs stay at warn unless asked for.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{default},opendal={}",
            if cli.verbose >= 3 { "debug" } else { "warn" }
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() {
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pgb: error: cannot start the async runtime: {e}");
            std::process::exit(exit::FAILURE);
        }
    };
    let code = runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            eprintln!("pgb: error: cannot install signal handlers");
            return exit::FAILURE;
        };
        let (tx, rx) = tokio::sync::watch::channel(None);
        tokio::spawn(async move {
            let code = tokio::select! {
                _ = int.recv() => exit::SIGINT,
                _ = term.recv() => exit::SIGTERM,
            };
            let _ = tx.send(Some(code));
        });
        match commands::run(cli.command, rx).await {
            Ok(()) => exit::OK,
            Err(f) => {
                eprintln!("pgb: error: {}", f.message);
                if let Some(detail) = f.detail {
                    for line in detail.lines() {
                        eprintln!("  {line}");
                    }
                }
                f.code
            }
        }
    });
    // Give killed children a moment to be reaped before the runtime goes away.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    std::process::exit(code);
}
