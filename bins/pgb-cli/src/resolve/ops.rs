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

/// A duration with a unit: `90s`, `30m`, `26h`, `30d`, `2w`.
pub(crate) fn duration(flag: &str, s: &str) -> Result<Duration, Failure> {
    let bad = || {
        Failure::usage(format!(
            "{flag} {s:?}: use a number with s, m, h, d or w, e.g. 26h"
        ))
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(n.checked_mul(secs).ok_or_else(bad)?))
}

fn opt_duration(flag: &str, s: Option<&str>) -> Result<Option<Duration>, Failure> {
    s.map(|s| duration(flag, s)).transpose()
}

/// A size: bytes, or with k, M, G, T (powers of 1024; a trailing `B`/`iB` is accepted).
pub(crate) fn size(flag: &str, s: &str) -> Result<u64, Failure> {
    let bad = || {
        Failure::usage(format!(
            "{flag} {s:?}: use bytes or a number with k, M, G, T"
        ))
    };
    let t = s.trim_end_matches("iB").trim_end_matches('B');
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit {
        "" => 1,
        "k" | "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
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
    let backup = match a.backup.as_deref().unwrap_or("latest") {
        "latest" => BackupChoice::Latest,
        "random" => BackupChoice::Random {
            within: duration("--within", a.within.as_deref().unwrap_or(RANDOM_WITHIN))?,
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
    for path in &a.smoke {
        let sql = std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("--smoke: cannot read {}: {e}", path.display())))?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        o = o.with_smoke(name, sql);
    }
    if let Some(d) = opt_duration("--max-rto", a.max_rto.as_deref())? {
        o = o.with_max_rto(d);
    }
    if let Some(d) = opt_duration("--max-rpo", a.max_rpo.as_deref())? {
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

/// The check's options, evaluated as of now.
pub(crate) fn check(a: &CheckArgs, env: Env<'_>) -> Result<CheckOptions, Failure> {
    let mut o = CheckOptions::new(OffsetDateTime::now_utc());
    if let Some(db) = &a.database {
        o = o.with_database(db.clone());
    }
    if let Some(d) = opt_duration("--max-age", a.max_age.as_deref())? {
        o = o.with_max_age(d);
    }
    if let Some(s) = &a.min_size {
        o = o.with_min_size(size("--min-size", s)?);
    }
    if let Some(p) = &a.max_size_drop {
        let pct: u32 = p
            .trim_end_matches('%')
            .parse()
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| {
                Failure::usage(format!(
                    "--max-size-drop {p:?}: use a percentage 0-100, e.g. 50"
                ))
            })?;
        o = o.with_max_size_drop_percent(pct);
    }
    if let Some(d) = opt_duration("--max-drill-age", a.max_drill_age.as_deref())? {
        o = o.with_max_drill_age(d);
    }
    if let Some(k) = super::auth_key(a.auth_key_file.as_deref(), env)? {
        o = o.with_auth_key(k);
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(duration("--x", "2s").unwrap(), Duration::from_secs(2));
        assert_eq!(
            duration("--x", "26h").unwrap(),
            Duration::from_secs(26 * 3600)
        );
        assert_eq!(
            duration("--x", "30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(duration("--x", "5").unwrap_err().code, 2);
        assert_eq!(duration("--x", "5y").unwrap_err().code, 2);
        assert_eq!(size("--x", "1024").unwrap(), 1024);
        assert_eq!(size("--x", "10M").unwrap(), 10 << 20);
        assert_eq!(size("--x", "1GiB").unwrap(), 1 << 30);
        assert_eq!(size("--x", "1X").unwrap_err().code, 2);
    }
}
