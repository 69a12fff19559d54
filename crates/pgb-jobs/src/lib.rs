//! # pgb-jobs
//!
//! One run of a configured job ([`pgb_config::ResolvedJob`]), as `pgb run JOB` and the daemon
//! do it: take the job's lock in the repository ([`pgb::JobLock`]), run the `pre_backup` hook
//! (failing aborts before pg_dump starts), back up, verify when `verify_after_backup`, prune
//! with the job's retention, then the `post_backup` hook, or `on_error` when anything failed.
//! Hooks get `PGB_JOB`, `PGB_EVENT`, `PGB_BACKUP_ID` and `PGB_STATUS`.
//!
//! After a restore, [`post_restore`] runs the job's `post_restore` hook (the application's
//! migrations) against the restored database, and [`JobDrillHook`] does the same inside a
//! restore drill.
//!
//! Like every pgb library it reads no environment and prints nothing: the caller passes the
//! dumper, the backup options (keys already read), the hook environment and the lock holder,
//! and renders the [`RunReport`].

use std::collections::BTreeMap;
use std::future::Future;

use pgb::{
    ArchiveChecker, BackupOptions, Dumper, Holder, JobLock, JobLockError, JobLockOptions, Manifest,
    Progress, PruneOptions, PruneReport, Repository, VerifyReport,
};
use pgb_config::{Hook, ResolvedJob};
use pgb_postgres::ConnConfig;
use pgb_scheduler::{HookEvent, HookReport, HookRun, Password, run_hook};
use serde::Serialize;

/// What one run needs besides the job.
pub struct JobRun<'a> {
    /// The job, resolved from the config file.
    pub job: &'a ResolvedJob,
    /// The job's repository, opened.
    pub repo: &'a Repository,
    /// pg_dump, configured for the job's database and format.
    pub dumper: &'a dyn Dumper,
    /// Compression, labels, encryption.
    pub options: &'a BackupOptions,
    /// Checks the archive's table of contents when verifying.
    pub checker: Option<&'a dyn ArchiveChecker>,
    /// Who takes the job's lock.
    pub holder: Holder,
    /// The environment hooks run with (plus the `PGB_*` variables).
    pub hook_env: BTreeMap<String, String>,
    /// Backup progress.
    pub progress: &'a dyn Progress,
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
    pub storage: Option<pgb::StorageStats>,
    /// The verification right after it.
    pub verify: Option<VerifyReport>,
    /// The prune with the job's retention.
    pub prune: Option<PruneReport>,
    /// Every hook that ran, in order.
    pub hooks: Vec<HookReport>,
}

/// Why a run failed; the report says what happened before.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Another run holds the job's lock, or the lock could not be taken.
    #[error(transparent)]
    Lock(#[from] JobLockError),
    /// The `pre_backup` hook failed: pg_dump never started.
    #[error("pre_backup hook failed, backup not started: {0}")]
    PreBackup(String),
    /// The backup, verification or prune failed.
    #[error(transparent)]
    Pgb(#[from] pgb::Error),
    /// The `post_backup` hook failed after a committed backup.
    #[error("the backup committed, but the post_backup hook failed: {0}")]
    PostBackup(String),
}

/// A failed run: the error and the report of what happened before it.
#[derive(Debug)]
pub struct RunFailure {
    /// What failed.
    pub error: RunError,
    /// What ran.
    pub report: RunReport,
}

/// Runs `run.job` once. `cancel` completing cancels a running backup (nothing is committed)
/// and the lock is released either way.
///
/// # Errors
/// [`RunFailure`]: the lock is held elsewhere, a hook or the backup failed.
pub async fn run_job(
    run: &JobRun<'_>,
    cancel: impl Future<Output = ()> + Send,
) -> Result<RunReport, Box<RunFailure>> {
    let mut report = RunReport {
        job: run.job.name.clone(),
        backup: None,
        storage: None,
        verify: None,
        prune: None,
        hooks: Vec::new(),
    };
    let lock = match JobLock::acquire(
        std::sync::Arc::clone(run.repo.storage()),
        &run.job.name,
        run.holder.clone(),
        JobLockOptions::default(),
    )
    .await
    {
        Ok(l) => l,
        Err(e) => {
            return Err(Box::new(RunFailure {
                error: e.into(),
                report,
            }));
        }
    };
    let result = steps(run, &mut report, cancel).await;
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
        if !r.ok() && result.is_ok() {
            result = Err(RunError::PostBackup(r.summary()));
        }
        report.hooks.push(r);
    }
    match result {
        Ok(()) => Ok(report),
        Err(error) => Err(Box::new(RunFailure { error, report })),
    }
}

async fn steps(
    run: &JobRun<'_>,
    report: &mut RunReport,
    cancel: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    if let Some(hook) = &run.job.hooks.pre_backup {
        let r = hook_run(run, hook, HookEvent::PreBackup, None, "running").await;
        let ok = r.ok();
        let summary = r.summary();
        report.hooks.push(r);
        if !ok {
            return Err(RunError::PreBackup(summary));
        }
    }
    let backup = run
        .repo
        .backup_report_until(run.dumper, run.options, run.progress, cancel)
        .await?;
    report.storage = Some(backup.storage);
    let manifest = report.backup.insert(backup.manifest).clone();
    if run.job.verify_after_backup {
        report.verify = Some(
            run.repo
                .verify(&manifest, run.checker, run.progress)
                .await?,
        );
    }
    if let Some(policy) = &run.job.retention {
        report.prune = Some(run.repo.prune(policy, &PruneOptions::default()).await?);
    }
    Ok(())
}

async fn hook_run(
    run: &JobRun<'_>,
    hook: &Hook,
    event: HookEvent,
    backup_id: Option<String>,
    status: &str,
) -> HookReport {
    run_hook(&HookRun {
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
    .await
}

/// Where a `post_restore` hook runs: the restored database and how to reach it.
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
    Some(
        run_hook(&HookRun {
            program: hook.program.clone(),
            argv: hook.argv.clone(),
            env: hook_env.clone(),
            job: job.name.clone(),
            event: HookEvent::PostRestore,
            backup_id: backup_id.map(str::to_owned),
            status: Some("success".to_owned()),
            database_url: Some(target.database.redacted()),
            password: target.password.clone(),
            timeout: job.hooks.timeout,
            cwd: None,
        })
        .await,
    )
}

/// A drill's `post_restore` step: the job's hook run against the drill's scratch database.
#[derive(Debug)]
pub struct JobDrillHook {
    /// The job whose `post_restore` hook runs.
    pub job: ResolvedJob,
    /// The environment hooks run with.
    pub hook_env: BTreeMap<String, String>,
    /// The scratch server's password, as `PGPASSWORD`.
    pub password: Option<Password>,
}

#[async_trait::async_trait]
impl pgb_ops::DrillHook for JobDrillHook {
    async fn post_restore(&self, database: &ConnConfig) -> Result<(), String> {
        let target = RestoredDatabase {
            database: database.clone(),
            password: self.password.clone(),
        };
        match post_restore(&self.job, &self.hook_env, None, &target).await {
            Some(r) if !r.ok() => {
                for l in &r.output {
                    tracing::info!(job = %self.job.name, hook = "post_restore", line = %l.line, "hook output");
                }
                Err(r.summary())
            }
            _ => Ok(()),
        }
    }
}
