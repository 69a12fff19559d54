//! # pgb-jobs
//!
//! One run of a configured job ([`pgb_config::ResolvedJob`]), as `pgb run JOB` and the daemon
//! do it: take the job's lock in the repository ([`pgb_core::JobLock`]), run the `pre_backup` hook
//! (failing aborts before pg_dump starts), back up, verify when `verify_after_backup` (and
//! record the passed verify beside the backup, so prune's newest-verified rule counts it),
//! prune with the job's retention, then the `post_backup` hook, or `on_error` when anything
//! failed. Hooks get `PGB_JOB`, `PGB_EVENT`, `PGB_BACKUP_ID` and `PGB_STATUS`.
//!
//! With a [`Notifier`] the run is announced when it begins (healthchecks `/start`) and its
//! outcome sent when it ends (`backup_succeeded` or `backup_failed`: webhook, Slack, and the
//! healthchecks success or `/fail` ping with the run's last log lines), both pings paired by
//! one run id. A notification that cannot be delivered never fails the run.
//!
//! A job's migration keys: [`migration_probe`] (the heads its backups record, also in the
//! notification), [`expected_migration`] (the head its restores and drills must reach, from
//! `expected_migration` or by running `expected_migration_command`).
//!
//! [`hooks::run_hook`] runs one hook: its argv without a shell, with a timeout (the whole
//! process group killed), in the job's environment plus `PGB_JOB`, `PGB_EVENT`,
//! `PGB_BACKUP_ID`, `PGB_STATUS`, returning a [`hooks::HookReport`].
//!
//! After `pgb restore --job`, [`post_restore`] runs the job's `post_restore` hook (the
//! application's migrations) against the restored database.
//!
//! [`PostRestoreHook`] is a job's `post_restore` hook as a drill hook ([`pgb_ops::DrillHook`]):
//! `pgb drill --job NAME` runs the job's migrations against the restored scratch database,
//! timed as the drill's `hooks` phase.
//!
//! [`daemon`] is `pgb daemon` as a library: the scheduler's entries of a config file's jobs,
//! the [`pgb_scheduler::JobRunner`] that runs a job's plan or drill, and the `/metrics` and
//! status page refreshed from each job's repository in the background.
//!
//! Like every pgb library it reads no environment and prints nothing: the caller passes the
//! dumper, the backup options (keys already read), the hook environment and the lock holder,
//! and renders the [`RunReport`].

pub mod daemon;
pub mod hooks;
mod host;
pub mod keys;
mod migrations;
mod notify;
mod plan;
mod proving;
mod report;
mod sets;

pub use host::{
    GraceError, RolePasswordsUnencrypted, UrlError, archive_checker, backup_options, connection,
    database, database_url, directory_dumper, drill_target, gc_grace, holder, hook_password,
    open_repository, repository_url, resolve_job, resolve_jobs, server_dumper, spool_dir, temp_dir,
    tools_in,
};
pub use migrations::{
    ExpectationError, ExpectedError, ProbeError, expectation as migration_expectation,
    expected_migration, labels as migration_labels, migration_probe, notify_drill_heads,
    notify_heads, parse_target as parse_expected_migration, probe as probe_migrations,
};
pub use notify::{NotifyError, NotifyTargets, notifier, notifier_for};
pub use plan::{
    JobDumper, JobPlan, PlanError, PlannedBackup, dump_options, hook_env, job_wal_push,
    selection_options, tools,
};
pub use proving::{
    DrillCommon, JobDrill, SmokeFileError, check_options, drill_notification, job_auth_key,
    job_check, job_check_limits, job_database, job_decryption, job_repository, job_warnings,
    outcome_name,
};
pub use report::{SinceError, job_report, parse_since};
pub use sets::{intended_set, job_intended_set, job_retention_set, storage_options};

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Instant;

use hooks::{HookEvent, HookReport, HookRun, Password, run_hook};
use pgb_config::{Hook, ResolvedJob};
use pgb_core::{
    ArchiveChecker, AuthKey, BackupOptions, BackupReport, ClusterDumper, DirectoryDumper, Dumper,
    Holder, JobLock, JobLockError, JobLockOptions, Manifest, Progress, PruneReport, Repository,
    VerifyReport,
};
use pgb_notify::{Delivery, Event, Notification, Notifier, RunId};
use pgb_postgres::ConnConfig;
use serde::Serialize;

