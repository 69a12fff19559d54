//! Property tests for every invariant that holds (spec §4.1, P1-P17).
//!
//! Generators follow spec §4.3: few backups on a coarse 30-minute grid so buckets collide,
//! injected exact ties, ids shuffled against time, ~10 % future-dated backups, counts from
//! {absent, 1, 2, 3, unlimited}, windows from {absent, 1..20 d, 1..72 h, 1..3 mo}, labels
//! from a tiny alphabet including `""`, and zones UTC, Europe/Berlin and Pacific/Chatham
//! (whose hour keys move backwards at fall-back).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use pgb_retention::{Backup, Count, Plan, Policy, Reason, RetentionPolicy, Rule, Span, Zone};
use proptest::prelude::*;
use proptest::sample::subsequence;
use time::OffsetDateTime;

/// 2023-10-15T00:00Z: 200 days of grid reach across a year boundary and DST changes.
const BASE: i64 = 1_697_328_000;
const STEP: i64 = 1800;
const RANGE: i64 = 48 * 200;
/// Where buckets are tricky: Berlin fall-back, new year, Berlin spring-forward, and
/// Chatham's fall-back (hour keys move backwards).
const HOT_SPOTS: [i64; 4] = [1_698_541_200, 1_704_067_200, 1_711_846_800, 1_712_412_000];
/// `now` sits just after the grid.
const NOW: i64 = BASE + (RANGE + 48) * STEP;
const ZONES: [&str; 3] = ["UTC", "Europe/Berlin", "Pacific/Chatham"];

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

fn now() -> OffsetDateTime {
    at(NOW)
}

// ---------------------------------------------------------------------------------------
// Policy description (plain data, so properties can raise, split and shift it)

const COUNT_RULES: [Rule; 5] = [
    Rule::Hourly,
    Rule::Daily,
    Rule::Weekly,
    Rule::Monthly,
    Rule::Yearly,
];
const WITHIN_RULES: [Rule; 5] = [
    Rule::WithinHourly,
    Rule::WithinDaily,
    Rule::WithinWeekly,
    Rule::WithinMonthly,
    Rule::WithinYearly,
];

#[derive(Debug, Clone, Default)]
struct Spec {
    last: Option<u32>,
    counts: [Option<Count>; 5],
    within: Option<Span>,
    within_b: [Option<Span>; 5],
    labels: Vec<Vec<String>>,
    zone: &'static str,
}

impl Spec {
    fn has_rule(&self) -> bool {
        self.last.is_some_and(|n| n > 0)
            || self.counts.iter().flatten().any(|c| *c != Count::N(0))
            || self.within.is_some()
            || self.within_b.iter().any(Option::is_some)
    }

    fn policy(&self) -> Policy {
        let mut p = Policy::default().with_zone(Zone::iana(self.zone).unwrap());
        if let Some(n) = self.last {
            p = p.with_keep_last(n);
        }
        let count_setters: [fn(Policy, Count) -> Policy; 5] = [
            Policy::with_keep_hourly,
            Policy::with_keep_daily,
            Policy::with_keep_weekly,
            Policy::with_keep_monthly,
            Policy::with_keep_yearly,
        ];
        for (c, set) in self.counts.iter().zip(count_setters) {
            if let Some(c) = c {
                p = set(p, *c);
            }
        }
        if let Some(s) = self.within {
            p = p.with_keep_within(s);
        }
        let span_setters: [fn(Policy, Span) -> Policy; 5] = [
            Policy::with_keep_within_hourly,
            Policy::with_keep_within_daily,
            Policy::with_keep_within_weekly,
            Policy::with_keep_within_monthly,
            Policy::with_keep_within_yearly,
        ];
        for (s, set) in self.within_b.iter().zip(span_setters) {
            if let Some(s) = s {
                p = set(p, *s);
            }
        }
        for set in &self.labels {
            p = p.with_keep_labels_all(set.clone());
        }
        p
    }

    fn plan(&self, backups: &[Backup], now: OffsetDateTime) -> Plan {
        self.policy()
            .plan(backups, now)
            .expect("valid policy and input")
    }

    fn kept(&self, backups: &[Backup], now: OffsetDateTime) -> BTreeSet<String> {
        self.plan(backups, now)
            .kept_ids()
            .map(str::to_owned)
            .collect()
    }
}

