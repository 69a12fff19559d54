//! The flag layer of `check`, `drill` and `backup`: their limits and settings typed by the
//! config's rules, and the job's values back into their flags.

use super::*;

impl FromJob for CheckArgs {
    fn job_args(&self) -> &JobArgs {
        &self.job
    }
    fn flags(&self) -> Result<JobSettings, Failure> {
        let mut s = listing(&self.repo, &self.identity_file, &self.auth_key_file)?;
        let c = self.settings()?;
        s.check = (c != CheckSettings::default()).then_some(c);
        Ok(s)
    }
    fn apply(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        self.repo.apply(job);
        if self.database.is_none() {
            self.database = pgb_jobs::job_database(job, env);
        }
        let now = time::OffsetDateTime::now_utc();
        self.from_job = Some(pgb_jobs::job_check_limits(job, now));
        Ok(())
    }
}

/// A flag value [`CheckSettings::typed`] or [`DrillSettings::typed`] refuses, named by its flag.
fn invalid(e: pgb_config::InvalidSetting) -> Failure {
    Failure::usage(format!("--{}: {}", flag_of(e.key), e.message))
}

/// `--max-size-drop`: a percentage 0-100, `%` optional.
fn percent(p: &str) -> Result<u32, Failure> {
    let n = p.trim_end_matches('%').parse().ok().filter(|p| *p <= 100);
    n.ok_or_else(|| {
        Failure::usage(format!(
            "--max-size-drop {p:?}: use a percentage 0-100, e.g. 50"
        ))
    })
}

impl CheckArgs {
    fn settings(&self) -> Result<CheckSettings, Failure> {
        Ok(CheckSettings {
            max_age: self.max_age.clone(),
            min_size: self.min_size.clone(),
            max_size_drop: self.max_size_drop.as_deref().map(percent).transpose()?,
            max_drill_age: self.max_drill_age.clone(),
            max_rpo: self.max_rpo.clone(),
            max_wal_age: self.max_wal_age.clone(),
        })
    }

    /// The check's limits: `--job`'s (its flags layered in), else the flags, typed alike.
    pub(crate) fn limits(&self) -> Result<CheckConfig, Failure> {
        match &self.from_job {
            Some(c) => Ok(c.clone()),
            None => self.settings()?.typed().map_err(invalid),
        }
    }
}

impl DrillArgs {
    fn settings(&self) -> DrillSettings {
        DrillSettings {
            target: self.target.clone(),
            smoke: some(&self.smoke),
            max_rto: self.max_rto.clone(),
            max_rpo: self.max_rpo.clone(),
            within: self.within.clone(),
            schedule: None,
        }
    }

    /// The drill's `[drill]` values (smoke files, limits, `within`): `--job`'s (its flags
    /// layered in), else the flags, typed alike.
    pub(crate) fn drill_config(&self) -> Result<DrillConfig, Failure> {
        match &self.from_job {
            Some(d) => Ok(d.clone()),
            None => self.settings().typed().map_err(invalid),
        }
    }
}

impl FromJob for DrillArgs {
    fn job_args(&self) -> &JobArgs {
        &self.job
    }
    fn flags(&self) -> Result<JobSettings, Failure> {
        let mut s = JobSettings::default();
        self.repo.layer(&mut s)?;
        self.keys.layer(&mut s);
        let d = self.settings();
        s.drill = (d != DrillSettings::default()).then_some(d);
        Ok(s)
    }
    fn apply(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
        self.repo.apply(job);
        self.keys.apply(job);
        if self.from_database.is_none() {
            self.from_database = pgb_jobs::job_database(job, env);
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

/// `backup --job` is planned from the job ([`pgb_jobs::JobPlan`]); the command keeps what its
/// own after-commit step and notification read: the repository, `--prune`'s policy and
/// whether to verify (`verify_after_backup`, which `--verify` sets).
impl FromJob for BackupArgs {
    fn job_args(&self) -> &JobArgs {
        &self.job
    }
    fn flags(&self) -> Result<JobSettings, Failure> {
        let mut s = JobSettings::default();
        self.repo.layer(&mut s)?;
        s.database.clone_from(&self.db);
        s.format = self.format.map(|f| f.key().to_owned());
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
        s.incremental = p.incremental.then_some(true);
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
        let groups = [
            &sel.schemas,
            &sel.exclude_schema,
            &sel.tables,
            &sel.exclude_table,
            &sel.exclude_table_data,
            &sel.pg_dump_option,
        ];
        if groups.iter().any(|g| !g.is_empty()) {
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
        s.verify_after_backup = self.verify.then_some(true);
        let m = &self.migrations;
        let names: Vec<String> = m
            .migrations
            .iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        if !names.is_empty() {
            // `--migrations none`: the key's empty list, no framework.
            s.migrations = Some(if names == ["none"] { Vec::new() } else { names });
        }
        s.migrations_query.clone_from(&m.migrations_query);
        s.timezone.clone_from(&self.policy.retention_tz);
        Ok(s)
    }
    fn apply(&mut self, job: &ResolvedJob, _env: Env<'_>) -> Result<(), Failure> {
        self.repo.apply(job);
        self.policy.from_job.clone_from(&job.retention);
        self.verify = job.verify_after_backup;
        Ok(())
    }
}