/// What one run needs besides the job.
pub struct JobRun<'a> {
    /// The job, resolved from the config file.
    pub job: &'a ResolvedJob,
    /// The job's repository, opened.
    pub repo: &'a Repository,
    /// What the job backs up, and how (compression, labels, encryption, files).
    pub backup: JobBackup<'a>,
    /// Checks the archive's table of contents when verifying.
    pub checker: Option<&'a dyn ArchiveChecker>,
    /// Who takes the job's lock.
    pub holder: Holder,
    /// The environment hooks run with (plus the `PGB_*` variables).
    pub hook_env: BTreeMap<String, String>,
    /// Backup progress.
    pub progress: &'a dyn Progress,
    /// Where the run's start and outcome are sent, when configured.
    pub notifier: Option<&'a Notifier>,
    /// Authenticates the verification record (`verify_after_backup`) when the repository
    /// uses an authentication key.
    pub auth_key: Option<&'a AuthKey>,
}

/// What a job backs up.
#[derive(Debug, Clone, Copy)]
pub enum JobBackup<'a> {
    /// One database, streamed from pg_dump (custom or plain format).
    Database {
        /// pg_dump, configured for the job's database and format.
        dumper: &'a dyn Dumper,
        /// Compression, labels, encryption.
        options: &'a BackupOptions,
    },
    /// Every database of a server plus its globals (`all_databases`), as one backup.
    Server {
        /// The server's dumper (databases listed at each run).
        dumper: &'a dyn ClusterDumper,
        /// Compression, labels, encryption.
        options: &'a BackupOptions,
    },
    /// One database in pg_dump's directory format, `jobs` at a time.
    Directory {
        /// `pg_dump -Fd -j N` into a spool.
        dumper: &'a dyn DirectoryDumper,
        /// Parallel dump jobs and uploads.
        jobs: usize,
        /// Compression, labels, encryption.
        options: &'a BackupOptions,
    },
    /// A physical base backup of the whole cluster (`format = "physical"`).
    Physical {
        /// `pg_basebackup`, with the job's WAL mode.
        dumper: &'a dyn pgb_core::physical::PhysicalDumper,
        /// How long the backup waits for its WAL to reach the archive.
        wal_wait: std::time::Duration,
        /// Compression, labels, encryption.
        options: &'a BackupOptions,
    },
}

impl<'a> JobBackup<'a> {
    /// The library's backup request for this backup: the one place the kind is chosen
    /// ([`pgb_core::Repository::backup_request`]).
    pub fn request(&self) -> pgb_core::BackupRequest<'a> {
        match *self {
            Self::Database { dumper, options } => {
                pgb_core::BackupRequest::database(dumper, options)
            }
            Self::Server { dumper, options } => pgb_core::BackupRequest::cluster(dumper, options),
            Self::Directory {
                dumper,
                jobs,
                options,
            } => pgb_core::BackupRequest::directory(dumper, jobs, options),
            Self::Physical {
                dumper,
                wal_wait,
                options,
            } => pgb_core::BackupRequest::physical(dumper, wal_wait, options),
        }
    }

    async fn run(
        self,
        repo: &Repository,
        progress: &dyn Progress,
        cancel: impl Future<Output = ()> + Send,
    ) -> Result<BackupReport, pgb_core::Error> {
        repo.backup_request(self.request(), progress, cancel)
            .await
            .map(pgb_core::BackupOutcome::into_report)
    }
}

impl std::fmt::Debug for JobRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRun")
            .field("job", &self.job.name)
            .finish_non_exhaustive()
    }
}

/// What a run did: shared by `pgb run --json`, the daemon's log and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The job.
    pub job: String,
    /// The committed backup.
    pub backup: Option<Manifest>,
    /// What the network did during the backup: retries, resumed downloads, exhausted budgets.
    pub storage: Option<pgb_core::StorageStats>,
    /// The verification right after it.
    pub verify: Option<VerifyReport>,
    /// The prune with the job's retention.
    pub prune: Option<PruneReport>,
    /// Every hook that ran, in order.
    pub hooks: Vec<HookReport>,
    /// Why the passed verify could not be recorded (the run still succeeds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_not_recorded: Option<String>,
    /// Every notification sent: the start ping, then the outcome.
    pub notifications: Vec<Delivery>,
}

