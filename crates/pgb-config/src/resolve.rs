//! Layering (defaults < file `[defaults]` < `[jobs.NAME]` < environment < flags) with
//! provenance per key, and validation into a typed [`ResolvedJob`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{ConfigError, Origin};
use crate::load::{LoadedConfig, Scope, url_has_password};
use crate::settings::{
    CheckSettings, DrillSettings, JobSettings, KEYS, MIGRATION_FRAMEWORKS, NOTIFY_EVENTS,
    env_var_for,
};
use crate::values::{check_compression, parse_duration, parse_size, redact_url};

/// What the library may ask of its host: environment variables and whether a path is an
/// executable file. The binary passes `std::env::var` and [`is_executable`]; tests pass maps.
pub struct Environment<'a> {
    /// Looks up an environment variable (`PGB_*`, `PATH`).
    pub var: &'a dyn Fn(&str) -> Option<String>,
    /// Whether a path is an executable file (for hooks).
    pub is_executable: &'a dyn Fn(&Path) -> bool,
}

impl fmt::Debug for Environment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Environment { .. }")
    }
}

/// Whether `path` is a regular file with an execute bit: the check the binary injects.
pub fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).is_ok_and(|m| m.is_file())
    }
}

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    /// pgb's built-in default.
    Default,
    /// The config file (`[defaults]` or the job's table).
    File {
        /// The file.
        path: String,
        /// 1-based line of the key.
        line: usize,
    },
    /// An environment variable.
    Env {
        /// Its name.
        var: String,
    },
    /// A command-line flag.
    Flag,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File { path, line } => write!(f, "{path}:{line}"),
            Source::Env { var } => write!(f, "env {var}"),
            Source::Flag => f.write_str("flag"),
        }
    }
}

/// pgb's built-in defaults, the lowest layer.
pub fn builtin_defaults() -> JobSettings {
    JobSettings {
        format: Some("custom".into()),
        compression: Some(crate::defaults::COMPRESSION.into()),
        timezone: Some("UTC".into()),
        jitter: Some("0s".into()),
        catch_up: Some(false),
        verify_after_backup: Some(false),
        hook_timeout: Some("10m".into()),
        ..JobSettings::default()
    }
}

const TABLES: &[&str] = &["drill", "check", "notify"];

/// `JobSettings` as `key -> value`, nested tables as `table.key`.
pub(crate) fn flatten(s: &JobSettings) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let Ok(Value::Object(top)) = serde_json::to_value(s) else {
        return out;
    };
    for (k, v) in top {
        match v {
            Value::Object(inner) if TABLES.contains(&k.as_str()) => {
                for (k2, v2) in inner {
                    out.insert(format!("{k}.{k2}"), v2);
                }
            }
            v => {
                out.insert(k, v);
            }
        }
    }
    out
}

fn unflatten(map: &BTreeMap<String, Value>) -> JobSettings {
    let mut top = Map::new();
    for (k, v) in map {
        match k.split_once('.') {
            Some((t, k2)) => {
                let e = top
                    .entry(t.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = e {
                    m.insert(k2.to_owned(), v.clone());
                }
            }
            None => {
                top.insert(k.clone(), v.clone());
            }
        }
    }
    serde_json::from_value(Value::Object(top)).expect("layers of valid settings merge")
}

/// The `PGB_*` environment layer. `PGB_REPO` is accepted for `repository` as well.
///
/// Values are read as TOML values (`PGB_KEEP_DAILY=7`, `PGB_LABELS='["a","b"]'`), else as a
/// string, else as a comma-separated list.
///
/// # Errors
/// A value of the wrong type, naming the variable and key.
pub fn env_layer(
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, Value, String)>, ConfigError> {
    let mut out = Vec::new();
    for key in KEYS {
        let mut name = env_var_for(key);
        let mut raw = var(&name);
        if raw.is_none() && *key == "repository" {
            name = "PGB_REPO".into();
            raw = var(&name);
        }
        let Some(raw) = raw else { continue };
        let (table, field) = match key.split_once('.') {
            Some((t, f)) => (Some(t), f),
            None => (None, *key),
        };
        let quoted = serde_json::to_string(&raw).expect("strings serialize");
        let list = serde_json::to_string(
            &raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>(),
        )
        .expect("strings serialize");
        let mut last_err = String::new();
        let mut found = None;
        for candidate in [raw.as_str(), &quoted, &list] {
            let doc = match table {
                Some(t) => format!("[{t}]\n{field} = {candidate}\n"),
                None => format!("{field} = {candidate}\n"),
            };
            match toml::from_str::<JobSettings>(&doc) {
                Ok(s) => {
                    found = flatten(&s).remove(*key);
                    if found.is_some() {
                        break;
                    }
                }
                Err(e) => last_err = e.message().lines().next().unwrap_or("").to_owned(),
            }
        }
        let Some(value) = found else {
            return Err(ConfigError::new(Origin::Env(name), last_err).key(*key));
        };
        if let Some(s) = value.as_str()
            && (key.ends_with("_env") && s.contains("://"))
        {
            return Err(ConfigError::new(
                Origin::Env(name),
                "takes the name of an environment variable holding the secret, not the value",
            )
            .key(*key));
        }
        out.push((key.to_string(), value, name));
    }
    Ok(out)
}

/// A hook: the argv and the program it resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    /// As configured; `argv[0]` is the program.
    pub argv: Vec<String>,
    /// `argv[0]` resolved through `PATH` (or as given when it contains a `/`).
    pub program: PathBuf,
}

