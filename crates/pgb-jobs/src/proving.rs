//! A job's drill and freshness check, in the library: what `pgb drill --job`, `pgb check
//! --job` and the daemon's scheduled drills and `/metrics` need, built from the job's settings
//! with no command-line type in between.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use pgb_config::{CheckConfig, DrillConfig, ResolvedJob};
use pgb_core::{AuthKey, Decryption, Repository};
use pgb_notify::{Event, Notification, Notifier};
use pgb_open::EnvLookup;
use pgb_ops::{
    BackupChoice, CheckOptions, DrillError, DrillHook, DrillOptions, DrillOutcome, DrillReport,
};
use pgb_postgres::ConnConfig;

use crate::PostRestoreHook;
use crate::keys::KeySources;
use crate::notify::notifier;
use crate::plan::{PlanError, hook_env, key_error, tools};

use crate::host::var;

/// Opens the job's repository with the storage settings of the job; `create`: a local
/// directory that does not exist is created (as a backup does), else it is an error.
///
/// # Errors
/// [`PlanError::Open`].
pub fn job_repository(
    job: &ResolvedJob,
    env: &dyn EnvLookup,
    create: bool,
) -> Result<Repository, PlanError> {
    Ok(crate::open_repository(
        &job.repository,
        &job.storage,
        env,
        create,
    )?)
}

/// The keys that read the job's backups: its identity file (else `PGB_IDENTITY_FILE`), its
/// passphrase, its authentication key.
///
/// # Errors
/// [`PlanError::Key`] for a key that is named but missing or unusable.
pub fn job_decryption(job: &ResolvedJob, env: &dyn EnvLookup) -> Result<Decryption, PlanError> {
    KeySources::for_job(job)
        .decryption(env)
        .map_err(|e| key_error(job, e))
}

/// The job's authentication key ([`KeySources::auth_key`]), for reading and writing verify and
/// drill records.
///
/// # Errors
/// [`PlanError::Key`].
pub fn job_auth_key(
    job: &ResolvedJob,
    env: &dyn EnvLookup,
) -> Result<Option<pgb_core::AuthKey>, PlanError> {
    KeySources::for_job(job)
        .auth_key(env)
        .map_err(|e| key_error(job, e))
}

/// The job's database name: from its URL, else `PGDATABASE`; `None` for a whole server.
pub fn job_database(job: &ResolvedJob, env: &dyn EnvLookup) -> Option<String> {
    if job.whole_server.is_some() {
        return None;
    }
    job.database
        .as_deref()
        .and_then(|u| ConnConfig::parse(u).ok())
        .and_then(|c| c.dbname().map(str::to_owned))
        .or_else(|| var(env, "PGDATABASE"))
}

/// The job's freshness check, as `pgb check --job` runs it: its repository (opened with the
/// keys that authenticate manifests) and options (its `[check]` thresholds, its schedule's
/// period plus a grace as the maximum age unless `max_age` is set, its database).
///
/// # Errors
/// [`PlanError`] for keys or the repository.
pub fn job_check(
    job: &ResolvedJob,
    env: &dyn EnvLookup,
    now: time::OffsetDateTime,
) -> Result<(Repository, CheckOptions), PlanError> {
    let keys = KeySources::for_job(job);
    let auth = keys.authentication(env).map_err(|e| key_error(job, e))?;
    let auth_key = keys.auth_key(env).map_err(|e| key_error(job, e))?;
    let repo = job_repository(job, env, false)?.with_decryption(auth);
    let limits = job_check_limits(job, now);
    let o = check_options(&limits, job_database(job, env), auth_key, now);
    Ok((repo, o))
}

/// The job's `[check]` limits, with one period of its schedule plus a grace (26 h for a daily
/// job) as the maximum age unless `max_age` is set: what `pgb check --job` judges by.
pub fn job_check_limits(job: &ResolvedJob, now: time::OffsetDateTime) -> pgb_config::CheckConfig {
    let mut c = job.check.clone().unwrap_or_default();
    if c.max_age.is_none() {
        c.max_age = job.schedule.as_ref().and_then(|cron| {
            let now = chrono::DateTime::from_timestamp(now.unix_timestamp(), 0)?;
            pgb_scheduler::default_max_age(cron, job.timezone, now)
        });
    }
    c
}

