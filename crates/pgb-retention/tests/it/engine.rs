//! The engine's edge cases: deviations from restic, zones, validation and output formats.

use pgb_retention::{
    Backup, Count, Plan, Policy, Reason, RetentionError, RetentionPolicy, Rule, Span, Zone,
    parse_span,
};
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

fn ids(plan: &Plan) -> Vec<&str> {
    plan.kept_ids().collect()
}

#[test]
fn empty_input_gives_an_empty_plan() {
    let plan = Policy::default().with_keep_last(3).plan(&[], NOW).unwrap();
    assert!(plan.keep.is_empty() && plan.remove.is_empty());
}

#[test]
fn keep_last_unlimited_keeps_every_backup() {
    let bs: Vec<Backup> = (0..5)
        .map(|h| Backup::new(format!("b{h}"), NOW - time::Duration::hours(h)))
        .collect();
    let plan = Policy::default()
        .with_keep_last_count(Count::Unlimited)
        .plan(&bs, NOW)
        .unwrap();
    assert_eq!(ids(&plan), ["b0", "b1", "b2", "b3", "b4"]);
    assert!(plan.remove.is_empty());
    let plan = Policy::default().with_keep_last(2).plan(&bs, NOW).unwrap();
    assert_eq!(plan.remove, ["b2", "b3", "b4"]);
}

#[test]
fn validation_errors() {
    let bs = [Backup::new("a", NOW)];
    let zero = Policy::default().with_keep_within(Span::default());
    assert_eq!(
        zero.plan(&bs, NOW),
        Err(RetentionError::EmptyWindow { rule: Rule::Within })
    );
    let empty_set = Policy::default()
        .with_keep_last(1)
        .with_keep_labels_all(Vec::<String>::new());
    assert_eq!(empty_set.validate(), Err(RetentionError::EmptyLabelSet));
    let dup = [Backup::new("a", NOW), Backup::new("a", NOW)];
    assert_eq!(
        Policy::default().with_keep_last(1).plan(&dup, NOW),
        Err(RetentionError::DuplicateId("a".to_owned()))
    );
    assert!(matches!(
        Zone::iana("Mars/Olympus_Mons"),
        Err(RetentionError::UnknownZone { .. })
    ));
}

/// D4: a future-dated backup in the same day does not displace the newest real backup, and
/// is not the anchor of `within` (restic would delete the real one with `--keep-daily 1`).
#[test]
fn future_dated_backups_are_quarantined() {
    let now = datetime!(2024-03-20 12:00 UTC);
    let bs = [
        Backup::new("skewed", datetime!(2024-03-20 23:00 UTC)),
        Backup::new("real", datetime!(2024-03-20 10:00 UTC)),
        Backup::new("older", datetime!(2024-03-19 10:00 UTC)),
        Backup::new("old", datetime!(2024-03-10 10:00 UTC)),
    ];
    let plan = Policy::default()
        .with_keep_daily(Count::N(1))
        .plan(&bs, now)
        .unwrap();
    assert_eq!(ids(&plan), ["skewed", "real"]);
    assert_eq!(plan.keep[0].reasons, [Reason::FutureQuarantine]);
    assert_eq!(plan.remove, ["older", "old"]);

    // Anchored at "real", not "skewed": 03-19 10:00 is exactly 24 h old and so excluded.
    let within = Policy::default().with_keep_within(Span::days(1));
    assert_eq!(ids(&within.plan(&bs, now).unwrap()), ["skewed", "real"]);
    let within_hours = Policy::default().with_keep_within(Span::hours(25));
    assert_eq!(
        ids(&within_hours.plan(&bs, now).unwrap()),
        ["skewed", "real", "older"]
    );
    // A backup exactly at `now` is not in the future.
    let at_now = [Backup::new("now", now)];
    let plan = Policy::default()
        .with_keep_last(1)
        .plan(&at_now, now)
        .unwrap();
    assert_eq!(plan.keep[0].reasons[0].rule(), Rule::Last);
}

#[test]
fn iso_week_keys_use_the_iso_year() {
    let bs = [
        Backup::new("b", datetime!(2021-01-03 12:00 UTC)),
        Backup::new("a", datetime!(2019-12-30 12:00 UTC)),
    ];
    let plan = Policy::default()
        .with_keep_weekly(Count::Unlimited)
        .plan(&bs, NOW)
        .unwrap();
    let text: Vec<String> = plan.keep.iter().map(|k| k.reasons[0].to_string()).collect();
    assert_eq!(text, ["weekly #1 (2020-W53)", "weekly #2 (2020-W01)"]);
}

/// Bucket keys follow the policy zone: 23:30 UTC is already the next day in Berlin.
#[test]
fn policy_zone_decides_the_bucket() {
    let bs = [
        Backup::new("late", datetime!(2024-06-01 23:30 UTC)),
        Backup::new("early", datetime!(2024-06-01 08:00 UTC)),
    ];
    let utc = Policy::default().with_keep_daily(Count::N(2));
    let berlin = utc.clone().with_zone(Zone::iana("Europe/Berlin").unwrap());
    let utc_plan = utc.plan(&bs, NOW).unwrap();
    let berlin_plan = berlin.plan(&bs, NOW).unwrap();
    assert_eq!(
        utc_plan.keep[1].reasons[0].to_string(),
        "daily #2 oldest (2024-06-01)"
    );
    assert_eq!(
        berlin_plan.keep[0].reasons[0].to_string(),
        "daily #1 (2024-06-02)"
    );
    assert_eq!(
        berlin_plan.keep[1].reasons[0].to_string(),
        "daily #2 (2024-06-01)"
    );
}

