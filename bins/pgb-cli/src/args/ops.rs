//! The arguments of the commands that prove backups: `drill` and `check`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::shared::{JobArgs, KeyArgs, NotifyArgs, RepoArgs, ToolArgs};

#[derive(Debug, Args, Default)]
pub(crate) struct DrillArgs {
    #[command(flatten)]
    pub(crate) repo: RepoArgs,
    #[command(flatten)]
    pub(crate) job: JobArgs,
    /// Which backup: `latest`, a backup id, or `random` (within --within) [default: latest].
    #[arg(long, value_name = "latest|ID|random")]
    pub(crate) backup: Option<String>,
    /// With `--backup random`: choose among backups started this long ago at most (s, m, h,
    /// d, w) [default: 30d].
    #[arg(long, value_name = "DURATION")]
    pub(crate) within: Option<String>,
    /// With `latest` or `random`: only backups of this database.
    #[arg(long, value_name = "DB")]
    pub(crate) from_database: Option<String>,
    /// Of a whole-server backup (--all-databases), drill only this database; without it every
    /// database of the backup is drilled, each in its own scratch database.
    #[arg(long, value_name = "NAME")]
    pub(crate) database: Option<String>,
    /// The server to restore on (postgres://user@host:port/db); the drill creates its own
    /// scratch database there. Else PGB_DRILL_TARGET. Passwords from PGPASSWORD/PGPASSFILE.
    #[arg(long, value_name = "URL")]
    pub(crate) target: Option<String>,
    /// A smoke query (one statement returning one row whose first column is true), from this
    /// file (repeatable).
    #[arg(long, value_name = "FILE")]
    pub(crate) smoke: Vec<PathBuf>,
    /// Fail (exit 11) when recovery takes longer than this (s, m, h, d, w).
    #[arg(long, value_name = "DURATION")]
    pub(crate) max_rto: Option<String>,
    /// Fail (exit 11) when the backup is older than this at drill time (s, m, h, d, w).
    #[arg(long, value_name = "DURATION")]
    pub(crate) max_rpo: Option<String>,
    /// Keep the scratch database afterwards, for inspection.
    #[arg(long)]
    pub(crate) keep: bool,
    /// A point-in-time recovery drill: restore a physical base backup into a scratch data
    /// directory, recover it with a temporary PostgreSQL of its major version to --to-time,
    /// check it, then stop the server and remove the directory.
    #[arg(long, conflicts_with_all = ["target", "backup", "within", "keep"])]
    pub(crate) physical: bool,
    /// With --physical: `random` (a random second of the recoverable window) or a time with a
    /// zone (2026-05-01 14:30:00+02) inside it [default: random].
    #[arg(long, value_name = "random|TIME", requires = "physical")]
    pub(crate) to_time: Option<String>,
    /// With --physical: also check every B-tree index with amcheck.
    #[arg(long, requires = "physical")]
    pub(crate) amcheck: bool,
    /// With --physical: the cluster to drill (when the repository holds several).
    #[arg(long, value_name = "ID", requires = "physical")]
    pub(crate) system_id: Option<u64>,
    /// Show the recorded drills instead of running one.
    #[arg(long, conflicts_with_all = ["backup", "target", "smoke", "keep"])]
    pub(crate) history: bool,
    #[command(flatten)]
    pub(crate) keys: KeyArgs,
    #[command(flatten)]
    pub(crate) tools: ToolArgs,
    #[command(flatten)]
    pub(crate) notify: NotifyArgs,
    #[command(flatten)]
    pub(crate) migrations: super::MigrationExpectArgs,
    /// JSON on stdout (the drill report, or with --history the records).
    #[arg(long)]
    pub(crate) json: bool,
    /// The `[drill]` table of `--job` (its flags layered in), typed.
    #[arg(skip)]
    pub(crate) from_job: Option<pgb_config::DrillConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CheckFormat {
    Text,
    Json,
    Nagios,
}

#[derive(Debug, Args, Default)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) repo: RepoArgs,
    #[command(flatten)]
    pub(crate) job: JobArgs,
    /// Only the backup sets of this database (CRITICAL when it has none).
    #[arg(long, value_name = "DB")]
    pub(crate) database: Option<String>,
    /// CRITICAL when a set's newest backup is older than this (s, m, h, d, w).
    #[arg(long, value_name = "DURATION")]
    pub(crate) max_age: Option<String>,
    /// CRITICAL when a set's newest backup is smaller than this (bytes, or with k, M, G).
    #[arg(long, value_name = "SIZE")]
    pub(crate) min_size: Option<String>,
    /// WARNING when the newest backup is this many percent smaller than the median of the
    /// previous five (e.g. 50 or 50%).
    #[arg(long, value_name = "PERCENT")]
    pub(crate) max_size_drop: Option<String>,
    /// WARNING when a set has no passed drill younger than this (s, m, h, d, w).
    #[arg(long, value_name = "DURATION")]
    pub(crate) max_drill_age: Option<String>,
    /// CRITICAL when the newest commit in the WAL archive (read from the WAL records of the
    /// last archived segment) is older than this, per cluster (s, m, h, d, w).
    #[arg(long, value_name = "DURATION")]
    pub(crate) max_rpo: Option<String>,
    /// CRITICAL when the newest archived WAL segment was stored longer ago than this, per
    /// cluster (s, m, h, d, w).
    #[arg(long, value_name = "DURATION")]
    pub(crate) max_wal_age: Option<String>,
    /// An age identity file that decrypts encrypted archived WAL, for --max-rpo (read from
    /// WAL records); repeatable. Else PGB_IDENTITY_FILE.
    #[arg(long, value_name = "FILE", value_delimiter = ':')]
    pub(crate) identity_file: Vec<PathBuf>,
    /// Output format [default: text].
    #[arg(long, value_enum)]
    pub(crate) format: Option<CheckFormat>,
    /// Also write the metrics (Prometheus text, atomically) for node_exporter's textfile
    /// collector to DIR/pgb-<job>.prom with --job, else DIR/pgb-repo-<repository>.prom.
    #[arg(long, value_name = "DIR")]
    pub(crate) textfile: Option<PathBuf>,
    /// Also ask this server (a URL without password: PGPASSWORD or PGPASSFILE) about its
    /// archiving: CRITICAL when archive_command is failing or archive_mode is off, WARNING
    /// when more than --max-ready segments wait (pg_stat_archiver).
    #[arg(long, value_name = "URL")]
    pub(crate) server: Option<String>,
    /// With --server: more segments than this waiting to be archived is a WARNING.
    #[arg(long, value_name = "N", default_value_t = pgb_ops::DEFAULT_MAX_READY)]
    pub(crate) max_ready: u64,
    #[command(flatten)]
    pub(crate) tools: ToolArgs,
    /// The manifest authentication key, from this file (or PGB_AUTH_KEY).
    #[arg(long, value_name = "FILE")]
    pub(crate) auth_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) notify: NotifyArgs,
    /// The `[check]` table of `--job` (its flags layered in; `max_age` from the schedule
    /// when unset), typed.
    #[arg(skip)]
    pub(crate) from_job: Option<pgb_config::CheckConfig>,
}
