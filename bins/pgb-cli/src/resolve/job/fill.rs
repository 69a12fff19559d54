//! Each command's arguments filled from a job: only what the flags left unset.

use std::time::Duration;

use pgb_config::ResolvedJob;

use super::{FromJob, database_name, require_backup_keys};
use crate::args::{
    BackupArgs, CheckArgs, DrillArgs, Format, GcArgs, JobArgs, KeyArgs, ListArgs, PruneArgs,
    RepoArgs, RestoreArgs, VerifyArgs,
};
use crate::exit::Failure;
use crate::resolve::Env;

/// A duration in the grammar of the duration flags.
fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

fn fill_repo(a: &mut RepoArgs, job: &ResolvedJob) {
    a.repo.get_or_insert_with(|| job.repository.clone());
    // Object-store retries and time limits the job sets (its file and environment layers).
    let s = &job.storage;
    if a.retries.is_none() {
        a.retries = s.retries;
    }
    if a.retry_budget.is_none() {
        a.retry_budget = s.retry_budget.map(secs);
    }
    if a.request_timeout.is_none() {
        a.request_timeout = s.request_timeout.map(secs);
    }
    if a.io_timeout.is_none() {
        a.io_timeout = s.io_timeout.map(secs);
    }
}

fn fill_keys(a: &mut KeyArgs, job: &ResolvedJob) {
    let e = &job.encryption;
    if a.identity_file.is_empty() {
        a.identity_file.extend(e.identity_file.clone());
    }
    if a.passphrase_file.is_none() {
        a.passphrase_file.clone_from(&e.passphrase_file);
    }
}

macro_rules! job_args {
    () => {
        fn job_args(&self) -> &JobArgs {
            &self.job
        }
    };
}

impl FromJob for BackupArgs {
    job_args!();
    fn fill(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        require_backup_keys(job, env)?;
        fill_repo(&mut self.repo, job);
        if self.db.is_none() {
            self.db.clone_from(&job.database);
        }
        if job.format == "physical" && self.format.is_none() {
            self.physical.physical = true;
            self.physical.wal.get_or_insert(if job.wal == "included" {
                crate::args::WalArg::Included
            } else {
                crate::args::WalArg::Archive
            });
            self.physical
                .wal_wait
                .get_or_insert_with(|| format!("{}s", job.wal_wait.as_secs()));
        }
        self.format.get_or_insert(match job.format.as_str() {
            "plain" => Format::Plain,
            "directory" => Format::Directory,
            _ => Format::Custom,
        });
        // Whole server, directory jobs, files and selection: a flag group given on the
        // command line replaces the job's.
        if let Some(w) = &job.whole_server
            && !self.cluster.all_databases
        {
            self.cluster.all_databases = true;
            self.cluster.include.clone_from(&w.include);
            self.cluster.exclude.clone_from(&w.exclude);
            self.cluster.with_role_passwords = w.with_role_passwords;
        }
        if self.directory.jobs.is_none() {
            self.directory.jobs = job.jobs;
        }
        if self.directory.spool_dir.is_none() {
            self.directory.spool_dir.clone_from(&job.spool_dir);
        }
        if self.files.files.is_empty() {
            self.files.files.clone_from(&job.files);
        }
        let sel = &mut self.select;
        let none_given = sel.schemas.is_empty()
            && sel.exclude_schema.is_empty()
            && sel.tables.is_empty()
            && sel.exclude_table.is_empty()
            && sel.exclude_table_data.is_empty()
            && sel.pg_dump_option.is_empty();
        if none_given {
            let j = &job.selection;
            sel.schemas.clone_from(&j.schemas);
            sel.exclude_schema.clone_from(&j.exclude_schemas);
            sel.tables.clone_from(&j.tables);
            sel.exclude_table.clone_from(&j.exclude_tables);
            sel.exclude_table_data.clone_from(&j.exclude_table_data);
            sel.pg_dump_option.clone_from(&j.pg_dump_options);
        }
        self.compression
            .get_or_insert_with(|| job.compression.clone());
        if self.label.is_empty() {
            self.label.clone_from(&job.labels);
        }
        let e = &job.encryption;
        let enc = &mut self.encrypt;
        if enc.recipient.is_empty() {
            enc.recipient.clone_from(&e.recipients);
        }
        if enc.recipients_file.is_none() {
            enc.recipients_file.clone_from(&e.recipients_file);
        }
        if enc.passphrase_file.is_none() {
            enc.passphrase_file.clone_from(&e.passphrase_file);
        }
        self.policy.from_job.clone_from(&job.retention);
        self.verify |= job.verify_after_backup;
        crate::resolve::migrations::fill_backup(&mut self.migrations, job);
        Ok(())
    }
}

