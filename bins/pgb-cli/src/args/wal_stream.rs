//! `pgb wal stream`: WAL over a replication connection, for servers pgb cannot run on.

use std::path::PathBuf;

use clap::Args;

use super::{EncryptArgs, JobArgs, RepoArgs, ToolArgs};

#[derive(Debug, Args)]
pub(crate) struct WalStreamArgs {
    /// The server to stream from (a role with REPLICATION; the password in PGPASSWORD or a
    /// PGPASSFILE, never here) [default: the job's database, else DATABASE_URL].
    #[arg(long, value_name = "URL")]
    pub(crate) db: Option<String>,
    #[command(flatten)]
    pub(crate) repo: RepoArgs,
    #[command(flatten)]
    pub(crate) job: JobArgs,
    /// The physical replication slot [default: the job's wal_stream_slot, else pgb].
    #[arg(long, value_name = "NAME")]
    pub(crate) slot: Option<String>,
    /// Create the slot when it does not exist (a physical slot reserving WAL from now on).
    #[arg(long)]
    pub(crate) create_slot: bool,
    /// Where pg_receivewal writes before pgb archives [default: STATE/wal-stream/SERVER-SLOT,
    /// STATE being PGB_STATE_DIR, else $XDG_STATE_HOME/pgb, else ~/.local/state/pgb].
    #[arg(long, value_name = "DIR")]
    pub(crate) spool: Option<PathBuf>,
    /// How often the segment being received is stored (as <name>.partial) [default: the job's
    /// wal_stream_partial_interval, else 5s].
    #[arg(long, value_name = "DURATION")]
    pub(crate) partial_interval: Option<String>,
    /// Compression: zstd[:1-19], gzip[:1-9] or none [default: the job's, else zstd:3].
    #[arg(long, value_name = "SPEC")]
    pub(crate) compression: Option<String>,
    #[command(flatten)]
    pub(crate) encrypt: EncryptArgs,
    #[command(flatten)]
    pub(crate) tools: ToolArgs,
    /// Only run the preflight and print it; create and stream nothing.
    #[arg(long)]
    pub(crate) preflight: bool,
    /// Print the report of the stopped stream (with --preflight: the preflight) as JSON on
    /// stdout.
    #[arg(long)]
    pub(crate) json: bool,
}
