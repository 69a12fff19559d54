//! The crate's single error type.

use crate::Rule;

/// Everything that can go wrong when parsing policy text, building a [`Policy`](crate::Policy)
/// or planning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    /// The policy has no rule that keeps backups by count or age.
    ///
    /// A label-only (or empty) policy could delete the newest backup, so it is refused.
    #[error(
        "the retention policy keeps nothing by count or age: set at least one of keep-last, \
         keep-hourly/daily/weekly/monthly/yearly or keep-within* (a label rule alone could \
         delete the newest backup)"
    )]
    NoRule,
    /// A `within` window of length zero (it would keep nothing).
    #[error("the {rule} window must be longer than zero")]
    EmptyWindow {
        /// The rule whose window is empty.
        rule: Rule,
    },
    /// A label rule with an empty label set (it would match every backup).
    #[error("a keep-label rule needs at least one label")]
    EmptyLabelSet,
    /// Two input backups share an id, so the total order would be ambiguous.
    #[error("duplicate backup id `{0}`")]
    DuplicateId(String),
    /// A backup's time lies outside the range the calendar maths supports.
    #[error("backup `{0}` has a time outside the supported range (years -9999..=9999)")]
    TimeOutOfRange(String),
    /// The IANA time zone name is unknown.
    #[error("unknown time zone `{name}`: {reason}")]
    UnknownZone {
        /// The name as given.
        name: String,
        /// Why it could not be resolved.
        reason: String,
    },
    /// A count (`7`, `unlimited`) could not be parsed.
    #[error("invalid count `{input}`: {hint}")]
    InvalidCount {
        /// The text as given.
        input: String,
        /// What was wrong and what to write instead.
        hint: String,
    },
    /// A duration (`14d`, `1y6mo`) could not be parsed.
    #[error("invalid duration `{input}`: {hint}")]
    InvalidSpan {
        /// The text as given.
        input: String,
        /// What was wrong and what to write instead.
        hint: String,
    },
}
