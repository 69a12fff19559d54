//! `pgb wal push|fetch|verify`: PostgreSQL's archive_command and restore_command.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{EncryptArgs, JobArgs, KeyArgs, RepoArgs};

#[derive(Debug, Subcommand)]
pub(crate) enum WalCommand {
    /// Archive one WAL file: `archive_command = 'pgb wal push %p --job NAME'`. Identical
    /// content already archived succeeds; different content fails and is left untouched.
    Push(WalPushArgs),
    /// Fetch one archived WAL file, verified: `restore_command = 'pgb wal fetch %f %p ...'`.
    /// Exits 1 when the archive does not have it (the end of the archive) and 255 on any
    /// other failure, so that PostgreSQL stops recovery instead of ending it early.
    Fetch(WalFetchArgs),
    /// Walk the WAL archive per timeline and report every gap (optionally re-check every file).
    Verify(WalVerifyArgs),
    /// Stream WAL over a replication connection (pg_receivewal with a physical slot) into the
    /// archive, for servers pgb cannot run on; the segment being received is stored every
    /// --partial-interval. Runs until SIGTERM or SIGINT.
    Stream(super::WalStreamArgs),
}

/// Where the archive is and which cluster: shared by the three.
#[derive(Debug, Args)]
pub(crate) struct WalTarget {
    #[command(flatten)]
    pub(crate) repo: RepoArgs,
    #[command(flatten)]
    pub(crate) job: JobArgs,
    /// The cluster's system identifier (`pg_controldata`). push: checked against each
    /// segment, else read from global/pg_control of the data directory archive_command runs
    /// in; fetch and verify: the only cluster in the archive when not given.
    #[arg(long, value_name = "ID")]
    pub(crate) system_id: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct WalPushArgs {
    /// The file to archive (archive_command's %p, relative to the data directory).
    pub(crate) path: PathBuf,
    #[command(flatten)]
    pub(crate) target: WalTarget,
    /// Compression: zstd[:1-19], gzip[:1-9] or none [default: the job's, else zstd:3].
    #[arg(long, value_name = "SPEC")]
    pub(crate) compression: Option<String>,
    #[command(flatten)]
    pub(crate) encrypt: EncryptArgs,
    /// Push up to N files at once: this one and the next ones PostgreSQL has ready
    /// (pg_wal/archive_status/*.ready), so a slow store keeps up with a busy server [default: 4].
    #[arg(long, value_name = "N")]
    pub(crate) parallel: Option<usize>,
    /// Print what was done as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct WalFetchArgs {
    /// The WAL file PostgreSQL asks for (restore_command's %f).
    pub(crate) name: String,
    /// Where to write it (restore_command's %p).
    pub(crate) path: PathBuf,
    #[command(flatten)]
    pub(crate) target: WalTarget,
    #[command(flatten)]
    pub(crate) keys: KeyArgs,
    /// A directory outside pg_wal where the next segments are fetched ahead and verified
    /// [default: no prefetch].
    #[arg(long, value_name = "DIR")]
    pub(crate) spool: Option<PathBuf>,
    /// How many segments to fetch ahead into --spool, side by side [default: 8].
    #[arg(long, value_name = "N")]
    pub(crate) prefetch: Option<usize>,
}

#[derive(Debug, Args)]
pub(crate) struct WalVerifyArgs {
    #[command(flatten)]
    pub(crate) target: WalTarget,
    #[command(flatten)]
    pub(crate) keys: KeyArgs,
    /// Also download every archived file and check its size, sha256, authentication and
    /// segment header.
    #[arg(long)]
    pub(crate) rehash: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}
