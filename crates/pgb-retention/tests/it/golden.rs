//! restic's 40 `forget` golden cases, reproduced (fixtures: `fixtures/restic-forget/`,
//! BSD-2-Clause, Copyright (c) 2014, Alexander Neumann; see the README there).
//!
//! Mapping onto pgb's engine (spec §3.5):
//! - Snapshot number `i` (0-based, file order) gets the id `103 - i`, zero-padded so string
//!   order is numeric order: on equal times an earlier entry counts as newer, which is what
//!   restic's stable sort does with its input order.
//! - Zone UTC; `now` from `cases.json`.
//! - `last: "unlimited"` maps to `keep_last(u32::MAX)`: with fewer backups than that, the
//!   budget never runs out, exactly like restic's `-1`.
//! - Each kept backup is compared by (time, tags, paths), in order, with restic's `keep` list;
//!   our reasons are rendered in restic's wording (`daily snapshot`, `oldest yearly within
//!   9999y`, `has tags [foo, bar]`, ...) and compared in order with restic's `matches`; the
//!   budget left per count rule after each kept backup is compared with restic's `counters`.
//! - Deviation D5: pgb rejects a policy with no count or age rule.
//!   - Case 0 (empty policy): restic's library returns no keep list and its CLI refuses to
//!     run; pgb returns `RetentionError::NoRule`.
//!   - Cases 18-20 (tags only): pgb returns `NoRule`. The label rule itself is still checked
//!     against restic's output by compositionality (spec P10/P16): the policy plus
//!     `keep_last(1)` is planned, and the backups carrying a label reason must be exactly
//!     restic's keep list, in order, with restic's reasons.

use pgb_retention::{Backup, Count, Policy, Reason, RetentionError, RetentionPolicy, Span};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const SNAPSHOTS: &str = include_str!("../fixtures/restic-forget/snapshots.json");
const CASES: &str = include_str!("../fixtures/restic-forget/cases.json");

fn time(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().expect("time is a string"), &Rfc3339).expect("RFC 3339")
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// What identifies a restic snapshot in its output: time, tags and paths.
type Ident = (OffsetDateTime, Vec<String>, Vec<String>);

fn ident(v: &Value) -> Ident {
    (
        time(&v["time"]),
        strings(v.get("tags")),
        strings(v.get("paths")),
    )
}

fn count(v: &Value) -> Count {
    match v {
        Value::String(s) if s == "unlimited" => Count::Unlimited,
        v => Count::N(u32::try_from(v.as_u64().expect("count")).unwrap()),
    }
}

fn span(v: &Value) -> Span {
    let f = |k: &str| u32::try_from(v[k].as_u64().unwrap()).unwrap();
    Span {
        years: f("years"),
        months: f("months"),
        days: f("days"),
        hours: f("hours"),
    }
}

/// restic's duration wording: `1y2m3d3h` (`m` = months there).
fn restic_span(s: Span) -> String {
    [
        (s.years, "y"),
        (s.months, "m"),
        (s.days, "d"),
        (s.hours, "h"),
    ]
    .iter()
    .filter(|(n, _)| *n != 0)
    .map(|(n, u)| format!("{n}{u}"))
    .collect()
}

/// Our reason in restic's wording.
fn restic_reason(r: &Reason) -> String {
    let oldest = if r.is_oldest() { "oldest " } else { "" };
    match r {
        Reason::Label { labels } => format!("has tags [{}]", labels.join(", ")),
        Reason::Within { span } => format!("within {}", restic_span(*span)),
        Reason::Count { rule, .. } => format!("{oldest}{rule} snapshot"),
        Reason::WithinBucket { rule, span, .. } => format!(
            "{oldest}{} within {}",
            rule.name().trim_start_matches("within-"),
            restic_span(*span)
        ),
        other => panic!("restic has no reason like {other:?}"),
    }
}

const COUNT_RULES: [&str; 6] = ["last", "hourly", "daily", "weekly", "monthly", "yearly"];

