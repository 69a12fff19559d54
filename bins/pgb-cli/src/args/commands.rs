//! The arguments of each command.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::shared::{
    EncryptArgs, Format, JobArgs, KeyArgs, NotifyArgs, PolicyArgs, RepoArgs, ToolArgs,
};

#[derive(Debug, Args, Default)]
pub(crate) struct BackupArgs {
    #[command(flatten)]
    pub(crate) repo: RepoArgs,
    #[command(flatten)]
    pub(crate) job: JobArgs,
    /// Database URL (postgres://user@host:port/db), else DATABASE_URL. Without either, libpq's
    /// PGHOST, PGPORT, PGUSER, PGDATABASE... apply. Passwords come from PGPASSWORD, PGPASSFILE
    /// or DATABASE_URL, never this flag.
    #[arg(long, value_name = "URL")]
    pub(crate) db: Option<String>,
    /// Archive format [default: custom].
    #[arg(long, value_enum)]
    pub(crate) format: Option<Format>,
    /// Compression: zstd[:1-19], gzip[:1-9], none [default: zstd (zstd:3)].
    #[arg(long, value_name = "ALGO[:LEVEL]")]
    pub(crate) compression: Option<String>,
    /// Label recorded in the manifest (repeatable); see `prune --keep-label`.
    #[arg(long)]
    pub(crate) label: Vec<String>,
    /// After a successful backup, prune with the policy flags.
    #[arg(long)]
    pub(crate) prune: bool,
    /// Read the stored object back and check its sha256 before committing.
    #[arg(long)]
    pub(crate) verify_upload: bool,
    /// After the commit, verify the backup like `pgb verify` and record the passed verify
    /// (prune never removes the newest verified backup of a set). Unencrypted backups only.
    #[arg(long)]
    pub(crate) verify: bool,
    #[command(flatten)]
    pub(crate) encrypt: EncryptArgs,
    #[command(flatten)]
    pub(crate) policy: PolicyArgs,
    #[command(flatten)]
    pub(crate) tools: ToolArgs,
    #[command(flatten)]
    pub(crate) notify: NotifyArgs,
    #[command(flatten)]
    pub(crate) cluster: super::ClusterBackupArgs,
    #[command(flatten)]
    pub(crate) directory: super::DirectoryBackupArgs,
    #[command(flatten)]
    pub(crate) select: super::DumpSelectArgs,
    #[command(flatten)]
    pub(crate) files: super::FilesBackupArgs,
    #[command(flatten)]
    pub(crate) migrations: super::MigrationBackupArgs,
    #[command(flatten)]
    pub(crate) physical: super::PhysicalBackupArgs,
    /// Print the manifest as JSON (with --prune: {"backup": manifest, "prune": report}).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args, Default)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) repo: RepoArgs,
    #[command(flatten)]
    pub(crate) job: JobArgs,
    /// Only backups of this database.
    #[arg(long)]
    pub(crate) database: Option<String>,
    #[command(flatten)]
    pub(crate) migration: super::MigrationListArgs,
    /// Only the recoverable window of each cluster (system identifier) and timeline, from
    /// its physical backups and archived WAL, with the gaps; with --json, an array of
    /// clusters.
    #[arg(long)]
    pub(crate) windows: bool,
    /// An age identity file that decrypts encrypted archived WAL, for the window's times
    /// (read from WAL records); repeatable. Else PGB_IDENTITY_FILE.
    #[arg(long, value_name = "FILE", value_delimiter = ':')]
    pub(crate) identity_file: Vec<PathBuf>,
    /// JSON array on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// The key that authenticates manifests (else `PGB_AUTH_KEY`): a manifest that does not
    /// authenticate is listed as unusable, never counted or chosen.
    #[arg(long, value_name = "FILE")]
    pub(crate) auth_key_file: Option<PathBuf>,
}

#[derive(Debug, Args, Default)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) repo: RepoArgs,
    #[command(flatten)]
    pub(crate) job: JobArgs,
    /// Backup id or `latest` [default: latest].
    pub(crate) id: Option<String>,
    /// With `latest`: the newest backup of this database.
    #[arg(long, conflicts_with = "all")]
    pub(crate) from_database: Option<String>,
    /// Verify every backup.
    #[arg(long, conflicts_with = "id")]
    pub(crate) all: bool,
    #[command(flatten)]
    pub(crate) keys: KeyArgs,
    #[command(flatten)]
    pub(crate) tools: ToolArgs,
    /// JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args, Default)]
