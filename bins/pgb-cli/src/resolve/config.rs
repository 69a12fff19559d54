//! The config file: finding, reading and resolving a job, with the injected environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pgb_config::{ConfigError, Environment, JobSettings, LoadedConfig, Origin, ResolvedJob};

use super::Env;

/// The message when no config file exists.
const NO_CONFIG: &str = "no config file: pass --config FILE, set PGB_CONFIG, or create \
                         ./pgb.toml or /etc/pgb/pgb.toml (`pgb config example` prints one)";

/// Finds and parses the config file (`--config`, `PGB_CONFIG`, `./pgb.toml`,
/// `/etc/pgb/pgb.toml`). `Ok(None)`: there is none.
pub(crate) fn load(flag: Option<&Path>, env: Env<'_>) -> Result<Option<LoadedConfig>, ConfigError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let var = |k: &str| env.get(k);
    let Some((path, _found)) = pgb_config::discover(flag, &var, &cwd, &|p| p.is_file()) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        ConfigError::new(
            Origin::File {
                path: path.display().to_string(),
                line: None,
            },
            format!("cannot read the config file: {e}"),
        )
    })?;
    LoadedConfig::parse(&text, &path).map(Some)
}

/// The config file, which must exist.
pub(crate) fn require(flag: Option<&Path>, env: Env<'_>) -> Result<LoadedConfig, ConfigError> {
    load(flag, env)?.ok_or_else(|| ConfigError::new(Origin::None, NO_CONFIG))
}

/// Resolves `job` (or every job) with the environment layer and no flag layer.
pub(crate) fn jobs(
    cfg: &LoadedConfig,
    job: Option<&str>,
    env: Env<'_>,
) -> Result<Vec<ResolvedJob>, ConfigError> {
    let var = |k: &str| env.get(k);
    let environment = Environment {
        var: &var,
        is_executable: &pgb_config::is_executable,
    };
    match job {
        Some(j) => Ok(vec![cfg.resolve(
            j,
            &environment,
            &JobSettings::default(),
        )?]),
        None => cfg.resolve_all(&environment, &JobSettings::default()),
    }
}

/// One job from the config file.
pub(crate) fn job(
    flag: Option<&Path>,
    name: &str,
    env: Env<'_>,
) -> Result<ResolvedJob, ConfigError> {
    job_with_flags(flag, name, env, &JobSettings::default())
}

/// One job from the config file, with a command's flags as its top layer.
pub(crate) fn job_with_flags(
    flag: Option<&Path>,
    name: &str,
    env: Env<'_>,
    flags: &JobSettings,
) -> Result<ResolvedJob, ConfigError> {
    let cfg = require(flag, env)?;
    let var = |k: &str| env.get(k);
    let environment = Environment {
        var: &var,
        is_executable: &pgb_config::is_executable,
    };
    cfg.resolve(name, &environment, flags)
}

/// Who takes a job's lock: this host and process.
pub(crate) fn holder(env: Env<'_>) -> pgb::Holder {
    let host = env
        .get("HOSTNAME")
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "localhost".to_owned());
    pgb::Holder {
        host,
        pid: std::process::id(),
    }
}

/// The environment hooks run with (the library's one rule: `PATH`, `HOME`, `LANG`, `TZ`, libpq's
/// `PG*`, never pgb's own secrets).
pub(crate) fn hook_env(env: Env<'_>) -> BTreeMap<String, String> {
    pgb_jobs::hook_env(env)
}

/// The restored database for a `post_restore` hook: `DATABASE_URL` without a password, the
/// password (`PGPASSWORD`; a URL flag never carries one) as `PGPASSWORD`.
pub(crate) fn restored_database(
    target: &pgb::postgres::ConnConfig,
    env: Env<'_>,
) -> pgb_jobs::RestoredDatabase {
    pgb_jobs::RestoredDatabase {
        database: target.clone(),
        password: super::var(env, "PGPASSWORD").map(pgb_jobs::hooks::Password::new),
    }
}

/// A drill's `post_restore` step: the job's hook on the scratch database (`None`: the job has
/// no `post_restore`). `PGPASSWORD` comes from the environment when the target URL has none.
pub(crate) fn drill_hook(job: &ResolvedJob, env: Env<'_>) -> Option<pgb_jobs::PostRestoreHook> {
    pgb_jobs::PostRestoreHook::for_job(job, hook_env(env))
        .map(|h| h.with_password(super::var(env, "PGPASSWORD").map(pgb_jobs::hooks::Password::new)))
}
