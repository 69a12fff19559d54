//! Restore drills: prove that a backup restores, and how long it takes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pgb_core::{
    AuthKey, BackupId, DumpError, DumpErrorKind, Error as CoreError, ErrorClass, Manifest,
    Progress, Repository, RestoreOptions, StorageExt,
};
use pgb_postgres::{ConnConfig, PgRestore, SqlClient, ToolLocator};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::record::{compact_time, record_drill};
use crate::toc::{TocLister, TocTable};

/// Which backup a drill restores.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackupChoice {
    /// The newest complete backup (of `from_database`, when given).
    Latest,
    /// This backup.
    Id(BackupId),
    /// A random complete backup started within this long before now ("a random backup from
    /// the last 30 days"), so that drills over time cover more than the newest backup.
    Random {
        /// How far back to choose from.
        within: Duration,
    },
}

/// A statement a drill runs on the restored database: it must return exactly one row whose
/// first column is `true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmokeStatement {
    /// A name for reports (e.g. the smoke file's name).
    pub name: String,
    /// The SQL (one query).
    pub sql: String,
}

/// Options for [`drill`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DrillOptions {
    /// The backup to restore.
    pub backup: BackupChoice,
    /// Restrict `Latest` and `Random` to backups of this database.
    pub from_database: Option<String>,
    /// The server to restore on; its database name, if any, is only used to refuse the
    /// backup's own source database. The drill creates `pgb_drill_<database>_<utc time>`.
    pub target: ConnConfig,
    /// Where to find pg_restore and psql.
    pub locator: ToolLocator,
    /// Spool directory for parallel restores.
    pub spool_dir: PathBuf,
    /// Parallel restore jobs (1: streamed, single transaction).
    pub jobs: u32,
    /// Smoke statements run after the restore.
    pub smoke: Vec<SmokeStatement>,
    /// Fail when the recovery time (drill start to all checks passed) exceeds this.
    pub max_rto: Option<Duration>,
    /// Fail when the backup's age at drill time exceeds this.
    pub max_rpo: Option<Duration>,
    /// Keep the scratch database afterwards (for inspection).
    pub keep: bool,
    /// Write the result to the repository as `drills/<backup-id>/<utc time>.json`.
    pub record: bool,
    /// Authenticates the record (the repository's authentication key).
    pub auth_key: Option<AuthKey>,
    /// The job name, for reports.
    pub job: Option<String>,
}

impl DrillOptions {
    /// A drill of the newest backup on `target`, recorded, scratch database dropped.
    pub fn new(target: ConnConfig, locator: ToolLocator, spool_dir: impl Into<PathBuf>) -> Self {
        Self {
            backup: BackupChoice::Latest,
            from_database: None,
            target,
            locator,
            spool_dir: spool_dir.into(),
            jobs: 1,
            smoke: Vec::new(),
            max_rto: None,
            max_rpo: None,
            keep: false,
            record: true,
            auth_key: None,
            job: None,
        }
    }

    /// Sets the backup choice.
    pub fn with_backup(mut self, backup: BackupChoice) -> Self {
        self.backup = backup;
        self
    }

    /// Restricts the choice to one database.
    pub fn with_from_database(mut self, db: impl Into<String>) -> Self {
        self.from_database = Some(db.into());
        self
    }

    /// Adds a smoke statement.
    pub fn with_smoke(mut self, name: impl Into<String>, sql: impl Into<String>) -> Self {
        self.smoke.push(SmokeStatement {
            name: name.into(),
            sql: sql.into(),
        });
        self
    }

    /// Sets the RTO limit.
    pub fn with_max_rto(mut self, d: Duration) -> Self {
        self.max_rto = Some(d);
        self
    }

    /// Sets the RPO limit.
    pub fn with_max_rpo(mut self, d: Duration) -> Self {
        self.max_rpo = Some(d);
        self
    }

    /// Keeps the scratch database.
    pub fn with_keep(mut self, keep: bool) -> Self {
        self.keep = keep;
        self
    }

    /// Whether to record the result in the repository.
    pub fn with_record(mut self, record: bool) -> Self {
        self.record = record;
        self
    }