/// The job's hooks and their timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hooks {
    /// Before pg_dump starts; failing aborts the backup.
    pub pre_backup: Option<Hook>,
    /// After every backup.
    pub post_backup: Option<Hook>,
    /// When a backup fails.
    pub on_error: Option<Hook>,
    /// After a successful restore.
    pub post_restore: Option<Hook>,
    /// Kill a hook running longer.
    pub timeout: Duration,
}

/// The job's migration keys, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MigrationSettings {
    /// The frameworks whose heads backups record (lower case, each one of
    /// [`MIGRATION_FRAMEWORKS`]); `None`: every one.
    pub frameworks: Option<Vec<String>>,
    /// The job's own head query.
    pub query: Option<String>,
    /// The head a restore or drill must reach.
    pub expected: Option<String>,
    /// The command printing that head.
    pub expected_command: Option<Hook>,
}

/// A whole-server backup's selection (`all_databases = true`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WholeServer {
    /// Only databases matching these globs.
    pub include: Vec<String>,
    /// Databases matching these globs are left out.
    pub exclude: Vec<String>,
    /// Role password hashes in the globals.
    pub with_role_passwords: bool,
}

/// What pg_dump dumps (pg_dump's patterns).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DumpSelection {
    /// `--schema`.
    pub schemas: Vec<String>,
    /// `--exclude-schema`.
    pub exclude_schemas: Vec<String>,
    /// `--table`.
    pub tables: Vec<String>,
    /// `--exclude-table`.
    pub exclude_tables: Vec<String>,
    /// `--exclude-table-data`.
    pub exclude_table_data: Vec<String>,
    /// Other pg_dump options.
    pub pg_dump_options: Vec<String>,
}

/// Where the job's encryption keys come from (names of files and variables only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EncryptionSettings {
    /// age recipients (public keys).
    pub recipients: Vec<String>,
    /// File of recipients.
    pub recipients_file: Option<PathBuf>,
    /// File holding the passphrase.
    pub passphrase_file: Option<PathBuf>,
    /// Variable holding the passphrase.
    pub passphrase_env: Option<String>,
    /// File holding the authentication key.
    pub auth_key_file: Option<PathBuf>,
    /// Variable holding the authentication key.
    pub auth_key_env: Option<String>,
    /// File of age identities.
    pub identity_file: Option<PathBuf>,
}

/// A `[drill]` or `[check]` value that does not parse: its key (`drill.max_rto`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidSetting {
    /// The key, with its table (`check.min_size`).
    pub key: &'static str,
    /// Why, without the key.
    pub message: String,
}

fn typed_duration(key: &'static str, v: Option<&str>) -> Result<Option<Duration>, InvalidSetting> {
    let d = v.map(parse_duration).transpose();
    d.map_err(|message| InvalidSetting { key, message })
}

impl DrillSettings {
    /// The table typed, in the config's grammar: what a job's `[drill]` and a drill's flags
    /// (filled into these fields) mean alike. The target and schedule are checked elsewhere.
    ///
    /// # Errors
    /// [`InvalidSetting`]: a duration that does not parse.
    pub fn typed(&self) -> Result<DrillConfig, InvalidSetting> {
        Ok(DrillConfig {
            target: self.target.clone(),
            smoke: self.smoke.clone().unwrap_or_default(),
            max_rto: typed_duration("drill.max_rto", self.max_rto.as_deref())?,
            max_rpo: typed_duration("drill.max_rpo", self.max_rpo.as_deref())?,
            within: typed_duration("drill.within", self.within.as_deref())?,
            schedule: self.schedule.clone(),
        })
    }
}

impl CheckSettings {
    /// The table typed, in the config's grammar: what a job's `[check]` and a check's flags
    /// mean alike.
    ///
    /// # Errors
    /// [`InvalidSetting`]: a size or duration that does not parse, a percentage over 100.
    pub fn typed(&self) -> Result<CheckConfig, InvalidSetting> {
        if self.max_size_drop.is_some_and(|p| p > 100) {
            return Err(InvalidSetting {
                key: "check.max_size_drop",
                message: "a percentage from 0 to 100".into(),
            });
        }
        let size = self.min_size.as_deref().map(parse_size).transpose();
        Ok(CheckConfig {
            max_age: typed_duration("check.max_age", self.max_age.as_deref())?,
            min_size: size.map_err(|message| InvalidSetting {
                key: "check.min_size",
                message,
            })?,
            max_size_drop: self.max_size_drop,
            max_drill_age: typed_duration("check.max_drill_age", self.max_drill_age.as_deref())?,
            max_rpo: typed_duration("check.max_rpo", self.max_rpo.as_deref())?,
            max_wal_age: typed_duration("check.max_wal_age", self.max_wal_age.as_deref())?,
        })
    }
}

