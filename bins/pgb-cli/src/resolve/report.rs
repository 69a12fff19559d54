//! `pgb report`'s options: the window (`--since`, the one duration grammar of the config, or
//! a date), the sets, the policy whose next prune is shown and the job's drill targets.

use std::sync::Arc;

use pgb_config::ResolvedJob;
use pgb_ops::ReportOptions;
use time::OffsetDateTime;

use super::Env;
use crate::args::{PolicyArgs, ReportArgs};
use crate::exit::Failure;

/// The report's options as of `now`.
pub(crate) fn report_options(
    a: &ReportArgs,
    job: Option<&ResolvedJob>,
    env: Env<'_>,
    now: OffsetDateTime,
) -> Result<ReportOptions, Failure> {
    let repo = pgb::redact_url(&super::repo_url(&a.repo, env));
    let mut o = ReportOptions::new(repo, now)
        .with_auth_key(super::auth_key(a.auth_key_file.as_deref(), env)?);
    if let Some(s) = &a.since {
        o = o.with_since(since(s, now)?, s.clone());
    }
    if !a.set.is_empty() {
        o = o.with_sets(a.set.iter().cloned());
    }
    if let Some(p) = super::policy(&a.policy)? {
        let text = policy_text(&a.policy).unwrap_or_else(|| match job {
            Some(j) => format!("the keep_* keys of job {}", j.name),
            None => "given".to_owned(),
        });
        o = o.with_policy(Arc::new(p), text);
    }
    if let Some(j) = job {
        o = o.with_job(j.name.clone());
        if let Some(d) = &j.drill {
            o = o.with_targets(d.max_rto, d.max_rpo);
        }
    }
    Ok(o)
}

/// `--since`: a duration back from `now` (`90d`, the config's grammar) or a start date
/// (`2026-01-01`, midnight UTC) or time (RFC 3339). A start in the future is allowed: the
/// report says that nothing can fall in it.
fn since(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, Failure> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(d) = pgb_config::parse_duration(s) {
        let d = time::Duration::try_from(d)
            .map_err(|e| Failure::usage(format!("--since {s:?}: {e}")))?;
        return now
            .checked_sub(d)
            .ok_or_else(|| Failure::usage(format!("--since {s:?}: too far back")));
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &date)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| {
            Failure::usage(format!(
                "--since {s:?}: expected a duration back from now (90d, 2w, 36h, 1h30m) or a \
                 date (2026-01-01) or time (2026-01-01T00:00:00Z)"
            ))
        })
}

/// The policy flags as given (`--keep-daily 7 --keep-weekly 4`); `None` when none is.
fn policy_text(p: &PolicyArgs) -> Option<String> {
    let flags = [
        ("--keep-last", &p.keep_last),
        ("--keep-hourly", &p.keep_hourly),
        ("--keep-daily", &p.keep_daily),
        ("--keep-weekly", &p.keep_weekly),
        ("--keep-monthly", &p.keep_monthly),
        ("--keep-yearly", &p.keep_yearly),
        ("--keep-within", &p.keep_within),
        ("--keep-within-hourly", &p.keep_within_hourly),
        ("--keep-within-daily", &p.keep_within_daily),
        ("--keep-within-weekly", &p.keep_within_weekly),
        ("--keep-within-monthly", &p.keep_within_monthly),
        ("--keep-within-yearly", &p.keep_within_yearly),
    ];
    let mut parts: Vec<String> = flags
        .iter()
        .filter_map(|(f, v)| v.as_ref().map(|v| format!("{f} {v}")))
        .collect();
    parts.extend(p.keep_label.iter().map(|l| format!("--keep-label {l}")));
    if let Some(z) = &p.retention_tz {
        parts.push(format!("--retention-tz {z}"));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_a_date_or_a_time() {
        let now = time::macros::datetime!(2026-05-01 12:00 UTC);
        assert_eq!(since("90d", now).unwrap(), now - time::Duration::days(90));
        assert_eq!(
            since("1h30m", now).unwrap(),
            now - time::Duration::minutes(90)
        );
        assert_eq!(
            since("2026-01-01", now).unwrap(),
            time::macros::datetime!(2026-01-01 0:00 UTC)
        );
        assert_eq!(
            since("2027-01-01T00:00:00Z", now).unwrap(),
            time::macros::datetime!(2027-01-01 0:00 UTC)
        );
        let e = since("3 months", now).unwrap_err();
        assert!(e.code == 2 && e.message.contains("90d"), "{}", e.message);
    }

    #[test]
    fn the_policy_reads_as_given() {
        let p = PolicyArgs {
            keep_daily: Some("7".into()),
            keep_label: vec!["release".into()],
            ..PolicyArgs::default()
        };
        assert_eq!(
            policy_text(&p).as_deref(),
            Some("--keep-daily 7 --keep-label release")
        );
        assert_eq!(policy_text(&PolicyArgs::default()), None);
    }
}
