//! Command-line arguments: clap only, no defaults and no environment.
//!
//! Every option a config file may set is an `Option` (or an empty `Vec`) here, so "not given"
//! stays visible; defaults and the environment are applied later, in one step
//! ([`crate::resolve`]). A command's own options are listed first in `--help`, the global ones
//! last under "Global options".

mod cluster;
mod commands;
mod docs;
mod jobs;
pub(crate) mod layer;
mod migrations;
mod ops;
mod physical;
mod shared;
mod wal;
mod wal_stream;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub(crate) use cluster::{
    ClusterBackupArgs, ClusterRestoreArgs, DirectoryBackupArgs, DumpSelectArgs, FilesBackupArgs,
    FilesRestoreArgs, SelectRestoreArgs,
};
pub(crate) use commands::{
    BackupArgs, GcArgs, KeyCommand, ListArgs, PruneArgs, RestoreArgs, RetentionCommand, VerifyArgs,
};
pub(crate) use docs::{CompletionsArgs, ManArgs, ReportArgs, ReportFormat, ShellArg};
pub(crate) use jobs::{ConfigCommand, DaemonArgs, RunArgs, ScheduleCommand};
pub(crate) use migrations::{MigrationBackupArgs, MigrationExpectArgs, MigrationListArgs};
pub(crate) use ops::{CheckArgs, CheckFormat, DrillArgs};
pub(crate) use physical::{PhysicalBackupArgs, PhysicalRestoreArgs, WalArg};
pub(crate) use shared::{EncryptArgs, Format, JobArgs, KeyArgs, PolicyArgs, RepoArgs, ToolArgs};
pub(crate) use wal::{WalCommand, WalFetchArgs, WalPushArgs, WalVerifyArgs};
pub(crate) use wal_stream::WalStreamArgs;

/// pgb: PostgreSQL backups you can trust: stream pg_dump through compression and checksums
/// into local disk or object storage, keep them by policy, verify and restore them.
#[derive(Debug, Parser)]
#[command(name = "pgb", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct GlobalArgs {
    /// More logging on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Log line format on stderr [default: text].
    #[arg(long, value_enum, global = true)]
    pub(crate) log_format: Option<LogFormat>,
    /// Progress of backup, verify and restore on stderr: a bar, a log line every few seconds,
    /// or none; auto: a bar on a terminal, else log lines [env: PGB_PROGRESS] [default: auto].
    #[arg(long, value_enum, global = true)]
    pub(crate) progress: Option<ProgressArg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProgressArg {
    Auto,
    Bar,
    Log,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Back up one database (pg_dump → compression → sha256 → storage; manifest last).
    Backup(BackupArgs),
    /// List complete backups (and report leftovers and invalid manifests on stderr).
    List(ListArgs),
    /// Verify backups: size, sha256, decompression and the archive's table of contents.
    Verify(VerifyArgs),
    /// Restore a backup into a database (created if missing; never clobbered without --clean).
    Restore(RestoreArgs),
    /// Apply a retention policy to each backup set (one database on one server).
    Prune(PruneArgs),
    /// Remove leftovers of backups that never committed (no manifest), older than a grace period.
    Gc(GcArgs),
    /// Restore a backup into a scratch database, check it, measure RTO/RPO, record the result.
    Drill(DrillArgs),
    /// Monitoring check of the repository (backup age, size, drills): exit 0/1/2/3.
    Check(CheckArgs),
    /// Key management: generate an age identity and a manifest authentication key.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Retention tools that need no repository.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Run a configured job once: lock, pre_backup hook, backup, verify, prune, post_backup.
    Run(RunArgs),
    /// Run every scheduled job of the config file on its schedule (SIGTERM stops cleanly).
    Daemon(DaemonArgs),
    /// The config file: validate it and show where each value comes from, or print an example.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// A job's schedule: the next run times in its zone and in UTC.
    Schedule {
        #[command(subcommand)]
        command: ScheduleCommand,
    },
    /// The WAL archive for point-in-time recovery: archive_command, restore_command, gaps.
    Wal {
        #[command(subcommand)]
        command: WalCommand,
    },
    /// One document of what the repository holds and proves (HTML with charts, Markdown, JSON).
    Report(ReportArgs),
    /// Shell completions generated from these definitions: bash, zsh or fish, on stdout.
    Completions(CompletionsArgs),
    /// Man pages generated from these definitions: pgb.1 on stdout, or every page into --dir.
    Man(ManArgs),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_commands_own_options_come_before_the_global_ones() {
        let help = Cli::try_parse_from(["pgb", "backup", "--help"])
            .unwrap_err()
            .to_string();
        let own = help.find("--repo").expect("--repo listed");
        let heading = help
            .find("Global options:")
            .expect("a Global options heading");
        let verbose = help.find("--verbose").expect("--verbose listed");
        assert!(own < heading && heading < verbose, "{help}");
    }

    #[test]
    fn nothing_given_stays_none() {
        let cli = Cli::try_parse_from(["pgb", "backup"]).unwrap();
        let Command::Backup(b) = cli.command else {
            panic!("backup")
        };
        assert!(b.db.is_none() && b.format.is_none() && b.compression.is_none());
        assert!(b.repo.repo.is_none() && cli.global.log_format.is_none());
        let cli = Cli::try_parse_from(["pgb", "gc"]).unwrap();
        let Command::Gc(g) = cli.command else {
            panic!("gc")
        };
        assert!(g.older_than.is_none());
    }

    /// Every retention flag of `prune` is a job key of the config file and the reverse, so a
    /// policy written for one works in the other.
    #[test]
    fn every_retention_flag_is_a_config_key_and_the_reverse() {
        let cmd = Cli::command();
        let prune = cmd.find_subcommand("prune").expect("prune");
        let flags: std::collections::BTreeSet<String> = prune
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|l| l.starts_with("keep-"))
            .map(|l| l.replace('-', "_"))
            .collect();
        let keys: std::collections::BTreeSet<String> = pgb_config::KEYS
            .iter()
            .filter(|k| k.starts_with("keep_"))
            .map(|k| (*k).to_owned())
            .collect();
        assert_eq!(flags, keys);
        assert!(flags.contains("keep_within_yearly") && flags.contains("keep_label"));
    }
}