/// `[drill]`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DrillConfig {
    /// The server to restore on.
    pub target: Option<String>,
    /// Smoke SQL files.
    pub smoke: Vec<PathBuf>,
    /// RTO limit.
    pub max_rto: Option<Duration>,
    /// RPO limit.
    pub max_rpo: Option<Duration>,
    /// Random backup from within this span.
    pub within: Option<Duration>,
    /// When the daemon drills.
    pub schedule: Option<String>,
}

/// `[check]`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckConfig {
    /// Maximum age of the newest complete backup.
    pub max_age: Option<Duration>,
    /// Minimum size in bytes.
    pub min_size: Option<u64>,
    /// Maximum percent drop against the median of previous backups.
    pub max_size_drop: Option<u32>,
    /// Maximum age of the newest passing drill.
    pub max_drill_age: Option<Duration>,
    /// Maximum age of the newest archived commit (the recovery point).
    pub max_rpo: Option<Duration>,
    /// Maximum age of the newest archived WAL segment.
    pub max_wal_age: Option<Duration>,
}

/// `[notify]`, validated: names of variables and files, never URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotifyConfig {
    /// Variable holding the webhook URL.
    pub webhook_url_env: Option<String>,
    /// File holding the webhook URL.
    pub webhook_url_file: Option<PathBuf>,
    /// Variable holding the Slack URL.
    pub slack_url_env: Option<String>,
    /// Variable holding the ping URL.
    pub ping_url_env: Option<String>,
    /// Events to send (all when empty).
    pub events: Vec<String>,
}

/// Retries and time limits of object-store requests, when the job sets them (else the
/// storage's own defaults apply).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StorageNetwork {
    /// Retries of one request after its first attempt.
    pub retries: Option<u32>,
    /// Total time one storage call may take, retries included.
    pub retry_budget: Option<Duration>,
    /// Time limit of one request attempt.
    pub request_timeout: Option<Duration>,
    /// Time limit of one I/O step.
    pub io_timeout: Option<Duration>,
}

/// A job with every layer applied and every value checked.
#[derive(Debug, Clone)]
pub struct ResolvedJob {
    /// The job name.
    pub name: String,
    /// Database URL (no password).
    pub database: Option<String>,
    /// Repository URL or path.
    pub repository: String,
    /// `custom`, `plain`, `directory` or `physical`.
    pub format: String,
    /// With `format = "physical"`: `archive`, `included` or `stream` (the daemon runs
    /// `pgb wal stream` for the job; its base backups carry their own WAL, as `included`).
    pub wal: String,
    /// With `format = "physical"`: how long a backup waits for its WAL to be archived.
    pub wal_wait: Duration,
    /// With `wal = "stream"`: the replication slot of the job's stream (`wal_stream_slot`,
    /// default `pgb`).
    pub wal_stream_slot: String,
    /// With `wal = "stream"`: how often the partial segment is stored
    /// (`wal_stream_partial_interval`, default 5s).
    pub wal_stream_partial_interval: Duration,
    /// With `format = "physical"`: incremental base backups (PostgreSQL 17+).
    pub incremental: bool,
    /// Compression spec (grammar of `pgb_core::Compression`).
    pub compression: String,
    /// Labels.
    pub labels: Vec<String>,
    /// `all_databases = true`: the whole server, with its selection.
    pub whole_server: Option<WholeServer>,
    /// Parallel pg_dump jobs of a directory-format backup.
    pub jobs: Option<u32>,
    /// Where a directory-format dump is spooled.
    pub spool_dir: Option<PathBuf>,
    /// Directories archived with each backup.
    pub files: Vec<PathBuf>,
    /// What pg_dump dumps.
    pub selection: DumpSelection,
    /// Key sources.
    pub encryption: EncryptionSettings,
    /// Retention policy, when any `keep_*` key is set.
    pub retention: Option<pgb_retention::Policy>,
    /// The cron expression as written, when scheduled.
    pub schedule_expr: Option<String>,
    /// The parsed schedule.
    pub schedule: Option<croner::Cron>,
    /// The zone the schedule and the retention calendar run in.
    pub timezone: chrono_tz::Tz,
    /// Maximum jitter.
    pub jitter: Duration,
    /// Catch up a missed slot at daemon start.
    pub catch_up: bool,
    /// Verify right after each backup.
    pub verify_after_backup: bool,
    /// Hooks.
    pub hooks: Hooks,
    /// Migration heads: what backups record, what restores and drills must reach.
    pub migrations: MigrationSettings,
    /// Object-store retries and time limits.
    pub storage: StorageNetwork,
    /// Drill settings, when `[drill]` has any key.
    pub drill: Option<DrillConfig>,
    /// Check settings, when `[check]` has any key.
    pub check: Option<CheckConfig>,
    /// Notification settings, when `[notify]` has any key.
    pub notify: Option<NotifyConfig>,
    /// The effective settings, as layered.
    pub settings: JobSettings,
    /// Where each effective key came from.
    pub provenance: BTreeMap<String, Source>,
}

/// One key of the effective-settings report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Effective {
    /// The value (URL passwords redacted).
    pub value: Value,
    /// Where it came from.
    pub source: Source,
}

/// A job's effective settings with their provenance: what `pgb config check` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobReport {
    /// The job.
    pub job: String,
    /// Every set key, nested tables as `table.key`.
    pub settings: BTreeMap<String, Effective>,
}

