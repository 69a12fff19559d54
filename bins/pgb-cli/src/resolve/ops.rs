//! Options of `drill` and `check`, with their defaults. Durations and sizes are read in the
//! config file's one grammar ([`pgb_config::parse_duration`], [`pgb_config::parse_size`]), so
//! a flag means what the same text means as a TOML key or a `PGB_*` variable.

use std::time::Duration;

use pgb_ops::{BackupChoice, CheckOptions, DrillOptions};
use time::OffsetDateTime;

use super::{Env, conn, temp_dir, tools, var};
use crate::args::{CheckArgs, DrillArgs};
use crate::exit::Failure;

/// A flag's duration, if given.
fn duration(flag: &str, s: Option<&str>) -> Result<Option<Duration>, Failure> {
    let d = s.map(pgb_config::parse_duration).transpose();
    d.map_err(|e| Failure::usage(format!("{flag}: {e}")))
}

/// `--max-size-drop`: a percentage 0-100, `%` optional.
pub(crate) fn percent(p: &str) -> Result<u32, Failure> {
    let n = p.trim_end_matches('%').parse().ok().filter(|p| *p <= 100);
    n.ok_or_else(|| {
        Failure::usage(format!(
            "--max-size-drop {p:?}: use a percentage 0-100, e.g. 50"
        ))
    })
}

/// `--smoke` files as (file name, SQL), read before anything runs.
pub(crate) fn smoke_files(a: &DrillArgs) -> Result<Vec<(String, String)>, Failure> {
    let read = |path: &std::path::PathBuf| {
        let sql = std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("--smoke: cannot read {}: {e}", path.display())))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into());
        Ok((name.unwrap_or_else(|| path.display().to_string()), sql))
    };
    a.smoke.iter().map(read).collect()
}

/// A drill's RTO and RPO limits: `--job`'s `[drill]` (its flags layered in, typed), else the
/// flags.
pub(crate) fn drill_limits(a: &DrillArgs) -> Result<(Option<Duration>, Option<Duration>), Failure> {
    Ok(match &a.from_job {
        Some(d) => (d.max_rto, d.max_rpo),
        None => (
            duration("--max-rto", a.max_rto.as_deref())?,
            duration("--max-rpo", a.max_rpo.as_deref())?,
        ),
    })
}

/// The drill's options: `--target` (else `PGB_DRILL_TARGET`) is required.
pub(crate) fn drill(a: &DrillArgs, env: Env<'_>) -> Result<DrillOptions, Failure> {
    let (url, from_flag) = match (&a.target, var(env, "PGB_DRILL_TARGET")) {
        (Some(t), _) => (t.clone(), true),
        (None, Some(t)) => (t, false),
        (None, None) => {
            return Err(Failure::usage(
                "drill needs a target server: --target postgres://user@host:port/postgres (or PGB_DRILL_TARGET)",
            ));
        }
    };
    // `--job`'s [drill] table, its flags layered in and typed by the config crate.
    let backup = match a.backup.as_deref().unwrap_or("latest") {
        "latest" => BackupChoice::Latest,
        "random" => BackupChoice::Random {
            within: match a.from_job.as_ref().and_then(|d| d.within) {
                Some(w) => w,
                None => duration("--within", Some(a.within.as_deref().unwrap_or("30d")))?
                    .unwrap_or_default(),
            },
        },
        id => BackupChoice::Id(
            id.parse()
                .map_err(|e: pgb::InvalidBackupId| Failure::usage(format!("--backup: {e}")))?,
        ),
    };
    if a.within.is_some() && !matches!(backup, BackupChoice::Random { .. }) {
        return Err(Failure::usage("--within goes with --backup random"));
    }
    let spool = var(env, "PGB_SPOOL_DIR").map_or_else(|| temp_dir(env), Into::into);
    let mut o = DrillOptions::new(conn(&url, from_flag)?, tools(&a.tools, env), spool)
        .with_backup(backup)
        .with_keep(a.keep);
    if let Some(db) = &a.from_database {
        o = o.with_from_database(db.clone());
    }
    if let Some(db) = &a.database {
        o = o.with_database(db.clone());
    }
    for (name, sql) in smoke_files(a)? {
        o = o.with_smoke(name, sql);
    }
    let (max_rto, max_rpo) = drill_limits(a)?;
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

/// The ids of the repository's verified backups (verify records and passed drills; records
/// are authenticated with `auth` when given), for prune's newest-verified guard.
pub(crate) async fn verified(
    repo: &pgb::Repository,
    auth: Option<&pgb::AuthKey>,
) -> Result<std::collections::BTreeSet<pgb::BackupId>, Failure> {
    let listing = repo.list().await?;
    Ok(pgb_ops::verified_ids(repo, &listing, auth).await?)
}

/// The server `check --server` asks about its archiving. Only when asked: a check runs from
/// any host that can read the repository, often one that cannot reach the database.
pub(crate) fn check_server(a: &CheckArgs) -> Result<Option<pgb::postgres::ConnConfig>, Failure> {
    a.server.as_deref().map(|url| conn(url, true)).transpose()
}

/// The check's options, evaluated as of now: `--job`'s `[check]` (its flags layered in,
/// typed by the config crate), else the flags.
pub(crate) fn check(a: &CheckArgs, env: Env<'_>) -> Result<CheckOptions, Failure> {
    let mut o = CheckOptions::new(OffsetDateTime::now_utc());
    o.database.clone_from(&a.database);
    if let Some(c) = &a.from_job {
        (o.max_age, o.min_size, o.max_size_drop_percent) = (c.max_age, c.min_size, c.max_size_drop);
        (o.max_drill_age, o.max_rpo, o.max_wal_age) = (c.max_drill_age, c.max_rpo, c.max_wal_age);
    } else {
        let size = a
            .min_size
            .as_deref()
            .map(pgb_config::parse_size)
            .transpose();
        o.min_size = size.map_err(|e| Failure::usage(format!("--min-size: {e}")))?;
        o.max_size_drop_percent = a.max_size_drop.as_deref().map(percent).transpose()?;
        o.max_age = duration("--max-age", a.max_age.as_deref())?;
        o.max_drill_age = duration("--max-drill-age", a.max_drill_age.as_deref())?;
        o.max_rpo = duration("--max-rpo", a.max_rpo.as_deref())?;
        o.max_wal_age = duration("--max-wal-age", a.max_wal_age.as_deref())?;
    }
    o.auth_key = super::auth_key(a.auth_key_file.as_deref(), env)?;
    Ok(o)
}
