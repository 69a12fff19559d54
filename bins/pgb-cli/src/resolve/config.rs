//! The config file, loaded by `pgb_config::load` through this process's file system; its
//! jobs resolved by `pgb_jobs` with the injected environment.

use std::path::Path;

use pgb_config::{ConfigError, JobSettings, LoadedConfig, Origin, ResolvedJob};
pub(crate) use pgb_jobs::{hook_env, resolve_jobs as jobs};

use super::Env;

/// The config file (`--config`, `PGB_CONFIG`, `./pgb.toml`, `/etc/pgb/pgb.toml`), which must
/// exist.
pub(crate) fn require(flag: Option<&Path>, env: Env<'_>) -> Result<LoadedConfig, ConfigError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let files = pgb_config::Files {
        cwd: &cwd,
        is_file: &|p| p.is_file(),
        read: &|p| std::fs::read_to_string(p),
    };
    pgb_config::load(flag, &|k| env.get(k), &files)?
        .ok_or_else(|| ConfigError::new(Origin::None, pgb_config::NO_CONFIG))
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
    pgb_jobs::resolve_job(&require(flag, env)?, name, env, flags)
}

/// Who takes a job's lock: this host (`HOSTNAME`, else `/etc/hostname`) and process.
pub(crate) fn holder(env: Env<'_>) -> pgb::Holder {
    pgb_jobs::holder(
        env,
        std::fs::read_to_string("/etc/hostname").ok().as_deref(),
    )
}
