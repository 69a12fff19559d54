//! The keys a job takes, as written in the file, the environment or flags.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A whole config file: `[defaults]` and the `[jobs.NAME]` tables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    /// Keys every job inherits.
    pub defaults: JobSettings,
    /// The named jobs; each key here overrides `[defaults]`.
    pub jobs: BTreeMap<String, JobSettings>,
}

/// A retention count: a number, or `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Keep this many (`0` turns the rule off).
    N(u32),
    /// No limit.
    Unlimited,
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Keep::N(n) => write!(f, "{n}"),
            Keep::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// A count as a flag or variable writes it: a whole number, or `unlimited`; a negative
/// number is refused with a hint ([`pgb_retention::parse_count`]).
impl std::str::FromStr for Keep {
    type Err = pgb_retention::RetentionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match pgb_retention::parse_count(s)? {
            pgb_retention::Count::N(n) => Keep::N(n),
            _ => Keep::Unlimited,
        })
    }
}

impl Serialize for Keep {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Keep::N(n) => s.serialize_u32(*n),
            Keep::Unlimited => s.serialize_str("unlimited"),
        }
    }
}

impl<'de> Deserialize<'de> for Keep {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Keep;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number or \"unlimited\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Keep, E> {
                u32::try_from(v)
                    .map(Keep::N)
                    .map_err(|_| E::custom("expected a whole number from 0 or \"unlimited\""))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Keep, E> {
                u32::try_from(v)
                    .map(Keep::N)
                    .map_err(|_| E::custom("number too large; use \"unlimited\""))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Keep, E> {
                if v.eq_ignore_ascii_case("unlimited") {
                    Ok(Keep::Unlimited)
                } else {
                    Err(E::custom("expected a whole number or \"unlimited\""))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Every key a job takes. All optional: a layer sets only what it names.
///
/// The same type is used for `[defaults]`, each `[jobs.NAME]`, the `PGB_*` environment
/// and the caller's flags; [`crate::LoadedConfig::resolve`] layers them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    /// `postgres://user@host:port/db`, without a password (libpq's `PG*` variables apply).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// `file:///path`, a path, `s3://`, `gs://` or `az://`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// `custom`, `plain`, `directory` or `physical` (a base backup of the whole cluster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// With `format = "physical"`: how the WAL arrives, `archive` (archive_command),
    /// `included` (in each backup) or `stream` (`pgb daemon` runs `pgb wal stream` for the
    /// job; base backups then include their WAL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal: Option<String>,
    /// With `format = "physical"` and `wal = "archive"`: how long to wait for the WAL to be
    /// archived (`2m`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal_wait: Option<String>,
    /// With `wal = "stream"`: the physical replication slot the job's stream uses (default
    /// `pgb`; lowercase letters, digits and `_`, at most 63 bytes). Two jobs streaming one
    /// server need two slots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal_stream_slot: Option<String>,
    /// With `wal = "stream"`: how often the segment being received is stored as its
    /// `.partial` (default `5s`, at least 1s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal_stream_partial_interval: Option<String>,
    /// With `format = "physical"` (PostgreSQL 17+, `summarize_wal = on`): each backup is
    /// incremental on the newest base backup of the cluster in the repository (full when
    /// there is none), `backup --physical --incremental`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental: Option<bool>,
    /// `none`, `gzip[:1-9]`, `zstd[:1-19]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Labels recorded in each backup's manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,

    /// Back up the whole server: every database (listed at each run) plus the globals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_databases: Option<bool>,
    /// With `all_databases`: only databases matching these globs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
    /// With `all_databases`: leave out databases matching these globs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<String>>,
    /// With `all_databases`: role password hashes in the globals (encrypted backups only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_role_passwords: Option<bool>,
    /// With `format = "directory"`: parallel pg_dump jobs and uploads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs: Option<u32>,
    /// Where a directory-format dump is spooled before the upload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool_dir: Option<PathBuf>,
    /// Directories archived with each backup (tar, symlinks stored as such).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<PathBuf>>,
    /// pg_dump `--schema` patterns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schemas: Option<Vec<String>>,
    /// pg_dump `--exclude-schema` patterns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_schemas: Option<Vec<String>>,
    /// pg_dump `--table` patterns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<String>>,
    /// pg_dump `--exclude-table` patterns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_tables: Option<Vec<String>>,
    /// pg_dump `--exclude-table-data` patterns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_table_data: Option<Vec<String>>,
    /// Other pg_dump options, one argument each (those pgb sets itself are refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_dump_options: Option<Vec<String>>,

    /// age recipients (`age1...` public keys: not secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<String>>,
    /// A file of age recipients, one a line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients_file: Option<PathBuf>,
    /// A file holding the passphrase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passphrase_file: Option<PathBuf>,
    /// The name of an environment variable holding the passphrase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passphrase_env: Option<String>,
    /// A file holding the manifest authentication key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_key_file: Option<PathBuf>,
    /// The name of an environment variable holding the manifest authentication key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_key_env: Option<String>,
    /// A file holding age identities (`AGE-SECRET-KEY-...`) for restore and verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_file: Option<PathBuf>,

    /// Keep the N newest backups (or `"unlimited"`: every backup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<Keep>,
    /// Keep the newest backup of each of the N newest hours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<Keep>,
    /// ... days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<Keep>,
    /// ... ISO weeks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<Keep>,
    /// ... months.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<Keep>,
    /// ... years.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<Keep>,
    /// Keep every backup younger than this span (`14d`, `6mo`, `1y6mo`: h, d, w, mo, y).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<String>,
    /// Keep the newest backup of each hour within this span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_hourly: Option<String>,
    /// Keep the newest backup of each day within this span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_daily: Option<String>,
    /// ... each week within this span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_weekly: Option<String>,
    /// ... each month within this span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_monthly: Option<String>,
    /// ... each year within this span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_yearly: Option<String>,
    /// Keep every backup carrying one of these labels (`--keep-label`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_label: Option<Vec<String>>,

    /// A 5-field cron expression (`30 2 * * *`) or `@daily`-style nickname.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// IANA zone the schedule and retention calendar run in (default `UTC`, always shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Up to this long a delay after each slot (`5m`), fixed per job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    /// Run once at daemon start when a slot was missed while it was down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<bool>,
    /// Verify each backup right after it committed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_after_backup: Option<bool>,

    /// argv run before pg_dump starts; failing aborts the backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_backup: Option<Vec<String>>,
    /// argv run after every backup, whatever its outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_backup: Option<Vec<String>>,
    /// argv run when a backup fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_error: Option<Vec<String>>,
    /// argv run after a successful restore, with `DATABASE_URL` and `PGPASSWORD` set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_restore: Option<Vec<String>>,
    /// How long a hook may run before it is killed (default `10m`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_timeout: Option<String>,

    /// Migration frameworks whose heads each backup records (default: every one pgb knows;
    /// `[]`: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrations: Option<Vec<String>>,
    /// A query returning one row of one column: the application's own migration head.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrations_query: Option<String>,
    /// The migration head (`[framework:]head`) a restore or drill must reach after its
    /// `post_restore` hook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_migration: Option<String>,
    /// argv printing the expected migration head on its first line of output (the
    /// application's own status command), run before each restore or drill.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_migration_command: Option<Vec<String>>,

    /// Retries of one object-store request after its first attempt (0: none; default 4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_retries: Option<u32>,
    /// The longest one object-store call may take, retries included, in seconds (default 300).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_retry_budget_secs: Option<u64>,
    /// Time limit of one attempt of a request without a body, in seconds (default 60).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_timeout_secs: Option<u64>,
    /// Time limit of one I/O step (one part, one download chunk), in seconds (default 120).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_io_timeout_secs: Option<u64>,

    /// Restore drills (`[jobs.NAME.drill]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillSettings>,
    /// Freshness checks (`[jobs.NAME.check]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckSettings>,
    /// Notifications (`[jobs.NAME.notify]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifySettings>,
}

/// `[jobs.NAME.drill]`: restore drills.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillSettings {
    /// The server to restore on (`postgres://user@host/postgres`, no password).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Files of smoke SQL, each statement returning one row whose first column is true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smoke: Option<Vec<PathBuf>>,
    /// Fail when the drill takes longer (`4h`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rto: Option<String>,
    /// Fail when the backup is older than this at drill time (`26h`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rpo: Option<String>,
    /// Pick a random backup from within this span (`30d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
    /// When the daemon runs the drill (5-field cron).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

/// `[jobs.NAME.check]`: freshness checks from the repository.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSettings {
    /// The newest complete backup must be younger (`26h`); default: from the schedule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// A backup smaller than this is an anomaly (`10MiB`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_size: Option<String>,
    /// Percent drop against the median of the previous backups that is an anomaly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size_drop: Option<u32>,
    /// The newest passing drill must be younger (`8d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_drill_age: Option<String>,
    /// The newest commit in the WAL archive must be younger (`5m`): the recovery point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rpo: Option<String>,
    /// The newest archived WAL segment must be younger (`15m`): the archiver still delivers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_wal_age: Option<String>,
}

/// `[jobs.NAME.notify]`: where outcomes are sent. The URLs are secrets: only the names of
/// environment variables or files holding them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// Environment variable holding a generic webhook URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url_env: Option<String>,
    /// File holding a generic webhook URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url_file: Option<PathBuf>,
    /// Environment variable holding a Slack incoming-webhook URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slack_url_env: Option<String>,
    /// Environment variable holding a healthchecks.io-style ping URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_url_env: Option<String>,
    /// Which events to send (default: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
}

/// The notification events a job may name in `notify.events`.
pub const NOTIFY_EVENTS: &[&str] = &[
    "backup_succeeded",
    "backup_failed",
    "drill_passed",
    "drill_failed",
    "check_failed",
    "wal_push_failed",
    "wal_gap",
    "wal_stream_down",
];

/// The migration frameworks `migrations` may name (`pgb_core::MigrationFramework`'s names;
/// a test of `pgb-jobs` keeps the two lists equal).
pub const MIGRATION_FRAMEWORKS: &[&str] = &[
    "prisma",
    "alembic",
    "rails",
    "golang-migrate",
    "django",
    "flyway",
    "liquibase",
    "knex",
    "sequelize",
    "typeorm",
];

/// Every key of a job, nested tables as `table.key`: the unit of layering and provenance.
pub const KEYS: &[&str] = &[
    "database",
    "repository",
    "format",
    "wal",
    "wal_wait",
    "wal_stream_slot",
    "wal_stream_partial_interval",
    "incremental",
    "compression",
    "labels",
    "all_databases",
    "include",
    "exclude",
    "with_role_passwords",
    "jobs",
    "spool_dir",
    "files",
    "schemas",
    "exclude_schemas",
    "tables",
    "exclude_tables",
    "exclude_table_data",
    "pg_dump_options",
    "recipients",
    "recipients_file",
    "passphrase_file",
    "passphrase_env",
    "auth_key_file",
    "auth_key_env",
    "identity_file",
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
    "keep_within",
    "keep_within_hourly",
    "keep_within_daily",
    "keep_within_weekly",
    "keep_within_monthly",
    "keep_within_yearly",
    "keep_label",
    "schedule",
    "timezone",
    "jitter",
    "catch_up",
    "verify_after_backup",
    "pre_backup",
    "post_backup",
    "on_error",
    "post_restore",
    "hook_timeout",
    "migrations",
    "migrations_query",
    "expected_migration",
    "expected_migration_command",
    "storage_retries",
    "storage_retry_budget_secs",
    "storage_timeout_secs",
    "storage_io_timeout_secs",
    "drill.target",
    "drill.smoke",
    "drill.max_rto",
    "drill.max_rpo",
    "drill.within",
    "drill.schedule",
    "check.max_age",
    "check.min_size",
    "check.max_size_drop",
    "check.max_drill_age",
    "check.max_rpo",
    "check.max_wal_age",
    "notify.webhook_url_env",
    "notify.webhook_url_file",
    "notify.slack_url_env",
    "notify.ping_url_env",
    "notify.events",
];

/// The environment variable that sets `key` (`keep_daily` -> `PGB_KEEP_DAILY`,
/// `drill.max_rto` -> `PGB_DRILL_MAX_RTO`).
pub fn env_var_for(key: &str) -> String {
    format!("PGB_{}", key.replace('.', "_").to_ascii_uppercase())
}
