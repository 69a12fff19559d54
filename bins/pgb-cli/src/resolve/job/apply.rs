//! The resolved job (its flags already layered in by the config crate, [`super::flags`]) handed
//! to a command: typed values into typed slots (`Duration`s, sizes, the storage limits, the
//! policy), names and paths as they are. No value is written back as text to be parsed again,
//! and no precedence is decided here: the config crate's layers did that.
//!
//! `backup --job` takes only its repository, policy and verify from here: the backup itself
//! runs through the library's plan ([`pgb_jobs::JobPlan`]).

use pgb_config::{CheckConfig, ResolvedJob};

use super::{database_name, flags::JobFlags};
use crate::args::{
    BackupArgs, CheckArgs, DrillArgs, GcArgs, KeyArgs, ListArgs, PruneArgs, RepoArgs, ReportArgs,
    RestoreArgs, VerifyArgs,
};
use crate::exit::Failure;
use crate::resolve::Env;

/// A command that takes `--job`: its flags form the job's top layer, then the resolved job
/// supplies what the command reads.
pub(crate) trait FromJob: JobFlags {
    /// Hands the resolved job to the command.
    fn apply(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure>;
}

fn repo(a: &mut RepoArgs, job: &ResolvedJob) {
    a.repo = Some(job.repository.clone());
    a.from_job = Some(job.storage);
}

fn keys(a: &mut KeyArgs, job: &ResolvedJob) {
    let e = &job.encryption;
    if a.identity_file.is_empty() {
        a.identity_file.extend(e.identity_file.clone());
    }
    a.passphrase_file.clone_from(&e.passphrase_file);
}

/// The backup itself is planned from the job ([`pgb_jobs::JobPlan`]); the command keeps
/// what its own after-commit step and notification read: the repository, `--prune`'s policy
/// and whether to verify (`verify_after_backup`, which `--verify` sets).
impl FromJob for BackupArgs {
    fn apply(&mut self, job: &ResolvedJob, _env: Env<'_>) -> Result<(), Failure> {
        repo(&mut self.repo, job);
        self.policy.from_job.clone_from(&job.retention);
        self.verify = job.verify_after_backup;
        Ok(())
    }
}

impl FromJob for ListArgs {
    fn apply(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        repo(&mut self.repo, job);
        if self.database.is_none() {
            self.database = database_name(job, env);
        }
        Ok(())
    }
}

impl FromJob for VerifyArgs {
    fn apply(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        repo(&mut self.repo, job);
        keys(&mut self.keys, job);
        if self.from_database.is_none() && !self.all {
            self.from_database = database_name(job, env);
        }
        Ok(())
    }
}

impl FromJob for RestoreArgs {
    fn apply(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        repo(&mut self.repo, job);
        keys(&mut self.keys, job);
        if self.from_database.is_none() {
            self.from_database = database_name(job, env);
        }
        Ok(())
    }
}

impl FromJob for PruneArgs {
    fn apply(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        repo(&mut self.repo, job);
        self.policy.from_job.clone_from(&job.retention);
        // A job prunes only its own backups, never those of jobs sharing the repository.
        if self.set.is_empty() {
            self.set.push(super::retention_set(job, env)?);
        }
        Ok(())
    }
}

impl FromJob for ReportArgs {
    fn apply(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        repo(&mut self.repo, job);
        self.policy.from_job.clone_from(&job.retention);
        // A job's report covers its own set, as its prune does.
        if self.set.is_empty() {
            self.set.push(super::retention_set(job, env)?);
        }
        Ok(())
    }
}

impl FromJob for GcArgs {
    fn apply(&mut self, job: &ResolvedJob, _env: Env<'_>) -> Result<(), Failure> {
        repo(&mut self.repo, job);
        Ok(())
    }
}

impl FromJob for DrillArgs {
    fn apply(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        repo(&mut self.repo, job);
        keys(&mut self.keys, job);
        if self.from_database.is_none() {
            self.from_database = database_name(job, env);
        }
        let Some(d) = &job.drill else { return Ok(()) };
        self.target.clone_from(&d.target);
        self.smoke.clone_from(&d.smoke);
        // The job's `within` picks a random backup from the span, unless --backup chooses
        // another; a --within flag is judged as given (it needs --backup random).
        if self.within.is_none()
            && matches!(self.backup.as_deref(), None | Some("random"))
            && d.within.is_some()
        {
            self.backup = Some("random".to_owned());
        }
        self.from_job = Some(d.clone());
        Ok(())
    }
}

impl FromJob for CheckArgs {
    fn apply(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        repo(&mut self.repo, job);
        if self.database.is_none() {
            self.database = database_name(job, env);
        }
        let mut c = job.check.clone().unwrap_or(CheckConfig {
            max_age: None,
            min_size: None,
            max_size_drop: None,
            max_drill_age: None,
            max_rpo: None,
            max_wal_age: None,
        });
        if c.max_age.is_none() {
            // One period of the schedule plus a grace (26 h for a daily job) unless set.
            c.max_age = job.schedule.as_ref().and_then(|cron| {
                pgb_scheduler::default_max_age(cron, job.timezone, chrono::Utc::now())
            });
        }
        self.from_job = Some(c);
        Ok(())
    }
}