    /// Authenticates the record.
    pub fn with_auth_key(mut self, key: AuthKey) -> Self {
        self.auth_key = Some(key);
        self
    }

    /// Sets the job name.
    pub fn with_job(mut self, job: impl Into<String>) -> Self {
        self.job = Some(job.into());
        self
    }
}

/// Runs after the restore, before the checks (e.g. a job's `post_restore` migrations).
#[async_trait]
pub trait DrillHook: std::fmt::Debug + Send + Sync {
    /// Runs against the restored scratch database.
    ///
    /// # Errors
    /// A one-line cause; the drill then fails its `post_restore hooks` check.
    async fn post_restore(&self, database: &ConnConfig) -> Result<(), String>;
}

/// How a drill ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DrillOutcome {
    /// Every check passed within the limits.
    Passed,
    /// A check failed (restore, tables, rows, smoke, hooks, verification).
    CheckFailed,
    /// All checks passed but RTO or RPO exceeded its limit.
    LimitExceeded,
}

/// One timed phase of a drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    /// `fetch_verify`, `restore`, `hooks`, `analyze` or `checks`.
    pub name: String,
    /// Wall time in milliseconds.
    pub millis: u64,
}

/// One check of a drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// What was checked.
    pub name: String,
    /// Whether it passed (a skipped check counts as passed).
    pub passed: bool,
    /// Skipped, with the reason in `detail`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// One line: what was found.
    pub detail: String,
}

/// What a drill did and found. Stored as the drill's record; every number is an integer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DrillReport {
    /// The backup restored.
    pub backup_id: BackupId,
    /// Its backup set.
    pub set: String,
    /// Its source database.
    pub database: String,
    /// The job, when the drill ran for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// When the backup's snapshot was taken (pg_dump start).
    #[serde(with = "time::serde::rfc3339")]
    pub backup_started_at: OffsetDateTime,
    /// Stored size of the backup.
    pub stored_size: u64,
    /// The target server (`host:port`).
    pub target_server: String,
    /// The scratch database.
    pub scratch_database: String,
    /// Whether the scratch database was kept.
    pub kept: bool,
    /// Whether the scratch database was dropped (false with `kept`, or when the drop failed).
    pub dropped: bool,
    /// Drill start.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Drill end.
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// The verdict.
    pub outcome: DrillOutcome,
    /// The first failed check or exceeded limit, one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Timed phases in order.
    pub phases: Vec<Phase>,
    /// Recovery time: drill start until all checks passed, in milliseconds.
    pub rto_ms: u64,
    /// Recovery point: drill start minus the backup's snapshot time, in seconds.
    pub rpo_s: u64,
    /// The RTO limit, when given (milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rto_ms: Option<u64>,
    /// The RPO limit, when given (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rpo_s: Option<u64>,
    /// Tables in the archive's table of contents.
    pub toc_tables: u64,
    /// Every check.
    pub checks: Vec<CheckResult>,
    /// The pgb version that ran the drill.
    pub pgb_version: String,
    /// Where the record was written (not part of the stored record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_as: Option<String>,
    /// Why the record could not be written (not part of the stored record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_error: Option<String>,
}

impl DrillReport {
    /// Whether the drill passed.
    pub fn passed(&self) -> bool {
        self.outcome == DrillOutcome::Passed
    }
}

/// A drill that could not run (as opposed to one that ran and failed a check).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrillError {
    /// The repository could not be read, or has no matching backup.
    #[error("{0}")]
    Repository(#[from] CoreError),
    /// The target server cannot be used (unreachable, authentication, tools).
    #[error("drill target: {0}")]
    Target(DumpError),
    /// The drill would restore over the backup's source database.
    #[error(
        "refusing to drill on {server}/{database}: that is the backup's source database; name another server or database"
    )]
    SameAsSource {
        /// The server.
        server: String,
        /// The database.
        database: String,
    },
    /// The request itself is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Cancelled; the scratch database was dropped.
    #[error("drill cancelled; the scratch database was dropped")]
    Cancelled,
}

impl DrillError {
    /// Whether the cause lies with the repository (exit 3) rather than the database (exit 4).
    pub fn is_repository(&self) -> bool {
        matches!(self, Self::Repository(e) if e.class() == ErrorClass::Repository)
    }
}