pub(crate) struct RestoreArgs {
    /// Backup id or `latest`.
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) repo: RepoArgs,
    #[command(flatten)]
    pub(crate) job: JobArgs,
    /// Target database URL (postgres://user@host:port/NEW_DB); required.
    #[arg(long, value_name = "URL")]
    pub(crate) db: Option<String>,
    /// With `latest`: the newest backup of this database.
    #[arg(long)]
    pub(crate) from_database: Option<String>,
    /// Replace existing objects in a non-empty target (--clean --if-exists).
    #[arg(long)]
    pub(crate) clean: bool,
    /// Parallel pg_restore jobs (custom format): downloads and verifies to a temp file first
    /// [default: 1].
    #[arg(long, value_name = "N")]
    pub(crate) jobs: Option<u32>,
    /// Directory for the temp file of a parallel restore (else PGB_SPOOL_DIR, else TMPDIR).
    #[arg(long, value_name = "DIR")]
    pub(crate) spool_dir: Option<PathBuf>,
    /// Allow a plain dump that contains CREATE DATABASE.
    #[arg(long)]
    pub(crate) allow_create: bool,
    /// Skip reading the stored object once before restoring (its checksum is still
    /// checked while streaming, and nothing is committed on a mismatch, but a new target
    /// database may be created and dropped again).
    #[arg(long)]
    pub(crate) no_verify_first: bool,
    /// Keep the dump's ownership (default --no-owner).
    #[arg(long)]
    pub(crate) keep_owner: bool,
    /// Keep the dump's privileges (default --no-privileges).
    #[arg(long)]
    pub(crate) keep_privileges: bool,
    #[command(flatten)]
    pub(crate) keys: KeyArgs,
    /// Refuse (exit 9) a backup that is not encrypted, before any database is touched
    /// (without it, restoring one while keys are given only warns).
    #[arg(long)]
    pub(crate) require_encrypted: bool,
    #[command(flatten)]
    pub(crate) tools: ToolArgs,
    #[command(flatten)]
    pub(crate) cluster: super::ClusterRestoreArgs,
    #[command(flatten)]
    pub(crate) select: super::SelectRestoreArgs,
    #[command(flatten)]
    pub(crate) files: super::FilesRestoreArgs,
    #[command(flatten)]
    pub(crate) migrations: super::MigrationExpectArgs,
    #[command(flatten)]
    pub(crate) physical: super::PhysicalRestoreArgs,
    /// JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args, Default)]
pub(crate) struct PruneArgs {
    #[command(flatten)]
    pub(crate) repo: RepoArgs,
    #[command(flatten)]
    pub(crate) job: JobArgs,
    #[command(flatten)]
    pub(crate) policy: PolicyArgs,
    /// Show every decision and its reasons, delete nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// The key that authenticates manifests (else `PGB_AUTH_KEY`): a manifest that does not
    /// authenticate is listed as unusable, never counted or chosen.
    #[arg(long, value_name = "FILE")]
    pub(crate) auth_key_file: Option<PathBuf>,
    /// Prune only this retention set (repeatable), as `pgb list` and prune's report name it;
    /// `--job` sets the job's own. Default: every set.
    #[arg(long, value_name = "SET")]
    pub(crate) set: Vec<String>,
}

#[derive(Debug, Args, Default)]
pub(crate) struct GcArgs {
    #[command(flatten)]
    pub(crate) repo: RepoArgs,
    #[command(flatten)]
    pub(crate) job: JobArgs,
    /// Grace period (h, d, w), e.g. 24h [default: 24h].
    #[arg(long, value_name = "DURATION")]
    pub(crate) older_than: Option<String>,
    /// Show what would be removed.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// The key that authenticates manifests (else `PGB_AUTH_KEY`): a manifest that does not
    /// authenticate is listed as unusable, never counted or chosen.
    #[arg(long, value_name = "FILE")]
    pub(crate) auth_key_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Write a new age identity (0600) to FILE and print its recipient (public key); with
    /// --auth-key-file also write a new manifest authentication key.
    Generate {
        /// Where to write the identity (refuses to overwrite).
        #[arg(long)]
        output: PathBuf,
        /// Also write a new authentication key here (refuses to overwrite).
        #[arg(long)]
        auth_key_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RetentionCommand {
    /// Evaluate a policy on a JSON list of backups ([{"id", "time", "labels"}]).
    Plan {
        #[command(flatten)]
        policy: PolicyArgs,
        /// The backups (JSON file, or - for stdin).
        #[arg(long)]
        input: PathBuf,
        /// Evaluate as of this instant (RFC 3339) [default: now].
        #[arg(long)]
        now: Option<String>,
        /// JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}
