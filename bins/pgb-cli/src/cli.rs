//! Command-line arguments (clap lives only in this crate).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// pgb: PostgreSQL backups you can trust: stream pg_dump through compression and checksums
/// into local disk or object storage, keep them by policy, verify and restore them.
#[derive(Debug, Parser)]
#[command(name = "pgb", version, about, long_about = None)]
pub(crate) struct Cli {
    /// More logging on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct RepoArgs {
    /// Repository URL: file:///path (or a path), s3://bucket/prefix, gs://bucket/prefix,
    /// az://container/prefix. Default: ./pgb-backups.
    #[arg(long, env = "PGB_REPO")]
    pub(crate) repo: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ToolArgs {
    /// Directory holding pg_dump/pg_restore/psql, searched before /usr/lib/postgresql/*/bin
    /// and PATH (repeatable).
    #[arg(long = "pg-bin-dir", env = "PGB_PG_BIN_DIR", value_delimiter = ':')]
    pub(crate) pg_bin_dirs: Vec<PathBuf>,
}

/// Client-side encryption for `backup` (age, after compression).
#[derive(Debug, Args, Default)]
pub(crate) struct EncryptArgs {
    /// Encrypt to this age X25519 recipient (public key, `age1...`); repeatable, e.g. an
    /// operations key and an offline escrow key.
    #[arg(long, value_name = "AGE1...")]
    pub(crate) recipient: Vec<String>,
    /// Encrypt to the recipients listed in this file (one per line, `#` comments).
    #[arg(long, value_name = "FILE")]
    pub(crate) recipients_file: Option<PathBuf>,
    /// Encrypt with the passphrase in this file (or set PGB_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// Authenticate manifests with the key in this file (64 hex chars; `pgb key generate`),
    /// or PGB_AUTH_KEY. Recommended with recipients.
    #[arg(long, value_name = "FILE")]
    pub(crate) auth_key_file: Option<PathBuf>,
    /// Refused: a passphrase on the command line is visible in the process list.
    #[arg(long, hide = true)]
    pub(crate) passphrase: Option<String>,
}

/// Keys for reading encrypted backups (`verify`, `restore`).
#[derive(Debug, Args, Default)]
pub(crate) struct KeyArgs {
    /// An age identity file (`AGE-SECRET-KEY-1...`); repeatable. Also PGB_IDENTITY_FILE.
    #[arg(
        long,
        value_name = "FILE",
        env = "PGB_IDENTITY_FILE",
        value_delimiter = ':'
    )]
    pub(crate) identity_file: Vec<PathBuf>,
    /// The passphrase of passphrase-encrypted backups, from this file (or PGB_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// The manifest authentication key, from this file (or PGB_AUTH_KEY).
    #[arg(long, value_name = "FILE")]
    pub(crate) auth_key_file: Option<PathBuf>,
    /// Accept backups whose manifest is not authenticated although keys were given.
    #[arg(long)]
    pub(crate) allow_unauthenticated: bool,
    /// Refused: a passphrase on the command line is visible in the process list.
    #[arg(long, hide = true)]
    pub(crate) passphrase: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    /// pg_dump -Fc: restored with pg_restore.
    Custom,
    /// pg_dump -Fp: SQL text, restored with psql.
    Plain,
}

