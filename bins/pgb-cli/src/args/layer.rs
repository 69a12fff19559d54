//! Clap ↔ config-layer glue, beside the clap types: a command's flags beside `--job` as the
//! config crate's flag layer ([`FromJob::flags`]: every flag that is a job key becomes that
//! key as typed, `--min-size 500MB` is `check.min_size = "500MB"`), and the resolved job's
//! typed values back into the command's slots ([`FromJob::apply`]). Field mapping only:
//! layering, parsing, precedence and defaults are `pgb_config`'s, the job's derived values
//! (database name, retention set, check limits) `pgb_jobs`'s; `resolve::job::layer` calls
//! both. A group of flags replaces the job's whole group (`--table` drops its `schemas` too,
//! `--all-databases` its `include`/`exclude`); a policy flag replaces its whole policy.

use std::time::Duration;

use pgb_config::{
    CheckConfig, CheckSettings, DrillConfig, DrillSettings, JobSettings, ResolvedJob,
    StorageNetwork,
};

use super::{
    BackupArgs, CheckArgs, DrillArgs, Format, GcArgs, JobArgs, KeyArgs, ListArgs, PruneArgs,
    RepoArgs, ReportArgs, RestoreArgs, VerifyArgs, WalArg,
};
use crate::exit::Failure;
use crate::resolve::{Env, job::retention_set};

/// A command that takes `--job`: its flags form the job's top layer, then the resolved job
/// fills what the command reads.
pub(crate) trait FromJob {
    /// The `--job` and `--config` flags.
    fn job_args(&self) -> &JobArgs;
    /// Every flag given that is a job key.
    ///
    /// # Errors
    /// A storage limit that is no duration.
    fn flags(&self) -> Result<JobSettings, Failure>;
    /// Hands the resolved job (its flags layered in) to the command.
    fn apply(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure>;
}

/// Flag names of the job keys whose names differ (`storage_retries` is `--retries`); any
/// other key `a_b` is `--a-b`.
const FLAG_OF_KEY: &[(&str, &str)] = &[
    ("repository", "repo"),
    ("database", "db"),
    ("storage_retries", "retries"),
    ("storage_retry_budget_secs", "retry-budget"),
    ("storage_timeout_secs", "request-timeout"),
    ("storage_io_timeout_secs", "io-timeout"),
    ("labels", "label"),
    ("recipients", "recipient"),
    ("schemas", "schema"),
    ("exclude_schemas", "exclude-schema"),
    ("tables", "table"),
    ("exclude_tables", "exclude-table"),
    ("pg_dump_options", "pg-dump-option"),
    ("verify_after_backup", "verify"),
    ("timezone", "retention-tz"),
];

/// The flag of job key `key` (`check.min_size` is `--min-size`).
pub(crate) fn flag_of(key: &str) -> String {
    let last = key.rsplit('.').next().unwrap_or(key);
    FLAG_OF_KEY
        .iter()
        .find(|(k, _)| *k == last)
        .map_or_else(|| last.replace('_', "-"), |(_, f)| (*f).to_owned())
}

fn some<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

impl RepoArgs {
    /// The object-store limits: the job's (its flags layered in), else the flags, each a
    /// duration of at least 1s in the config's grammar.
    pub(crate) fn storage(&self) -> Result<StorageNetwork, Failure> {
        if let Some(s) = self.from_job {
            return Ok(s);
        }
        let d = |flag: &str, v: &Option<String>| -> Result<Option<Duration>, Failure> {
            let Some(v) = v else { return Ok(None) };
            match pgb_config::parse_duration(v) {
                Ok(d) if d >= Duration::from_secs(1) => Ok(Some(d)),
                Ok(_) => Err(Failure::usage(format!("--{flag} must be at least 1s"))),
                Err(e) => Err(Failure::usage(format!("--{flag}: {e}"))),
            }
        };
        Ok(StorageNetwork {
            retries: self.retries,
            retry_budget: d("retry-budget", &self.retry_budget)?,
            request_timeout: d("request-timeout", &self.request_timeout)?,
            io_timeout: d("io-timeout", &self.io_timeout)?,
        })
    }

    /// `--repo` and the object-store limits as job keys (the limits' keys hold seconds).
    fn layer(&self, s: &mut JobSettings) -> Result<(), Failure> {
        let n = self.storage()?;
        s.repository.clone_from(&self.repo);
        s.storage_retries = n.retries;
        s.storage_retry_budget_secs = n.retry_budget.map(|d| d.as_secs());
        s.storage_timeout_secs = n.request_timeout.map(|d| d.as_secs());
        s.storage_io_timeout_secs = n.io_timeout.map(|d| d.as_secs());
        Ok(())
    }

    fn apply(&mut self, job: &ResolvedJob) {
        self.repo = Some(job.repository.clone());
        self.from_job = Some(job.storage);
    }
}

impl KeyArgs {
    fn layer(&self, s: &mut JobSettings) {
        // The job's key holds one identity file; several flags stay flags (read as given).
        if let [one] = self.identity_file.as_slice() {
            s.identity_file = Some(one.clone());
        }
        s.passphrase_file.clone_from(&self.passphrase_file);
        s.auth_key_file.clone_from(&self.auth_key_file);
    }

