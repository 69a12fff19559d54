//! The evaluation itself (spec §3.3), written as group-by counting over the total order.

use std::cmp::Ordering;
use std::collections::HashSet;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use time::OffsetDateTime;

use crate::{Backup, Kept, Plan, Policy, Reason, RetentionError, Rule, Span};

/// The total order: newest first, and on equal times the higher id counts as newer (D1).
pub(crate) fn newer_first(a: &Backup, b: &Backup) -> Ordering {
    b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id))
}

pub(crate) fn plan(
    policy: &Policy,
    backups: &[Backup],
    now: OffsetDateTime,
) -> Result<Plan, RetentionError> {
    policy.validate()?;
    let mut ids = HashSet::with_capacity(backups.len());
    if let Some(dup) = backups.iter().find(|b| !ids.insert(b.id.as_str())) {
        return Err(RetentionError::DuplicateId(dup.id.clone()));
    }

    let mut order: Vec<&Backup> = backups.iter().collect();
    order.sort_by(|a, b| newer_first(a, b));
    // Future-dated backups sort first; they are quarantined rather than counted (D4).
    let split = order.partition_point(|b| b.time > now);
    let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); order.len()];
    evaluate(policy, &order[split..], &mut reasons[split..])?;
    for r in &mut reasons[..split] {
        r.push(Reason::FutureQuarantine);
    }

    let mut plan = Plan {
        keep: Vec::new(),
        remove: Vec::new(),
    };
    for (b, reasons) in order.into_iter().zip(reasons) {
        if reasons.is_empty() {
            plan.remove.push(b.id.clone());
        } else {
            plan.keep.push(Kept {
                id: b.id.clone(),
                reasons,
            });
        }
    }
    Ok(plan)
}

#[derive(Debug, Clone, Copy)]
enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    fn of(rule: Rule) -> Option<Period> {
        match rule {
            Rule::Hourly | Rule::WithinHourly => Some(Period::Hour),
            Rule::Daily | Rule::WithinDaily => Some(Period::Day),
            Rule::Weekly | Rule::WithinWeekly => Some(Period::Week),
            Rule::Monthly | Rule::WithinMonthly => Some(Period::Month),
            Rule::Yearly | Rule::WithinYearly => Some(Period::Year),
            _ => None,
        }
    }

    fn key(self, dt: &DateTime) -> String {
        let (y, m, d, h) = (dt.year(), dt.month(), dt.day(), dt.hour());
        match self {
            Period::Hour => format!("{y:04}-{m:02}-{d:02}T{h:02}"),
            Period::Day => format!("{y:04}-{m:02}-{d:02}"),
            // ISO week-year, not the calendar year: 2021-01-03 is 2020-W53.
            Period::Week => {
                let w = dt.date().iso_week_date();
                format!("{:04}-W{:02}", w.year(), w.week())
            }
            Period::Month => format!("{y:04}-{m:02}"),
            Period::Year => format!("{y:04}"),
        }
    }
}

fn rank(seen: usize) -> u32 {
    u32::try_from(seen).unwrap_or(u32::MAX)
}

