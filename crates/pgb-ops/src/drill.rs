//! Restore drills: prove that a backup restores, and how long it takes.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pgb_core::{
    AuthKey, BackupId, DumpError, DumpErrorKind, Error as CoreError, ErrorClass, Manifest,
    Progress, Repository, RestoreOptions,
};
use pgb_postgres::{ConnConfig, PgRestore, SqlClient, ToolLocator};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

mod checks;
mod cluster;
mod physical;
mod scratch;

use self::checks::{cause_of, failed, passed};
use self::scratch::{Scratch, scratch_name};
use crate::record::record_drill;
use crate::toc::{TocLister, TocTable};

pub use self::physical::{PitrDrillOptions, PitrReport, PitrTarget, drill_pitr, random_second};

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

impl BackupChoice {
    /// How far back `random` chooses when the caller names no window: 30 days.
    pub const DEFAULT_WITHIN: Duration = Duration::from_secs(30 * 86_400);
}

/// `latest`, `random` (within [`BackupChoice::DEFAULT_WITHIN`]; set another window on the
/// value) or a backup id.
impl std::str::FromStr for BackupChoice {
    type Err = pgb_core::InvalidBackupId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "latest" => Self::Latest,
            "random" => Self::Random {
                within: Self::DEFAULT_WITHIN,
            },
            id => Self::Id(id.parse()?),
        })
    }
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
    /// Of a whole-server backup, drill only this database (else every one it holds).
    pub database: Option<String>,
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
    /// The migration head the restored database must reach after the `post_restore` hook,
    /// and how heads are read ([`crate::MigrationExpectation`]).
    pub migrations: crate::MigrationExpectation,
}

impl DrillOptions {
    /// A drill of the newest backup on `target`, recorded, scratch database dropped.
    pub fn new(target: ConnConfig, locator: ToolLocator, spool_dir: impl Into<PathBuf>) -> Self {
        Self {
            backup: BackupChoice::Latest,
            from_database: None,
            database: None,
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
            migrations: crate::MigrationExpectation::new(),
        }
    }