fn count_opt() -> impl Strategy<Value = Option<Count>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(Count::N(1))),
        1 => Just(Some(Count::N(2))),
        1 => Just(Some(Count::N(3))),
        1 => Just(Some(Count::Unlimited)),
    ]
}

fn span_opt(months: bool) -> BoxedStrategy<Option<Span>> {
    let base = prop_oneof![
        5 => Just(None),
        2 => (1_u32..20).prop_map(|d| Some(Span::days(d))),
        2 => (1_u32..72).prop_map(|h| Some(Span::hours(h))),
    ];
    if months {
        prop_oneof![5 => base, 1 => (1_u32..3).prop_map(|m| Some(Span::months(m)))].boxed()
    } else {
        base.boxed()
    }
}

fn label_rules() -> impl Strategy<Value = Vec<Vec<String>>> {
    let set = prop_oneof![
        Just(vec!["a".to_owned()]),
        Just(vec!["b".to_owned()]),
        Just(vec![String::new()]),
        Just(vec!["a".to_owned(), "b".to_owned()]),
    ];
    prop::collection::vec(set, 0..=2)
}

fn spec_in(zones: &'static [&'static str], months: bool) -> impl Strategy<Value = Spec> {
    (
        prop_oneof![3 => Just(None), 1 => (1_u32..=3).prop_map(Some)],
        [
            count_opt(),
            count_opt(),
            count_opt(),
            count_opt(),
            count_opt(),
        ],
        span_opt(months),
        [
            span_opt(months),
            span_opt(months),
            span_opt(months),
            span_opt(months),
            span_opt(months),
        ],
        label_rules(),
        prop::sample::select(zones),
    )
        .prop_map(|(last, counts, within, within_b, labels, zone)| Spec {
            last,
            counts,
            within,
            within_b,
            labels,
            zone,
        })
        .prop_filter("needs a count or age rule", Spec::has_rule)
}

fn spec() -> impl Strategy<Value = Spec> {
    spec_in(&ZONES, true)
}

// ---------------------------------------------------------------------------------------
// Backups

/// 0..=8 backups: a random window of the grid (3, 20 or 120 days wide), exact ties copied
/// from earlier backups, ids a shuffled permutation, labels from {a, b, c}; with `future`,
/// about 10 % of cases add 1..=2 backups at or after `now`.
fn backups_with(future: bool) -> impl Strategy<Value = Vec<Backup>> {
    (
        0_usize..=8,
        prop::sample::select(vec![48 * 3, 48 * 20, 48 * 120, RANGE]),
        prop_oneof![
            0..RANGE,
            prop::sample::select(&HOT_SPOTS).prop_map(|t| (t - BASE) / STEP)
        ],
        if future {
            prop_oneof![9 => Just(0_usize), 1 => 1_usize..=2].boxed()
        } else {
            Just(0_usize).boxed()
        },
    )
        .prop_flat_map(|(n, width, start, f)| {
            let total = n + f;
            (
                prop::collection::vec(
                    (
                        0..width,
                        prop::bool::weighted(0.25),
                        any::<prop::sample::Index>(),
                    ),
                    n,
                ),
                prop::collection::vec(0_i64..=100, f),
                Just((0..total).collect::<Vec<_>>()).prop_shuffle(),
                prop::collection::vec(subsequence(vec!["a", "b", "c"], 0..=2), total),
                // Centre hot spots in the window.
                Just((start - width / 2).clamp(0, RANGE - width)),
            )
        })
        .prop_map(|(times, futures, ids, labels, start)| {
            let mut secs: Vec<i64> = Vec::new();
            for (k, tie, pick) in times {
                let t = if tie && !secs.is_empty() {
                    secs[pick.index(secs.len())]
                } else {
                    BASE + (start + k) * STEP
                };
                secs.push(t);
            }
            secs.extend(futures.into_iter().map(|k| NOW + k * STEP));
            secs.into_iter()
                .zip(ids)
                .zip(labels)
                .map(|((t, id), labels)| Backup {
                    id: format!("{id:02}"),
                    time: at(t),
                    labels: labels.into_iter().map(str::to_owned).collect(),
                })
                .collect()
        })
}

fn backups() -> impl Strategy<Value = Vec<Backup>> {
    backups_with(true)
}