/// Restores a backup into a fresh scratch database on `opts.target`, checks it, measures RTO
/// and RPO, records the result in the repository (unless `opts.record` is off) and drops the
/// scratch database (unless `opts.keep`).
///
/// `cancel` resolving (a signal) stops the drill; the scratch database is dropped before this
/// returns [`DrillError::Cancelled`]. Dropping the returned future drops it too (blocking the
/// dropping thread for one `DROP DATABASE`).
///
/// A drill that ran returns `Ok` with the verdict in [`DrillReport::outcome`]; `Err` means it
/// could not run (no such backup, unreachable target, refused target).
///
/// # Errors
/// [`DrillError`].
pub async fn drill(
    repo: &Repository,
    opts: &DrillOptions,
    hook: Option<&dyn DrillHook>,
    progress: &dyn Progress,
    cancel: impl Future<Output = ()>,
) -> Result<DrillReport, DrillError> {
    tokio::select! {
        biased;
        () = cancel => Err(DrillError::Cancelled),
        r = run(repo, opts, hook, progress) => r,
    }
}

/// A scratch database that is dropped when this guard is dropped while armed.
#[derive(Debug)]
struct Scratch {
    client: SqlClient,
    server: ConnConfig,
    name: String,
    armed: bool,
}

impl Scratch {
    async fn drop_now(mut self) -> Result<(), DumpError> {
        self.armed = false;
        let mut last = Ok(());
        for attempt in 0..3 {
            last = self.client.drop_database(&self.server, &self.name).await;
            if last.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
        }
        last
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Cancelled mid-drill: nothing can be awaited here, so drop it synchronously.
        for attempt in 0..3u64 {
            match self.client.drop_database_blocking(&self.server, &self.name) {
                Ok(()) => {
                    tracing::info!(database = %self.name, "dropped the drill's scratch database");
                    return;
                }
                Err(e) if attempt == 2 => {
                    tracing::error!(database = %self.name, error = %e, "could not drop the drill's scratch database; drop it by hand");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200 * (attempt + 1))),
            }
        }
    }
}

/// `pgb_drill_<database>_<utc time>`: lower-case letters, digits and `_` only, at most 63 bytes.
fn scratch_name(database: &str, at: OffsetDateTime) -> String {
    let mut db: String = database
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let suffix = compact_time(at).to_ascii_lowercase();
    let room = 63 - "pgb_drill__".len() - suffix.len();
    db.truncate(room);
    format!("pgb_drill_{db}_{suffix}")
}

fn choose(
    listing: &pgb_core::Listing,
    choice: &BackupChoice,
    database: Option<&str>,
    now: OffsetDateTime,
) -> Result<Manifest, DrillError> {
    let of_db = |m: &&Manifest| database.is_none_or(|d| m.database == d);
    let none = || {
        DrillError::Repository(CoreError::NoBackups {
            database: database.map(str::to_owned),
        })
    };
    match choice {
        BackupChoice::Latest | BackupChoice::Id(_) => {
            listing.latest(database).cloned().ok_or_else(none)
        }
        BackupChoice::Random { within } => {
            let since = now - *within;
            let candidates: Vec<&Manifest> = listing
                .backups
                .iter()
                .filter(of_db)
                .filter(|m| m.started_at >= since)
                .collect();
            if candidates.is_empty() {
                return Err(none());
            }
            let mut rnd = [0u8; 8];
            let _ = getrandom::fill(&mut rnd);
            let i = (u64::from_le_bytes(rnd) % candidates.len() as u64) as usize;
            Ok(candidates[i].clone())
        }
    }
}

/// Whether a restore error means "could not run" (target, tools) rather than "the backup
/// does not restore".
fn is_target_problem(e: &DumpError) -> bool {
    matches!(
        e.kind(),
        DumpErrorKind::Unreachable
            | DumpErrorKind::AuthFailed
            | DumpErrorKind::ToolNotFound
            | DumpErrorKind::VersionMismatch
            | DumpErrorKind::Connection
    )
}

