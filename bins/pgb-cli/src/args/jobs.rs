//! The arguments of the config-file commands: `config`, `schedule`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `--config FILE`: the config file (else `PGB_CONFIG`, `./pgb.toml`, `/etc/pgb/pgb.toml`).
#[derive(Debug, Args)]
pub(crate) struct ConfigFileArgs {
    /// The config file [default: $PGB_CONFIG, else ./pgb.toml, else /etc/pgb/pgb.toml].
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate the config file and print each job's effective settings with the source of
    /// every value (default, file:line, env, flag); secrets redacted.
    Check {
        #[command(flatten)]
        file: ConfigFileArgs,
        /// Only this job.
        #[arg(long)]
        job: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a commented example config covering dev, staging and production.
    Example,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ScheduleCommand {
    /// The next run times of a job, in its zone and in UTC, across daylight-saving changes.
    Explain {
        /// The job.
        job: String,
        /// How many runs [default: 10].
        #[arg(long)]
        count: Option<usize>,
        /// Start from this instant (RFC 3339, e.g. 2027-03-20T00:00:00Z) [default: now].
        #[arg(long, value_name = "TIME")]
        after: Option<String>,
        #[command(flatten)]
        file: ConfigFileArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct DaemonArgs {
    /// Serve /healthz and /metrics on this address (e.g. 127.0.0.1:9187).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<String>,
    /// Run every job that is due now (latest slot without a success since), then exit.
    #[arg(long)]
    pub(crate) once: bool,
    #[command(flatten)]
    pub(crate) file: ConfigFileArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The job: a [jobs.NAME] table of the config file.
    pub(crate) job: String,
    /// Resolve the job and print its effective settings; run nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    #[command(flatten)]
    pub(crate) file: ConfigFileArgs,
    /// Print the run's report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}