/// Why a run failed; the report says what happened before.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Another run holds the job's lock, or the lock could not be taken.
    #[error(transparent)]
    Lock(#[from] JobLockError),
    /// The `pre_backup` hook failed: pg_dump never started.
    #[error("pre_backup hook failed, backup not started: {0}")]
    PreBackup(hooks::HookFailure),
    /// The backup, verification or prune failed.
    #[error(transparent)]
    Pgb(#[from] pgb_core::Error),
    /// The verify and drill records that guard the prune could not be read; nothing was
    /// pruned.
    #[error("cannot read the verification evidence prune relies on; nothing pruned: {0}")]
    Evidence(pgb_ops::RecordError),
    /// The `post_backup` hook failed after a committed backup.
    #[error("the backup committed, but the post_backup hook failed: {0}")]
    PostBackup(hooks::HookFailure),
}

/// A failed run: the error and the report of what happened before it.
#[derive(Debug)]
pub struct RunFailure {
    /// What failed.
    pub error: RunError,
    /// What ran.
    pub report: RunReport,
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "job {}: {}", self.report.job, self.error)
    }
}

impl std::error::Error for RunFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Runs `run.job` once. `cancel` completing cancels a running backup (nothing is committed)
/// and the lock is released either way. With a notifier, the run is announced first and its
/// outcome sent last (also when the lock is held elsewhere).
///
/// # Errors
/// [`RunFailure`]: the lock is held elsewhere, a hook or the backup failed.
pub async fn run_job(
    run: &JobRun<'_>,
    cancel: impl Future<Output = ()> + Send,
) -> Result<RunReport, Box<RunFailure>> {
    let t0 = Instant::now();
    let rid = RunId::generate();
    let mut report = RunReport {
        job: run.job.name.clone(),
        backup: None,
        storage: None,
        verify: None,
        prune: None,
        hooks: Vec::new(),
        verify_not_recorded: None,
        notifications: Vec::new(),
    };
    // The start ping goes out while the run begins: a slow endpoint never delays the backup.
    let start = async {
        match run.notifier {
            Some(n) => n.start(&rid).await,
            None => Vec::new(),
        }
    };
    let (started, result) = tokio::join!(start, locked(run, &mut report, cancel));
    report.notifications = started;
    if let Some(n) = run.notifier {
        let outcome = notification(run, &report, result.as_ref().err(), t0);
        report.notifications.extend(n.notify(&outcome, &rid).await);
    }
    match result {
        Ok(()) => Ok(report),
        Err(error) => Err(Box::new(RunFailure { error, report })),
    }
}

/// Takes the lock, runs the steps, releases it, then the `post_backup` or `on_error` hook.
async fn locked(
    run: &JobRun<'_>,
    report: &mut RunReport,
    cancel: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    let lock = JobLock::acquire(
        std::sync::Arc::clone(run.repo.storage()),
        &run.job.name,
        run.holder.clone(),
        JobLockOptions::default(),
    )
    .await?;
    let result = steps(run, report, cancel).await;
    if let Err(e) = lock.release().await {
        tracing::warn!(job = %run.job.name, error = %e, "cannot release the job lock");
    }
    let status = if result.is_ok() { "success" } else { "failure" };
    let hooks = &run.job.hooks;
    let last = if result.is_ok() {
        hooks
            .post_backup
            .as_ref()
            .map(|h| (h, HookEvent::PostBackup))
    } else {
        hooks.on_error.as_ref().map(|h| (h, HookEvent::OnError))
    };
    let mut result = result;
    if let Some((hook, event)) = last {
        let id = report.backup.as_ref().map(|m| m.id.to_string());
        let r = hook_run(run, hook, event, id, status).await;
        if let Some(failure) = r.failure()
            && result.is_ok()
        {
            result = Err(RunError::PostBackup(failure));
        }
        report.hooks.push(r);
    }
    result
}

/// Hook output lines kept per hook in a failure ping's log tail.
const TAIL_PER_HOOK: usize = 10;