/// 1..=4 backups strictly newer than every backup in `base`, none after `now`.
fn newer_than(base: &[Backup], offsets: &[i64]) -> Vec<Backup> {
    let max = base
        .iter()
        .map(|b| b.time.unix_timestamp())
        .max()
        .unwrap_or(BASE);
    offsets
        .iter()
        .enumerate()
        .map(|(i, k)| Backup::new(format!("n{i}"), at((max + k * STEP).min(NOW))))
        .filter(|b| b.time.unix_timestamp() > max)
        .collect()
}

fn ids(bs: &[Backup]) -> BTreeSet<String> {
    bs.iter().map(|b| b.id.clone()).collect()
}

fn subset(bs: &[Backup], ids: &BTreeSet<String>) -> Vec<Backup> {
    bs.iter().filter(|b| ids.contains(&b.id)).cloned().collect()
}

fn sorted_newest_first(bs: &[Backup]) -> Vec<&Backup> {
    let mut v: Vec<&Backup> = bs.iter().collect();
    v.sort_by_key(|b| (Reverse(b.time), Reverse(b.id.clone())));
    v
}

/// (rule, rank, oldest) per kept id: what must not change under shifts.
type Shape = Vec<(String, Vec<(Rule, Option<u32>, bool)>)>;

fn shape(plan: &Plan) -> Shape {
    plan.keep
        .iter()
        .map(|k| {
            let rs = k
                .reasons
                .iter()
                .map(|r| {
                    let rank = match r {
                        Reason::Count { rank, .. } => Some(*rank),
                        _ => None,
                    };
                    (r.rule(), rank, r.is_oldest())
                })
                .collect();
            (k.id.clone(), rs)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Naive reference model: the declarative restatement of spec §3.3, written independently.

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Id(String),
    Civil(i32, i32, i32, i32),
}

fn model_key(rule: Rule, b: &Backup, tz: &TimeZone) -> Key {
    let dt = Timestamp::from_second(b.time.unix_timestamp())
        .unwrap()
        .to_zoned(tz.clone());
    let (y, m, d, h) = (
        i32::from(dt.year()),
        i32::from(dt.month()),
        i32::from(dt.day()),
        i32::from(dt.hour()),
    );
    match rule {
        Rule::Last => Key::Id(b.id.clone()),
        Rule::Hourly | Rule::WithinHourly => Key::Civil(y, m, d, h),
        Rule::Daily | Rule::WithinDaily => Key::Civil(y, m, d, 0),
        Rule::Weekly | Rule::WithinWeekly => {
            let w = dt.date().iso_week_date();
            Key::Civil(i32::from(w.year()), i32::from(w.week()), 0, 0)
        }
        Rule::Monthly | Rule::WithinMonthly => Key::Civil(y, m, 0, 0),
        Rule::Yearly | Rule::WithinYearly => Key::Civil(y, 0, 0, 0),
        other => panic!("{other} has no buckets"),
    }
}

/// Go's `AddDate(-y, -m, -d)` then `Add(-h)`, in `tz`.
fn model_start(anchor: &Backup, span: Span, tz: &TimeZone) -> Option<i64> {
    let z = Timestamp::from_second(anchor.time.unix_timestamp())
        .unwrap()
        .to_zoned(tz.clone());
    let total = i64::from(z.year()) * 12 + i64::from(z.month())
        - 1
        - i64::from(span.years) * 12
        - i64::from(span.months);
    let (y, m) = (total.div_euclid(12), total.rem_euclid(12) + 1);
    // Day `d - days` of month (y, m), overflow rolling into neighbouring months.
    let date = Date::new(i16::try_from(y).ok()?, i8::try_from(m).ok()?, 1)
        .ok()?
        .checked_add(SignedDuration::from_hours(24 * (i64::from(z.day()) - 1)))
        .ok()?
        .checked_sub(SignedDuration::from_hours(24 * i64::from(span.days)))
        .ok()?;
    let civil = DateTime::from_parts(date, z.time());
    let ts = civil.to_zoned(tz.clone()).ok()?.timestamp();
    Some(ts.as_second() - 3600 * i64::from(span.hours))
}

type Model = BTreeMap<String, BTreeSet<(Rule, bool)>>;

fn model(spec: &Spec, bs: &[Backup], now: OffsetDateTime) -> Model {
    let tz = TimeZone::get(spec.zone).unwrap();
    let mut out: Model = BTreeMap::new();
    let mut add = |id: &str, r: Rule, oldest: bool| {
        out.entry(id.to_owned()).or_default().insert((r, oldest));
    };
    let all = sorted_newest_first(bs);
    let (future, s): (Vec<&Backup>, Vec<&Backup>) = all.into_iter().partition(|b| b.time > now);
    for b in &future {
        add(&b.id, Rule::FutureQuarantine, false);
    }
    let Some(o) = s.last() else { return out };
    for set in &spec.labels {
        for b in &s {
            let hit = if set.len() == 1 && set[0].is_empty() {
                b.labels.is_empty()
            } else {
                set.iter().all(|l| b.labels.contains(l))
            };
            if hit {
                add(&b.id, Rule::Label, false);
            }
        }
    }
    let inside = |b: &Backup, span: Span| {
        model_start(s[0], span, &tz).is_none_or(|st| b.time.unix_timestamp() > st)
    };
    if let Some(span) = spec.within {
        for b in s.iter().filter(|b| inside(b, span)) {
            add(&b.id, Rule::Within, false);
        }
    }
    let counts = std::iter::once((Rule::Last, spec.last.map(Count::N)))
        .chain(COUNT_RULES.into_iter().zip(spec.counts));
    for (rule, count) in counts {
        let Some(count) = count.filter(|c| *c != Count::N(0)) else {
            continue;
        };
        let limit = match count {
            Count::N(n) => n as usize,
            Count::Unlimited => usize::MAX,
        };
        let before_o: HashSet<Key> = s[..s.len() - 1]
            .iter()
            .map(|b| model_key(rule, b, &tz))
            .collect();
        // Representatives among S \ {o}, then o by the oldest rule.
        let mut groups_wo: Vec<(Key, &Backup)> = Vec::new();
        for b in &s[..s.len() - 1] {
            let k = model_key(rule, b, &tz);
            if !groups_wo.iter().any(|(g, _)| *g == k) {
                groups_wo.push((k, b));
            }
        }
        for (_, b) in groups_wo.iter().take(limit) {
            add(&b.id, rule, false);
        }
        if groups_wo.len() < limit {
            add(&o.id, rule, before_o.contains(&model_key(rule, o, &tz)));
        }
    }
    for (rule, span) in WITHIN_RULES.into_iter().zip(spec.within_b) {
        let Some(span) = span else { continue };
        let win: Vec<&&Backup> = s.iter().filter(|b| inside(b, span)).collect();
        let mut seen = HashSet::new();
        for b in &win {
            if seen.insert(model_key(rule, b, &tz)) {
                add(&b.id, rule, false);
            }
        }
        // The oldest backup inside the window is kept too; it is the "oldest" extra when a
        // newer backup in the window already represents its bucket.
        if let Some((last, newer)) = win.split_last()
            && last.id == o.id
        {
            let k = model_key(rule, o, &tz);
            if newer.iter().any(|b| model_key(rule, b, &tz) == k) {
                add(&o.id, rule, true);
            }
        }
    }
    out
}

fn engine_as_model(plan: &Plan) -> Model {
    plan.keep
        .iter()
        .map(|k| {
            let set = k
                .reasons
                .iter()
                .map(|r| (r.rule(), r.is_oldest()))
                .collect();
            (k.id.clone(), set)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// P1: partition, order, and kept <=> reasons non-empty.
    #[test]
    fn p1_partition(spec in spec(), bs in backups()) {
        let plan = spec.plan(&bs, now());
        let kept: Vec<&str> = plan.kept_ids().collect();
        let mut all: Vec<&str> = kept.iter().copied().chain(plan.remove.iter().map(String::as_str)).collect();
        all.sort_unstable();
        let mut input: Vec<&str> = bs.iter().map(|b| b.id.as_str()).collect();
        input.sort_unstable();
        prop_assert_eq!(all, input);
        prop_assert!(plan.keep.iter().all(|k| !k.reasons.is_empty()));
        let order: Vec<&str> = sorted_newest_first(&bs).iter().map(|b| b.id.as_str()).collect();
        let keep_order: Vec<&str> = order.iter().copied().filter(|id| kept.contains(id)).collect();
        let remove_order: Vec<&str> = order.iter().copied().filter(|id| !kept.contains(id)).collect();
        prop_assert_eq!(kept, keep_order);
        prop_assert_eq!(plan.remove.iter().map(String::as_str).collect::<Vec<_>>(), remove_order);
    }

    /// P2 and P3: the newest real backup and every future-dated backup are kept.
    #[test]
    fn p2_p3_newest_and_future_kept(spec in spec(), bs in backups()) {
        let kept = spec.kept(&bs, now());
        let sorted = sorted_newest_first(&bs);
        if let Some(newest) = sorted.iter().find(|b| b.time <= now()) {
            prop_assert!(kept.contains(&newest.id));
        }
        let plan = spec.plan(&bs, now());
        for b in bs.iter().filter(|b| b.time > now()) {
            let k = plan.keep.iter().find(|k| k.id == b.id);
            prop_assert!(k.is_some_and(|k| k.reasons == vec![Reason::FutureQuarantine]));
        }
    }

    /// P4: keep-last N alone keeps exactly the first min(N, #S) of the total order (plus F).
    #[test]
    fn p4_keep_last_exact(n in 1_u32..10, bs in backups(), zone in prop::sample::select(&ZONES)) {
        let spec = Spec { last: Some(n), zone, ..Spec::default() };
        let sorted = sorted_newest_first(&bs);
        let mut want: BTreeSet<String> = sorted.iter().filter(|b| b.time > now()).map(|b| b.id.clone()).collect();
        want.extend(sorted.iter().filter(|b| b.time <= now()).take(n as usize).map(|b| b.id.clone()));
        prop_assert_eq!(spec.kept(&bs, now()), want);
    }

    /// P5: each count rule uses at most N of budget; count-only policies keep <= sum N.
    #[test]
    fn p5_budget(spec in spec(), bs in backups()) {
        let plan = spec.plan(&bs, now());
        let limits = std::iter::once((Rule::Last, spec.last.map(Count::N)))
            .chain(COUNT_RULES.into_iter().zip(spec.counts));
        let mut sum = Some(0_usize);
        for (rule, count) in limits {
            let used = plan.keep.iter().flat_map(|k| &k.reasons).filter(|r| matches!(r, Reason::Count { .. }) && r.rule() == rule).count();
            match count {
                Some(Count::N(n)) => {
                    prop_assert!(used <= n as usize, "{rule}: {used} > {n}");
                    sum = sum.map(|s| s + n as usize);
                }
                Some(Count::Unlimited) => sum = None,
                None => {}
            }
        }
        let count_only = spec.within.is_none() && spec.within_b.iter().all(Option::is_none) && spec.labels.is_empty();
        if let (true, Some(sum)) = (count_only, sum) {
            let real = plan.keep.iter().filter(|k| k.reasons != vec![Reason::FutureQuarantine]).count();
            prop_assert!(real <= sum);
        }
    }

    /// P6: non-oldest count reasons sit on the newest backup of pairwise distinct buckets,
    /// which are exactly the min(N, #buckets) newest buckets, ranked 1, 2, ...
    #[test]
    fn p6_representatives(spec in spec(), bs in backups()) {
        let plan = spec.plan(&bs, now());
        let tz = TimeZone::get(spec.zone).unwrap();
        let s: Vec<&Backup> = sorted_newest_first(&bs).into_iter().filter(|b| b.time <= now()).collect();
        let by_id: BTreeMap<&str, &Backup> = bs.iter().map(|b| (b.id.as_str(), b)).collect();
        let limits = std::iter::once((Rule::Last, spec.last.map(Count::N)))
            .chain(COUNT_RULES.into_iter().zip(spec.counts));
        for (rule, count) in limits {
            let Some(count) = count else { continue };
            let mut buckets: Vec<(Key, &str)> = Vec::new();
            for b in &s {
                let k = model_key(rule, b, &tz);
                if !buckets.iter().any(|(g, _)| *g == k) {
                    buckets.push((k, &b.id));
                }
            }
            let mut reps: Vec<(u32, &str)> = plan.keep.iter().flat_map(|k| k.reasons.iter().map(move |r| (k, r)))
                .filter_map(|(k, r)| match r {
                    Reason::Count { rule: r2, rank, oldest: false, .. } if *r2 == rule => Some((*rank, k.id.as_str())),
                    _ => None,
                })
                .collect();
            reps.sort_unstable();
            let n = match count { Count::N(n) => n as usize, Count::Unlimited => usize::MAX };
            let want: Vec<(u32, &str)> = buckets.iter().take(n).enumerate().map(|(i, (_, id))| (u32::try_from(i + 1).unwrap(), *id)).collect();
            prop_assert_eq!(&reps, &want, "{}", rule);
            for (_, id) in reps {
                let k = model_key(rule, by_id[id], &tz);
                let first = s.iter().find(|b| model_key(rule, b, &tz) == k).unwrap();
                prop_assert_eq!(first.id.as_str(), id);
            }
        }
    }

    /// P7: idempotence.
    #[test]
    fn p7_idempotence(spec in spec(), bs in backups()) {
        let once = spec.kept(&bs, now());
        prop_assert_eq!(spec.kept(&subset(&bs, &once), now()), once);
    }

    /// P8: raising counts, switching to unlimited, lengthening windows or adding rules
    /// only adds to the kept set.
    #[test]
    fn p8_monotone(
        spec in spec(),
        bump in prop::collection::vec(0_u32..4, 12),
        bs in backups(),
    ) {
        let mut more = spec.clone();
        let raise = |c: Option<Count>, by: u32| match (c, by) {
            (c, 0) => c,
            (_, 3) => Some(Count::Unlimited),
            (None, by) => Some(Count::N(by)),
            (Some(Count::N(n)), by) => Some(Count::N(n + by)),
            (Some(Count::Unlimited), _) => Some(Count::Unlimited),
        };
        let widen = |s: Option<Span>, by: u32| match (s, by) {
            (s, 0) => s,
            (None, by) => Some(Span::hours(by)),
            (Some(s), 1) => Some(Span { hours: s.hours + 5, ..s }),
            (Some(s), 2) => Some(Span { days: s.days + 2, ..s }),
            (Some(s), _) => Some(Span { months: s.months + 1, ..s }),
        };
        more.last = match (spec.last, bump[0]) {
            (l, 0) => l,
            (l, by) => Some(l.unwrap_or(0) + by),
        };
        for i in 0..5 {
            more.counts[i] = raise(spec.counts[i], bump[1 + i]);
            more.within_b[i] = widen(spec.within_b[i], bump[6 + i]);
        }
        more.within = widen(spec.within, bump[11]);
        let base = spec.kept(&bs, now());
        let bigger = more.kept(&bs, now());
        prop_assert!(base.is_subset(&bigger), "{base:?} not in {bigger:?}");
    }

    /// P9: order independence (the whole plan, reasons included).
    #[test]
    fn p9_order_independence(spec in spec(), (bs, shuffled) in backups().prop_flat_map(|bs| (Just(bs.clone()), Just(bs).prop_shuffle()))) {
        prop_assert_eq!(spec.plan(&bs, now()), spec.plan(&shuffled, now()));
    }

    /// P10: P_{A+B} = P_A ∪ P_B, reasons included, for any split of the rules.
    #[test]
    fn p10_compositionality(spec in spec(), side in prop::collection::vec(0_u8..3, 14), bs in backups()) {
        // side: 0 = A, 1 = B, 2 = both.
        let mut a = Spec { zone: spec.zone, ..Spec::default() };
        let mut b = a.clone();
        let pick = |i: usize| (side[i] != 1, side[i] != 0);
        let (ia, ib) = pick(0);
        if ia { a.last = spec.last; }
        if ib { b.last = spec.last; }
        for i in 0..5 {
            let (ia, ib) = pick(1 + i);
            if ia { a.counts[i] = spec.counts[i]; }
            if ib { b.counts[i] = spec.counts[i]; }
            let (ia, ib) = pick(6 + i);
            if ia { a.within_b[i] = spec.within_b[i]; }
            if ib { b.within_b[i] = spec.within_b[i]; }
        }
        let (ia, ib) = pick(11);
        if ia { a.within = spec.within; }
        if ib { b.within = spec.within; }
        for (j, set) in spec.labels.iter().enumerate() {
            let (ia, ib) = pick(12 + j);
            if ia { a.labels.push(set.clone()); }
            if ib { b.labels.push(set.clone()); }
        }
        prop_assume!(a.has_rule() && b.has_rule());
        let mut union = engine_as_model(&a.plan(&bs, now()));
        for (id, rs) in engine_as_model(&b.plan(&bs, now())) {
            union.entry(id).or_default().extend(rs);
        }
        prop_assert_eq!(engine_as_model(&spec.plan(&bs, now())), union);
    }

    /// P11: pruning early never deletes something a later run (with newer backups) keeps.
    #[test]
    fn p11_no_resurrection(spec in spec(), bs in backups_with(false), offs in prop::collection::vec(1_i64..200, 1..=4)) {
        let newer = newer_than(&bs, &offs);
        let removed: BTreeSet<String> = ids(&bs).difference(&spec.kept(&bs, now())).cloned().collect();
        let all: Vec<Backup> = bs.iter().cloned().chain(newer).collect();
        let later = spec.kept(&all, now());
        prop_assert!(removed.is_disjoint(&later));
    }

    /// P12: nightly pruning keeps a superset of one-shot pruning.
    #[test]
    fn p12_nightly_superset(spec in spec(), bs in backups_with(false), offs in prop::collection::vec(1_i64..200, 1..=4)) {
        let newer = newer_than(&bs, &offs);
        let one_shot = spec.kept(&bs.iter().cloned().chain(newer.clone()).collect::<Vec<_>>(), now());
        let first = subset(&bs, &spec.kept(&bs, now()));
        let nightly = spec.kept(&first.into_iter().chain(newer).collect::<Vec<_>>(), now());
        prop_assert!(one_shot.is_subset(&nightly), "{one_shot:?} vs {nightly:?}");
    }

    /// P13: an interrupted prune (some removals done) is safe to resume.
    #[test]
    fn p13_resumable(spec in spec(), bs in backups(), mask in prop::collection::vec(any::<bool>(), 10)) {
        let kept = spec.kept(&bs, now());
        let gone: BTreeSet<String> = ids(&bs).difference(&kept).enumerate().filter(|(i, _)| mask[*i % mask.len()]).map(|(_, id)| id.clone()).collect();
        let rest: Vec<Backup> = bs.iter().filter(|b| !gone.contains(&b.id)).cloned().collect();
        prop_assert!(kept.is_subset(&spec.kept(&rest, now())));
    }

    /// P14: with nothing in the future, `now` does not matter.
    #[test]
    fn p14_now_independent(spec in spec(), bs in backups_with(false), later in 0_i64..100_000_000) {
        prop_assert_eq!(spec.plan(&bs, now()), spec.plan(&bs, at(NOW + later)));
    }

    /// P15: in UTC, shifting everything by whole weeks changes no decision, for policies
    /// without month/year rules or windows.
    #[test]
    fn p15_week_shift(spec in spec_in(&["UTC"], false), bs in backups(), weeks in -20_i64..20) {
        let mut spec = spec;
        spec.counts[3] = None;
        spec.counts[4] = None;
        spec.within_b[3] = None;
        spec.within_b[4] = None;
        prop_assume!(spec.has_rule());
        let shift = time::Duration::weeks(weeks);
        let moved: Vec<Backup> = bs.iter().map(|b| Backup { time: b.time + shift, ..b.clone() }).collect();
        prop_assert_eq!(shape(&spec.plan(&bs, now())), shape(&spec.plan(&moved, now() + shift)));
    }

    /// P16: adding a label rule never removes anything and leaves other reasons alone.
    #[test]
    fn p16_label_neutral(spec in spec(), extra in label_rules(), bs in backups()) {
        let mut more = spec.clone();
        more.labels.extend(extra);
        let strip = |p: Plan| -> BTreeMap<String, Vec<Reason>> {
            p.keep.into_iter().map(|k| (k.id, k.reasons.into_iter().filter(|r| r.rule() != Rule::Label).collect::<Vec<_>>())).filter(|(_, r)| !r.is_empty()).collect()
        };
        let base = spec.plan(&bs, now());
        let bigger = more.plan(&bs, now());
        let base_ids: BTreeSet<&str> = base.kept_ids().collect();
        let bigger_ids: BTreeSet<&str> = bigger.kept_ids().collect();
        prop_assert!(base_ids.is_subset(&bigger_ids));
        prop_assert_eq!(strip(base), strip(bigger));
    }

    /// P17: the engine equals the naive declarative model, in every zone.
    #[test]
    fn p17_reference_model(spec in spec(), bs in backups()) {
        prop_assert_eq!(engine_as_model(&spec.plan(&bs, now())), model(&spec, &bs, now()));
    }
}