/// A check's options as of `now`: the limits of a job's `[check]` or of a check's flags
/// (typed alike: [`pgb_config::CheckSettings::typed`]), the database and the key of the drill
/// records; what `pgb check` and [`job_check`] judge by.
pub fn check_options(
    limits: &CheckConfig,
    database: Option<String>,
    auth_key: Option<AuthKey>,
    now: time::OffsetDateTime,
) -> CheckOptions {
    let mut o = CheckOptions::new(now);
    (o.database, o.auth_key) = (database, auth_key);
    let c = limits;
    (o.max_age, o.min_size, o.max_size_drop_percent) = (c.max_age, c.min_size, c.max_size_drop);
    (o.max_drill_age, o.max_rpo, o.max_wal_age) = (c.max_drill_age, c.max_rpo, c.max_wal_age);
    o
}

/// A smoke file that cannot be read (before the drill starts).
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct SmokeFileError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// What a logical drill ([`DrillOptions`]) and a point-in-time recovery drill
/// ([`pgb_ops::PitrDrillOptions`]) take alike, from a job's `[drill]` or a drill's flags (typed
/// alike: [`pgb_config::DrillSettings::typed`]): the smoke files (read once, before anything
/// runs, named by file name), the RTO and RPO limits, the record's key and the job's name.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DrillCommon {
    /// Smoke SQL as (file name, SQL).
    pub smoke: Vec<(String, String)>,
    /// Recovery-time limit.
    pub max_rto: Option<Duration>,
    /// Recovery-point limit.
    pub max_rpo: Option<Duration>,
    /// Authenticates the drill's record.
    pub auth_key: Option<AuthKey>,
    /// The job, for reports.
    pub job: Option<String>,
}

impl DrillCommon {
    /// Reads the smoke files of `drill` and takes its limits.
    ///
    /// # Errors
    /// [`SmokeFileError`]: a smoke file cannot be read.
    pub fn new(drill: &DrillConfig) -> Result<Self, SmokeFileError> {
        let read = |path: &PathBuf| {
            let sql = std::fs::read_to_string(path).map_err(|source| SmokeFileError {
                path: path.clone(),
                source,
            })?;
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into(),
            );
            Ok((name, sql))
        };
        Ok(Self {
            smoke: drill.smoke.iter().map(read).collect::<Result<_, _>>()?,
            max_rto: drill.max_rto,
            max_rpo: drill.max_rpo,
            auth_key: None,
            job: None,
        })
    }

    /// The key that authenticates the record.
    #[must_use]
    pub fn with_auth_key(mut self, key: Option<AuthKey>) -> Self {
        self.auth_key = key;
        self
    }

    /// The job the drill is of.
    #[must_use]
    pub fn with_job(mut self, job: impl Into<String>) -> Self {
        self.job = Some(job.into());
        self
    }

    /// `o` with these smoke files, limits, key and job.
    pub fn logical(&self, o: DrillOptions) -> DrillOptions {
        let with = |o: DrillOptions, (n, s): &(String, String)| o.with_smoke(n.clone(), s.clone());
        let mut o = self.smoke.iter().fold(o, with);
        (o.max_rto, o.max_rpo) = (self.max_rto, self.max_rpo);
        (o.auth_key, o.job) = (self.auth_key.clone(), self.job.clone());
        o
    }

    /// `o` with these smoke files, limits, key and job.
    pub fn pitr(&self, o: pgb_ops::PitrDrillOptions) -> pgb_ops::PitrDrillOptions {
        let with = |o: pgb_ops::PitrDrillOptions, (n, s): &(String, String)| {
            o.with_smoke(n.clone(), s.clone())
        };
        let mut o = self.smoke.iter().fold(o, with);
        (o.max_rto, o.max_rpo) = (self.max_rto, self.max_rpo);
        (o.auth_key, o.job) = (self.auth_key.clone(), self.job.clone());
        o
    }
}