fn run_case(n: usize, expected: &str) {
    let snaps: Value = serde_json::from_str(SNAPSHOTS).unwrap();
    let snaps = snaps.as_array().unwrap();
    let cases: Value = serde_json::from_str(CASES).unwrap();
    let now = time(&cases["now"]);
    let case = &cases["cases"][n];
    assert_eq!(case["case"].as_u64(), Some(n as u64));
    let expected: Value = serde_json::from_str(expected).unwrap();

    let total = snaps.len();
    let id_of = |i: usize| format!("{:03}", total - i);
    let backups: Vec<Backup> = snaps
        .iter()
        .enumerate()
        .map(|(i, s)| Backup {
            id: id_of(i),
            time: time(&s["time"]),
            labels: strings(s.get("tags")),
        })
        .collect();
    let ident_of = |id: &str| ident(&snaps[total - id.parse::<usize>().unwrap()]);

    let mut policy = Policy::default();
    let mut limits: Vec<(&str, Option<u32>)> = Vec::new(); // None = unlimited
    if let Some(v) = case.get("last") {
        let c = count(v);
        policy = policy.with_keep_last(match c {
            Count::N(n) => n,
            Count::Unlimited => u32::MAX,
        });
        limits.push(("last", if let Count::N(n) = c { Some(n) } else { None }));
    }
    type CountSetter = fn(Policy, Count) -> Policy;
    let setters: [(&str, CountSetter); 5] = [
        ("hourly", Policy::with_keep_hourly),
        ("daily", Policy::with_keep_daily),
        ("weekly", Policy::with_keep_weekly),
        ("monthly", Policy::with_keep_monthly),
        ("yearly", Policy::with_keep_yearly),
    ];
    for (name, set) in setters {
        if let Some(v) = case.get(name) {
            let c = count(v);
            policy = set(policy, c);
            limits.push((name, if let Count::N(n) = c { Some(n) } else { None }));
        }
    }
    type SpanSetter = fn(Policy, Span) -> Policy;
    let spans: [(&str, SpanSetter); 6] = [
        ("within", Policy::with_keep_within),
        ("within_hourly", Policy::with_keep_within_hourly),
        ("within_daily", Policy::with_keep_within_daily),
        ("within_weekly", Policy::with_keep_within_weekly),
        ("within_monthly", Policy::with_keep_within_monthly),
        ("within_yearly", Policy::with_keep_within_yearly),
    ];
    for (name, set) in spans {
        if let Some(v) = case.get(name) {
            policy = set(policy, span(v));
        }
    }
    for set in case
        .get("keep_tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        policy = policy.with_keep_labels_all(strings(Some(set)));
    }

    let exp_keep: Vec<Ident> = expected["keep"]
        .as_array()
        .map(|a| a.iter().map(ident).collect())
        .unwrap_or_default();
    let exp_reasons: Vec<&Value> = expected["reasons"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();

    let plan = match policy.plan(&backups, now) {
        Ok(plan) => plan,
        Err(RetentionError::NoRule) if case.get("keep_tags").is_none() => {
            // Case 0: restic keeps nothing it reports; pgb refuses the empty policy (D5).
            assert!(exp_keep.is_empty(), "empty policy: restic output is empty");
            return;
        }
        Err(RetentionError::NoRule) => {
            // Label-only: refused (D5); check the label rule through compositionality.
            let plan = policy.with_keep_last(1).plan(&backups, now).unwrap();
            let labelled: Vec<_> = plan
                .keep
                .iter()
                .filter_map(|k| {
                    let labels: Vec<String> = k
                        .reasons
                        .iter()
                        .filter(|r| matches!(r, Reason::Label { .. }))
                        .map(restic_reason)
                        .collect();
                    (!labels.is_empty()).then(|| (ident_of(&k.id), labels))
                })
                .collect();
            let got: Vec<&Ident> = labelled.iter().map(|(i, _)| i).collect();
            assert_eq!(
                got,
                exp_keep.iter().collect::<Vec<_>>(),
                "case {n}: label keep list"
            );
            for ((_, ours), exp) in labelled.iter().zip(&exp_reasons) {
                assert_eq!(
                    ours,
                    &strings(exp.get("matches")),
                    "case {n}: label reasons"
                );
            }
            return;
        }
        Err(e) => panic!("case {n}: {e}"),
    };

    // Partition sanity.
    assert_eq!(plan.keep.len() + plan.remove.len(), backups.len());

    let got: Vec<Ident> = plan.keep.iter().map(|k| ident_of(&k.id)).collect();
    assert_eq!(got, exp_keep, "case {n}: keep list and order");
    assert_eq!(
        exp_reasons.len(),
        plan.keep.len(),
        "case {n}: reasons length"
    );

    let mut used = vec![0_u32; COUNT_RULES.len()];
    for (k, exp) in plan.keep.iter().zip(&exp_reasons) {
        assert_eq!(
            ident_of(&k.id),
            ident(&exp["snapshot"]),
            "case {n}: reason order"
        );
        let ours: Vec<String> = k.reasons.iter().map(restic_reason).collect();
        assert_eq!(
            ours,
            strings(exp.get("matches")),
            "case {n}: reasons of {}",
            k.id
        );

        for r in &k.reasons {
            if let Reason::Count { rule, .. } = r {
                used[COUNT_RULES.iter().position(|c| *c == rule.name()).unwrap()] += 1;
            }
        }
        let counters = &exp["counters"];
        for (name, limit) in &limits {
            let left = match limit {
                None => -1,
                Some(c) => {
                    i64::from(*c)
                        - i64::from(used[COUNT_RULES.iter().position(|r| r == name).unwrap()])
                }
            };
            let want = counters.get(*name).and_then(Value::as_i64).unwrap_or(0);
            assert_eq!(left, want, "case {n}: {name} budget after {}", k.id);
        }
    }
}

macro_rules! golden {
    ($($name:ident = $n:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_case(
                    $n,
                    include_str!(concat!(
                        "../fixtures/restic-forget/expected/",
                        stringify!($name),
                        ".json"
                    )),
                );
            }
        )*
    };
}

golden! {
    case_00 = 0, case_01 = 1, case_02 = 2, case_03 = 3, case_04 = 4,
    case_05 = 5, case_06 = 6, case_07 = 7, case_08 = 8, case_09 = 9,
    case_10 = 10, case_11 = 11, case_12 = 12, case_13 = 13, case_14 = 14,
    case_15 = 15, case_16 = 16, case_17 = 17, case_18 = 18, case_19 = 19,
    case_20 = 20, case_21 = 21, case_22 = 22, case_23 = 23, case_24 = 24,
    case_25 = 25, case_26 = 26, case_27 = 27, case_28 = 28, case_29 = 29,
    case_30 = 30, case_31 = 31, case_32 = 32, case_33 = 33, case_34 = 34,
    case_35 = 35, case_36 = 36, case_37 = 37, case_38 = 38, case_39 = 39,
}
