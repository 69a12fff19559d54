//! `--job NAME`: a job of the config file as the layer under the flags. The job is resolved
//! with its own layers (defaults < file < environment), then fills every option the flags left
//! unset, so the whole chain is defaults < file < environment < flags.
//!
//! Keys the job names by variable (`passphrase_env`, `auth_key_env`) or by file
//! (`auth_key_file`) reach the key resolution through [`JobEnv`], under the standard names
//! `PGB_PASSPHRASE` and `PGB_AUTH_KEY`: one path for every command that reads keys.

mod fill;

use std::collections::BTreeMap;
use std::path::Path;

use pgb::EnvLookup;
use pgb::postgres::ConnConfig;
use pgb_config::ResolvedJob;

use super::{Env, config, var};
use crate::args::JobArgs;
use crate::exit::Failure;

/// The environment as a command with `--job` sees it: the job's key variables under their
/// standard names, then the process environment.
pub(crate) struct JobEnv<'a> {
    base: Env<'a>,
    vars: BTreeMap<&'static str, String>,
}

/// Names only: the values are secrets.
impl std::fmt::Debug for JobEnv<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobEnv")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl EnvLookup for JobEnv<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned().or_else(|| self.base.get(name))
    }
}

/// What `--job` resolved to.
pub(crate) struct Layer<'a> {
    /// The job, when `--job` was given.
    pub(crate) job: Option<ResolvedJob>,
    /// The environment to resolve the command with.
    pub(crate) env: JobEnv<'a>,
}

/// Arguments a job can fill.
pub(crate) trait FromJob {
    fn job_args(&self) -> &JobArgs;
    /// Fills what the flags left unset from `job`.
    fn fill(&mut self, job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure>;
}

/// Resolves `--job` (if given) and fills `a` from it.
pub(crate) fn layer<'a, A: FromJob>(a: &mut A, env: Env<'a>) -> Result<Layer<'a>, Failure> {
    let Some(name) = a.job_args().job.clone() else {
        return Ok(Layer {
            job: None,
            env: JobEnv {
                base: env,
                vars: BTreeMap::new(),
            },
        });
    };
    let job = config::job(a.job_args().config.as_deref(), &name, env)?;
    a.fill(&job, env)?;
    let vars = key_vars(&job, env)?;
    Ok(Layer {
        job: Some(job),
        env: JobEnv { base: env, vars },
    })
}

/// `PGB_PASSPHRASE` and `PGB_AUTH_KEY` from the variables and files the job names. A variable
/// the job names but the environment lacks is left out: commands that need the key fail on
/// it (and a backup is refused up front, [`require_backup_keys`]).
fn key_vars(job: &ResolvedJob, env: Env<'_>) -> Result<BTreeMap<&'static str, String>, Failure> {
    let e = &job.encryption;
    let mut vars = BTreeMap::new();
    if let Some(v) = e.passphrase_env.as_deref().and_then(|n| var(env, n)) {
        vars.insert("PGB_PASSPHRASE", v);
    }
    let auth = match (&e.auth_key_env, &e.auth_key_file) {
        (Some(n), _) => var(env, n),
        // The environment's PGB_AUTH_KEY beats the file's key file.
        (None, Some(_)) if var(env, "PGB_AUTH_KEY").is_some() => None,
        (None, Some(path)) => Some(read_key_file(path)?),
        (None, None) => None,
    };
    if let Some(k) = auth {
        vars.insert("PGB_AUTH_KEY", k);
    }
    Ok(vars)
}

fn read_key_file(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| {
            Failure::key(format!(
                "cannot read the authentication key file {}: {e}",
                path.display()
            ))
        })
}

/// A backup must not silently go out unencrypted or unauthenticated because a variable the
/// job names is missing.
fn require_backup_keys(job: &ResolvedJob, env: Env<'_>) -> Result<(), Failure> {
    let e = &job.encryption;
    for (key, name) in [
        ("passphrase_env", &e.passphrase_env),
        ("auth_key_env", &e.auth_key_env),
    ] {
        if let Some(n) = name.as_deref().filter(|n| var(env, n).is_none()) {
            return Err(Failure::key(format!(
                "job {}: {key} names the variable {n}, which is not set: export it, or change {key}",
                job.name
            )));
        }
    }
    Ok(())
}

/// The retention set the job's backups belong to, as their manifests name it
/// ([`pgb::Manifest::retention_set`]): the server of its database URL, its database (`*` for a
/// whole server) and its selection. Refused when the URL names no host: the set's server is
/// then what the server reports, known only once connected, and guessing could prune another
/// job's backups.
pub(crate) fn retention_set(job: &ResolvedJob, env: Env<'_>) -> Result<String, Failure> {
    let url = job
        .database
        .clone()
        .or_else(|| var(env, "DATABASE_URL"))
        .unwrap_or_else(|| super::defaults::DB.to_owned());
    let conn = ConnConfig::parse(&url).map_err(|e| Failure::usage(e.to_string()))?;
    if !conn.has_host() {
        return Err(Failure::usage(format!(
            "job {}: its database URL names no host, so its backup set is only known once connected; name the host in the URL, or give prune --set (as pgb list shows it)",
            job.name
        )));
    }
    let options = pgb_jobs::dump_options(job)
        .map_err(|e| Failure::usage(format!("job {}: pg_dump_options: {e}", job.name)))?;
    let (database, include, exclude) = match &job.whole_server {
        Some(w) => (
            pgb::CLUSTER_DATABASE.to_owned(),
            w.include.clone(),
            w.exclude.clone(),
        ),
        None => {
            let db = database_name(job, env).ok_or_else(|| {
                Failure::usage(format!(
                    "job {}: its database URL names no database; name it, or give prune --set",
                    job.name
                ))
            })?;
            (db, Vec::new(), Vec::new())
        }
    };
    Ok(pgb::retention_set(
        &format!("{}/{database}", conn.server()),
        &include,
        &exclude,
        options.args(),
    ))
}