/// A job's restore drill, as `pgb drill --job` and the daemon's `drill.schedule` run it: the
/// target server (`drill.target`, else `PGB_DRILL_TARGET`), a random backup from
/// `drill.within` (else the newest), smoke SQL, RTO/RPO limits, the job's `post_restore`
/// hook on the scratch database, and its notifier.
#[derive(Debug)]
#[non_exhaustive]
pub struct JobDrill {
    /// The job.
    pub job: ResolvedJob,
    /// Its repository, with the keys that read its backups.
    pub repo: Repository,
    /// What the drill does.
    pub options: DrillOptions,
    /// The job's `post_restore` hook, run on the scratch database.
    pub hook: Option<PostRestoreHook>,
    /// Where the drill's start and outcome are sent.
    pub notifier: Option<Notifier>,
    /// The environment `expected_migration_command` runs with (the hook environment).
    pub hook_env: std::collections::BTreeMap<String, String>,
    /// A job with `format = "physical"`: its drill is a point-in-time recovery drill
    /// ([`pgb_ops::drill_pitr`]) to a random second of the recoverable window, with the same
    /// smoke files, limits and record key; `options` is then unused.
    pub pitr: Option<pgb_ops::PitrDrillOptions>,
}

impl JobDrill {
    /// Resolves the drill of `job`.
    ///
    /// # Errors
    /// [`PlanError`]: no target, an unreadable smoke file, keys, the repository.
    pub fn resolve(job: &ResolvedJob, env: &dyn EnvLookup) -> Result<Self, PlanError> {
        let invalid = |key: &str, message: String| PlanError::Invalid {
            job: job.name.clone(),
            key: key.to_owned(),
            message,
        };
        let d = job.drill.as_ref();
        let physical = job.format == "physical";
        let target = d
            .and_then(|d| d.target.clone())
            .or_else(|| var(env, "PGB_DRILL_TARGET"))
            // A PITR drill starts its own server: no target.
            .or_else(|| physical.then(|| "postgres://127.0.0.1/postgres".to_owned()))
            .ok_or_else(|| {
                invalid(
                    "drill.target",
                    "a drill needs a target server: set drill.target (or PGB_DRILL_TARGET)"
                        .to_owned(),
                )
            })?;
        let target =
            ConnConfig::parse(&target).map_err(|e| invalid("drill.target", e.to_string()))?;
        let spool = crate::spool_dir(None, env);
        let backup = match d.and_then(|d| d.within) {
            Some(within) => BackupChoice::Random { within },
            None => BackupChoice::Latest,
        };
        let mut o = DrillOptions::new(target, tools(env), spool).with_backup(backup);
        if let Some(db) = job_database(job, env) {
            o = o.with_from_database(db);
        }
        let common = DrillCommon::new(&d.cloned().unwrap_or_default())
            .map_err(|e| invalid("drill.smoke", e.to_string()))?;
        let decryption = job_decryption(job, env)?;
        let common = common
            .with_auth_key(job_auth_key(job, env)?)
            .with_job(job.name.clone());
        o = common.logical(o);
        let repo = job_repository(job, env, false)?.with_decryption(decryption);
        // The expected head: fixed here, or printed by its command at each run.
        let target = job
            .migrations
            .expected
            .as_deref()
            .map(|e| crate::parse_expected_migration("expected_migration", e))
            .transpose()
            .map_err(|e| invalid("expected_migration", e.to_string()))?;
        o = o.with_migrations(
            pgb_ops::MigrationExpectation::new()
                .with_target(target)
                .with_probe(crate::migration_probe(job)),
        );
        let pitr = physical.then(|| {
            common.pitr(pgb_ops::PitrDrillOptions::new(
                o.locator.clone(),
                o.spool_dir.clone(),
            ))
        });
        let hook = PostRestoreHook::from_env(job, env);
        Ok(Self {
            job: job.clone(),
            repo,
            options: o,
            hook,
            notifier: notifier(job, env)?,
            hook_env: hook_env(env),
            pitr,
        })
    }

