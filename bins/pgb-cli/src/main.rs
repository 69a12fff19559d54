//! `pgb`: the command-line tool. It owns the process: arguments, environment, logging, the
//! runtime, signals and exit codes; the library crates do the work.
//!
//! Layout: [`args`] (clap only) → [`resolve`] (arguments + environment → typed options, every
//! default) → [`cmd`] (one short handler per command: one library call) → [`render`] (text,
//! JSON) → [`exit`] (error → exit code and a hint naming the flags).

mod args;
mod cmd;
mod exit;
#[cfg(feature = "test-support")]
mod failpoint;
mod render;
mod resolve;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Arc;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, GlobalArgs, LogFormat};
use crate::resolve::{Env, SharedEnv};

/// The only place the process environment is read: a snapshot taken once at start, which
/// everything below (the daemon's job runs included) looks variables up in. Variables whose
/// name or value is not UTF-8 are left out, as `std::env::var` would not return them. The
/// PostgreSQL tools pgb runs inherit part of it (`resolve::tools`: libpq's variables, the
/// locale, `PATH`, `HOME`; the library reads no environment of its own).
fn process_env() -> SharedEnv {
    let vars: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    Arc::new(vars)
}

fn init_logging(g: &GlobalArgs, env: Env<'_>, progress: render::ProgressMode) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::fmt::writer::MakeWriterExt as _;
    let default = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    // RUST_LOG wins when set; opendal's request-level logs stay at warn unless asked for.
    let filter = env
        .get("RUST_LOG")
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| {
            // Progress log lines (`--progress log`) show without -v.
            let progress = if progress == render::ProgressMode::Log {
                format!(",{}=info", render::LOG_TARGET)
            } else {
                String::new()
            };
            // The daemon's own lines (start, each run, stop) show unless --quiet.
            let daemon = if g.quiet {
                String::new()
            } else {
                format!(",{}=info", cmd::daemon::LOG_TARGET)
            };
            EnvFilter::new(format!(
                "{default},opendal={}{progress}{daemon}",
                if g.verbose >= 3 { "debug" } else { "warn" }
            ))
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // The last lines also go to the body of a healthchecks `/fail` ping.
        .with_writer(std::io::stderr.and(|| cmd::notify::LOG_TAIL.writer()))
        .with_ansi(std::io::stderr().is_terminal());
    match g.log_format.unwrap_or(LogFormat::Text) {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Runs `cli` on a fresh runtime with SIGINT/SIGTERM handlers; the exit code.
fn run(cli: Cli, env: &SharedEnv, progress: render::ProgressConfig) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pgb: error: cannot start the async runtime: {e}");
            return exit::FAILURE;
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
        // Boxed: the command futures hold whole backup and restore pipelines.
        let code = match Box::pin(cmd::run(
            cli.command,
            &cmd::Ctx::new(env, rx).with_progress(progress),
        ))
        .await
        {
            Ok(()) => exit::OK,
            Err(f) => {
                if !f.message.is_empty() {
                    eprintln!("{}", f.report());
                }
                f.code
            }
        };
        // A restore or drill future dropped on a signal handed its database drops to the
        // runtime: they finish before the runtime goes away (bounded, should a server hang).
        let settle = pgb::postgres::settle_cleanups();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(90), settle).await;
        code
    });
    // Give killed children a moment to be reaped before the runtime goes away.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

/// Parses the command line. What clap cannot parse exits 2 (bad usage), except under
/// `pgb check`, where any check that cannot run is UNKNOWN (3): the monitoring-plugin
/// convention, so that no monitor reads a bad flag as CRITICAL. `--help` and `--version` exit 0.
fn parse_args() -> Cli {
    Cli::try_parse().unwrap_or_else(|e| {
        let check = || {
            Cli::command()
                .ignore_errors(true)
                .try_get_matches()
                .is_ok_and(|m| m.subcommand_name() == Some("check"))
        };
        // A restore_command that cannot even parse its arguments must stop recovery, not
        // end it: PostgreSQL reads an exit status up to 125 as "no such file".
        let wal_fetch = || {
            Cli::command()
                .ignore_errors(true)
                .try_get_matches()
                .is_ok_and(|m| {
                    m.subcommand()
                        .is_some_and(|(n, s)| n == "wal" && s.subcommand_name() == Some("fetch"))
                })
        };
        let code = if e.use_stderr() && check() {
            exit::CHECK_UNKNOWN
        } else if e.use_stderr() && wal_fetch() {
            exit::WAL_FETCH_FATAL
        } else {
            e.exit_code()
        };
        let _ = e.print();
        std::process::exit(code)
    })
}

fn main() {
    let cli = parse_args();
    let env = process_env();
    let g = &cli.global;
    let progress = match render::progress_config(
        g.progress,
        g.quiet,
        &*env,
        std::io::stderr().is_terminal(),
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("pgb: error: {e}");
            std::process::exit(exit::USAGE);
        }
    };
    init_logging(g, &*env, progress.mode);
    #[cfg(feature = "test-support")]
    failpoint::arm(env.get("PGB_TEST_FAILPOINT"));
    std::process::exit(run(cli, &env, progress));
}