/// Retention policy flags, shared by `prune`, `backup --prune` and `retention plan`.
#[derive(Debug, Args, Default, Clone)]
pub(crate) struct PolicyArgs {
    /// Keep the N newest backups.
    #[arg(long, value_name = "N")]
    pub(crate) keep_last: Option<u32>,
    /// Keep the newest backup of each of the N newest hours with backups (N or unlimited).
    #[arg(long, value_name = "N")]
    pub(crate) keep_hourly: Option<String>,
    /// Keep the newest backup of each of the N newest days.
    #[arg(long, value_name = "N")]
    pub(crate) keep_daily: Option<String>,
    /// Keep the newest backup of each of the N newest ISO weeks.
    #[arg(long, value_name = "N")]
    pub(crate) keep_weekly: Option<String>,
    /// Keep the newest backup of each of the N newest months.
    #[arg(long, value_name = "N")]
    pub(crate) keep_monthly: Option<String>,
    /// Keep the newest backup of each of the N newest years.
    #[arg(long, value_name = "N")]
    pub(crate) keep_yearly: Option<String>,
    /// Keep every backup within DURATION of the newest one (h, d, w, mo, y: 36h, 14d, 6mo).
    #[arg(long, value_name = "DURATION")]
    pub(crate) keep_within: Option<String>,
    /// Keep one backup per hour within DURATION of the newest.
    #[arg(long, value_name = "DURATION")]
    pub(crate) keep_within_hourly: Option<String>,
    /// Keep one backup per day within DURATION of the newest.
    #[arg(long, value_name = "DURATION")]
    pub(crate) keep_within_daily: Option<String>,
    /// Keep one backup per ISO week within DURATION of the newest.
    #[arg(long, value_name = "DURATION")]
    pub(crate) keep_within_weekly: Option<String>,
    /// Keep one backup per month within DURATION of the newest.
    #[arg(long, value_name = "DURATION")]
    pub(crate) keep_within_monthly: Option<String>,
    /// Keep one backup per year within DURATION of the newest.
    #[arg(long, value_name = "DURATION")]
    pub(crate) keep_within_yearly: Option<String>,
    /// Always keep backups carrying this label (repeatable).
    #[arg(long, value_name = "NAME")]
    pub(crate) keep_label: Vec<String>,
    /// Time zone for calendar buckets (IANA name). Default UTC.
    #[arg(long, value_name = "ZONE")]
    pub(crate) retention_tz: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Back up one database (pg_dump → compression → sha256 → storage; manifest last).
    Backup {
        #[command(flatten)]
        repo: RepoArgs,
        /// Database URL (postgres://user@host:port/db). Without it, libpq's PGHOST, PGPORT,
        /// PGUSER, PGDATABASE... apply. Passwords come from PGPASSWORD, PGPASSFILE or
        /// DATABASE_URL, never this flag.
        #[arg(
            long,
            env = "DATABASE_URL",
            hide_env_values = true,
            default_value = "postgres://"
        )]
        db: String,
        /// Archive format.
        #[arg(long, value_enum, default_value_t = Format::Custom)]
        format: Format,
        /// Compression: zstd[:1-19] (default zstd:3), gzip[:1-9], none.
        #[arg(long, default_value = "zstd")]
        compression: String,
        /// Label recorded in the manifest (repeatable); see `prune --keep-label`.
        #[arg(long)]
        label: Vec<String>,
        /// After a successful backup, prune with the policy flags.
        #[arg(long)]
        prune: bool,
        /// Read the stored object back and check its sha256 before committing.
        #[arg(long)]
        verify_upload: bool,
        #[command(flatten)]
        encrypt: EncryptArgs,
        #[command(flatten)]
        policy: PolicyArgs,
        #[command(flatten)]
        tools: ToolArgs,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List complete backups (and report leftovers and invalid manifests on stderr).
    List {
        #[command(flatten)]
        repo: RepoArgs,
        /// Only backups of this database.
        #[arg(long)]
        database: Option<String>,
        /// JSON array on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Verify backups: size, sha256, decompression and the archive's table of contents.
    Verify {
        #[command(flatten)]
        repo: RepoArgs,
        /// Backup id or `latest` (default latest).
        id: Option<String>,
        /// Verify every backup.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        tools: ToolArgs,
        /// JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup into a database (created if missing; never clobbered without --clean).
    Restore {
        /// Backup id or `latest`.
        id: String,
        #[command(flatten)]
        repo: RepoArgs,
        /// Target database URL (postgres://user@host:port/NEW_DB).
        #[arg(long)]
        db: String,
        /// With `latest`: the newest backup of this database.
        #[arg(long)]
        from_database: Option<String>,
        /// Replace existing objects in a non-empty target (--clean --if-exists).
        #[arg(long)]
        clean: bool,
        /// Parallel pg_restore jobs (custom format): downloads and verifies to a temp file first.
        #[arg(long, default_value_t = 1)]
        jobs: u32,
        /// Directory for the temp file of a parallel restore.
        #[arg(long, env = "PGB_SPOOL_DIR")]
        spool_dir: Option<PathBuf>,
        /// Allow a plain dump that contains CREATE DATABASE.
        #[arg(long)]
        allow_create: bool,
        /// Skip reading the stored object once before restoring (its checksum is still
        /// checked while streaming, and nothing is committed on a mismatch, but a new target
        /// database may be created and dropped again).
        #[arg(long)]
        no_verify_first: bool,
        /// Keep the dump's ownership (default --no-owner).
        #[arg(long)]
        keep_owner: bool,
        /// Keep the dump's privileges (default --no-privileges).
        #[arg(long)]
        keep_privileges: bool,
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        tools: ToolArgs,
        /// JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Apply a retention policy to each backup set (one database on one server).
    Prune {
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        policy: PolicyArgs,
        /// Show every decision and its reasons, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove leftovers of backups that never committed (no manifest), older than a grace period.
    Gc {
        #[command(flatten)]
        repo: RepoArgs,
        /// Grace period (h, d, w), e.g. 24h.
        #[arg(long, default_value = "24h")]
        older_than: String,
        /// Show what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
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
        /// Evaluate as of this instant (RFC 3339). Default: now.
        #[arg(long)]
        now: Option<String>,
        /// JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}