fn cause_of(e: &DumpError) -> String {
    let tail = e
        .stderr_tail()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| l.contains("ERROR") || l.contains("error:") || l.contains("FATAL"))
                .or_else(|| t.lines().last())
        })
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default();
    format!("{e}{tail}")
}

struct Clock {
    phases: Vec<Phase>,
    mark: Instant,
}

impl Clock {
    fn lap(&mut self, name: &str) {
        let now = Instant::now();
        self.phases.push(Phase {
            name: name.to_owned(),
            millis: u64::try_from((now - self.mark).as_millis()).unwrap_or(u64::MAX),
        });
        self.mark = now;
    }
}

async fn run(
    repo: &Repository,
    opts: &DrillOptions,
    hook: Option<&dyn DrillHook>,
    progress: &dyn Progress,
) -> Result<DrillReport, DrillError> {
    let started_at = OffsetDateTime::now_utc();
    let t0 = Instant::now();
    let client = SqlClient::locate(&opts.locator)
        .await
        .map_err(DrillError::Target)?;

    let m = match &opts.backup {
        BackupChoice::Id(id) => repo.manifest(id).await?,
        other => {
            let listing = repo.list().await?;
            choose(&listing, other, opts.from_database.as_deref(), started_at)?
        }
    };
    if let Some(db) = &opts.from_database
        && m.database != *db
    {
        return Err(DrillError::Invalid(format!(
            "backup {} is of database {}, not {db}",
            m.id, m.database
        )));
    }
    let server = opts.target.server();
    if server == m.server && opts.target.dbname() == Some(m.database.as_str()) {
        return Err(DrillError::SameAsSource {
            server,
            database: m.database.clone(),
        });
    }
    let name = scratch_name(&m.database, started_at);
    if server == m.server && name == m.database {
        return Err(DrillError::SameAsSource {
            server,
            database: name,
        });
    }

    // The target must be usable before minutes are spent fetching the backup.
    if client
        .database_exists(&opts.target, &name)
        .await
        .map_err(DrillError::Target)?
    {
        return Err(DrillError::Invalid(format!(
            "a database named {name} already exists on {server}; another drill is running, or one was kept"
        )));
    }

    let mut clock = Clock {
        phases: Vec::new(),
        mark: Instant::now(),
    };
    let mut checks: Vec<CheckResult> = Vec::new();
    let mut toc_tables = 0u64;

    // Phase 1: fetch and verify (checksums, decompression, the archive's table of contents).
    let lister = TocLister::new(opts.locator.clone());
    let verified = match repo.verify(&m, Some(&lister), progress).await {
        Ok(report) => {
            checks.push(CheckResult {
                name: "fetch and verify".into(),
                passed: true,
                skipped: false,
                detail: format!(
                    "{} stored bytes, {} plain bytes, checksums match{}",
                    report.stored_size,
                    report.plain_size,
                    report
                        .toc_entries
                        .map(|n| format!(", {n} table-of-contents entries"))
                        .unwrap_or_default()
                ),
            });
            true
        }
        Err(e @ (CoreError::Integrity { .. } | CoreError::Manifest { .. })) => {
            checks.push(failed("fetch and verify", e.to_string()));
            false
        }
        Err(CoreError::Dump(e)) if !is_target_problem(&e) => {
            checks.push(failed("fetch and verify", cause_of(&e)));
            false
        }
        Err(CoreError::Dump(e)) => return Err(DrillError::Target(e)),
        Err(e) => return Err(e.into()),
    };
    let tables = lister.take();
    clock.lap("fetch_verify");

    let target = opts.target.with_dbname(&name);
    let mut scratch: Option<Scratch> = None;
    if verified {
        // Phase 2: restore into the scratch database.
        let guard = Scratch {
            client: client.clone(),
            server: opts.target.clone(),
            name: name.clone(),
            armed: true,
        };
        if let Err(e) = client.create_database(&opts.target, &name).await {
            let _ = guard.drop_now().await;
            return Err(DrillError::Target(e));
        }
        scratch = Some(guard);
        let restorer = PgRestore::new(target.clone(), opts.locator.clone(), &opts.spool_dir);
        let ropts = RestoreOptions::new()
            .with_verify_first(false)
            .with_jobs(opts.jobs);
        let restored = match repo.restore(&m, &restorer, &ropts, progress).await {
            Ok(_) => {
                checks.push(passed("restore", "pg_restore exited cleanly"));
                true
            }
            Err(CoreError::Dump(e)) if is_target_problem(&e) => {
                if let Some(s) = scratch.take() {
                    let _ = s.drop_now().await;
                }
                return Err(DrillError::Target(e));
            }
            Err(CoreError::Dump(e)) => {
                checks.push(failed("restore", cause_of(&e)));
                false
            }
            Err(e @ CoreError::Storage(_)) => {
                if let Some(s) = scratch.take() {
                    let _ = s.drop_now().await;
                }
                return Err(e.into());
            }
            Err(e) => {
                checks.push(failed("restore", e.to_string()));
                false
            }
        };
        clock.lap("restore");

        if restored {
            // Phase 3: post-restore hooks (migrations).
            if let Some(h) = hook {
                match h.post_restore(&target).await {
                    Ok(()) => checks.push(passed("post_restore hooks", "ran")),
                    Err(e) => checks.push(failed("post_restore hooks", e)),
                }
            }
            clock.lap("hooks");

            // Phase 4: analyze, so the restored database is usable (and planned) as it would
            // be in a real recovery.
            if let Err(e) = client.query(&target, "analyze;", &[]).await {
                checks.push(failed("analyze", cause_of(&e)));
            }
            clock.lap("analyze");

            // Phase 5: checks.
            toc_tables = tables.as_ref().map_or(0, |t| t.len() as u64);
            let estimates = table_estimates(repo, &m.id).await;
            table_checks(
                &client,
                &target,
                tables.as_deref(),
                estimates.as_ref(),
                &mut checks,
            )
            .await;
            for s in &opts.smoke {
                checks.push(smoke(&client, &target, s).await);
            }
            clock.lap("checks");
        }
    }

    let rto = t0.elapsed();
    let rpo = (started_at - m.started_at).max(time::Duration::ZERO);
    let rpo_s = u64::try_from(rpo.whole_seconds()).unwrap_or(0);
    let rto_ms = u64::try_from(rto.as_millis()).unwrap_or(u64::MAX);
    let first_failure = checks
        .iter()
        .find(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail));
    let mut limit = None;
    if let Some(max) = opts.max_rto
        && rto > max
    {
        limit = Some(format!(
            "RTO {:.1}s exceeds the limit of {}s",
            rto.as_secs_f64(),
            max.as_secs()
        ));
    }
    if let Some(max) = opts.max_rpo
        && rpo_s > max.as_secs()
    {
        let msg = format!(
            "RPO {rpo_s}s (backup taken {}) exceeds the limit of {}s",
            m.started_at,
            max.as_secs()
        );
        limit = Some(limit.map_or(msg.clone(), |l| format!("{l}; {msg}")));
    }
    let (outcome, cause) = match (first_failure, limit) {
        (Some(f), _) => (DrillOutcome::CheckFailed, Some(f)),
        (None, Some(l)) => (DrillOutcome::LimitExceeded, Some(l)),
        (None, None) => (DrillOutcome::Passed, None),
    };

    let mut dropped = false;
    if let Some(s) = scratch {
        if opts.keep {
            let mut s = s;
            s.armed = false;
        } else {
            match s.drop_now().await {
                Ok(()) => dropped = true,
                Err(e) => {
                    tracing::error!(database = %name, error = %e, "could not drop the drill's scratch database; drop it by hand");
                }
            }
        }
    } else {
        dropped = !opts.keep;
    }

    let mut report = DrillReport {
        backup_id: m.id.clone(),
        set: m.set.clone(),
        database: m.database.clone(),
        job: opts.job.clone(),
        backup_started_at: m.started_at,
        stored_size: m.stored_size(),
        target_server: server,
        scratch_database: name,
        kept: opts.keep,
        dropped,
        started_at,
        finished_at: OffsetDateTime::now_utc(),
        outcome,
        cause,
        phases: clock.phases,
        rto_ms,
        rpo_s,
        max_rto_ms: opts
            .max_rto
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        max_rpo_s: opts.max_rpo.map(|d| d.as_secs()),
        toc_tables,
        checks,
        pgb_version: env!("CARGO_PKG_VERSION").to_owned(),
        recorded_as: None,
        record_error: None,
    };
    if opts.record {
        match record_drill(repo, &report, opts.auth_key.as_ref()).await {
            Ok(key) => report.recorded_as = Some(key.as_str().to_owned()),
            Err(e) => report.record_error = Some(e.to_string()),
        }
    }
    Ok(report)
}