/// `backup_succeeded` or `backup_failed` for the run so far; the failure carries the run's
/// last log lines: each hook's summary and its last output lines, then the error and its
/// causes.
fn notification(
    run: &JobRun<'_>,
    report: &RunReport,
    error: Option<&RunError>,
    t0: Instant,
) -> Notification {
    let mut n = match error {
        None => Notification::new(Event::BackupSucceeded).with_status("succeeded"),
        Some(e) => Notification::new(Event::BackupFailed)
            .with_status("failed")
            .with_cause(e.to_string()),
    }
    .with_job(run.job.name.clone())
    .with_host(run.holder.host.clone())
    .with_duration("total", t0.elapsed());
    if let Some(m) = &report.backup {
        n = notify_heads(n, m)
            .with_set(m.set.clone())
            .with_backup_id(m.id.to_string())
            .with_size("stored", m.stored_size())
            .with_size("plain", m.plain_size());
    }
    if let Some(e) = error {
        let mut tail = Vec::new();
        for h in &report.hooks {
            tail.push(h.summary());
            let skip = h.output.len().saturating_sub(TAIL_PER_HOOK);
            tail.extend(h.output.iter().skip(skip).map(|l| format!("  {}", l.line)));
        }
        tail.push(format!("error: {e}"));
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            tail.push(format!("caused by: {s}"));
            src = s.source();
        }
        n = n.with_log_tail(tail);
    }
    n
}

async fn steps(
    run: &JobRun<'_>,
    report: &mut RunReport,
    cancel: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    if let Some(hook) = &run.job.hooks.pre_backup {
        let r = hook_run(run, hook, HookEvent::PreBackup, None, "running").await;
        let failure = r.failure();
        report.hooks.push(r);
        if let Some(failure) = failure {
            return Err(RunError::PreBackup(failure));
        }
    }
    let backup = Box::pin(run.backup.run(run.repo, run.progress, cancel)).await?;
    report.storage = Some(backup.storage);
    let manifest = report.backup.insert(backup.manifest).clone();
    // The one after-commit step (as `pgb backup`): verify and record it, then prune only this
    // job's retention set, never the newest verified backup.
    let mut steps = pgb_ops::AfterCommit::new()
        .with_auth_key(run.auth_key)
        .with_retention(
            run.job
                .retention
                .as_ref()
                .map(|p| p as &dyn pgb_core::RetentionPolicy),
        );
    if run.job.verify_after_backup {
        steps = steps.with_verify(run.checker);
    }
    let mut after = pgb_ops::AfterCommitReport::default();
    let result = pgb_ops::after_commit(run.repo, &manifest, &steps, run.progress, &mut after).await;
    report.verify = after.verify;
    report.verify_not_recorded = after.verify_not_recorded;
    report.prune = after.prune;
    result.map_err(|e| match e {
        pgb_ops::AfterCommitError::Pgb(e) => RunError::Pgb(e),
        pgb_ops::AfterCommitError::Record(e) => RunError::Evidence(e),
    })
}

async fn hook_run(
    run: &JobRun<'_>,
    hook: &Hook,
    event: HookEvent,
    backup_id: Option<String>,
    status: &str,
) -> HookReport {
    let r = run_hook(&HookRun {
        program: hook.program.clone(),
        argv: hook.argv.clone(),
        env: run.hook_env.clone(),
        job: run.job.name.clone(),
        event,
        backup_id,
        status: Some(status.to_owned()),
        database_url: None,
        password: None,
        timeout: run.job.hooks.timeout,
        cwd: None,
    })
    .await;
    log_hook(&run.job.name, &r);
    r
}

/// Logs a hook's output lines (passwords already masked by the hook runner) and its outcome;
/// environment values never appear.
pub fn log_hook(job: &str, r: &HookReport) {
    let event = r.event.as_str();
    for l in &r.output {
        tracing::info!(job, hook = event, stream = ?l.stream, "{}", l.line);
    }
    if r.ok() {
        tracing::info!(job, hook = event, ms = r.duration_ms, "{}", r.summary());
    } else {
        tracing::warn!(job, hook = event, ms = r.duration_ms, "{}", r.summary());
    }
}