impl FromJob for ListArgs {
    job_args!();
    fn fill(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        fill_repo(&mut self.repo, job);
        if self.database.is_none() {
            self.database = database_name(job, env);
        }
        Ok(())
    }
}

impl FromJob for VerifyArgs {
    job_args!();
    fn fill(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        fill_repo(&mut self.repo, job);
        fill_keys(&mut self.keys, job);
        if self.from_database.is_none() && !self.all {
            self.from_database = database_name(job, env);
        }
        Ok(())
    }
}

impl FromJob for RestoreArgs {
    job_args!();
    fn fill(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        fill_repo(&mut self.repo, job);
        fill_keys(&mut self.keys, job);
        if self.from_database.is_none() {
            self.from_database = database_name(job, env);
        }
        Ok(())
    }
}

impl FromJob for PruneArgs {
    job_args!();
    fn fill(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        fill_repo(&mut self.repo, job);
        self.policy.from_job.clone_from(&job.retention);
        // A job prunes only its own backups, never those of jobs sharing the repository.
        if self.set.is_empty() {
            self.set.push(super::retention_set(job, env)?);
        }
        Ok(())
    }
}

impl FromJob for crate::args::ReportArgs {
    job_args!();
    fn fill(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        fill_repo(&mut self.repo, job);
        self.policy.from_job.clone_from(&job.retention);
        // A job's report covers its own set, as its prune does.
        if self.set.is_empty() {
            self.set.push(super::retention_set(job, env)?);
        }
        Ok(())
    }
}

impl FromJob for GcArgs {
    job_args!();
    fn fill(&mut self, job: &ResolvedJob, _env: Env<'_>) -> Result<(), Failure> {
        fill_repo(&mut self.repo, job);
        Ok(())
    }
}

impl FromJob for DrillArgs {
    job_args!();
    fn fill(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        fill_repo(&mut self.repo, job);
        fill_keys(&mut self.keys, job);
        if self.from_database.is_none() {
            self.from_database = database_name(job, env);
        }
        let Some(d) = &job.drill else { return Ok(()) };
        if self.target.is_none() {
            self.target.clone_from(&d.target);
        }
        if self.smoke.is_empty() {
            self.smoke.clone_from(&d.smoke);
        }
        if self.max_rto.is_none() {
            self.max_rto = d.max_rto.map(secs);
        }
        if self.max_rpo.is_none() {
            self.max_rpo = d.max_rpo.map(secs);
        }
        // `within` picks a random backup from the span, unless --backup chooses another.
        if self.within.is_none()
            && matches!(self.backup.as_deref(), None | Some("random"))
            && let Some(w) = d.within
        {
            self.backup.get_or_insert_with(|| "random".to_owned());
            self.within = Some(secs(w));
        }
        Ok(())
    }
}

impl FromJob for CheckArgs {
    job_args!();
    fn fill(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        fill_repo(&mut self.repo, job);
        if self.database.is_none() {
            self.database = database_name(job, env);
        }
        let c = job.check.as_ref();
        if self.max_age.is_none() {
            // One period of the schedule plus a grace (26 h for a daily job) unless set.
            let from_schedule = job.schedule.as_ref().and_then(|cron| {
                pgb_scheduler::default_max_age(cron, job.timezone, chrono::Utc::now())
            });
            self.max_age = c.and_then(|c| c.max_age).or(from_schedule).map(secs);
        }
        if self.min_size.is_none() {
            self.min_size = c.and_then(|c| c.min_size).map(|b| b.to_string());
        }
        if self.max_size_drop.is_none() {
            self.max_size_drop = c.and_then(|c| c.max_size_drop).map(|p| p.to_string());
        }
        if self.max_drill_age.is_none() {
            self.max_drill_age = c.and_then(|c| c.max_drill_age).map(secs);
        }
        Ok(())
    }
}
