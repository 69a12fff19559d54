//! Options of `drill` and `check`, with their defaults.

use std::path::PathBuf;
use std::time::Duration;

use pgb_ops::{BackupChoice, CheckOptions, DrillOptions};
use time::OffsetDateTime;

use super::{Env, conn, temp_dir, tools, var};
use crate::args::{CheckArgs, DrillArgs};
use crate::exit::Failure;

/// `--within` when `--backup random` is given without it.
pub(crate) const RANDOM_WITHIN: &str = "30d";

/// A duration with a unit: `90s`, `30m`, `26h`, `30d`, `2w`, `1h30m`: the config file's
/// grammar ([`pgb_config::parse_duration`]), one for every flag and key.
pub(crate) fn duration(flag: &str, s: &str) -> Result<Duration, Failure> {
    pgb_config::parse_duration(s).map_err(|e| Failure::usage(format!("{flag}: {e}")))
}

fn opt_duration(flag: &str, s: Option<&str>) -> Result<Option<Duration>, Failure> {
    s.map(|s| duration(flag, s)).transpose()
}

/// A size: bytes, or with KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of
/// 1024): the config file's grammar ([`pgb_config::parse_size`]), so `500MB` means the same
/// as a flag and as a key.
pub(crate) fn size(flag: &str, s: &str) -> Result<u64, Failure> {
    pgb_config::parse_size(s).map_err(|e| Failure::usage(format!("{flag}: {e}")))
}

/// `--max-size-drop`: a percentage 0-100, `%` optional.
pub(crate) fn percent(p: &str) -> Result<u32, Failure> {
    p.trim_end_matches('%')
        .parse()
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| {
            Failure::usage(format!(
                "--max-size-drop {p:?}: use a percentage 0-100, e.g. 50"
            ))
        })
}

/// The drill's options: `--target` (else `PGB_DRILL_TARGET`) is required.
/// `--smoke` files as (file name, SQL), read before anything runs.
pub(crate) fn smoke_files(a: &DrillArgs) -> Result<Vec<(String, String)>, Failure> {
    a.smoke
        .iter()
        .map(|path| {
            let sql = std::fs::read_to_string(path).map_err(|e| {
                Failure::usage(format!("--smoke: cannot read {}: {e}", path.display()))
            })?;
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into(),
            );
            Ok((name, sql))
        })
        .collect()
}

/// A drill's RTO and RPO limits: `--job`'s `[drill]` (its flags layered in, typed), else the
/// flags.
pub(crate) fn drill_limits(a: &DrillArgs) -> Result<(Option<Duration>, Option<Duration>), Failure> {
    Ok(match &a.from_job {
        Some(d) => (d.max_rto, d.max_rpo),
        None => (
            opt_duration("--max-rto", a.max_rto.as_deref())?,
            opt_duration("--max-rpo", a.max_rpo.as_deref())?,
        ),
    })
}

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
    let job = a.from_job.as_ref();
    let backup = match a.backup.as_deref().unwrap_or("latest") {
        "latest" => BackupChoice::Latest,
        "random" => BackupChoice::Random {
            within: match job.and_then(|d| d.within) {
                Some(w) => w,
                None => duration("--within", a.within.as_deref().unwrap_or(RANDOM_WITHIN))?,
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
    let spool = var(env, "PGB_SPOOL_DIR").map_or_else(|| temp_dir(env), PathBuf::from);
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
    a.server
        .as_deref()
        .map(|url| super::conn(url, true))
        .transpose()
}

/// The check's options, evaluated as of now.
pub(crate) fn check(a: &CheckArgs, env: Env<'_>) -> Result<CheckOptions, Failure> {
    let mut o = CheckOptions::new(OffsetDateTime::now_utc());
    if let Some(db) = &a.database {
        o = o.with_database(db.clone());
    }
    // `--job`'s [check] table, its flags layered in and typed by the config crate.
    let limits = match &a.from_job {
        Some(c) => c.clone(),
        None => pgb_config::CheckConfig {
            max_age: opt_duration("--max-age", a.max_age.as_deref())?,
            min_size: a
                .min_size
                .as_deref()
                .map(|s| size("--min-size", s))
                .transpose()?,
            max_size_drop: a.max_size_drop.as_deref().map(percent).transpose()?,
            max_drill_age: opt_duration("--max-drill-age", a.max_drill_age.as_deref())?,
            max_rpo: opt_duration("--max-rpo", a.max_rpo.as_deref())?,
            max_wal_age: opt_duration("--max-wal-age", a.max_wal_age.as_deref())?,
        },
    };
    if let Some(d) = limits.max_age {
        o = o.with_max_age(d);
    }
    if let Some(s) = limits.min_size {
        o = o.with_min_size(s);
    }
    if let Some(p) = limits.max_size_drop {
        o = o.with_max_size_drop_percent(p);
    }
    if let Some(d) = limits.max_drill_age {
        o = o.with_max_drill_age(d);
    }
    if let Some(d) = limits.max_rpo {
        o = o.with_max_rpo(d);
    }
    if let Some(d) = limits.max_wal_age {
        o = o.with_max_wal_age(d);
    }
    if let Some(k) = super::auth_key(a.auth_key_file.as_deref(), env)? {
        o = o.with_auth_key(k);
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One grammar per value, the config file's: a flag means what the same text means as
    /// a TOML key or a `PGB_*` variable.
    #[test]
    fn flags_read_durations_and_sizes_as_the_config_file_does() {
        for (text, secs) in [
            ("2s", 2),
            ("90m", 5400),
            ("26h", 93_600),
            ("30d", 2_592_000),
        ] {
            assert_eq!(duration("--x", text).unwrap(), Duration::from_secs(secs));
            assert_eq!(
                pgb_config::parse_duration(text).unwrap(),
                Duration::from_secs(secs)
            );
        }
        assert_eq!(duration("--x", "1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(duration("--x", "5").unwrap_err().code, 2);
        assert_eq!(duration("--x", "5y").unwrap_err().code, 2);
        for (text, bytes) in [
            ("1024", 1024),
            ("500MB", 500_000_000),
            ("500MiB", 500 << 20),
            ("1GB", 1_000_000_000),
            ("1GiB", 1 << 30),
            ("2kB", 2000),
            ("2KiB", 2048),
        ] {
            assert_eq!(size("--x", text).unwrap(), bytes, "{text}");
            assert_eq!(pgb_config::parse_size(text).unwrap(), bytes, "{text}");
        }
        // A bare unit letter is ambiguous: refused with both spellings offered.
        let err = size("--min-size", "10M").unwrap_err();
        assert_eq!(err.code, 2);
        assert!(
            err.message.contains("10MB") && err.message.contains("10MiB"),
            "{}",
            err.message
        );
        assert_eq!(size("--x", "1X").unwrap_err().code, 2);
        // gc's grace period takes the same grammar (seconds and minutes too).
        assert_eq!(
            crate::resolve::grace(Some("0s")).unwrap(),
            time::Duration::ZERO
        );
        assert_eq!(
            crate::resolve::grace(Some("90m")).unwrap(),
            time::Duration::minutes(90)
        );
    }
}