fn passed(name: &str, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        name: name.to_owned(),
        passed: true,
        skipped: false,
        detail: detail.into(),
    }
}

fn failed(name: &str, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        name: name.to_owned(),
        passed: false,
        skipped: false,
        detail: detail.into(),
    }
}

fn skipped(name: &str, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        name: name.to_owned(),
        passed: true,
        skipped: true,
        detail: detail.into(),
    }
}

/// Every user table of the restored database and whether it holds at least one row (exact:
/// one `LIMIT 1` probe per table, in a single query).
const TABLES_SQL: &str = "select coalesce(json_agg(json_build_array(n.nspname, c.relname, \
     (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from (select 1 from %s %I.%I limit 1) x', \
        case when c.relkind = 'p' then '' else 'only' end, n.nspname, c.relname), false, true, '')))[1]::text::int > 0)), '[]') \
     from pg_class c join pg_namespace n on n.oid = c.relnamespace \
     where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') \
     and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%';";

async fn table_checks(
    client: &SqlClient,
    target: &ConnConfig,
    toc: Option<&[TocTable]>,
    estimates: Option<&BTreeMap<TocTable, i64>>,
    checks: &mut Vec<CheckResult>,
) {
    let present: BTreeMap<TocTable, bool> = match client.query(target, TABLES_SQL, &[]).await {
        Ok(out) => match serde_json::from_str::<Vec<(String, String, bool)>>(&out) {
            Ok(rows) => rows
                .into_iter()
                .map(|(schema, name, has_rows)| (TocTable { schema, name }, has_rows))
                .collect(),
            Err(e) => {
                checks.push(failed("tables", format!("unreadable table list: {e}")));
                return;
            }
        },
        Err(e) => {
            checks.push(failed("tables", cause_of(&e)));
            return;
        }
    };
    match toc {
        None => checks.push(skipped(
            "tables",
            "a plain SQL backup has no table of contents to compare",
        )),
        Some(toc) => {
            let missing: Vec<String> = toc
                .iter()
                .filter(|t| !present.contains_key(*t))
                .map(ToString::to_string)
                .collect();
            if missing.is_empty() {
                checks.push(passed(
                    "tables",
                    format!("all {} tables of the archive exist", toc.len()),
                ));
            } else {
                checks.push(failed(
                    "tables",
                    format!(
                        "{} of {} tables of the archive are missing: {}",
                        missing.len(),
                        toc.len(),
                        list_some(&missing)
                    ),
                ));
            }
        }
    }
    match estimates {
        None => checks.push(skipped(
            "rows",
            "the manifest carries no per-table row estimates (backup made before pgb recorded them); empty tables not checked",
        )),
        Some(est) => {
            let should_have_rows: Vec<&TocTable> =
                est.iter().filter(|(_, n)| **n > 0).map(|(t, _)| t).collect();
            let empty: Vec<String> = should_have_rows
                .iter()
                .filter(|t| present.get(**t) == Some(&false))
                .map(ToString::to_string)
                .collect();
            if empty.is_empty() {
                checks.push(passed(
                    "rows",
                    format!(
                        "all {} tables that held rows at backup time have rows",
                        should_have_rows.len()
                    ),
                ));
            } else {
                checks.push(failed(
                    "rows",
                    format!(
                        "{} tables held rows at backup time but are empty: {}",
                        empty.len(),
                        list_some(&empty)
                    ),
                ));
            }
        }
    }
}

