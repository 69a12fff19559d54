//! The typed policy and its time zone.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

use crate::{Backup, Count, Plan, RetentionError, RetentionPolicy, Rule, Span};

/// The single zone in which all bucket keys and calendar windows are computed.
///
/// Defaults to UTC. The tz database is bundled, so results do not depend on the host.
#[derive(Debug, Clone)]
pub struct Zone {
    name: String,
    pub(crate) tz: jiff::tz::TimeZone,
}

impl Zone {
    /// UTC.
    #[must_use]
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".to_owned(),
            tz: jiff::tz::TimeZone::UTC,
        }
    }

    /// An IANA zone such as `Europe/Berlin`.
    pub fn iana(name: &str) -> Result<Zone, RetentionError> {
        let tz = jiff::tz::TimeZone::get(name).map_err(|e| RetentionError::UnknownZone {
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Zone {
            name: name.to_owned(),
            tz,
        })
    }

    /// The name it was created from.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Default for Zone {
    fn default() -> Zone {
        Zone::utc()
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        self.name == other.name
    }
}

impl Eq for Zone {}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl FromStr for Zone {
    type Err = RetentionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Zone::iana(s)
    }
}

/// A retention policy: the union of independent rules (restic `forget` semantics).
///
/// Build it with `Policy::default()` and the `with_*` setters; [`Policy::validate`] (also run
/// by [`plan`](RetentionPolicy::plan)) rejects policies with no count or age rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub(crate) last: Option<Count>,
    pub(crate) hourly: Option<Count>,
    pub(crate) daily: Option<Count>,
    pub(crate) weekly: Option<Count>,
    pub(crate) monthly: Option<Count>,
    pub(crate) yearly: Option<Count>,
    pub(crate) within: Option<Span>,
    pub(crate) within_hourly: Option<Span>,
    pub(crate) within_daily: Option<Span>,
    pub(crate) within_weekly: Option<Span>,
    pub(crate) within_monthly: Option<Span>,
    pub(crate) within_yearly: Option<Span>,
    /// OR across sets, AND inside a set (restic's `--keep-tag a,b --keep-tag c`).
    pub(crate) labels: Vec<Vec<String>>,
    pub(crate) zone: Zone,
}

impl Policy {
    /// Keep the `n` newest backups (`0` = rule off).
    #[must_use]
    pub fn with_keep_last(self, n: u32) -> Policy {
        self.with_keep_last_count(Count::N(n))
    }

    /// Keep the `count` newest backups; [`Count::Unlimited`] keeps every backup, like restic's
    /// `--keep-last -1` (`N(0)` = rule off).
    #[must_use]
    pub fn with_keep_last_count(mut self, count: Count) -> Policy {
        self.last = Some(count);
        self
    }

    /// Keep the newest backup of each of the `count` newest hours.
    #[must_use]
    pub fn with_keep_hourly(mut self, count: Count) -> Policy {
        self.hourly = Some(count);
        self
    }

    /// Keep the newest backup of each of the `count` newest days.
    #[must_use]
    pub fn with_keep_daily(mut self, count: Count) -> Policy {
        self.daily = Some(count);
        self
    }

    /// Keep the newest backup of each of the `count` newest ISO weeks (Monday..Sunday).
    #[must_use]
    pub fn with_keep_weekly(mut self, count: Count) -> Policy {
        self.weekly = Some(count);
        self
    }

    /// Keep the newest backup of each of the `count` newest months.
    #[must_use]
    pub fn with_keep_monthly(mut self, count: Count) -> Policy {
        self.monthly = Some(count);
        self
    }

    /// Keep the newest backup of each of the `count` newest years.
    #[must_use]
    pub fn with_keep_yearly(mut self, count: Count) -> Policy {
        self.yearly = Some(count);
        self
    }

    /// Keep every backup newer than `newest - span` (boundary excluded).
    #[must_use]
    pub fn with_keep_within(mut self, span: Span) -> Policy {
        self.within = Some(span);
        self
    }

    /// Inside `newest - span`, keep the newest backup of every hour.
    #[must_use]
    pub fn with_keep_within_hourly(mut self, span: Span) -> Policy {
        self.within_hourly = Some(span);
        self
    }

    /// Inside `newest - span`, keep the newest backup of every day.
    #[must_use]
    pub fn with_keep_within_daily(mut self, span: Span) -> Policy {
        self.within_daily = Some(span);
        self
    }

    /// Inside `newest - span`, keep the newest backup of every ISO week.
    #[must_use]
    pub fn with_keep_within_weekly(mut self, span: Span) -> Policy {
        self.within_weekly = Some(span);
        self
    }

