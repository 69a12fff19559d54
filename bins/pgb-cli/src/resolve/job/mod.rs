//! `--job NAME`: a job of the config file under the command's flags. The flags that are job
//! keys become the config crate's flag layer ([`flags`]), so the job resolves with the whole
//! chain defaults < file < environment < flags in one engine, with provenance and one parser
//! per value; the command then reads the resolved, typed job ([`apply`]). `backup --job` runs
//! through the library's plan ([`pgb_jobs::JobPlan`]) instead.
//!
//! Keys the job names by variable (`passphrase_env`, `auth_key_env`) or by file
//! (`auth_key_file`) reach the key resolution through [`JobEnv`], under the standard names
//! `PGB_PASSPHRASE` and `PGB_AUTH_KEY`: one path for every command that reads keys.

mod apply;
mod flags;

use std::collections::BTreeMap;
use std::path::Path;

use pgb::EnvLookup;
use pgb_config::ResolvedJob;
pub(crate) use pgb_jobs::{job_database as database_name, job_intended_set as intended_set};

pub(crate) use apply::FromJob;

use super::{Env, config, var};
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

    /// The process environment's: the job's key variables are for pgb alone.
    fn vars(&self) -> Vec<(String, String)> {
        self.base.vars()
    }
}

/// What `--job` resolved to.
pub(crate) struct Layer<'a> {
    /// The job, when `--job` was given (the command's flags layered in).
    pub(crate) job: Option<ResolvedJob>,
    /// The environment to resolve the command with.
    pub(crate) env: JobEnv<'a>,
}

/// Resolves `--job` (if given) with the command's flags as its top layer and hands the
/// resolved job to `a`.
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
    let flags = a.flags()?;
    let job = config::job_with_flags(a.job_args().config.as_deref(), &name, env, &flags)
        .map_err(flag_error)?;
    a.apply(&job, env)?;
    let vars = key_vars(&job, env)?;
    Ok(Layer {
        job: Some(job),
        env: JobEnv { base: env, vars },
    })
}

/// A value of the flag layer the config crate refused, named by its flag (`--min-size: job
/// "shop", key "check.min_size": invalid size ...`); other errors as they are.
fn flag_error(e: pgb_config::ConfigError) -> Failure {
    if e.origin != pgb_config::Origin::Flag {
        return e.into();
    }
    let key = e.key.as_deref().unwrap_or_default();
    let flag = match key.rsplit('.').next().unwrap_or(key) {
        "repository" => "repo",
        "database" => "db",
        "storage_retries" => "retries",
        "storage_retry_budget_secs" => "retry-budget",
        "storage_timeout_secs" => "request-timeout",
        "storage_io_timeout_secs" => "io-timeout",
        "labels" => "label",
        "recipients" => "recipient",
        "schemas" => "schema",
        "exclude_schemas" => "exclude-schema",
        "tables" => "table",
        "exclude_tables" => "exclude-table",
        "pg_dump_options" => "pg-dump-option",
        "verify_after_backup" => "verify",
        "timezone" => "retention-tz",
        k => return Failure::usage(format!("--{}: {}", k.replace('_', "-"), unflagged(e))),
    };
    Failure::usage(format!("--{flag}: {}", unflagged(e)))
}

/// The error's job, key and reason, without the origin the flag's name replaces.
fn unflagged(e: pgb_config::ConfigError) -> pgb_config::ConfigError {
    pgb_config::ConfigError {
        origin: pgb_config::Origin::None,
        ..e
    }
}

/// `PGB_PASSPHRASE` and `PGB_AUTH_KEY` from the variables and files the job names. A variable
/// the job names but the environment lacks is left out: commands that need the key fail on
/// it (a backup is refused up front by its plan, [`pgb_jobs::JobPlan::resolve`]).
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