    /// Runs the drill: announced (`/start`), then its outcome notified (`drill_passed` or
    /// `drill_failed`), paired by one run id. The scratch database is dropped when `cancel`
    /// completes.
    ///
    /// # Errors
    /// [`DrillError`]: the drill could not run (nothing recorded).
    pub async fn run(
        &self,
        progress: &dyn pgb_core::Progress,
        cancel: impl Future<Output = ()> + Send,
    ) -> Result<DrillReport, DrillError> {
        let rid = pgb_notify::RunId::generate();
        if let Some(n) = &self.notifier {
            n.start(&rid).await;
        }
        let hook = self.hook.as_ref().map(|h| h as &dyn DrillHook);
        let res = match (&self.pitr, self.options_now().await) {
            (Some(p), _) => Box::pin(pgb_ops::drill_pitr(&self.repo, p, progress, cancel)).await,
            (None, Ok(options)) => {
                pgb_ops::drill(&self.repo, &options, hook, progress, cancel).await
            }
            (None, Err(e)) => Err(e),
        };
        if let Some(n) = &self.notifier {
            n.notify(
                &drill_notification(&res).with_job(self.job.name.clone()),
                &rid,
            )
            .await;
        }
        res
    }
}

impl JobDrill {
    /// The drill's options with the expected migration head as of now: the output of the
    /// job's `expected_migration_command` when it has one.
    async fn options_now(&self) -> Result<DrillOptions, DrillError> {
        let mut o = self.options.clone();
        if self.job.migrations.expected_command.is_some() {
            o.migrations.target = crate::expected_migration(&self.job, &self.hook_env)
                .await
                .map_err(|e| DrillError::Invalid(format!("job {}: {e}", self.job.name)))?;
        }
        Ok(o)
    }
}

/// The name of a drill outcome, as reports and notifications write it.
pub fn outcome_name(o: DrillOutcome) -> &'static str {
    match o {
        DrillOutcome::Passed => "passed",
        DrillOutcome::CheckFailed => "check_failed",
        DrillOutcome::LimitExceeded => "limit_exceeded",
        DrillOutcome::MigrationFailed => "migration_failed",
        _ => "unknown",
    }
}

/// `drill_passed` or `drill_failed` for a drill's outcome.
pub fn drill_notification(res: &Result<DrillReport, DrillError>) -> Notification {
    let n = match res {
        Ok(r) if r.passed() => Notification::new(Event::DrillPassed).with_status("passed"),
        Ok(r) => Notification::new(Event::DrillFailed)
            .with_status(outcome_name(r.outcome))
            .with_cause(r.cause.as_deref().unwrap_or_default()),
        Err(e) => Notification::new(Event::DrillFailed)
            .with_status("not_run")
            .with_cause(e.to_string()),
    };
    match res {
        Ok(r) => {
            let n = match &r.migrations {
                Some(m) => crate::notify_drill_heads(n, m),
                None => n,
            };
            n.with_set(r.set.clone())
                .with_backup_id(r.backup_id.to_string())
                .with_duration("rto", Duration::from_millis(r.rto_ms))
        }
        Err(_) => n,
    }
}

/// What would fail if the job ran here and now, without running anything or opening the
/// repository: key files and variables the job names, its notification variables and files,
/// its `files` directories, its drill's smoke files and identity file. `pgb config check`
/// shows these as warnings (the file may be checked on another host than the one that runs it).
pub fn job_warnings(job: &ResolvedJob, env: &dyn EnvLookup) -> Vec<String> {
    let mut warnings = Vec::new();
    let keys = KeySources::for_job(job);
    if let Err(e) = keys.encryption(env).and_then(|_| keys.auth_key(env)) {
        warnings.push(key_error(job, e).to_string());
    }
    if let Err(e) = notifier(job, env) {
        warnings.push(e.to_string());
    }
    if let Some(f) = &job.encryption.identity_file
        && let Err(e) = std::fs::metadata(f)
    {
        warnings.push(format!(
            "job {}: identity_file {}: {e}",
            job.name,
            f.display()
        ));
    }
    for dir in &job.files {
        if !dir.is_dir() {
            warnings.push(format!(
                "job {}: files: {} is not a directory here",
                job.name,
                dir.display()
            ));
        }
    }
    for f in job.drill.iter().flat_map(|d| &d.smoke) {
        if let Err(e) = std::fs::metadata(f) {
            warnings.push(format!(
                "job {}: drill.smoke {}: {e}",
                job.name,
                f.display()
            ));
        }
    }
    warnings
}