fn list_some(items: &[String]) -> String {
    let mut s = items.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 5 {
        let _ = write!(s, " and {} more", items.len() - 5);
    }
    s
}

async fn smoke(client: &SqlClient, target: &ConnConfig, s: &SmokeStatement) -> CheckResult {
    let name = format!("smoke {}", s.name);
    match client.query(target, &s.sql, &[]).await {
        Err(e) => failed(&name, cause_of(&e)),
        Ok(out) => {
            let rows: Vec<&str> = out.lines().collect();
            if rows.len() != 1 {
                return failed(&name, format!("returned {} rows, expected one", rows.len()));
            }
            let first = rows[0].split('|').next().unwrap_or("");
            if first == "t" {
                passed(&name, "returned true")
            } else {
                failed(&name, format!("returned {first:?}, expected true"))
            }
        }
    }
}

/// Per-table row estimates recorded in the manifest at backup time (`table_estimates`),
/// read from the raw manifest so this works whatever version of the manifest struct this
/// build has. Accepts `{"schema.table": n}` or `[{"schema": .., "table"|"name": ..,
/// "rows"|"estimate"|"estimated_rows"|"reltuples": n, "has_rows": bool}]` (`has_rows`: the
/// backup's probe of a never-analyzed table, whose estimate is unknown). `None` when absent or
/// unreadable (or over [`pgb_core::layout::MAX_METADATA_BYTES`]).
async fn table_estimates(repo: &Repository, id: &BackupId) -> Option<BTreeMap<TocTable, i64>> {
    let key = pgb_core::layout::manifest_key(id);
    let bytes = repo
        .storage()
        .get_bytes_limited(&key, pgb_core::layout::MAX_METADATA_BYTES)
        .await
        .ok()??;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    parse_estimates(v.get("table_estimates")?)
}

