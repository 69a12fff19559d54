//! Cron in a time zone: the next runs, the slot before now, missed slots, jitter.

use std::time::Duration;

use chrono::{DateTime, DurationRound as _, TimeZone as _, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::Serialize;

/// A cron expression that cannot produce a time (e.g. `0 0 30 2 *`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule {expr:?} has no run time after {after}")]
pub struct NoRunTime {
    /// The expression.
    pub expr: String,
    /// The search start.
    pub after: DateTime<Utc>,
}

/// One run time, in the job's zone and in UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunTime {
    /// Local wall-clock time with its offset (`2026-03-29T03:00:00+02:00`).
    pub local: DateTime<Tz>,
    /// The same instant in UTC.
    pub utc: DateTime<Utc>,
    /// The zone's abbreviation at that instant (`CEST`).
    pub abbreviation: String,
}

impl RunTime {
    fn new(local: DateTime<Tz>) -> Self {
        Self {
            utc: local.with_timezone(&Utc),
            abbreviation: local.format("%Z").to_string(),
            local,
        }
    }
}

/// `t` cut to whole seconds. Slots are whole minutes: the search starts from a whole second
/// so a slot found from `Utc::now()` does not inherit its nanoseconds.
fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(chrono::Duration::seconds(1)).unwrap_or(t)
}

/// The first run strictly after `after`, in whole seconds.
///
/// Daylight-saving changes follow Vixie cron (croner's rules): a fixed time that does not
/// exist (02:30 on a spring-forward night) runs at the first valid minute after the gap that
/// day; a fixed time that occurs twice (02:30 on a fall-back night) runs once, at its first
/// occurrence; wildcard and step fields run at every matching wall-clock minute.
///
/// # Errors
/// [`NoRunTime`] when the expression never matches again.
pub fn next_run(cron: &Cron, zone: Tz, after: DateTime<Utc>) -> Result<DateTime<Utc>, NoRunTime> {
    cron.find_next_occurrence(&whole_seconds(after).with_timezone(&zone), false)
        .map(|t| whole_seconds(t.with_timezone(&Utc)))
        .map_err(|_| NoRunTime {
            expr: cron.as_str().to_owned(),
            after,
        })
}

/// The next `n` runs after `after`, for `pgb schedule explain`.
///
/// # Errors
/// [`NoRunTime`] when the expression never matches again.
pub fn next_runs(
    cron: &Cron,
    zone: Tz,
    after: DateTime<Utc>,
    n: usize,
) -> Result<Vec<RunTime>, NoRunTime> {
    let mut out = Vec::with_capacity(n);
    let mut t = after;
    for _ in 0..n {
        t = next_run(cron, zone, t)?;
        out.push(RunTime::new(t.with_timezone(&zone)));
    }
    Ok(out)
}

/// The latest slot at or before `at`, if any, in whole seconds.
pub fn previous_slot(cron: &Cron, zone: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_previous_occurrence(&whole_seconds(at).with_timezone(&zone), true)
        .ok()
        .map(|t| whole_seconds(t.with_timezone(&Utc)))
}

/// The slot that was missed: the latest slot at or before `now` when no successful run
/// happened since it (`last_success` older than the slot, or none at all).
pub fn missed_slot(
    cron: &Cron,
    zone: Tz,
    last_success: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let slot = previous_slot(cron, zone, now)?;
    match last_success {
        Some(t) if t >= slot => None,
        _ => Some(slot),
    }
}

/// The default maximum age of a job's newest success: one period of the schedule (the gap
/// between its next two runs) plus a grace of the same length, at most 2 hours: 26 h for a
/// daily job, 2 h for an hourly one.
pub fn default_max_age(cron: &Cron, zone: Tz, now: DateTime<Utc>) -> Option<Duration> {
    let a = next_run(cron, zone, now).ok()?;
    let b = next_run(cron, zone, a).ok()?;
    let period = (b - a).to_std().ok()?;
    Some(period + period.min(Duration::from_secs(2 * 3600)))
}

/// A delay in `[0, max)` fixed for a job name (FNV-1a of the name, mixed), so a job's runs do not
/// wander while many jobs with the same schedule spread out.
pub fn jitter_for(job: &str, max: Duration) -> Duration {
    let secs = max.as_secs();
    if secs == 0 {
        return Duration::ZERO;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in job.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV's low bits barely change between `job1` and `job2`: mix them (murmur3's fmix64).
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    Duration::from_secs(h % secs)
}

/// `DateTime<Utc>` from a Unix time, for callers holding `time` or `SystemTime` values.
pub fn utc_from_unix(secs: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(secs, 0).single()
}