/// At fall-back the two real 01:xx... hours share one wall-clock hour key; calendar days in
/// `within` are 25 hours long there.
#[test]
fn dst_fall_back_in_berlin() {
    let berlin = Zone::iana("Europe/Berlin").unwrap();
    // 2024-10-27: 02:00-03:00 local happens twice (00:xx and 01:xx UTC).
    let bs = [
        Backup::new("second", datetime!(2024-10-27 01:30 UTC)),
        Backup::new("first", datetime!(2024-10-27 00:30 UTC)),
    ];
    let plan = Policy::default()
        .with_keep_hourly(Count::N(1))
        .with_zone(berlin.clone())
        .plan(&bs, NOW)
        .unwrap();
    assert_eq!(ids(&plan), ["second"]);
    assert_eq!(
        plan.keep[0].reasons[0].to_string(),
        "hourly #1 (2024-10-27T02)"
    );

    // One calendar day before 2024-10-27 12:00 CET is 10-26 12:00 CEST: 25 hours.
    let bs = [
        Backup::new("anchor", datetime!(2024-10-27 11:00 UTC)),
        Backup::new("h24_5", datetime!(2024-10-26 10:30 UTC)),
        Backup::new("h25", datetime!(2024-10-26 10:00 UTC)),
    ];
    let plan = Policy::default()
        .with_keep_within(Span::days(1))
        .with_zone(berlin)
        .plan(&bs, NOW)
        .unwrap();
    assert_eq!(ids(&plan), ["anchor", "h24_5"]);
}

#[test]
fn reasons_are_listed_in_restic_order_and_displayed() {
    let bs = [Backup::new("a", datetime!(2026-11-18 02:00 UTC)).with_label("pre-migration")];
    let policy = Policy::default()
        .with_keep_within_daily(parse_span("7d").unwrap())
        .with_keep_daily(Count::N(3))
        .with_keep_last(1)
        .with_keep_within(parse_span("2w").unwrap())
        .with_keep_label("pre-migration");
    let plan = policy.plan(&bs, NOW).unwrap();
    let text: Vec<String> = plan.keep[0]
        .reasons
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        text,
        [
            "label pre-migration",
            "within 14d",
            "last #1",
            "daily #1 (2026-11-18)",
            "within-daily 7d (2026-11-18)",
        ]
    );
}

#[test]
fn plan_serialises_for_json_output() {
    let bs = [
        Backup::new("b", datetime!(2026-11-18 02:00 UTC)),
        Backup::new("a", datetime!(2026-11-17 02:00 UTC)),
        Backup::new("z", datetime!(2026-11-19 02:00 UTC)),
    ];
    let plan = Policy::default()
        .with_keep_daily(Count::N(1))
        .plan(&bs, datetime!(2026-11-18 12:00 UTC))
        .unwrap();
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "keep": [
                {"id": "z", "reasons": [
                    {"rule": "future-quarantine", "text": "future-dated (quarantined)"}
                ]},
                {"id": "b", "reasons": [
                    {"rule": "daily", "rank": 1, "bucket": "2026-11-18", "oldest": false,
                     "text": "daily #1 (2026-11-18)"}
                ]}
            ],
            "remove": ["a"]
        })
    );
    let within = serde_json::to_value(Reason::Within {
        span: Span::days(14),
    })
    .unwrap();
    assert_eq!(
        within,
        serde_json::json!({"rule": "within", "span": "14d", "text": "within 14d"})
    );
}

#[test]
fn backups_read_from_json() {
    let bs: Vec<Backup> = serde_json::from_str(
        r#"[{"id": "a", "time": "2026-11-18T02:00:00Z", "labels": ["x"]},
            {"id": "b", "time": "2026-11-18T03:00:00+01:00"}]"#,
    )
    .unwrap();
    assert_eq!(bs[0].labels, ["x"]);
    assert!(bs[1].labels.is_empty());
    assert_eq!(bs[1].time, datetime!(2026-11-18 02:00 UTC));
}

/// Unlimited keeps every bucket representative and always the oldest backup.
#[test]
fn unlimited_keeps_every_bucket_and_the_oldest() {
    let bs = [
        Backup::new("c", datetime!(2024-03-21 10:00 UTC)),
        Backup::new("b", datetime!(2024-03-20 10:00 UTC)),
        Backup::new("a", datetime!(2024-03-20 08:00 UTC)),
    ];
    let plan = Policy::default()
        .with_keep_daily(Count::Unlimited)
        .plan(&bs, NOW)
        .unwrap();
    assert_eq!(ids(&plan), ["c", "b", "a"]);
    assert!(plan.keep[2].reasons[0].is_oldest());
}

/// The trait is object safe, so the core crate can hold `Box<dyn RetentionPolicy>`.
#[test]
fn usable_as_a_trait_object() {
    let policy: Box<dyn RetentionPolicy> = Box::new(Policy::default().with_keep_last(1));
    let plan = policy.plan(&[Backup::new("a", NOW)], NOW).unwrap();
    assert_eq!(ids(&plan), ["a"]);
}
