//! The flags beside `--job` as the config crate's flag layer: each flag that is also a job
//! key becomes that key, exactly as typed, so the config crate layers it over the file and
//! the environment (defaults < file < environment < flags, with `flag` as its provenance) and
//! parses it with the one grammar of every key (durations `s m h d w`, sizes `MB` = 10^6 and
//! `MiB` = 2^20). Nothing here parses a value, except the object-store limits, whose keys hold
//! seconds (`storage_retry_budget_secs`) while their flags take a duration (`--retry-budget
//! 10m`), and `--max-size-drop`'s optional `%`.
//!
//! A group of flags replaces the job's whole group: `--table` drops the job's `schemas` too,
//! `--all-databases` its `include`/`exclude`. The retention flags are not layered key by key:
//! a policy flag replaces the job's whole policy ([`crate::resolve::policy`]).
//! `--retention-tz` is the job's `timezone`, the zone of its retention calendar.

use pgb_config::{CheckSettings, DrillSettings, JobSettings};

use crate::args::{
    BackupArgs, CheckArgs, DrillArgs, Format, GcArgs, KeyArgs, ListArgs, PruneArgs, RepoArgs,
    ReportArgs, RestoreArgs, VerifyArgs, WalArg,
};
use crate::exit::Failure;

fn some<T>(v: &[T]) -> Option<Vec<T>>
where
    T: Clone,
{
    (!v.is_empty()).then(|| v.to_vec())
}

/// `--repo` and the object-store limits.
fn repo(a: &RepoArgs, s: &mut JobSettings) -> Result<(), Failure> {
    let secs = |flag: &str, v: &Option<String>| -> Result<Option<u64>, Failure> {
        v.as_deref()
            .map(|t| {
                pgb_config::parse_duration(t)
                    .map(|d| d.as_secs())
                    .map_err(|e| Failure::usage(format!("--{flag}: {e}")))
            })
            .transpose()
    };
    s.repository.clone_from(&a.repo);
    s.storage_retries = a.retries;
    s.storage_retry_budget_secs = secs("retry-budget", &a.retry_budget)?;
    s.storage_timeout_secs = secs("request-timeout", &a.request_timeout)?;
    s.storage_io_timeout_secs = secs("io-timeout", &a.io_timeout)?;
    Ok(())
}

/// The key files of the reading commands.
fn keys(a: &KeyArgs, s: &mut JobSettings) {
    // The job's key holds one identity file; several flags stay flags (read as given).
    if let [one] = a.identity_file.as_slice() {
        s.identity_file = Some(one.clone());
    }
    s.passphrase_file.clone_from(&a.passphrase_file);
    s.auth_key_file.clone_from(&a.auth_key_file);
}

/// The flags of a command as the job's flag layer.
pub(crate) trait JobFlags {
    /// The `--job` and `--config` flags.
    fn job_args(&self) -> &crate::args::JobArgs;
    /// Every flag given that is a job key.
    ///
    /// # Errors
    /// A storage limit that is no duration.
    fn flags(&self) -> Result<JobSettings, Failure>;
}

macro_rules! job_args {
    () => {
        fn job_args(&self) -> &crate::args::JobArgs {
            &self.job
        }
    };
}

impl JobFlags for BackupArgs {
    job_args!();
    fn flags(&self) -> Result<JobSettings, Failure> {
        let mut s = JobSettings::default();
        repo(&self.repo, &mut s)?;
        s.database.clone_from(&self.db);
        s.format = self.format.map(|f| {
            match f {
                Format::Custom => "custom",
                Format::Plain => "plain",
                Format::Directory => "directory",
            }
            .to_owned()
        });
        let p = &self.physical;
        if p.physical {
            s.format = Some("physical".to_owned());
        }
        s.wal = p.wal.map(|w| {
            match w {
                WalArg::Archive => "archive",
                WalArg::Included => "included",
            }
            .to_owned()
        });
        s.wal_wait.clone_from(&p.wal_wait);
        if p.incremental {
            s.incremental = Some(true);
        }
        s.compression.clone_from(&self.compression);
        s.labels = some(&self.label);
        let c = &self.cluster;
        if c.all_databases {
            s.all_databases = Some(true);
            s.include = Some(c.include.clone());
            s.exclude = Some(c.exclude.clone());
            s.with_role_passwords = Some(c.with_role_passwords);
        }
        s.jobs = self.directory.jobs;
        s.spool_dir.clone_from(&self.directory.spool_dir);
        s.files = some(&self.files.files);
        let sel = &self.select;
        let any = !(sel.schemas.is_empty()
            && sel.exclude_schema.is_empty()
            && sel.tables.is_empty()
            && sel.exclude_table.is_empty()
            && sel.exclude_table_data.is_empty()
            && sel.pg_dump_option.is_empty());
        if any {
            s.schemas = Some(sel.schemas.clone());
            s.exclude_schemas = Some(sel.exclude_schema.clone());
            s.tables = Some(sel.tables.clone());
            s.exclude_tables = Some(sel.exclude_table.clone());
            s.exclude_table_data = Some(sel.exclude_table_data.clone());
            s.pg_dump_options = Some(sel.pg_dump_option.clone());
        }
        let e = &self.encrypt;
        s.recipients = some(&e.recipient);
        s.recipients_file.clone_from(&e.recipients_file);
        s.passphrase_file.clone_from(&e.passphrase_file);
        s.auth_key_file.clone_from(&e.auth_key_file);
        if self.verify {
            s.verify_after_backup = Some(true);
        }
        let m = &self.migrations;
        let names: Vec<String> = m
            .migrations
            .iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        if !names.is_empty() {
            s.migrations = Some(if names == ["none"] { Vec::new() } else { names });
        }
        s.migrations_query.clone_from(&m.migrations_query);
        s.timezone.clone_from(&self.policy.retention_tz);
        Ok(s)
    }
}