impl ResolvedJob {
    /// The effective settings and their sources, secrets redacted.
    pub fn report(&self) -> JobReport {
        let settings = flatten(&self.settings)
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => Value::String(redact_url(&s)),
                    other => other,
                };
                let source = self.provenance.get(&k).cloned().unwrap_or(Source::Default);
                (k, Effective { value: v, source })
            })
            .collect();
        JobReport {
            job: self.name.clone(),
            settings,
        }
    }
}

impl LoadedConfig {
    /// Layers and validates one job.
    ///
    /// # Errors
    /// A missing job, a bad environment value, or any invalid effective value, naming
    /// where it came from (file and line, variable, or flag), the job and the key.
    pub fn resolve(
        &self,
        job: &str,
        env: &Environment<'_>,
        flags: &JobSettings,
    ) -> Result<ResolvedJob, ConfigError> {
        let path = self.path.display().to_string();
        let Some(job_settings) = self.file.jobs.get(job) else {
            let known: Vec<&str> = self.job_names().collect();
            return Err(ConfigError::new(
                Origin::File { path, line: None },
                format!(
                    "no job named {job:?} (jobs: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        };
        let mut merged: BTreeMap<String, Value> = BTreeMap::new();
        let mut prov: BTreeMap<String, Source> = BTreeMap::new();
        let mut apply = |layer: BTreeMap<String, Value>, src: &dyn Fn(&str) -> Source| {
            for (k, v) in layer {
                prov.insert(k.clone(), src(&k));
                merged.insert(k, v);
            }
        };
        apply(flatten(&builtin_defaults()), &|_| Source::Default);
        let file_src = |scope: Scope| {
            let path = path.clone();
            move |k: &str| Source::File {
                path: path.clone(),
                line: self
                    .lines
                    .get(&(scope.clone(), k.to_owned()))
                    .copied()
                    .unwrap_or(0),
            }
        };
        let defaults = flatten(&self.file.defaults);
        let defaults_src = file_src(Scope::Defaults);
        let from_defaults: Vec<(String, Source)> = defaults
            .keys()
            .map(|k| (k.clone(), defaults_src(k)))
            .collect();
        apply(defaults, &defaults_src);
        apply(flatten(job_settings), &file_src(Scope::Job(job.to_owned())));
        let env_values = env_layer(env.var).map_err(|e| e.job(Some(job)))?;
        let env_names: BTreeMap<String, String> = env_values
            .iter()
            .map(|(k, _, n)| (k.clone(), n.clone()))
            .collect();
        apply(
            env_values.into_iter().map(|(k, v, _)| (k, v)).collect(),
            &|k| Source::Env {
                var: env_names.get(k).cloned().unwrap_or_default(),
            },
        );
        apply(flatten(flags), &|_| Source::Flag);
        let settings = unflatten(&merged);
        // Keys whose value is still the one `[defaults]` set: an error in one is blamed on
        // `[defaults]`, not on the first job that happens to be resolved.
        let from_defaults: std::collections::BTreeSet<String> = from_defaults
            .into_iter()
            .filter(|(k, src)| prov.get(k) == Some(src))
            .map(|(k, _)| k)
            .collect();
        validate(job, settings, prov, &from_defaults, env)
    }

    /// Resolves every job, stopping at the first invalid one.
    ///
    /// # Errors
    /// As [`LoadedConfig::resolve`].
    pub fn resolve_all(
        &self,
        env: &Environment<'_>,
        flags: &JobSettings,
    ) -> Result<Vec<ResolvedJob>, ConfigError> {
        self.file
            .jobs
            .keys()
            .map(|name| self.resolve(name, env, flags))
            .collect()
    }
}

fn origin_of(src: Option<&Source>) -> Origin {
    match src {
        Some(Source::File { path, line }) => Origin::File {
            path: path.clone(),
            line: (*line > 0).then_some(*line),
        },
        Some(Source::Env { var }) => Origin::Env(var.clone()),
        Some(Source::Flag) => Origin::Flag,
        Some(Source::Default) | None => Origin::None,
    }
}

/// Parses a 5-field cron expression (or an `@daily`-style nickname).
///
/// # Errors
/// A one-line reason.
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    let fields = expr.split_whitespace().count();
    if !expr.trim_start().starts_with('@') && fields != 5 {
        return Err(format!(
            "invalid cron expression {expr:?}: expected 5 fields (minute hour day-of-month month \
             day-of-week), found {fields}"
        ));
    }
    let parse = |e: &str| {
        croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .build()
            .parse(e)
    };
    parse(expr).map_err(|e| {
        // Name the field at fault: each field alone, the others `*`.
        const FIELDS: [&str; 5] = [
            "minute (0-59)",
            "hour (0-23)",
            "day of month (1-31)",
            "month (1-12 or JAN-DEC)",
            "day of week (0-7 or SUN-SAT)",
        ];
        let parts: Vec<&str> = expr.split_whitespace().collect();
        let bad = (parts.len() == 5)
            .then(|| {
                (0..5).find(|&i| {
                    let probe: Vec<&str> = (0..5)
                        .map(|j| if j == i { parts[i] } else { "*" })
                        .collect();
                    parse(&probe.join(" ")).is_err()
                })
            })
            .flatten();
        match bad {
            Some(i) => format!(
                "invalid cron expression {expr:?}: field {} {:?} is not a valid {}",
                i + 1,
                parts[i],
                FIELDS[i]
            ),
            None => format!("invalid cron expression {expr:?}: {e}"),
        }
    })
}

/// How far ahead a schedule must have a run: `config check` refuses one that has none.
pub const SCHEDULE_HORIZON_YEARS: u32 = 5;

/// Checks that `cron`, read in `zone`, runs at least once within [`SCHEDULE_HORIZON_YEARS`]
/// after `now`: `0 0 31 2 *` (February 31st) parses but never runs, and a daemon would wait
/// for it forever.
///
/// # Errors
/// A one-line reason with the expression (and its next run, when there is a later one).
pub fn check_schedule_fires(
    cron: &croner::Cron,
    zone: chrono_tz::Tz,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), String> {
    let expr = cron.as_str();
    let horizon = now
        .checked_add_months(chrono::Months::new(12 * SCHEDULE_HORIZON_YEARS))
        .unwrap_or(now);
    match cron.find_next_occurrence(&now.with_timezone(&zone), false) {
        Ok(t) if t.with_timezone(&chrono::Utc) <= horizon => Ok(()),
        Ok(t) => Err(format!(
            "schedule {expr:?} does not run in the next {SCHEDULE_HORIZON_YEARS} years (next: \
             {}); check the day of month, month and day of week",
            t.to_rfc3339()
        )),
        Err(_) => Err(format!(
            "schedule {expr:?} never runs (no date matches it, e.g. February 30th); check the \
             day of month, month and day of week"
        )),
    }
}

/// The shortest `hook_timeout`: a hook is killed when it runs longer, so zero would kill
/// every hook at once.
pub const MIN_HOOK_TIMEOUT: Duration = Duration::from_secs(1);

fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A replication slot name PostgreSQL accepts: lowercase letters, digits and `_`, 1 to 63
/// bytes.
fn check_slot_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!(
            "slot name {name:?} must be 1 to 63 bytes long (lowercase letters, digits and _)"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "slot name {name:?} has {c:?}: a replication slot name takes only lowercase letters, digits and _"
        ));
    }
    Ok(())
}

