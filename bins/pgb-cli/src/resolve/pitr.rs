//! `drill --physical`: flags and environment → [`PitrDrillOptions`]. The scratch server's
//! `restore_command` is the library's own (a copy from the drill's verified spool); the
//! `wal fetch` command built here is checked (this binary can tell its path) and handed in
//! for the library's API only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pgb::physical::parse_target_time;
use pgb_ops::{PitrDrillOptions, PitrTarget};

use pgb_config::ResolvedJob;
use pgb_ops::RestoreCommand;

use super::{Env, temp_dir, tools, var};
use crate::args::{DrillArgs, KeyArgs, RepoArgs, RestoreArgs};
use crate::exit::Failure;

/// The options of `drill --physical`: `--to-time random|TIME`, `--system-id`, smoke files,
/// `--amcheck`, limits, the record's key; scratch directories under `PGB_SPOOL_DIR`, else the
/// temporary directory.
pub(crate) fn options(a: &DrillArgs, env: Env<'_>) -> Result<PitrDrillOptions, Failure> {
    let target = match a.to_time.as_deref().unwrap_or("random") {
        "random" => PitrTarget::Random,
        t => PitrTarget::Time(
            parse_target_time(t).map_err(|e| Failure::usage(format!("--to-time: {e}")))?,
        ),
    };
    let keys = KeyArgs {
        identity_file: a.keys.identity_file.clone(),
        passphrase_file: a.keys.passphrase_file.clone(),
        auth_key_file: a.keys.auth_key_file.clone(),
        allow_unauthenticated: a.keys.allow_unauthenticated,
        ..KeyArgs::default()
    };
    let command = restore_command(a.repo.repo.clone(), keys, env)?;
    let scratch = var(env, "PGB_SPOOL_DIR").map_or_else(|| temp_dir(env), PathBuf::from);
    let mut o = PitrDrillOptions::new(tools(&a.tools, env), scratch, command)
        .with_target(target)
        .with_system_identifier(a.system_id)
        .with_amcheck(a.amcheck);
    if let Some(db) = &a.from_database {
        o = o.with_database(db.clone());
    }
    for (name, sql) in super::ops::smoke_files(a)? {
        o = o.with_smoke(name, sql);
    }
    let (max_rto, max_rpo) = super::ops::drill_limits(a)?;
    if let Some(d) = max_rto {
        o = o.with_max_rto(d);
    }
    if let Some(d) = max_rpo {
        o = o.with_max_rpo(d);
    }
    if let Some(k) = super::auth_key(a.keys.auth_key_file.as_deref(), env)? {
        o = o.with_auth_key(k);
    }
    Ok(o)
}

/// The restore_command `restore --pgdata` would write for the repository `repo` (else
/// `PGB_REPO`) and the key files of `keys`.
fn restore_command(
    repo: Option<String>,
    keys: KeyArgs,
    env: Env<'_>,
) -> Result<RestoreCommand, Failure> {
    let restore = RestoreArgs {
        id: "latest".to_owned(),
        repo: RepoArgs {
            repo,
            ..RepoArgs::default()
        },
        keys,
        ..RestoreArgs::default()
    };
    let fetch = super::physical::restore(&restore, Path::new("."), env)?;
    // Fails only when this binary cannot tell its own path: say so now, not in the server.
    fetch.restore_command(0, Path::new("/"))?;
    Ok(Arc::new(move |sysid: u64, data_dir: &Path| {
        fetch.restore_command(sysid, data_dir).unwrap_or_default()
    }))
}

/// The restore_command of a physical job's scheduled PITR drill: its repository and key
/// files.
pub(crate) fn job_restore_command(
    job: &ResolvedJob,
    env: Env<'_>,
) -> Result<RestoreCommand, Failure> {
    let e = &job.encryption;
    let keys = KeyArgs {
        identity_file: e.identity_file.iter().cloned().collect(),
        passphrase_file: e.passphrase_file.clone(),
        auth_key_file: e.auth_key_file.clone(),
        ..KeyArgs::default()
    };
    restore_command(Some(job.repository.clone()), keys, env)
}