/// Applies every rule to `s` (the non-future backups, newest first), appending to `reasons`
/// (parallel to `s`) in restic's reason order.
fn evaluate(
    policy: &Policy,
    s: &[&Backup],
    reasons: &mut [Vec<Reason>],
) -> Result<(), RetentionError> {
    let Some(oldest) = s.len().checked_sub(1) else {
        return Ok(());
    };
    let tz = &policy.zone.tz;
    let ts: Vec<Timestamp> = s
        .iter()
        .map(|b| {
            Timestamp::from_nanosecond(b.time.unix_timestamp_nanos())
                .map_err(|_| RetentionError::TimeOutOfRange(b.id.clone()))
        })
        .collect::<Result<_, _>>()?;
    let civil: Vec<DateTime> = ts.iter().map(|t| tz.to_datetime(*t)).collect();
    let anchor = ts[0];
    let key = |rule: Rule, i: usize| match Period::of(rule) {
        Some(p) => p.key(&civil[i]),
        None => s[i].id.clone(),
    };

    for set in &policy.labels {
        for (b, r) in s.iter().zip(reasons.iter_mut()) {
            if label_set_matches(set, &b.labels) {
                r.push(Reason::Label {
                    labels: set.clone(),
                });
            }
        }
    }

    if let Some(span) = policy.within {
        let start = window_start(tz, anchor, span);
        // Windows are prefixes of the newest-first order.
        for (t, r) in ts.iter().zip(reasons.iter_mut()) {
            if !inside(*t, start) {
                break;
            }
            r.push(Reason::Within { span });
        }
    }

    for (rule, count) in policy.counts() {
        let Some(count) = count.filter(|c| c.is_active()) else {
            continue;
        };
        let mut seen = HashSet::new();
        let mut budget = count.budget();
        for (i, r) in reasons.iter_mut().enumerate().take(oldest) {
            if budget == Some(0) {
                break;
            }
            let k = key(rule, i);
            if !seen.contains(&k) {
                seen.insert(k.clone());
                r.push(Reason::Count {
                    rule,
                    rank: rank(seen.len()),
                    bucket: k,
                    oldest: false,
                });
                budget = budget.map(|b| b - 1);
            }
        }
        // Budget left after everything else: the oldest backup is kept too (restic >= 0.16),
        // labelled "oldest" only when a newer backup already represents its bucket.
        if budget != Some(0) {
            let k = key(rule, oldest);
            reasons[oldest].push(Reason::Count {
                rule,
                rank: rank(seen.len() + 1),
                oldest: seen.contains(&k),
                bucket: k,
            });
        }
    }

    for (rule, span) in policy.within_buckets() {
        let Some(span) = span else {
            continue;
        };
        let start = window_start(tz, anchor, span);
        let mut seen = HashSet::new();
        for i in 0..s.len() {
            if !inside(ts[i], start) {
                break;
            }
            let k = key(rule, i);
            if !seen.contains(&k) {
                seen.insert(k.clone());
                reasons[i].push(Reason::WithinBucket {
                    rule,
                    span,
                    bucket: k,
                    oldest: false,
                });
            } else if i == oldest {
                reasons[i].push(Reason::WithinBucket {
                    rule,
                    span,
                    bucket: k,
                    oldest: true,
                });
            }
        }
    }
    Ok(())
}

/// `[""]` matches unlabelled backups only (restic >= 0.12.1); otherwise all labels must be
/// present.
fn label_set_matches(set: &[String], labels: &[String]) -> bool {
    match set {
        [only] if only.is_empty() => labels.is_empty(),
        _ => set.iter().all(|l| labels.contains(l)),
    }
}

/// The boundary is exclusive: a backup exactly `span` old is outside.
fn inside(t: Timestamp, start: Option<Timestamp>) -> bool {
    start.is_none_or(|s| t > s)
}

/// `anchor - span` in `zone`, as the `within` rule computes it; `None` when it lies before
/// the representable range (the window covers everything).
pub(crate) fn window_start_at(
    zone: &crate::Zone,
    anchor: OffsetDateTime,
    span: Span,
) -> Option<OffsetDateTime> {
    let anchor = Timestamp::from_nanosecond(anchor.unix_timestamp_nanos()).ok()?;
    let start = window_start(&zone.tz, anchor, span)?;
    OffsetDateTime::from_unix_timestamp_nanos(start.as_nanosecond()).ok()
}

/// `anchor - span` in `tz`, like restic's `latest.AddDate(-y, -m, -d).Add(-h)`: the civil
/// date is normalised the Go way (03-31 minus 1 month = 03-02), days are calendar days,
/// hours absolute. `None` means the start lies before the representable range, so the window
/// covers everything.
fn window_start(tz: &TimeZone, anchor: Timestamp, span: Span) -> Option<Timestamp> {
    let dt = tz.to_datetime(anchor);
    let months = i64::from(dt.year()) * 12 + i64::from(dt.month() - 1)
        - i64::from(span.years) * 12
        - i64::from(span.months);
    let year = i16::try_from(months.div_euclid(12)).ok()?;
    let month = i8::try_from(months.rem_euclid(12) + 1).ok()?;
    // Go normalises overflowing days by counting from the 1st of the target month.
    let day_offset = i64::from(dt.day()) - 1 - i64::from(span.days);
    let date = Date::new(year, month, 1)
        .ok()?
        .checked_add(jiff::Span::new().try_days(day_offset).ok()?)
        .ok()?;
    let start = tz
        .to_ambiguous_timestamp(date.to_datetime(dt.time()))
        .compatible()
        .ok()?;
    start
        .checked_sub(SignedDuration::from_hours(i64::from(span.hours)))
        .ok()
}