fn parse_estimates(v: &serde_json::Value) -> Option<BTreeMap<TocTable, i64>> {
    let num = |v: &serde_json::Value| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64));
    let mut out = BTreeMap::new();
    match v {
        serde_json::Value::Object(map) => {
            for (k, n) in map {
                let (schema, name) = k.split_once('.')?;
                out.insert(
                    TocTable {
                        schema: schema.to_owned(),
                        name: name.to_owned(),
                    },
                    num(n)?,
                );
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                let schema = item.get("schema")?.as_str()?;
                let name = item.get("table").or_else(|| item.get("name"))?.as_str()?;
                let n = ["rows", "estimate", "estimated_rows", "reltuples"]
                    .iter()
                    .find_map(|k| item.get(*k).and_then(num))
                    .filter(|n| *n >= 0)
                    // Never analyzed: the backup probed whether it held a row.
                    .or_else(|| {
                        item.get("has_rows")
                            .and_then(serde_json::Value::as_bool)
                            .map(i64::from)
                    })
                    // Unknown (never analyzed, not probed): no rows are expected.
                    .unwrap_or(-1);
                out.insert(
                    TocTable {
                        schema: schema.to_owned(),
                        name: name.to_owned(),
                    },
                    n,
                );
            }
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_are_safe_and_short() {
        let at = time::macros::datetime!(2026-11-30 02:45:07 UTC);
        assert_eq!(scratch_name("app", at), "pgb_drill_app_20261130t024507z");
        let long = scratch_name(&"Ä-x".repeat(40), at);
        assert!(long.len() <= 63, "{long}");
        assert!(
            long.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
    }

    #[test]
    fn estimates_in_either_shape() {
        let a = parse_estimates(&serde_json::json!({"public.t": 5, "s.u": 0})).unwrap();
        let b = parse_estimates(&serde_json::json!([
            {"schema": "public", "table": "t", "rows": 5},
            {"schema": "s", "name": "u", "estimate": 0.0}
        ]))
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
        // A never-analyzed table: no estimate, but the backup's probe says whether it held rows.
        let c = parse_estimates(&serde_json::json!([
            {"schema": "public", "name": "fresh", "rows": null, "has_rows": true},
            {"schema": "public", "name": "fresh_empty", "has_rows": false},
            {"schema": "public", "name": "unknown", "rows": null}
        ]))
        .unwrap();
        let get = |n: &str| {
            c[&TocTable {
                schema: "public".into(),
                name: n.into(),
            }]
        };
        assert!(get("fresh") > 0);
        assert_eq!(get("fresh_empty"), 0);
        assert!(get("unknown") < 0);
        assert!(parse_estimates(&serde_json::json!("x")).is_none());
    }
}
