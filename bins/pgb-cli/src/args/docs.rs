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
