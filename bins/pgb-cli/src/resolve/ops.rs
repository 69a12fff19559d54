//! Options of `drill` and `check`: the flags typed by the config's rule
//! ([`DrillArgs::drill_config`], [`CheckArgs::limits`]), then the library's builders
//! ([`pgb_jobs::DrillCommon`], [`pgb_jobs::check_options`]) that a job's drill and check use.

use std::time::Duration;

use pgb_ops::{BackupChoice, CheckOptions, DrillOptions};

use super::{Env, tools};
use crate::args::{CheckArgs, DrillArgs};
use crate::exit::Failure;

/// What every drill takes (smoke files, limits, the record's key), and its `within`.
pub(crate) fn common(
    a: &DrillArgs,
    env: Env<'_>,
) -> Result<(pgb_jobs::DrillCommon, Option<Duration>), Failure> {
    let d = a.drill_config()?;
    let c = pgb_jobs::DrillCommon::new(&d).map_err(|e| Failure::usage(format!("--smoke: {e}")))?;
    let key = super::auth_key(a.keys.auth_key_file.as_deref(), env)?;
    Ok((c.with_auth_key(key), d.within))
}

/// The drill's options: `--target` (else `PGB_DRILL_TARGET`) is required.
pub(crate) fn drill(a: &DrillArgs, env: Env<'_>) -> Result<DrillOptions, Failure> {
    let target = pgb_jobs::drill_target(a.target.as_deref(), env)?.ok_or_else(|| Failure::usage(
        "drill needs a target server: --target postgres://user@host:port/postgres (or PGB_DRILL_TARGET)",
    ))?;
    let (common, within) = common(a, env)?;
    let backup = match a.backup.as_deref().unwrap_or("latest").parse() {
        Ok(BackupChoice::Random { within: w }) => BackupChoice::Random {
            within: within.unwrap_or(w),
        },
        c => c.map_err(|e: pgb::InvalidBackupId| Failure::usage(format!("--backup: {e}")))?,
    };
    if a.within.is_some() && !matches!(backup, BackupChoice::Random { .. }) {
        return Err(Failure::usage("--within goes with --backup random"));
    }
    let mut o = DrillOptions::new(target, tools(&a.tools, env), pgb_jobs::spool_dir(None, env))
        .with_backup(backup)
        .with_keep(a.keep);
    (o.from_database, o.database) = (a.from_database.clone(), a.database.clone());
    Ok(common.logical(o))
}

/// The server `check --server` asks about its archiving. Only when asked: a check runs from
/// any host that can read the repository, often one that cannot reach the database.
pub(crate) fn check_server(a: &CheckArgs) -> Result<Option<pgb::postgres::ConnConfig>, Failure> {
    Ok(a.server
        .as_deref()
        .map(|url| pgb_jobs::connection(url, true))
        .transpose()?)
}

/// The check's options, evaluated as of now.
pub(crate) fn check(a: &CheckArgs, env: Env<'_>) -> Result<CheckOptions, Failure> {
    let limits = a.limits()?;
    let key = super::auth_key(a.auth_key_file.as_deref(), env)?;
    let (db, now) = (a.database.clone(), time::OffsetDateTime::now_utc());
    Ok(pgb_jobs::check_options(&limits, db, key, now))
}
