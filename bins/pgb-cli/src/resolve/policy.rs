//! The retention policy of the `--keep-*` flags and the grace period of `gc`.

use pgb::retention::{self, Policy};

use super::defaults;
use crate::args::PolicyArgs;
use crate::exit::Failure;

/// The retention policy of the `--keep-*` flags, or `None` when no rule is given.
pub(crate) fn policy(a: &PolicyArgs) -> Result<Option<Policy>, Failure> {
    type SetCount = fn(Policy, retention::Count) -> Policy;
    type SetSpan = fn(Policy, retention::Span) -> Policy;
    let bad = |e: retention::RetentionError| Failure::usage(e.to_string());
    let counts: [(_, SetCount); 6] = [
        (&a.keep_last, Policy::with_keep_last_count),
        (&a.keep_hourly, Policy::with_keep_hourly),
        (&a.keep_daily, Policy::with_keep_daily),
        (&a.keep_weekly, Policy::with_keep_weekly),
        (&a.keep_monthly, Policy::with_keep_monthly),
        (&a.keep_yearly, Policy::with_keep_yearly),
    ];
    let spans: [(_, SetSpan); 6] = [
        (&a.keep_within, Policy::with_keep_within),
        (&a.keep_within_hourly, Policy::with_keep_within_hourly),
        (&a.keep_within_daily, Policy::with_keep_within_daily),
        (&a.keep_within_weekly, Policy::with_keep_within_weekly),
        (&a.keep_within_monthly, Policy::with_keep_within_monthly),
        (&a.keep_within_yearly, Policy::with_keep_within_yearly),
    ];
    let mut p = Policy::default();
    let mut any = !a.keep_label.is_empty();
    for (value, set) in counts {
        if let Some(v) = value {
            p = set(p, retention::parse_count(v).map_err(bad)?);
            any = true;
        }
    }
    for (value, set) in spans {
        if let Some(v) = value {
            p = set(p, retention::parse_span(v).map_err(bad)?);
            any = true;
        }
    }
    p = a
        .keep_label
        .iter()
        .fold(p, |p, l| p.with_keep_label(l.clone()));
    if let Some(z) = &a.retention_tz {
        p = p.with_zone(retention::Zone::iana(z).map_err(bad)?);
    }
    if !any {
        // No rule flag: the policy of `--job`, if any.
        return Ok(a.from_job.clone());
    }
    p.validate().map_err(bad)?;
    Ok(Some(p))
}

/// The grace period of `gc` (`24h`, `7d`, `2w`).
pub(crate) fn grace(older_than: Option<&str>) -> Result<time::Duration, Failure> {
    let s = older_than.unwrap_or(defaults::GC_OLDER_THAN);
    let d = super::ops::duration("--older-than", s)?;
    time::Duration::try_from(d).map_err(|e| Failure::usage(format!("--older-than {s:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use pgb::retention::{Backup as RetBackup, RetentionPolicy};

    use super::*;

    #[test]
    fn every_count_accepts_unlimited_keep_last_included() {
        let a = PolicyArgs {
            keep_last: Some("unlimited".to_owned()),
            ..PolicyArgs::default()
        };
        let p = policy(&a).unwrap().expect("a policy");
        let t = time::macros::datetime!(2026-01-01 0:00 UTC);
        let backups: Vec<RetBackup> = (0..4)
            .map(|i| RetBackup::new(format!("b{i}"), t + time::Duration::hours(i)))
            .collect();
        assert!(p.plan(&backups, t).unwrap().remove.is_empty());
        for flag in ["2", "unlimited"] {
            let a = PolicyArgs {
                keep_daily: Some(flag.to_owned()),
                keep_yearly: Some(flag.to_owned()),
                ..PolicyArgs::default()
            };
            assert!(policy(&a).unwrap().is_some());
        }
        let bad = PolicyArgs {
            keep_last: Some("-1".to_owned()),
            ..PolicyArgs::default()
        };
        let e = policy(&bad).unwrap_err();
        assert!(
            e.code == 2 && e.message.contains("unlimited"),
            "{}",
            e.message
        );
    }

    #[test]
    fn no_rule_is_no_policy() {
        assert!(policy(&PolicyArgs::default()).unwrap().is_none());
    }

    #[test]
    fn grace_periods() {
        assert_eq!(grace(None).unwrap(), time::Duration::hours(24));
        assert_eq!(grace(Some("2w")).unwrap(), time::Duration::weeks(2));
        // The one duration grammar: `m` is minutes, as everywhere; months are no unit here.
        assert_eq!(grace(Some("3m")).unwrap(), time::Duration::minutes(3));
        assert_eq!(grace(Some("3mo")).unwrap_err().code, 2);
        assert_eq!(grace(Some("3")).unwrap_err().code, 2);
    }
}
