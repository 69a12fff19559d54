//! `--job NAME`: a job of the config file under the command's flags, which form its top
//! layer (defaults < file < environment < flags, [`pgb_jobs::resolve_job`]); the clap glue is
//! [`crate::args::layer`]. Keys the job names by variable or file reach the key resolution
//! through [`KeyEnv`] under the standard names `PGB_PASSPHRASE` and `PGB_AUTH_KEY`.

use pgb::EnvLookup;
use pgb_config::ResolvedJob;
use pgb_jobs::keys::{KeyEnv, KeySources};

pub(crate) use crate::args::layer::FromJob;

use super::{Env, config};
use crate::exit::Failure;

/// The environment as a command with `--job` sees it: the job's key variables and key file
/// under the standard names ([`KeyEnv`]; a variable it names but the environment lacks is
/// left out, commands that need the key fail on it), then the process environment.
pub(crate) type JobEnv<'a> = KeyEnv<'a, dyn EnvLookup + Sync + 'a>;

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
            env: KeyEnv::plain(env),
        });
    };
    let flags = a.flags()?;
    let job = config::job_with_flags(a.job_args().config.as_deref(), &name, env, &flags)
        .map_err(flag_error)?;
    a.apply(&job, env)?;
    // The job's passphrase file is read where a command takes one (`--passphrase-file`).
    let mut keys = KeySources::for_job(&job).lenient();
    keys.passphrase_file = None;
    let env = KeyEnv::new(env, &keys).map_err(|e| Failure::key(e.to_string()))?;
    Ok(Layer {
        job: Some(job),
        env,
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

/// The retention set the job's backups belong to ([`pgb_jobs::job_retention_set`]); a URL
/// that names no host or database is refused with how to choose a set instead.
pub(crate) fn retention_set(job: &ResolvedJob, env: Env<'_>) -> Result<String, Failure> {
    pgb_jobs::job_retention_set(job, env).map_err(|e| match &e {
        pgb_jobs::PlanError::Invalid { key, .. } if key == "format" => {
            Failure::usage(format!("{e}: give --set SYSTEM_ID (as pgb list shows it)"))
        }
        _ => Failure::usage(format!("{e}, or give --set (as pgb list shows it)")),
    })
}