/// The job's database name: from its `database` URL, else libpq's `PGDATABASE`. `None` for a
/// whole-server job: its backups are one set for the whole server, and its URL only names
/// where the server is reached.
pub(crate) fn database_name(job: &ResolvedJob, env: Env<'_>) -> Option<String> {
    if job.whole_server.is_some() {
        return None;
    }
    let from_url = job
        .database
        .as_deref()
        .and_then(|u| ConnConfig::parse(u).ok())
        .and_then(|c| c.dbname().map(str::to_owned));
    from_url.or_else(|| var(env, "PGDATABASE"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::args::{BackupArgs, CheckArgs, DrillArgs, GcArgs, RestoreArgs};

    fn job(toml: &str, vars: &[(&str, &str)]) -> (ResolvedJob, HashMap<String, String>) {
        let cfg = pgb_config::LoadedConfig::parse(toml, Path::new("pgb.toml")).unwrap();
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let j = config::jobs(&cfg, Some("shop"), &env).unwrap().remove(0);
        (j, env)
    }

    const SHOP: &str = r#"
[jobs.shop]
database = "postgres://app@db.internal:5432/shop"
repository = "s3://backups/shop"
schedule = "30 2 * * *"
passphrase_env = "SHOP_PASSPHRASE"
keep_daily = 7
[jobs.shop.drill]
target = "postgres://drill@scratch:5432/postgres"
max_rpo = "26h"
[jobs.shop.check]
min_size = "1MiB"
"#;

    #[test]
    fn flags_win_over_the_job_and_the_job_fills_the_rest() {
        let (j, env) = job(SHOP, &[("SHOP_PASSPHRASE", "s3cret")]);
        let mut a = RestoreArgs {
            id: "latest".to_owned(),
            ..RestoreArgs::default()
        };
        a.repo.repo = Some("/from/flag".to_owned());
        a.fill(&j, &env).unwrap();
        assert_eq!(a.repo.repo.as_deref(), Some("/from/flag"));
        assert_eq!(a.from_database.as_deref(), Some("shop"));

        let mut d = DrillArgs {
            max_rpo: Some("1h".to_owned()),
            ..DrillArgs::default()
        };
        d.fill(&j, &env).unwrap();
        assert_eq!(d.repo.repo.as_deref(), Some("s3://backups/shop"));
        assert_eq!(
            d.target.as_deref(),
            Some("postgres://drill@scratch:5432/postgres")
        );
        assert_eq!(d.max_rpo.as_deref(), Some("1h"));
    }

    #[test]
    fn the_jobs_storage_settings_fill_what_the_flags_left() {
        let toml = "[jobs.shop]\nrepository = \"s3://b/p\"\nstorage_retries = 9\n\
                    storage_retry_budget_secs = 600\n";
        let (j, env) = job(toml, &[("PGB_STORAGE_TIMEOUT_SECS", "30")]);
        let mut a = GcArgs::default();
        a.repo.retries = Some(1);
        a.fill(&j, &env).unwrap();
        let o = super::super::storage_options(&a.repo).unwrap();
        assert_eq!(o.retries, Some(1), "the flag wins");
        assert_eq!(o.retry_budget, Some(Duration::from_secs(600)), "the file");
        assert_eq!(
            o.request_timeout,
            Some(Duration::from_secs(30)),
            "the environment"
        );
        assert_eq!(o.io_timeout, None, "the storage's default");
    }

    #[test]
    fn check_takes_its_maximum_age_from_a_daily_schedule() {
        let (j, env) = job(SHOP, &[]);
        let mut c = CheckArgs::default();
        c.fill(&j, &env).unwrap();
        assert_eq!(c.max_age.as_deref(), Some("93600s"), "26 h for a daily job");
        assert_eq!(c.min_size.as_deref(), Some("1048576"));
    }

    #[test]
    fn the_jobs_passphrase_variable_is_read_under_the_standard_name() {
        let (j, env) = job(SHOP, &[("SHOP_PASSPHRASE", "s3cret")]);
        let vars = key_vars(&j, &env).unwrap();
        assert_eq!(
            vars.get("PGB_PASSPHRASE").map(String::as_str),
            Some("s3cret")
        );
        let (j, env) = job(SHOP, &[]);
        let mut b = BackupArgs::default();
        let err = b.fill(&j, &env).unwrap_err();
        assert_eq!(err.code, crate::exit::KEY);
        assert!(err.message.contains("SHOP_PASSPHRASE"), "{}", err.message);
    }
}
