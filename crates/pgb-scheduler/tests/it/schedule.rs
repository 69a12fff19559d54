//! `pgb schedule explain`'s arithmetic: next runs in a zone across daylight-saving changes,
//! missed slots, default maximum age and jitter.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use pgb_scheduler::{default_max_age, jitter_for, missed_slot, next_runs};

fn cron(expr: &str) -> Cron {
    Cron::from_str(expr).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// (local with offset, UTC) of the next `n` runs.
fn runs(expr: &str, zone: Tz, after: &str, n: usize) -> Vec<(String, String)> {
    next_runs(&cron(expr), zone, utc(after), n)
        .unwrap()
        .into_iter()
        .map(|r| (r.local.to_rfc3339(), r.utc.to_rfc3339()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn berlin_spring_forward_runs_0230_at_0300_once() {
    // 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that night.
    assert_eq!(
        runs("30 2 * * *", Tz::Europe__Berlin, "2026-03-27T12:00:00Z", 3),
        pairs(&[
            ("2026-03-28T02:30:00+01:00", "2026-03-28T01:30:00+00:00"),
            ("2026-03-29T03:00:00+02:00", "2026-03-29T01:00:00+00:00"),
            ("2026-03-30T02:30:00+02:00", "2026-03-30T00:30:00+00:00"),
        ])
    );
}

#[test]
fn berlin_fall_back_runs_0230_once() {
    // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice, the job runs once.
    assert_eq!(
        runs("30 2 * * *", Tz::Europe__Berlin, "2026-10-23T12:00:00Z", 3),
        pairs(&[
            ("2026-10-24T02:30:00+02:00", "2026-10-24T00:30:00+00:00"),
            ("2026-10-25T02:30:00+02:00", "2026-10-25T00:30:00+00:00"),
            ("2026-10-26T02:30:00+01:00", "2026-10-26T01:30:00+00:00"),
        ])
    );
}

#[test]
fn new_york_spring_forward_and_fall_back() {
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    assert_eq!(
        runs(
            "30 2 * * *",
            Tz::America__New_York,
            "2026-03-06T12:00:00Z",
            3
        ),
        pairs(&[
            ("2026-03-07T02:30:00-05:00", "2026-03-07T07:30:00+00:00"),
            ("2026-03-08T03:00:00-04:00", "2026-03-08T07:00:00+00:00"),
            ("2026-03-09T02:30:00-04:00", "2026-03-09T06:30:00+00:00"),
        ])
    );
    // 2026-11-01: 02:00 EDT falls back to 01:00 EST. 02:30 is unambiguous (after the fold)...
    assert_eq!(
        runs(
            "30 2 * * *",
            Tz::America__New_York,
            "2026-10-30T12:00:00Z",
            3
        ),
        pairs(&[
            ("2026-10-31T02:30:00-04:00", "2026-10-31T06:30:00+00:00"),
            ("2026-11-01T02:30:00-05:00", "2026-11-01T07:30:00+00:00"),
            ("2026-11-02T02:30:00-05:00", "2026-11-02T07:30:00+00:00"),
        ])
    );
    // ... while 01:30 happens twice and runs once, at the first (EDT) occurrence.
    assert_eq!(
        runs(
            "30 1 * * *",
            Tz::America__New_York,
            "2026-10-31T12:00:00Z",
            2
        ),
        pairs(&[
            ("2026-11-01T01:30:00-04:00", "2026-11-01T05:30:00+00:00"),
            ("2026-11-02T01:30:00-05:00", "2026-11-02T06:30:00+00:00"),
        ])
    );
}

#[test]
fn utc_is_unaffected_and_the_abbreviation_is_shown() {
    let r = next_runs(&cron("30 2 * * *"), Tz::UTC, utc("2026-03-28T12:00:00Z"), 2).unwrap();
    assert_eq!(r[0].utc, utc("2026-03-29T02:30:00Z"));
    assert_eq!(r[1].utc, utc("2026-03-30T02:30:00Z"));
    let r = next_runs(
        &cron("30 2 * * *"),
        Tz::Europe__Berlin,
        utc("2026-07-01T00:00:00Z"),
        1,
    )
    .unwrap();
    assert_eq!(r[0].abbreviation, "CEST");
}

#[test]
fn a_missed_slot_is_found_only_when_no_success_followed_it() {
    let c = cron("30 2 * * *");
    let z = Tz::Europe__Berlin;
    let now = utc("2026-06-10T12:00:00Z");
    let slot = utc("2026-06-10T00:30:00Z"); // 02:30 CEST
    assert_eq!(
        missed_slot(&c, z, Some(utc("2026-06-09T00:31:00Z")), now),
        Some(slot)
    );
    assert_eq!(
        missed_slot(&c, z, Some(utc("2026-06-10T00:40:00Z")), now),
        None
    );
    assert_eq!(missed_slot(&c, z, None, now), Some(slot));
}

#[test]
fn default_max_age_is_a_period_plus_grace() {
    let now = utc("2026-06-10T12:00:00Z");
    assert_eq!(
        default_max_age(&cron("30 2 * * *"), Tz::UTC, now),
        Some(Duration::from_secs(26 * 3600))
    );
    assert_eq!(
        default_max_age(&cron("0 * * * *"), Tz::UTC, now),
        Some(Duration::from_secs(2 * 3600))
    );
    assert_eq!(
        default_max_age(&cron("*/5 * * * *"), Tz::UTC, now),
        Some(Duration::from_secs(600))
    );
}

#[test]
fn jitter_is_fixed_per_job_and_bounded() {
    let max = Duration::from_secs(600);
    let a = jitter_for("shop", max);
    assert_eq!(a, jitter_for("shop", max));
    assert!(a < max);
    let distinct: std::collections::BTreeSet<_> = (0..50)
        .map(|i| jitter_for(&format!("job{i}"), max))
        .collect();
    assert!(
        distinct.len() > 40,
        "jitter spreads jobs: {}",
        distinct.len()
    );
    assert_eq!(jitter_for("shop", Duration::ZERO), Duration::ZERO);
}

#[test]
fn slots_are_whole_seconds_when_searched_from_a_time_with_nanoseconds() {
    // `schedule explain` and the daemon search from `Utc::now()`, which has nanoseconds.
    let after = utc("2026-12-04T12:00:00.722910627Z");
    let r = next_runs(&cron("0 2 * * *"), Tz::Europe__Berlin, after, 2).unwrap();
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json[0]["utc"], "2026-12-05T01:00:00Z");
    assert_eq!(json[0]["local"], "2026-12-05T02:00:00+01:00");
    assert_eq!(json[1]["utc"], "2026-12-06T01:00:00Z");
    // The slot before a time with nanoseconds, and a slot at that very second.
    let c = cron("30 12 * * *");
    assert_eq!(
        missed_slot(&c, Tz::UTC, None, utc("2026-12-04T12:30:00.5Z")),
        Some(utc("2026-12-04T12:30:00Z"))
    );
    assert_eq!(
        next_runs(&c, Tz::UTC, utc("2026-12-04T12:30:00.5Z"), 1).unwrap()[0].utc,
        utc("2026-12-05T12:30:00Z")
    );
    assert_eq!(
        next_runs(&c, Tz::UTC, utc("2026-12-04T12:29:59.9Z"), 1).unwrap()[0].utc,
        utc("2026-12-04T12:30:00Z")
    );
}
