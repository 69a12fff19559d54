//! A report's window and a job's part in it: [`parse_since`] reads a start (a duration back
//! from now, in the config's one duration grammar, or a date or time) and [`job_report`] adds
//! what a job says about its report (its name, drill targets and retention policy).

use std::sync::Arc;

use pgb_config::ResolvedJob;
use pgb_ops::ReportOptions;
use time::OffsetDateTime;

/// Why a text names no start of a report's window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SinceError {
    /// A duration too long to count back.
    #[error("{0}")]
    Duration(String),
    /// A duration that reaches before the calendar's start.
    #[error("too far back")]
    TooFarBack,
    /// Neither a duration nor a date or time.
    #[error(
        "expected a duration back from now (90d, 2w, 36h, 1h30m) or a date (2026-01-01) or time (2026-01-01T00:00:00Z)"
    )]
    Invalid,
}

/// The start of a report's window: a duration back from `now` (`90d`, the config's grammar),
/// a date (`2026-01-01`, midnight UTC) or a time (RFC 3339). A start in the future is allowed:
/// nothing can fall in it.
///
/// # Errors
/// [`SinceError`].
pub fn parse_since(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, SinceError> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(d) = pgb_config::parse_duration(text) {
        let d = time::Duration::try_from(d).map_err(|e| SinceError::Duration(e.to_string()))?;
        return now.checked_sub(d).ok_or(SinceError::TooFarBack);
    }
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t);
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &date)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| SinceError::Invalid)
}

/// `o` for job `job`: its name, its drill's RTO and RPO targets, and its retention policy
/// (described as its `keep_*` keys) unless `o` already has one.
pub fn job_report(o: ReportOptions, job: &ResolvedJob) -> ReportOptions {
    let mut o = o.with_job(job.name.clone());
    if let Some(d) = &job.drill {
        o = o.with_targets(d.max_rto, d.max_rpo);
    }
    match &job.retention {
        Some(p) if o.policy.is_none() => o.with_policy(
            Arc::new(p.clone()),
            format!("the keep_* keys of job {}", job.name),
        ),
        _ => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_a_date_or_a_time() {
        let now = time::macros::datetime!(2026-05-01 12:00 UTC);
        assert_eq!(
            parse_since("90d", now).unwrap(),
            now - time::Duration::days(90)
        );
        assert_eq!(
            parse_since("1h30m", now).unwrap(),
            now - time::Duration::minutes(90)
        );
        assert_eq!(
            parse_since("2026-01-01", now).unwrap(),
            time::macros::datetime!(2026-01-01 0:00 UTC)
        );
        assert_eq!(
            parse_since("2027-01-01T00:00:00Z", now).unwrap(),
            time::macros::datetime!(2027-01-01 0:00 UTC)
        );
        let e = parse_since("3 months", now).unwrap_err();
        assert!(e.to_string().contains("90d"), "{e}");
        assert_eq!(
            parse_since("400000000w", now).unwrap_err(),
            SinceError::TooFarBack
        );
    }
}
