//! The arguments of `pgb completions`, `pgb man` and `pgb report`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// A shell `pgb completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ShellArg {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell: bash (source it, or put it in
    /// /usr/share/bash-completion/completions/pgb), zsh (`_pgb` in a directory of $fpath),
    /// fish (~/.config/fish/completions/pgb.fish).
    #[arg(value_enum)]
    pub(crate) shell: ShellArg,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write pgb.1 and one page per subcommand (pgb-backup.1, pgb-key-generate.1, ...) into
    /// this directory (created if missing) instead of printing pgb.1 on stdout.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

/// The form of `pgb report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// One self-contained page with SVG charts (no script, no network).
    Html,
    /// Markdown, for a runbook's notes or a ticket.
    Md,
    /// The report's data.
    Json,
}

#[derive(Debug, Args, Default)]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    pub(crate) repo: super::RepoArgs,
    #[command(flatten)]
    pub(crate) job: super::JobArgs,
    /// html, md or json [default: html].
    #[arg(long, value_enum)]
    pub(crate) format: Option<ReportFormat>,
    /// Show what happened in this window: a duration back from now (90d, 2w, 36h) or a start
    /// date or time (2026-01-01, 2026-01-01T00:00:00Z) [default: everything].
    #[arg(long, value_name = "DURATION|DATE")]
    pub(crate) since: Option<String>,
    /// Only this retention set (repeatable), as `pgb list` names it; `--job` sets the job's
    /// own. Default: every set.
    #[arg(long, value_name = "SET")]
    pub(crate) set: Vec<String>,
    /// Write the report to FILE (replaced atomically) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// The key that authenticates manifests and records (else `PGB_AUTH_KEY`): what does not
    /// authenticate is listed as unusable.
    #[arg(long, value_name = "FILE")]
    pub(crate) auth_key_file: Option<PathBuf>,
    /// The retention policy whose next prune the report shows (else the job's).
    #[command(flatten)]
    pub(crate) policy: super::PolicyArgs,
}