/// Repository URL schemes pgb knows.
pub const REPOSITORY_SCHEMES: &[&str] = &["file", "s3", "gs", "az"];

fn validate(
    job: &str,
    s: JobSettings,
    prov: BTreeMap<String, Source>,
    from_defaults: &std::collections::BTreeSet<String>,
    env: &Environment<'_>,
) -> Result<ResolvedJob, ConfigError> {
    let err = |key: &str, msg: String| {
        ConfigError::new(origin_of(prov.get(key)), msg)
            .job((!from_defaults.contains(key)).then_some(job))
            .key(key)
    };
    let dur = |key: &str, v: &Option<String>| -> Result<Option<Duration>, ConfigError> {
        v.as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|m| err(key, m))
    };
    let env_name = |key: &str, v: &Option<String>| -> Result<(), ConfigError> {
        match v {
            Some(n) if !is_env_name(n) => Err(err(
                key,
                format!("{n:?} is not an environment variable name"),
            )),
            _ => Ok(()),
        }
    };
    let pg_url = |key: &str, v: &Option<String>| -> Result<(), ConfigError> {
        let Some(u) = v else { return Ok(()) };
        if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
            return Err(err(
                key,
                format!("{:?} is not a postgres:// URL", redact_url(u)),
            ));
        }
        if url_has_password(u) {
            return Err(err(
                key,
                "a password written inline in the URL; leave it out and use PGPASSWORD or \
                 PGPASSFILE"
                    .into(),
            ));
        }
        Ok(())
    };

    pg_url("database", &s.database)?;
    let Some(repository) = s.repository.clone() else {
        return Err(err(
            "repository",
            "no repository: set `repository` in the job or [defaults], PGB_REPOSITORY, or \
             --repo"
                .into(),
        ));
    };
    if let Some((scheme, _)) = repository.split_once("://")
        && !REPOSITORY_SCHEMES.contains(&scheme)
    {
        return Err(err(
            "repository",
            format!(
                "unknown repository scheme {scheme:?}: expected file://, s3://, gs://, az:// or a path"
            ),
        ));
    }
    if url_has_password(&repository) {
        return Err(err(
            "repository",
            "a secret written inline in the URL; use the storage's credential variables".into(),
        ));
    }
    let format = s.format.clone().unwrap_or_else(|| "custom".into());
    if !["custom", "plain", "directory", "physical"].contains(&format.as_str()) {
        return Err(err(
            "format",
            format!("unknown format {format:?}: expected custom, plain, directory or physical"),
        ));
    }
    let physical = format == "physical";
    for (key, set) in [
        ("wal", s.wal.is_some()),
        ("wal_wait", s.wal_wait.is_some()),
        ("incremental", s.incremental == Some(true)),
    ] {
        if set && !physical {
            return Err(err(key, "applies only with format = \"physical\"".into()));
        }
    }
    let wal = s.wal.clone().unwrap_or_else(|| "archive".into());
    if !["archive", "included", "stream"].contains(&wal.as_str()) {
        return Err(err(
            "wal",
            format!("unknown WAL mode {wal:?}: expected archive, included or stream"),
        ));
    }
    let wal_wait =
        parse_duration(s.wal_wait.as_deref().unwrap_or("2m")).map_err(|m| err("wal_wait", m))?;
    for (key, set) in [
        ("wal_stream_slot", s.wal_stream_slot.is_some()),
        (
            "wal_stream_partial_interval",
            s.wal_stream_partial_interval.is_some(),
        ),
    ] {
        if set && wal != "stream" {
            return Err(err(key, "applies only with wal = \"stream\"".into()));
        }
    }
    let wal_stream_slot = s.wal_stream_slot.clone().unwrap_or_else(|| "pgb".into());
    check_slot_name(&wal_stream_slot).map_err(|m| err("wal_stream_slot", m))?;
    let wal_stream_partial_interval =
        parse_duration(s.wal_stream_partial_interval.as_deref().unwrap_or("5s"))
            .map_err(|m| err("wal_stream_partial_interval", m))?;
    if wal_stream_partial_interval.is_zero() {
        return Err(err(
            "wal_stream_partial_interval",
            "must be more than 0 (e.g. \"5s\")".into(),
        ));
    }
    if physical {
        for (key, set) in [
            ("all_databases", s.all_databases == Some(true)),
            ("files", s.files.as_ref().is_some_and(|f| !f.is_empty())),
            ("spool_dir", s.spool_dir.is_some()),
            ("schemas", s.schemas.is_some()),
            ("exclude_schemas", s.exclude_schemas.is_some()),
            ("tables", s.tables.is_some()),
            ("exclude_tables", s.exclude_tables.is_some()),
            ("exclude_table_data", s.exclude_table_data.is_some()),
            ("pg_dump_options", s.pg_dump_options.is_some()),
        ] {
            if set {
                return Err(err(
                    key,
                    "does not apply to a physical backup (format = \"physical\": the whole cluster)".into(),
                ));
            }
        }
    }
    let all_databases = s.all_databases.unwrap_or(false);
    for (key, set) in [
        ("include", s.include.is_some()),
        ("exclude", s.exclude.is_some()),
        ("with_role_passwords", s.with_role_passwords.is_some()),
    ] {
        if set && !all_databases {
            return Err(err(key, "applies only with all_databases = true".into()));
        }
    }
    if all_databases && format != "custom" {
        return Err(err(
            "format",
            "a whole-server backup (all_databases) is in the custom format".into(),
        ));
    }
    if s.jobs == Some(0) {
        return Err(err("jobs", "must be at least 1".into()));
    }
    if s.jobs.is_some() && format != "directory" {
        return Err(err(
            "jobs",
            "applies only with format = \"directory\"".into(),
        ));
    }
    if let Some(o) = s
        .pg_dump_options
        .iter()
        .flatten()
        .find(|o| !o.starts_with('-'))
    {
        return Err(err(
            "pg_dump_options",
            format!("{o:?} is not an option (one argument each, e.g. \"--no-comments\")"),
        ));
    }
    let compression = s
        .compression
        .clone()
        .unwrap_or_else(|| crate::defaults::COMPRESSION.into());
    check_compression(&compression).map_err(|m| err("compression", m))?;
    let labels = s.labels.clone().unwrap_or_default();
    if labels.iter().any(|l| l.trim().is_empty()) {
        return Err(err("labels", "a label is empty".into()));
    }

    let recipients = s.recipients.clone().unwrap_or_default();
    if let Some(r) = recipients
        .iter()
        .find(|r| !(r.starts_with("age1") || r.starts_with("ssh-")))
    {
        return Err(err(
            "recipients",
            format!("{r:?} is not an age recipient (age1... or ssh-...)"),
        ));
    }
    env_name("passphrase_env", &s.passphrase_env)?;
    env_name("auth_key_env", &s.auth_key_env)?;

    let tz_name = s.timezone.clone().unwrap_or_else(|| "UTC".into());
    let timezone = chrono_tz::Tz::from_str(&tz_name).map_err(|_| {
        err(
            "timezone",
            format!("unknown time zone {tz_name:?}: expected an IANA name such as Europe/Berlin"),
        )
    })?;

    let retention =
        retention_policy(&s).map_err(|e| err(e.key.as_deref().unwrap_or_default(), e.message))?;

    let schedule = s
        .schedule
        .as_deref()
        .map(parse_cron)
        .transpose()
        .map_err(|m| err("schedule", m))?;
    // The clock, not the environment: "never runs" is judged from now.
    let now = chrono::Utc::now();
    if let Some(cron) = &schedule {
        check_schedule_fires(cron, timezone, now).map_err(|m| err("schedule", m))?;
    }
    let jitter = dur("jitter", &s.jitter)?.unwrap_or(Duration::ZERO);

    let path_var = (env.var)("PATH").unwrap_or_default();
    let hook = |key: &str, v: &Option<Vec<String>>| -> Result<Option<Hook>, ConfigError> {
        let Some(argv) = v else { return Ok(None) };
        let Some(prog) = argv.first().filter(|p| !p.is_empty()) else {
            return Err(err(
                key,
                "an empty command; a hook is an argv array such as [\"npx\", \"prisma\", \"migrate\", \"deploy\"]".into(),
            ));
        };
        let program = if prog.contains('/') {
            let p = PathBuf::from(prog);
            (env.is_executable)(&p).then_some(p)
        } else {
            path_var
                .split(':')
                .filter(|d| !d.is_empty())
                .map(|d| Path::new(d).join(prog))
                .find(|p| (env.is_executable)(p))
        };
        let Some(program) = program else {
            return Err(err(
                key,
                format!("{prog:?} is not an executable file (searched PATH when it has no `/`)"),
            ));
        };
        Ok(Some(Hook {
            argv: argv.clone(),
            program,
        }))
    };
    let hooks = Hooks {
        pre_backup: hook("pre_backup", &s.pre_backup)?,
        post_backup: hook("post_backup", &s.post_backup)?,
        on_error: hook("on_error", &s.on_error)?,
        post_restore: hook("post_restore", &s.post_restore)?,
        timeout: match dur("hook_timeout", &s.hook_timeout)? {
            Some(d) if d < MIN_HOOK_TIMEOUT => {
                return Err(err(
                    "hook_timeout",
                    format!(
                        "must be at least {}s: a hook running longer is killed, so {:?} would \
                         kill every hook",
                        MIN_HOOK_TIMEOUT.as_secs(),
                        s.hook_timeout.as_deref().unwrap_or_default()
                    ),
                ));
            }
            d => d.unwrap_or(Duration::from_secs(600)),
        },
    };

    let migrations = MigrationSettings {
        frameworks: match &s.migrations {
            None => None,
            Some(names) => Some(
                names
                    .iter()
                    .map(|n| {
                        let lower = n.trim().to_ascii_lowercase();
                        if MIGRATION_FRAMEWORKS.contains(&lower.as_str()) {
                            Ok(lower)
                        } else {
                            Err(err(
                                "migrations",
                                format!(
                                    "unknown migration framework {n:?}: expected {} (or [] for none)",
                                    MIGRATION_FRAMEWORKS.join(", ")
                                ),
                            ))
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        },
        query: match &s.migrations_query {
            Some(q) if q.trim().is_empty() => {
                return Err(err(
                    "migrations_query",
                    "an empty query; it returns one row of one column, the head".into(),
                ));
            }
            q => q.clone(),
        },
        expected: match &s.expected_migration {
            Some(e) if e.trim().is_empty() || e.trim().ends_with(':') => {
                return Err(err(
                    "expected_migration",
                    format!("{e:?} names no head: expected [FRAMEWORK:]HEAD"),
                ));
            }
            e => e.clone(),
        },
        expected_command: hook("expected_migration_command", &s.expected_migration_command)?,
    };
    if migrations.expected.is_some() && migrations.expected_command.is_some() {
        return Err(err(
            "expected_migration_command",
            "set expected_migration or expected_migration_command, not both".into(),
        ));
    }

    let seconds = |key: &str, v: Option<u64>| -> Result<Option<Duration>, ConfigError> {
        match v {
            Some(0) => Err(err(key, "must be at least 1 (seconds)".into())),
            v => Ok(v.map(Duration::from_secs)),
        }
    };
    let storage = StorageNetwork {
        retries: s.storage_retries,
        retry_budget: seconds("storage_retry_budget_secs", s.storage_retry_budget_secs)?,
        request_timeout: seconds("storage_timeout_secs", s.storage_timeout_secs)?,
        io_timeout: seconds("storage_io_timeout_secs", s.storage_io_timeout_secs)?,
    };

    let drill = match &s.drill {
        Some(d) => {
            pg_url("drill.target", &d.target)?;
            if let Some(expr) = &d.schedule {
                let cron = parse_cron(expr).map_err(|m| err("drill.schedule", m))?;
                check_schedule_fires(&cron, timezone, now).map_err(|m| err("drill.schedule", m))?;
            }
            Some(d.typed().map_err(|e| err(e.key, e.message))?)
        }
        None => None,
    };
    let check = match &s.check {
        Some(c) => Some(c.typed().map_err(|e| err(e.key, e.message))?),
        None => None,
    };
    let notify = match &s.notify {
        Some(n) => {
            env_name("notify.webhook_url_env", &n.webhook_url_env)?;
            env_name("notify.slack_url_env", &n.slack_url_env)?;
            env_name("notify.ping_url_env", &n.ping_url_env)?;
            let events = n.events.clone().unwrap_or_default();
            if let Some(e) = events.iter().find(|e| !NOTIFY_EVENTS.contains(&e.as_str())) {
                return Err(err(
                    "notify.events",
                    format!("unknown event {e:?}: expected {}", NOTIFY_EVENTS.join(", ")),
                ));
            }
            Some(NotifyConfig {
                webhook_url_env: n.webhook_url_env.clone(),
                webhook_url_file: n.webhook_url_file.clone(),
                slack_url_env: n.slack_url_env.clone(),
                ping_url_env: n.ping_url_env.clone(),
                events,
            })
        }
        None => None,
    };

    Ok(ResolvedJob {
        name: job.to_owned(),
        database: s.database.clone(),
        repository,
        format,
        wal,
        wal_wait,
        wal_stream_slot,
        wal_stream_partial_interval,
        incremental: s.incremental.unwrap_or(false),
        compression,
        labels,
        whole_server: all_databases.then(|| WholeServer {
            include: s.include.clone().unwrap_or_default(),
            exclude: s.exclude.clone().unwrap_or_default(),
            with_role_passwords: s.with_role_passwords.unwrap_or(false),
        }),
        jobs: s.jobs,
        spool_dir: s.spool_dir.clone(),
        files: s.files.clone().unwrap_or_default(),
        selection: DumpSelection {
            schemas: s.schemas.clone().unwrap_or_default(),
            exclude_schemas: s.exclude_schemas.clone().unwrap_or_default(),
            tables: s.tables.clone().unwrap_or_default(),
            exclude_tables: s.exclude_tables.clone().unwrap_or_default(),
            exclude_table_data: s.exclude_table_data.clone().unwrap_or_default(),
            pg_dump_options: s.pg_dump_options.clone().unwrap_or_default(),
        },
        encryption: EncryptionSettings {
            recipients,
            recipients_file: s.recipients_file.clone(),
            passphrase_file: s.passphrase_file.clone(),
            passphrase_env: s.passphrase_env.clone(),
            auth_key_file: s.auth_key_file.clone(),
            auth_key_env: s.auth_key_env.clone(),
            identity_file: s.identity_file.clone(),
        },
        retention,
        schedule_expr: s.schedule.clone(),
        schedule,
        timezone,
        jitter,
        catch_up: s.catch_up.unwrap_or(false),
        verify_after_backup: s.verify_after_backup.unwrap_or(false),
        hooks,
        migrations,
        storage,
        drill,
        check,
        notify,
        settings: s,
        provenance: prov,
    })
}

/// The retention policy of the `keep_*` keys of `s`, its calendar buckets in `s.timezone`
/// (UTC when unset); `None` when no rule is set. The one builder for a job's keys and for
/// the `--keep-*` flags of a command (every retention flag is a key and the reverse): a
/// caller with flags fills a [`JobSettings`] with them.
///
/// # Errors
/// A [`ConfigError`] naming the key ([`Origin::None`]): an unknown zone (`timezone`), a span
/// that does not parse, a policy that keeps nothing (`keep_last`); its message is the
/// retention engine's own.
pub fn retention_policy(s: &JobSettings) -> Result<Option<pgb_retention::Policy>, ConfigError> {
    use crate::settings::Keep;
    use pgb_retention::{Count, Policy, Zone, parse_span};
    let bad = |key: &str, e: pgb_retention::RetentionError| {
        ConfigError::new(Origin::None, e.to_string()).key(key)
    };
    let counts = [
        s.keep_last,
        s.keep_hourly,
        s.keep_daily,
        s.keep_weekly,
        s.keep_monthly,
        s.keep_yearly,
    ];
    let spans = [
        ("keep_within", &s.keep_within),
        ("keep_within_hourly", &s.keep_within_hourly),
        ("keep_within_daily", &s.keep_within_daily),
        ("keep_within_weekly", &s.keep_within_weekly),
        ("keep_within_monthly", &s.keep_within_monthly),
        ("keep_within_yearly", &s.keep_within_yearly),
    ];
    let labels = s.keep_label.as_deref().unwrap_or_default();
    // A bad zone is an error also without a rule (`--retention-tz` alone).
    let zone =
        Zone::iana(s.timezone.as_deref().unwrap_or("UTC")).map_err(|e| bad("timezone", e))?;
    if counts.iter().all(Option::is_none)
        && spans.iter().all(|(_, v)| v.is_none())
        && labels.is_empty()
    {
        return Ok(None);
    }
    let count = |k: Keep| match k {
        Keep::N(n) => Count::N(n),
        Keep::Unlimited => Count::Unlimited,
    };
    type SetCount = fn(Policy, Count) -> Policy;
    let set_counts: [SetCount; 6] = [
        Policy::with_keep_last_count,
        Policy::with_keep_hourly,
        Policy::with_keep_daily,
        Policy::with_keep_weekly,
        Policy::with_keep_monthly,
        Policy::with_keep_yearly,
    ];
    let mut p = Policy::default();
    for (k, set) in counts.into_iter().zip(set_counts) {
        if let Some(k) = k {
            p = set(p, count(k));
        }
    }
    type SetSpan = fn(Policy, pgb_retention::Span) -> Policy;
    let set_spans: [SetSpan; 6] = [
        Policy::with_keep_within,
        Policy::with_keep_within_hourly,
        Policy::with_keep_within_daily,
        Policy::with_keep_within_weekly,
        Policy::with_keep_within_monthly,
        Policy::with_keep_within_yearly,
    ];
    for ((key, v), set) in spans.into_iter().zip(set_spans) {
        if let Some(v) = v {
            p = set(p, parse_span(v).map_err(|e| bad(key, e))?);
        }
    }
    for label in labels {
        p = p.with_keep_label(label.clone());
    }
    p = p.with_zone(zone);
    p.validate().map_err(|e| bad("keep_last", e))?;
    Ok(Some(p))
}
