//! A pure, deterministic backup retention engine with restic `forget` semantics.
//!
//! Given a set of backups, a [`Policy`] and the current instant, [`RetentionPolicy::plan`]
//! decides which backups to keep (and why) and which to remove. It does no I/O and never reads
//! the clock: `now` is an argument, and only decides which backups are future-dated.
//!
//! The result is the **union of independent rules**: `keep-last`, the count rules
//! `keep-{hourly,daily,weekly,monthly,yearly}` (the newest backup of each of the N newest
//! non-empty buckets, plus the oldest backup while budget is left), `keep-within` and
//! `keep-within-{hourly,..,yearly}` (measured from the newest backup, not from `now`), and
//! `keep-label`. Deviations from restic, each for determinism:
//!
//! 1. ties on equal times are broken by id (the higher id counts as newer);
//! 2. bucket keys use one policy zone (default UTC; weeks are ISO weeks);
//! 3. buckets are counted by group-by (identical to restic in UTC);
//! 4. backups dated after `now` are quarantined: always kept, never counted, never the anchor;
//! 5. a policy without a count or age rule (empty, or labels only) is rejected.
//!
//! ```
//! use pgb_retention::{parse_span, Backup, Count, Policy, RetentionPolicy};
//! use time::macros::datetime;
//!
//! // One backup a day at 02:00 for 60 days.
//! let first = datetime!(2026-01-01 02:00 UTC);
//! let backups: Vec<Backup> = (0..60)
//!     .map(|d| Backup::new(format!("b{d:02}"), first + time::Duration::days(d)))
//!     .collect();
//! let policy = Policy::default()
//!     .with_keep_daily(Count::N(7))
//!     .with_keep_weekly(Count::N(4))
//!     .with_keep_monthly(Count::N(3));
//! let plan = policy.plan(&backups, datetime!(2026-03-02 03:00 UTC))?;
//!
//! // 7 + 4 + 3 = 14 rules, but they overlap: the newest day is also the newest week and month.
//! assert_eq!(plan.keep.len(), 11);
//! assert_eq!(plan.keep[0].id, "b59");
//! assert_eq!(plan.keep[0].reasons[0].to_string(), "daily #1 (2026-03-01)");
//! assert_eq!(plan.keep.len() + plan.remove.len(), 60);
//!
//! // Age rules are measured from the newest backup.
//! let within = Policy::default().with_keep_within(parse_span("14d")?);
//! assert_eq!(within.plan(&backups, datetime!(2030-01-01 0:00 UTC))?.keep.len(), 14);
//! # Ok::<(), pgb_retention::RetentionError>(())
//! ```

mod engine;
mod error;
mod parse;
mod plan;
mod policy;

use std::fmt::Debug;

use time::OffsetDateTime;

pub use error::RetentionError;
pub use parse::{Count, Span, parse_count, parse_span};
pub use plan::{Backup, Kept, Plan, Reason, Rule};
pub use policy::{Policy, Zone};

/// Decides which backups of one backup set (e.g. one cluster or database) to keep.
pub trait RetentionPolicy: Debug + Send + Sync {
    /// Plans the retention of `backups` at instant `now`.
    ///
    /// Pure: the same input gives the same plan whatever the input order. Fails if the policy
    /// is invalid, if two backups share an id, or if a time is out of range.
    fn plan(&self, backups: &[Backup], now: OffsetDateTime) -> Result<Plan, RetentionError>;

    /// The point-in-time recovery window the policy asks for, for a set whose newest backup
    /// started at `newest`: every moment after the returned instant must stay recoverable, so
    /// the base backup that reaches it and the WAL from there on are kept. For [`Policy`] it
    /// is `keep_within`'s window, measured as that rule measures it (from the newest backup,
    /// in the policy zone); `None`: the policy has no window.
    fn recovery_window_start(&self, newest: OffsetDateTime) -> Option<OffsetDateTime> {
        let _ = newest;
        None
    }

    /// The window's span as written (`30d`), for reports; `None`: no window.
    fn recovery_window(&self) -> Option<Span> {
        None
    }
}
