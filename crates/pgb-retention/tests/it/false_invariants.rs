//! Plausible invariants that are FALSE (spec §4.2, F1-F12), pinned as documented behaviour
//! with the spec's counterexamples, so that a future "fix" cannot silently change semantics.

use std::collections::BTreeSet;

use pgb_retention::{Backup, Count, Policy, Reason, RetentionError, RetentionPolicy, Rule, Span};
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

fn kept(policy: &Policy, bs: &[Backup]) -> BTreeSet<String> {
    policy
        .plan(bs, NOW)
        .unwrap()
        .kept_ids()
        .map(str::to_owned)
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

fn daily(n: u32) -> Policy {
    Policy::default().with_keep_daily(Count::N(n))
}

/// 03-20 10:00 and 03-20 08:00.
fn one_day_two_backups() -> Vec<Backup> {
    vec![
        Backup::new("b", datetime!(2024-03-20 10:00 UTC)),
        Backup::new("a", datetime!(2024-03-20 08:00 UTC)),
    ]
}

/// F1 and F2: `daily=2` over one day keeps both backups (the second as the oldest extra), so
/// neither "exactly min(N, #days)" nor "daily-kept backups lie on distinct days" holds.
#[test]
fn f1_f2_keep_daily_keeps_more_than_days_and_repeats_a_day() {
    let plan = daily(2).plan(&one_day_two_backups(), NOW).unwrap();
    assert_eq!(plan.kept_ids().collect::<Vec<_>>(), ["b", "a"]);
    assert_eq!(plan.keep[0].reasons[0].to_string(), "daily #1 (2024-03-20)");
    assert_eq!(
        plan.keep[1].reasons[0].to_string(),
        "daily #2 oldest (2024-03-20)"
    );
    assert!(plan.keep[1].reasons[0].is_oldest());
}

/// F3: pruning nightly is not the same as pruning once: after the oldest backup is pruned, a
/// non-representative becomes the oldest inside a within-bucket window and is kept.
#[test]
fn f3_nightly_differs_from_one_shot_with_within_bucket_rules() {
    let policy = Policy::default().with_keep_within_daily(Span::days(2));
    let l = vec![
        Backup::new("x", datetime!(2024-03-20 10:00 UTC)),
        Backup::new("o", datetime!(2024-03-10 08:00 UTC)),
    ];
    let n = Backup::new("z", datetime!(2024-03-20 12:00 UTC));
    assert_eq!(kept(&policy, &l), set(&["x"]));

    let mut one_shot = l.clone();
    one_shot.push(n.clone());
    assert_eq!(kept(&policy, &one_shot), set(&["z"]));

    let nightly = vec![l[0].clone(), n];
    assert_eq!(kept(&policy, &nightly), set(&["z", "x"]));
}

/// F4: deleting some pruned backups can change other decisions (here x becomes kept once
/// the pruned oldest backup is gone). Resuming is still safe (P13): it only keeps more.
#[test]
fn f4_removing_pruned_backups_can_keep_more() {
    let policy = Policy::default().with_keep_within_daily(Span::days(2));
    let l = vec![
        Backup::new("z", datetime!(2024-03-20 12:00 UTC)),
        Backup::new("x", datetime!(2024-03-20 10:00 UTC)),
        Backup::new("o", datetime!(2024-03-10 08:00 UTC)),
    ];
    assert_eq!(kept(&policy, &l), set(&["z"]));
    assert_eq!(kept(&policy, &l[..2]), set(&["z", "x"]));
}

/// F5: adding an older backup can un-keep one: it takes over the oldest extra.
#[test]
fn f5_adding_an_older_backup_can_unkeep() {
    let mut bs = one_day_two_backups();
    assert_eq!(kept(&daily(2), &bs), set(&["b", "a"]));
    bs.push(Backup::new("c", datetime!(2024-03-19 10:00 UTC)));
    assert_eq!(kept(&daily(2), &bs), set(&["b", "c"]));
}

/// F6: shifting by whole weeks changes monthly decisions (months differ in length).
#[test]
fn f6_monthly_rules_are_not_shift_invariant() {
    let policy = Policy::default().with_keep_monthly(Count::N(2));
    let bs = vec![
        Backup::new("a", datetime!(2023-12-21 12:00 UTC)),
        Backup::new("b", datetime!(2023-12-28 12:00 UTC)),
        Backup::new("c", datetime!(2024-01-08 12:00 UTC)),
        Backup::new("d", datetime!(2024-01-25 12:00 UTC)),
    ];
    assert_eq!(kept(&policy, &bs), set(&["d", "b"]));
    let week = time::Duration::weeks(1);
    let moved: Vec<Backup> = bs
        .iter()
        .map(|b| Backup::new(b.id.clone(), b.time + week))
        .collect();
    assert_eq!(kept(&policy, &moved), set(&["d", "c"]));
}

/// F7: restic keeps whichever tied backup was listed first; pgb breaks ties by id, so the
/// result is the same for every input order.
#[test]
fn f7_ties_are_broken_by_id_not_input_order() {
    let bs = vec![
        Backup::new("3", datetime!(2024-01-11 05:00 UTC)),
        Backup::new("1", datetime!(2024-01-10 04:30 UTC)),
        Backup::new("0", datetime!(2024-01-10 04:30 UTC)),
    ];
    let mut reversed = bs.clone();
    reversed.reverse();
    assert_eq!(kept(&daily(2), &bs), set(&["3", "1"]));
    assert_eq!(kept(&daily(2), &reversed), set(&["3", "1"]));
}

/// F8: a label-only policy could delete the newest (unlabelled) backup, so pgb rejects it.
#[test]
fn f8_label_only_policies_are_rejected() {
    let bs = vec![
        Backup::new("new", datetime!(2024-03-20 10:00 UTC)),
        Backup::new("old", datetime!(2024-03-19 10:00 UTC)).with_label("manual"),
    ];
    let policy = Policy::default().with_keep_label("manual");
    assert_eq!(policy.plan(&bs, NOW), Err(RetentionError::NoRule));
    assert_eq!(
        Policy::default().plan(&bs, NOW),
        Err(RetentionError::NoRule)
    );
    assert_eq!(daily(0).plan(&bs, NOW), Err(RetentionError::NoRule));
    // With any count or age rule the newest survives.
    let ok = policy.with_keep_last(1);
    assert_eq!(kept(&ok, &bs), set(&["new", "old"]));
}

/// F9: weekly-kept backups are not always Sundays: the current week's representative is its
/// latest backup (here Wednesday 2024-03-20).
#[test]
fn f9_weekly_representative_of_the_current_week_is_not_a_sunday() {
    let bs: Vec<Backup> = (0..14)
        .map(|d| {
            Backup::new(
                format!("d{d:02}"),
                datetime!(2024-03-07 02:00 UTC) + time::Duration::days(d),
            )
        })
        .collect();
    let plan = Policy::default()
        .with_keep_weekly(Count::N(2))
        .plan(&bs, NOW)
        .unwrap();
    let reasons: Vec<String> = plan.keep.iter().map(|k| k.reasons[0].to_string()).collect();
    // 03-20 is a Wednesday (current week 12), 03-17 the Sunday ending week 11.
    assert_eq!(plan.kept_ids().collect::<Vec<_>>(), ["d13", "d10"]);
    assert_eq!(reasons, ["weekly #1 (2024-W12)", "weekly #2 (2024-W11)"]);
}

/// F10: 7 daily + 4 weekly + 3 monthly over a long daily history keeps 11, not 14: the rules
/// overlap (the newest backup is the newest of its day, week and month at once).
#[test]
fn f10_gfs_7_4_3_keeps_11_not_14() {
    let bs: Vec<Backup> = (0..365)
        .map(|d| {
            Backup::new(
                format!("d{d:03}"),
                datetime!(2025-01-01 02:00 UTC) + time::Duration::days(d),
            )
        })
        .collect();
    let policy = Policy::default()
        .with_keep_daily(Count::N(7))
        .with_keep_weekly(Count::N(4))
        .with_keep_monthly(Count::N(3));
    let plan = policy.plan(&bs, NOW).unwrap();
    assert_eq!(plan.keep.len(), 11);
    assert_eq!(plan.remove.len(), 365 - 11);
    let newest = &plan.keep[0];
    let rules: Vec<Rule> = newest.reasons.iter().map(Reason::rule).collect();
    assert_eq!(rules, [Rule::Daily, Rule::Weekly, Rule::Monthly]);
}

/// F11: idempotence fails for rules that depend on wall-clock time; pgb has none, because
/// windows are anchored at the newest backup: a stalled backup job never ages its last
/// backups out, however late `now` gets.
#[test]
fn f11_no_wall_clock_dependence_so_a_stalled_job_keeps_its_backups() {
    let bs = one_day_two_backups();
    let policy = Policy::default().with_keep_within(Span::days(14));
    let soon = policy.plan(&bs, datetime!(2024-03-21 0:00 UTC)).unwrap();
    let years_later = policy.plan(&bs, datetime!(2029-01-01 0:00 UTC)).unwrap();
    assert_eq!(soon, years_later);
    assert_eq!(soon.keep.len(), 2);
}

/// F12: month windows follow restic (Go `AddDate` normalisation), not jiff/rustic clamping:
/// 2024-03-31 12:00 minus one month is 03-02 12:00, so a 03-01 backup falls outside.
#[test]
fn f12_month_windows_normalise_like_restic() {
    let bs = vec![
        Backup::new("latest", datetime!(2024-03-31 12:00 UTC)),
        Backup::new("edge", datetime!(2024-03-02 12:00 UTC)),
        Backup::new("inside", datetime!(2024-03-02 12:00:01 UTC)),
        Backup::new("first", datetime!(2024-03-01 12:00 UTC)),
    ];
    let policy = Policy::default().with_keep_within(Span::months(1));
    // The boundary itself is excluded too.
    assert_eq!(kept(&policy, &bs), set(&["latest", "inside"]));
}