    fn apply(&mut self, job: &ResolvedJob) {
        let e = &job.encryption;
        if self.identity_file.is_empty() {
            self.identity_file.extend(e.identity_file.clone());
        }
        self.passphrase_file.clone_from(&e.passphrase_file);
    }
}

impl Format {
    /// The format's name as the key `format` writes it.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Format::Custom => "custom",
            Format::Plain => "plain",
            Format::Directory => "directory",
        }
    }

    /// The library's archive format.
    pub(crate) fn archive(self) -> pgb::ArchiveFormat {
        match self {
            Format::Custom => pgb::ArchiveFormat::Custom,
            Format::Plain => pgb::ArchiveFormat::Plain,
            Format::Directory => pgb::ArchiveFormat::Directory,
        }
    }
}

impl RestoreArgs {
    /// The restore's options; what the backup is, the library reads from its manifest.
    pub(crate) fn options(&self) -> pgb::RestoreOptions {
        pgb::RestoreOptions::new()
            .with_clean(self.clean)
            .with_jobs(self.jobs.unwrap_or(pgb_config::defaults::JOBS))
            .with_allow_create(self.allow_create)
            .with_verify_first(!self.no_verify_first)
            .with_keep_owner(self.keep_owner)
            .with_keep_privileges(self.keep_privileges)
            .with_tables(self.select.table.clone())
            .with_schemas(self.select.schema.clone())
    }
}

impl FromJob for RestoreArgs {
    fn job_args(&self) -> &JobArgs {
        &self.job
    }
    fn flags(&self) -> Result<JobSettings, Failure> {
        let mut s = JobSettings::default();
        self.repo.layer(&mut s)?;
        self.keys.layer(&mut s);
        Ok(s)
    }
    fn apply(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        self.repo.apply(job);
        self.keys.apply(job);
        if self.from_database.is_none() {
            self.from_database = pgb_jobs::job_database(job, env);
        }
        Ok(())
    }
}

impl FromJob for VerifyArgs {
    fn job_args(&self) -> &JobArgs {
        &self.job
    }
    fn flags(&self) -> Result<JobSettings, Failure> {
        let mut s = JobSettings::default();
        self.repo.layer(&mut s)?;
        self.keys.layer(&mut s);
        Ok(s)
    }
    fn apply(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        self.repo.apply(job);
        self.keys.apply(job);
        if self.from_database.is_none() && !self.all {
            self.from_database = pgb_jobs::job_database(job, env);
        }
        Ok(())
    }
}

/// The repository, identity file and authentication key of a listing command.
fn listing(
    a: &RepoArgs,
    identity: &[std::path::PathBuf],
    auth: &Option<std::path::PathBuf>,
) -> Result<JobSettings, Failure> {
    let mut s = JobSettings::default();
    a.layer(&mut s)?;
    if let [one] = identity {
        s.identity_file = Some(one.clone());
    }
    s.auth_key_file.clone_from(auth);
    Ok(s)
}

impl FromJob for ListArgs {
    fn job_args(&self) -> &JobArgs {
        &self.job
    }
    fn flags(&self) -> Result<JobSettings, Failure> {
        listing(&self.repo, &self.identity_file, &self.auth_key_file)
    }
    fn apply(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        self.repo.apply(job);
        if self.database.is_none() {
            self.database = pgb_jobs::job_database(job, env);
        }
        Ok(())
    }
}

impl FromJob for GcArgs {
    fn job_args(&self) -> &JobArgs {
        &self.job
    }
    fn flags(&self) -> Result<JobSettings, Failure> {
        listing(&self.repo, &[], &self.auth_key_file)
    }
    fn apply(&mut self, job: &ResolvedJob, _env: Env<'_>) -> Result<(), Failure> {
        self.repo.apply(job);
        Ok(())
    }
}

/// `prune` and `report`: the job's policy (in its zone, `--retention-tz`) over its own set.
macro_rules! policed {
    () => {
        fn job_args(&self) -> &JobArgs {
            &self.job
        }
        fn flags(&self) -> Result<JobSettings, Failure> {
            let mut s = listing(&self.repo, &[], &self.auth_key_file)?;
            s.timezone.clone_from(&self.policy.retention_tz);
            Ok(s)
        }
        fn apply(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
            self.repo.apply(job);
            self.policy.from_job.clone_from(&job.retention);
            // A job prunes and reports only its own backups, never those of jobs sharing
            // the repository.
            if self.set.is_empty() {
                self.set.push(retention_set(job, env)?);
            }
            Ok(())
        }
    };
}

impl FromJob for PruneArgs {
    policed!();
}

impl FromJob for ReportArgs {
    policed!();
}

mod ops;

#[cfg(test)]
mod tests;
