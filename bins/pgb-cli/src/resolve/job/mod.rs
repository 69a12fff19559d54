//! `--job NAME`: a job of the config file under the command's flags, which form its top
//! layer (defaults < file < environment < flags, [`pgb_jobs::resolve_job`]); the clap glue is
//! [`crate::args::layer`]. Keys the job names by variable or file reach the key resolution
//! through [`JobEnv`] under the standard names `PGB_PASSPHRASE` and `PGB_AUTH_KEY`.

use std::collections::BTreeMap;
use std::path::Path;

use pgb::EnvLookup;
use pgb_config::ResolvedJob;
pub(crate) use pgb_jobs::job_intended_set as intended_set;

pub(crate) use crate::args::layer::FromJob;

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
/// "shop", key "check.min_size": invalid size ...`), without the origin the flag's name
/// replaces; other errors as they are.
pub(crate) fn flag_error(e: pgb_config::ConfigError) -> Failure {
    if e.origin != pgb_config::Origin::Flag {
        return e.into();
    }
    let flag = crate::args::layer::flag_of(e.key.as_deref().unwrap_or_default());
    let e = pgb_config::ConfigError {
        origin: pgb_config::Origin::None,
        ..e
    };
    Failure::usage(format!("--{flag}: {e}"))
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

    use super::*;
    use crate::args::GcArgs;

    fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn resolve<A: FromJob>(toml: &str, env: &HashMap<String, String>, a: &mut A) -> ResolvedJob {
        let cfg = pgb_config::LoadedConfig::parse(toml, Path::new("pgb.toml")).unwrap();
        let job = pgb_jobs::resolve_job(&cfg, "shop", env, &a.flags().unwrap()).unwrap();
        a.apply(&job, env).unwrap();
        job
    }

    const SHOP: &str = "[jobs.shop]\nrepository = \"/r\"\npassphrase_env = \"SHOP_PASSPHRASE\"\n";

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