/// The retention set the job's backups belong to ([`pgb_jobs::job_retention_set`]); a URL
/// that names no host or database is refused with how to choose a set instead.
pub(crate) fn retention_set(job: &ResolvedJob, env: Env<'_>) -> Result<String, Failure> {
    pgb_jobs::job_retention_set(job, env)
        .map_err(|e| Failure::usage(format!("{e}, or give --set (as pgb list shows it)")))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::args::{CheckArgs, DrillArgs, GcArgs, RestoreArgs};

    fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// What `layer` does, from a config text: the flags of `a` layered over job `shop`, the
    /// resolved job handed to `a`.
    fn resolve<A: FromJob>(toml: &str, env: &HashMap<String, String>, a: &mut A) -> ResolvedJob {
        let cfg = pgb_config::LoadedConfig::parse(toml, Path::new("pgb.toml")).unwrap();
        let var = |k: &str| env.get(k).cloned();
        let environment = pgb_config::Environment {
            var: &var,
            is_executable: &pgb_config::is_executable,
        };
        let job = cfg
            .resolve("shop", &environment, &a.flags().unwrap())
            .unwrap();
        a.apply(&job, env).unwrap();
        job
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
        let e = env(&[("SHOP_PASSPHRASE", "s3cret")]);
        let mut a = RestoreArgs {
            id: "latest".to_owned(),
            ..RestoreArgs::default()
        };
        a.repo.repo = Some("/from/flag".to_owned());
        let j = resolve(SHOP, &e, &mut a);
        assert_eq!(a.repo.repo.as_deref(), Some("/from/flag"));
        assert_eq!(j.provenance["repository"].to_string(), "flag");
        assert_eq!(a.from_database.as_deref(), Some("shop"));

        let mut d = DrillArgs {
            max_rpo: Some("1h".to_owned()),
            ..DrillArgs::default()
        };
        let j = resolve(SHOP, &e, &mut d);
        assert_eq!(d.repo.repo.as_deref(), Some("s3://backups/shop"));
        assert_eq!(
            d.target.as_deref(),
            Some("postgres://drill@scratch:5432/postgres")
        );
        let limits = d.from_job.expect("the job's [drill], typed");
        assert_eq!(limits.max_rpo, Some(Duration::from_secs(3600)), "the flag");
        assert_eq!(j.provenance["drill.max_rpo"].to_string(), "flag");
        assert_eq!(j.provenance["drill.target"].to_string(), "pgb.toml:9");
    }

    #[test]
    fn the_jobs_storage_settings_fill_what_the_flags_left() {
        let toml = "[jobs.shop]\nrepository = \"s3://b/p\"\nstorage_retries = 9\n\
                    storage_retry_budget_secs = 600\n";
        let e = env(&[("PGB_STORAGE_TIMEOUT_SECS", "30")]);
        let mut a = GcArgs::default();
        a.repo.retries = Some(1);
        resolve(toml, &e, &mut a);
        let o = super::super::storage_options(&a.repo).unwrap();
        assert_eq!(o.retries, Some(1), "the flag wins");
        assert_eq!(o.retry_budget, Some(Duration::from_secs(600)), "the file");
        assert_eq!(
            o.request_timeout,
            Some(Duration::from_secs(30)),
            "the environment"
        );
        assert_eq!(o.io_timeout, None, "the storage's default");
        // A storage flag's duration in the one grammar, held as the key's seconds.
        let mut a = GcArgs::default();
        a.repo.retry_budget = Some("2m".to_owned());
        let j = resolve(toml, &e, &mut a);
        assert_eq!(j.storage.retry_budget, Some(Duration::from_secs(120)));
    }

    #[test]
    fn check_takes_its_maximum_age_from_a_daily_schedule() {
        let mut c = CheckArgs::default();
        resolve(SHOP, &env(&[]), &mut c);
        let limits = c.from_job.expect("typed limits");
        assert_eq!(
            limits.max_age,
            Some(Duration::from_secs(93_600)),
            "26 h for a daily job"
        );
        assert_eq!(limits.min_size, Some(1 << 20));
    }

    /// One size grammar: `--min-size 500MB` beside `--job` is the key `check.min_size`, read
    /// as the file reads it (SI: 500,000,000 bytes), with `flag` as its provenance; `MiB` is
    /// binary in both.
    #[test]
    fn a_size_flag_and_the_same_toml_key_give_the_same_value() {
        let base = "[jobs.shop]\nrepository = \"/r\"\n";
        for (text, bytes) in [("500MB", 500_000_000), ("500MiB", 500 << 20)] {
            let mut from_flag = CheckArgs {
                min_size: Some(text.to_owned()),
                ..CheckArgs::default()
            };
            let j = resolve(base, &env(&[]), &mut from_flag);
            assert_eq!(j.provenance["check.min_size"].to_string(), "flag");
            let mut from_file = CheckArgs::default();
            let toml = format!("{base}[jobs.shop.check]\nmin_size = \"{text}\"\n");
            resolve(&toml, &env(&[]), &mut from_file);
            let flag = from_flag.from_job.unwrap().min_size;
            assert_eq!(flag, Some(bytes), "{text}");
            assert_eq!(flag, from_file.from_job.unwrap().min_size, "{text}");
            // Without --job the flag reads the same.
            let alone = CheckArgs {
                min_size: Some(text.to_owned()),
                ..CheckArgs::default()
            };
            let o = crate::resolve::check(&alone, &env(&[])).unwrap();
            assert_eq!(o.min_size, Some(bytes), "{text}");
        }
    }

    /// A flag value the config crate refuses is named by its flag.
    #[test]
    fn a_bad_flag_value_names_the_flag() {
        use super::flags::JobFlags as _;
        let cfg = pgb_config::LoadedConfig::parse(
            "[jobs.shop]\nrepository = \"/r\"\n",
            Path::new("pgb.toml"),
        )
        .unwrap();
        let none = |_: &str| None;
        let environment = pgb_config::Environment {
            var: &none,
            is_executable: &|_| false,
        };
        let a = CheckArgs {
            min_size: Some("10M".to_owned()),
            ..CheckArgs::default()
        };
        let e = cfg
            .resolve("shop", &environment, &a.flags().unwrap())
            .unwrap_err();
        let f = flag_error(e);
        assert_eq!(f.code, crate::exit::USAGE);
        assert!(
            f.message
                .starts_with("--min-size: job \"shop\", key \"check.min_size\": "),
            "{}",
            f.message
        );
        assert!(f.message.contains("10MiB"), "{}", f.message);
    }

    /// `--retention-tz` beside `--job` is the job's `timezone`: its policy's calendar runs in
    /// the flag's zone.
    #[test]
    fn the_retention_zone_flag_is_the_jobs_timezone() {
        let mut a = crate::args::PruneArgs::default();
        a.policy.retention_tz = Some("Europe/Berlin".to_owned());
        let toml = "[jobs.shop]\ndatabase = \"postgres://app@db/shop\"\nrepository = \"/r\"\n\
                    keep_daily = 7\n";
        let j = resolve(toml, &env(&[]), &mut a);
        assert_eq!(j.timezone, pgb_config::Tz::Europe__Berlin);
        assert_eq!(j.provenance["timezone"].to_string(), "flag");
        assert!(
            a.policy.from_job.is_some(),
            "the job's policy, in that zone"
        );
    }

    #[test]
    fn the_jobs_passphrase_variable_is_read_under_the_standard_name() {
        let e = env(&[("SHOP_PASSPHRASE", "s3cret")]);
        let mut a = GcArgs::default();
        let j = resolve(SHOP, &e, &mut a);
        let vars = key_vars(&j, &e).unwrap();
        assert_eq!(
            vars.get("PGB_PASSPHRASE").map(String::as_str),
            Some("s3cret")
        );
    }
}