    /// Inside `newest - span`, keep the newest backup of every month.
    #[must_use]
    pub fn with_keep_within_monthly(mut self, span: Span) -> Policy {
        self.within_monthly = Some(span);
        self
    }

    /// Inside `newest - span`, keep the newest backup of every year.
    #[must_use]
    pub fn with_keep_within_yearly(mut self, span: Span) -> Policy {
        self.within_yearly = Some(span);
        self
    }

    /// Always keep backups carrying `label`. The empty label `""` matches unlabelled backups.
    ///
    /// Labelled backups still count as bucket representatives; a label rule alone is not a
    /// valid policy.
    #[must_use]
    pub fn with_keep_label(self, label: impl Into<String>) -> Policy {
        self.with_keep_labels_all([label])
    }

    /// Always keep backups carrying *all* of `labels` (restic `--keep-tag a,b`).
    #[must_use]
    pub fn with_keep_labels_all<I>(mut self, labels: I) -> Policy
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.labels
            .push(labels.into_iter().map(Into::into).collect());
        self
    }

    /// Compute bucket keys and calendar windows in `zone` (default UTC).
    #[must_use]
    pub fn with_zone(mut self, zone: Zone) -> Policy {
        self.zone = zone;
        self
    }

    /// The policy zone.
    #[must_use]
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// The count rules in reason order, `last` first.
    pub(crate) fn counts(&self) -> [(Rule, Option<Count>); 6] {
        [
            (Rule::Last, self.last),
            (Rule::Hourly, self.hourly),
            (Rule::Daily, self.daily),
            (Rule::Weekly, self.weekly),
            (Rule::Monthly, self.monthly),
            (Rule::Yearly, self.yearly),
        ]
    }

    /// The within-bucket rules in reason order.
    pub(crate) fn within_buckets(&self) -> [(Rule, Option<Span>); 5] {
        [
            (Rule::WithinHourly, self.within_hourly),
            (Rule::WithinDaily, self.within_daily),
            (Rule::WithinWeekly, self.within_weekly),
            (Rule::WithinMonthly, self.within_monthly),
            (Rule::WithinYearly, self.within_yearly),
        ]
    }

    /// Checks the policy on its own: at least one count or age rule, no empty window, no
    /// empty label set.
    pub fn validate(&self) -> Result<(), RetentionError> {
        let windows = std::iter::once((Rule::Within, self.within)).chain(self.within_buckets());
        let mut any = false;
        for (rule, span) in windows {
            if let Some(span) = span {
                if span.is_zero() {
                    return Err(RetentionError::EmptyWindow { rule });
                }
                any = true;
            }
        }
        any |= self
            .counts()
            .iter()
            .any(|(_, c)| c.is_some_and(Count::is_active));
        if self.labels.iter().any(Vec::is_empty) {
            return Err(RetentionError::EmptyLabelSet);
        }
        if any {
            Ok(())
        } else {
            Err(RetentionError::NoRule)
        }
    }
}

impl RetentionPolicy for Policy {
    fn plan(&self, backups: &[Backup], now: OffsetDateTime) -> Result<Plan, RetentionError> {
        crate::engine::plan(self, backups, now)
    }

    fn recovery_window_start(&self, newest: OffsetDateTime) -> Option<OffsetDateTime> {
        let span = self.within?;
        Some(
            crate::engine::window_start_at(&self.zone, newest, span)
                .unwrap_or(time::PrimitiveDateTime::MIN.assume_utc()),
        )
    }

    fn recovery_window(&self) -> Option<Span> {
        self.within
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::parse_span;

    #[test]
    fn the_recovery_window_is_keep_within_measured_like_the_rule() {
        let newest = datetime!(2026-03-31 02:00 UTC);
        let p = Policy::default().with_keep_last(3);
        assert_eq!(p.recovery_window_start(newest), None);
        assert_eq!(p.recovery_window(), None);
        let p = p.with_keep_within(parse_span("30d").unwrap());
        assert_eq!(
            p.recovery_window_start(newest),
            Some(datetime!(2026-03-01 02:00 UTC))
        );
        assert_eq!(p.recovery_window().unwrap().to_string(), "30d");
        // Calendar months the way the rule subtracts them: 03-31 minus 1 month is 03-02.
        let p = Policy::default().with_keep_within(parse_span("1mo").unwrap());
        assert_eq!(
            p.recovery_window_start(newest),
            Some(datetime!(2026-03-03 02:00 UTC))
        );
    }
}