    /// Sets the migration expectation.
    pub fn with_migrations(mut self, expect: crate::MigrationExpectation) -> Self {
        self.migrations = expect;
        self
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

    /// Of a whole-server backup, drills only this database.
    pub fn with_database(mut self, db: impl Into<String>) -> Self {
        self.database = Some(db.into());
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

/// Why a [`DrillHook`] failed: the hook's own error (e.g. `pgb_jobs::hooks::HookFailure`),
/// whose `Display` is the one-line cause the drill records.
pub type DrillHookError = Box<dyn std::error::Error + Send + Sync>;

/// Runs after the restore, before the checks (e.g. a job's `post_restore` migrations).
#[async_trait]
pub trait DrillHook: std::fmt::Debug + Send + Sync {
    /// Runs against the restored scratch database.
    ///
    /// # Errors
    /// Why it failed; the drill then fails its `post_restore hooks` check with its `Display`.
    async fn post_restore(&self, database: &ConnConfig) -> Result<(), DrillHookError>;
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
    /// The migration check failed: the backup's head did not fit the expected one (nothing
    /// was restored), or after the `post_restore` hook the database was behind the expected
    /// head, dirty, or had a failed migration row.
    MigrationFailed,
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
    /// The migration heads: recorded by the backup, before and after the `post_restore`
    /// hook, and the verdict against the expected head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations: Option<crate::MigrationReport>,
    /// A point-in-time recovery drill's target, window and what recovery reached
    /// ([`drill_pitr`]); absent for a drill of a dump.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pitr: Option<PitrReport>,
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
    /// A point-in-time drill's target lies outside the recoverable window; nothing was
    /// started.
    #[error(
        "drill target {target} is outside the recoverable window of cluster {system_identifier} ({from} to {to}): choose a time inside it (pgb list --windows) or random"
    )]
    OutsideWindow {
        /// The target asked for.
        target: String,
        /// The cluster.
        system_identifier: String,
        /// The window's start (the end of its oldest base backup).
        from: String,
        /// Its end (the newest archived commit).
        to: String,
        /// Whether the target lies before the window (else after it).
        before: bool,
    },
    /// A point-in-time drill has no window to recover into (no commit archived after a base
    /// backup, its time unknown, or a gap); nothing was started.
    #[error("{0}")]
    NoWindow(String),
    /// The archive does not take the chosen base backup to the target (as `restore
    /// --preview` finds it); nothing was started.
    #[error("{problem}")]
    Unreachable {
        /// One line: the target, the backup and why.
        problem: String,
        /// The verdict.
        reach: pgb_core::wal::Reach,
    },
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
/// The drill is a pipeline of steps: choose the backup, fetch and verify it, create the
/// scratch database and restore into it, run the hooks, analyze, check, record. The scratch
/// database is dropped, awaited, on every way out of the steps: the end, a step that could not
/// run, or `cancel` resolving (a signal; then this returns [`DrillError::Cancelled`]).
/// Dropping the returned future itself mid-drill spawns that drop on the current runtime.
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
    let started_at = OffsetDateTime::now_utc();
    let t0 = Instant::now();
    let mut cancel = std::pin::pin!(cancel);
    let prepare = prepare(repo, opts, started_at);
    let (m, client, scratch) = tokio::select! {
        biased;
        () = &mut cancel => return Err(DrillError::Cancelled),
        r = prepare => r?,
    };
    if m.cluster.is_some() {
        return Box::pin(cluster::drill(
            repo, opts, hook, progress, m, client, started_at, t0, cancel,
        ))
        .await;
    }
    if let Some(db) = &opts.database
        && *db != m.database
    {
        return Err(DrillError::Invalid(format!(
            "backup {} is of database {}, not {db}",
            m.id, m.database
        )));
    }
    let steps = steps(repo, opts, hook, progress, &m, &client, &scratch);
    let ran = tokio::select! {
        biased;
        () = &mut cancel => None,
        r = steps => Some(r),
    };
    let rto = t0.elapsed();
    // Every way out of the steps comes through here: the drop is awaited, never blocking.
    // Only a drill that ran keeps its database (`keep`).
    let dropped = scratch
        .finish(opts.keep && matches!(ran, Some(Ok(_))))
        .await;
    let found = ran.ok_or(DrillError::Cancelled)??;
    let mut report = verdict(opts, &m, found, started_at, rto, dropped, scratch.name());
    if opts.record {
        match record_drill(repo, &report, opts.auth_key.as_ref()).await {
            Ok(key) => report.recorded_as = Some(key.as_str().to_owned()),
            Err(e) => report.record_error = Some(e.to_string()),
        }
    }
    Ok(report)
}

/// The name of the drill's migration check.
const MIGRATIONS: &str = "migrations";

/// Step 1: the backup to restore and a free scratch database name on the target.
async fn prepare(
    repo: &Repository,
    opts: &DrillOptions,
    now: OffsetDateTime,
) -> Result<(Manifest, SqlClient, Scratch), DrillError> {
    let client = SqlClient::locate(&opts.locator)
        .await
        .map_err(DrillError::Target)?;
    let m = match &opts.backup {
        BackupChoice::Id(id) => repo.manifest(id).await?,
        other => {
            let listing = repo.list().await?;
            choose(&listing, other, opts.from_database.as_deref(), now)?
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
    let name = scratch_name(&m.database, now);
    for database in [opts.target.dbname().unwrap_or_default(), name.as_str()] {
        if server == m.server && database == m.database {
            return Err(DrillError::SameAsSource {
                server,
                database: database.to_owned(),
            });
        }
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
    let scratch = Scratch::new(client.clone(), opts.target.clone(), name);
    Ok((m, client, scratch))
}

/// What the steps after [`prepare`] found.
#[derive(Debug, Default)]
struct Found {
    checks: Vec<CheckResult>,
    phases: Vec<Phase>,
    toc_tables: u64,
    migrations: Option<crate::MigrationReport>,
}

/// Steps 2 to 6, each timed as a phase; a step whose check fails ends the pipeline there.
async fn steps(
    repo: &Repository,
    opts: &DrillOptions,
    hook: Option<&dyn DrillHook>,
    progress: &dyn Progress,
    m: &Manifest,
    client: &SqlClient,
    scratch: &Scratch,
) -> Result<Found, DrillError> {
    let mut found = Found::default();
    let mut clock = Clock::new();
    // Before anything is fetched: a backup whose head does not fit the expected one.
    let recorded = m.migrations_of(&m.database);
    if let Err(p) = opts
        .migrations
        .check_backup(m.id.as_str(), recorded, hook.is_some())
    {
        let target = opts
            .migrations
            .target
            .as_ref()
            .expect("a problem needs a target");
        found.migrations = Some(crate::MigrationReport::refused(target, recorded, &p));
        found
            .checks
            .push(failed(MIGRATIONS, format!("{p}; nothing was restored")));
        return Ok(found);
    }
    let (verified, tables) = fetch_verify(repo, opts, m, progress).await?;
    found.checks.push(verified);
    found.phases.push(clock.lap("fetch_verify"));
    if !found.checks[0].passed {
        return Ok(found);
    }
    let restored = restore(repo, opts, m, progress, scratch).await?;
    let ok = restored.passed;
    found.checks.push(restored);
    found.phases.push(clock.lap("restore"));
    if !ok {
        return Ok(found);
    }
    let target = scratch.conn();
    let hook_run = hook.map(|h| h.post_restore(&target));
    let (ran, heads) =
        crate::migrations::around_hook(client, &target, recorded, &opts.migrations, hook_run).await;
    if let Some(r) = ran {
        found.checks.push(match r {
            Ok(()) => passed("post_restore hooks", "ran"),
            Err(e) => failed("post_restore hooks", e.to_string()),
        });
    }
    match (&heads.passed, &heads.problem) {
        (Some(false), Some(p)) => found.checks.push(failed(MIGRATIONS, p.clone())),
        (Some(true), _) => found.checks.push(passed(
            MIGRATIONS,
            heads
                .last()
                .iter()
                .map(pgb_core::MigrationHead::label)
                .collect::<Vec<_>>()
                .join(", "),
        )),
        _ => {}
    }
    found.migrations = (!heads.is_empty()).then_some(heads);
    found.phases.push(clock.lap("hooks"));
    // Analyze, so the restored database is usable (and planned) as in a real recovery.
    if let Err(e) = client.query(&target, "analyze;", &[]).await {
        found.checks.push(failed("analyze", cause_of(&e)));
    }
    found.phases.push(clock.lap("analyze"));
    found.toc_tables = tables.as_ref().map_or(0, |t| t.len() as u64);
    let estimates = &m.table_estimates;
    let checked = checks::run(client, &target, tables.as_deref(), estimates, &opts.smoke).await;
    found.checks.extend(checked);
    found.phases.push(clock.lap("checks"));
    Ok(found)
}

/// Step 2: fetch and verify (checksums, decompression, the archive's table of contents);
/// the check and the archive's tables (`None`: no table of contents, plain SQL).
async fn fetch_verify(
    repo: &Repository,
    opts: &DrillOptions,
    m: &Manifest,
    progress: &dyn Progress,
) -> Result<(CheckResult, Option<Vec<TocTable>>), DrillError> {
    const NAME: &str = "fetch and verify";
    let lister = TocLister::new(opts.locator.clone(), &opts.spool_dir);
    let check = match repo.verify(m, Some(&lister), progress).await {
        Ok(r) => passed(
            NAME,
            format!(
                "{} stored bytes, {} plain bytes, checksums match{}",
                r.stored_size,
                r.plain_size,
                r.toc_entries
                    .map(|n| format!(", {n} table-of-contents entries"))
                    .unwrap_or_default()
            ),
        ),
        Err(e @ (CoreError::Integrity { .. } | CoreError::Manifest { .. })) => {
            failed(NAME, e.to_string())
        }
        Err(CoreError::Dump(e)) if !is_target_problem(&e) => failed(NAME, cause_of(&e)),
        Err(CoreError::Dump(e)) => return Err(DrillError::Target(e)),
        Err(e) => return Err(e.into()),
    };
    Ok((check, lister.take()))
}

/// Step 3: create the scratch database and restore the backup into it.
async fn restore(
    repo: &Repository,
    opts: &DrillOptions,
    m: &Manifest,
    progress: &dyn Progress,
    scratch: &Scratch,
) -> Result<CheckResult, DrillError> {
    const NAME: &str = "restore";
    scratch.create().await.map_err(DrillError::Target)?;
    let restorer = PgRestore::new(scratch.conn(), opts.locator.clone(), &opts.spool_dir);
    let ropts = RestoreOptions::new()
        .with_verify_first(false)
        .with_jobs(opts.jobs);
    match repo.restore(m, &restorer, &ropts, progress).await {
        Ok(_) => Ok(passed(NAME, "pg_restore exited cleanly")),
        Err(CoreError::Dump(e)) if is_target_problem(&e) => Err(DrillError::Target(e)),
        Err(CoreError::Dump(e)) => Ok(failed(NAME, cause_of(&e))),
        Err(e @ CoreError::Storage(_)) => Err(e.into()),
        Err(e) => Ok(failed(NAME, e.to_string())),
    }
}

/// The last step: the verdict on the checks and the RTO and RPO limits.
fn verdict(
    opts: &DrillOptions,
    m: &Manifest,
    found: Found,
    started_at: OffsetDateTime,
    rto: Duration,
    dropped: bool,
    scratch: &str,
) -> DrillReport {
    let rpo = (started_at - m.started_at).max(time::Duration::ZERO);
    let rpo_s = u64::try_from(rpo.whole_seconds()).unwrap_or(0);
    // A failed migration check is the cause even after the hook that failed with it: its
    // detail quotes the framework's own error row.
    let migration_failure = found
        .checks
        .iter()
        .find(|c| !c.passed && c.name == MIGRATIONS);
    let first_failure = migration_failure
        .or_else(|| found.checks.iter().find(|c| !c.passed))
        .map(|c| format!("{}: {}", c.name, c.detail));
    let mut limits = Vec::new();
    if let Some(max) = opts.max_rto
        && rto > max
    {
        limits.push(format!(
            "RTO {:.1}s exceeds the limit of {}s",
            rto.as_secs_f64(),
            max.as_secs()
        ));
    }
    if let Some(max) = opts.max_rpo
        && rpo_s > max.as_secs()
    {
        limits.push(format!(
            "RPO {rpo_s}s (backup taken {}) exceeds the limit of {}s",
            m.started_at
                .replace_nanosecond(0)
                .ok()
                .and_then(|t| t
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok())
                .unwrap_or_else(|| m.started_at.to_string()),
            max.as_secs()
        ));
    }
    let (outcome, cause) = match first_failure {
        Some(f) if migration_failure.is_some() => (DrillOutcome::MigrationFailed, Some(f)),
        Some(f) => (DrillOutcome::CheckFailed, Some(f)),
        None if !limits.is_empty() => (DrillOutcome::LimitExceeded, Some(limits.join("; "))),
        None => (DrillOutcome::Passed, None),
    };
    DrillReport {
        backup_id: m.id.clone(),
        set: m.set.clone(),
        database: m.database.clone(),
        job: opts.job.clone(),
        backup_started_at: m.started_at,
        stored_size: m.stored_size(),
        target_server: opts.target.server(),
        scratch_database: scratch.to_owned(),
        kept: opts.keep,
        dropped,
        started_at,
        finished_at: OffsetDateTime::now_utc(),
        outcome,
        cause,
        phases: found.phases,
        rto_ms: millis(rto),
        rpo_s,
        max_rto_ms: opts.max_rto.map(millis),
        max_rpo_s: opts.max_rpo.map(|d| d.as_secs()),
        toc_tables: found.toc_tables,
        checks: found.checks,
        migrations: found.migrations,
        pitr: None,
        pgb_version: env!("CARGO_PKG_VERSION").to_owned(),
        recorded_as: None,
        record_error: None,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn choose(
    listing: &pgb_core::Listing,
    choice: &BackupChoice,
    database: Option<&str>,
    now: OffsetDateTime,
) -> Result<Manifest, DrillError> {
    let none = || {
        DrillError::Repository(CoreError::NoBackups {
            database: database.map(str::to_owned),
        })
    };
    match choice {
        BackupChoice::Latest | BackupChoice::Id(_) => {
            listing.latest_logical(database).cloned().ok_or_else(none)
        }
        BackupChoice::Random { within } => {
            let since = now - *within;
            let candidates: Vec<&Manifest> = listing
                .backups
                .iter()
                .filter(|m| m.physical.is_none() && database.is_none_or(|d| m.database == d))
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

/// Times the phases: each lap is the time since the previous one.
struct Clock(Instant);

impl Clock {
    fn new() -> Self {
        Self(Instant::now())
    }

    fn lap(&mut self, name: &str) -> Phase {
        let now = Instant::now();
        let phase = Phase {
            name: name.to_owned(),
            millis: millis(now - self.0),
        };
        self.0 = now;
        phase
    }
}

#[cfg(test)]
mod tests {
    use super::BackupChoice;

    #[test]
    fn backup_choice_parses_latest_random_and_ids() {
        let parse = |s: &str| s.parse::<BackupChoice>().ok();
        assert_eq!(parse("latest"), Some(BackupChoice::Latest));
        let within = BackupChoice::DEFAULT_WITHIN;
        assert_eq!(parse("random"), Some(BackupChoice::Random { within }));
        let id = "20260501T143000Z-0a1b2c";
        assert_eq!(parse(id), Some(BackupChoice::Id(id.parse().unwrap())));
        assert_eq!(parse("newest"), None);
    }
}