impl JobFlags for ListArgs {
    job_args!();
    fn flags(&self) -> Result<JobSettings, Failure> {
        let mut s = JobSettings::default();
        repo(&self.repo, &mut s)?;
        if let [one] = self.identity_file.as_slice() {
            s.identity_file = Some(one.clone());
        }
        s.auth_key_file.clone_from(&self.auth_key_file);
        Ok(s)
    }
}

impl JobFlags for VerifyArgs {
    job_args!();
    fn flags(&self) -> Result<JobSettings, Failure> {
        let mut s = JobSettings::default();
        repo(&self.repo, &mut s)?;
        keys(&self.keys, &mut s);
        Ok(s)
    }
}

impl JobFlags for RestoreArgs {
    job_args!();
    fn flags(&self) -> Result<JobSettings, Failure> {
        let mut s = JobSettings::default();
        repo(&self.repo, &mut s)?;
        keys(&self.keys, &mut s);
        Ok(s)
    }
}

impl JobFlags for PruneArgs {
    job_args!();
    fn flags(&self) -> Result<JobSettings, Failure> {
        let mut s = JobSettings::default();
        repo(&self.repo, &mut s)?;
        s.auth_key_file.clone_from(&self.auth_key_file);
        s.timezone.clone_from(&self.policy.retention_tz);
        Ok(s)
    }
}

impl JobFlags for ReportArgs {
    job_args!();
    fn flags(&self) -> Result<JobSettings, Failure> {
        let mut s = JobSettings::default();
        repo(&self.repo, &mut s)?;
        s.auth_key_file.clone_from(&self.auth_key_file);
        s.timezone.clone_from(&self.policy.retention_tz);
        Ok(s)
    }
}

impl JobFlags for GcArgs {
    job_args!();
    fn flags(&self) -> Result<JobSettings, Failure> {
        let mut s = JobSettings::default();
        repo(&self.repo, &mut s)?;
        s.auth_key_file.clone_from(&self.auth_key_file);
        Ok(s)
    }
}

impl JobFlags for DrillArgs {
    job_args!();
    fn flags(&self) -> Result<JobSettings, Failure> {
        let mut s = JobSettings::default();
        repo(&self.repo, &mut s)?;
        keys(&self.keys, &mut s);
        let d = DrillSettings {
            target: self.target.clone(),
            smoke: some(&self.smoke),
            max_rto: self.max_rto.clone(),
            max_rpo: self.max_rpo.clone(),
            within: self.within.clone(),
            schedule: None,
        };
        s.drill = (d != DrillSettings::default()).then_some(d);
        Ok(s)
    }
}

impl JobFlags for CheckArgs {
    job_args!();
    fn flags(&self) -> Result<JobSettings, Failure> {
        let mut s = JobSettings::default();
        repo(&self.repo, &mut s)?;
        if let [one] = self.identity_file.as_slice() {
            s.identity_file = Some(one.clone());
        }
        s.auth_key_file.clone_from(&self.auth_key_file);
        let drop = self
            .max_size_drop
            .as_deref()
            .map(crate::resolve::ops::percent)
            .transpose()?;
        let c = CheckSettings {
            max_age: self.max_age.clone(),
            min_size: self.min_size.clone(),
            max_size_drop: drop,
            max_drill_age: self.max_drill_age.clone(),
            max_rpo: self.max_rpo.clone(),
            max_wal_age: self.max_wal_age.clone(),
        };
        s.check = (c != CheckSettings::default()).then_some(c);
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every retention flag is a key of a job, and every `keep_*` key a flag of `prune` and
    /// `backup` (`--retention-tz` is the job's `timezone`, which also runs its schedule).
    #[test]
    fn every_retention_flag_is_a_toml_key_and_the_reverse() {
        let cli = crate::args::Cli::command();
        let keys: Vec<&str> = pgb_config::KEYS
            .iter()
            .copied()
            .filter(|k| k.starts_with("keep_"))
            .collect();
        assert_eq!(keys.len(), 13, "{keys:?}");
        for command in ["prune", "backup", "report"] {
            let sub = cli.find_subcommand(command).expect(command);
            let flags: Vec<String> = sub
                .get_arguments()
                .filter_map(|a| a.get_long())
                .filter(|l| l.starts_with("keep-"))
                .map(|l| l.replace('-', "_"))
                .collect();
            let mut want: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
            let mut got = flags.clone();
            want.sort();
            got.sort();
            assert_eq!(got, want, "{command}: flags {flags:?}");
            assert!(
                sub.get_arguments()
                    .any(|a| a.get_long() == Some("retention-tz")),
                "{command}"
            );
        }
        assert!(pgb_config::KEYS.contains(&"timezone"));
    }
}