/// A job's `post_restore` hook, run by a restore drill against the restored scratch database:
/// the argv (no shell) with the job's hook environment plus `PGB_JOB`, `PGB_EVENT=post_restore`,
/// `PGB_STATUS=success`, `DATABASE_URL` (the scratch database, without the password) and
/// `PGPASSWORD` (when the target has one), killed after the job's hook timeout. A hook that
/// exits non-zero fails the drill's `post_restore hooks` check; its time is the drill's `hooks`
/// phase. [`PostRestoreHook::report`] keeps what it did (exit code, output) for the caller.
#[derive(Debug)]
pub struct PostRestoreHook {
    job: String,
    hook: Hook,
    env: BTreeMap<String, String>,
    timeout: std::time::Duration,
    /// `PGPASSWORD` when the scratch server's URL carries none (it came from the environment).
    password: Option<Password>,
    report: std::sync::Mutex<Option<HookReport>>,
}

impl PostRestoreHook {
    /// The hook `hook` of job `job`, run with `env` (the hook environment, as
    /// [`JobRun::hook_env`]) and killed after `timeout`.
    pub fn new(
        job: impl Into<String>,
        hook: Hook,
        env: BTreeMap<String, String>,
        timeout: std::time::Duration,
    ) -> Self {
        Self {
            job: job.into(),
            hook,
            env,
            timeout,
            password: None,
            report: std::sync::Mutex::new(None),
        }
    }

    /// The password passed as `PGPASSWORD` when the database's URL carries none.
    pub fn with_password(mut self, password: Option<Password>) -> Self {
        self.password = password;
        self
    }

    /// The job's `post_restore` hook, when it has one.
    pub fn for_job(job: &ResolvedJob, env: BTreeMap<String, String>) -> Option<Self> {
        let hook = job.hooks.post_restore.clone()?;
        Some(Self::new(job.name.clone(), hook, env, job.hooks.timeout))
    }

    /// What the hook did, once it ran.
    pub fn report(&self) -> Option<HookReport> {
        self.report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[async_trait::async_trait]
impl pgb_ops::DrillHook for PostRestoreHook {
    async fn post_restore(&self, database: &ConnConfig) -> Result<(), pgb_ops::DrillHookError> {
        let target = RestoredDatabase {
            database: database.clone(),
            password: self.password.clone(),
        };
        let r = run_post_restore(
            &self.job,
            &self.hook,
            &self.env,
            self.timeout,
            None,
            &target,
        )
        .await;
        let result = match r.failure() {
            None => Ok(()),
            Some(f) => Err(f.into()),
        };
        *self
            .report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r);
        result
    }
}

/// Where a `post_restore` hook runs after `pgb restore --job`: the restored database.
#[derive(Debug, Clone)]
pub struct RestoredDatabase {
    /// The restored database (its URL, without a password, becomes `DATABASE_URL`).
    pub database: ConnConfig,
    /// Its password, passed as `PGPASSWORD` (never in the URL, a report or a log).
    pub password: Option<Password>,
}

/// Runs the job's `post_restore` hook (if any) after a successful restore of `backup_id`,
/// with `DATABASE_URL` and `PGPASSWORD` for the restored database. `None`: the job has none.
pub async fn post_restore(
    job: &ResolvedJob,
    hook_env: &BTreeMap<String, String>,
    backup_id: Option<&str>,
    target: &RestoredDatabase,
) -> Option<HookReport> {
    let hook = job.hooks.post_restore.as_ref()?;
    let timeout = job.hooks.timeout;
    Some(run_post_restore(&job.name, hook, hook_env, timeout, backup_id, target).await)
}

/// One `post_restore` run: `DATABASE_URL` without the password, `PGPASSWORD` from the URL or
/// the caller; logged.
async fn run_post_restore(
    job: &str,
    hook: &Hook,
    env: &BTreeMap<String, String>,
    timeout: std::time::Duration,
    backup_id: Option<&str>,
    target: &RestoredDatabase,
) -> HookReport {
    let r = run_hook(&HookRun {
        program: hook.program.clone(),
        argv: hook.argv.clone(),
        env: env.clone(),
        job: job.to_owned(),
        event: HookEvent::PostRestore,
        backup_id: backup_id.map(str::to_owned),
        status: Some("success".to_owned()),
        database_url: Some(target.database.redacted()),
        password: target
            .database
            .password()
            .map(Password::new)
            .or_else(|| target.password.clone()),
        timeout,
        cwd: None,
    })
    .await;
    log_hook(job, &r);
    r
}
