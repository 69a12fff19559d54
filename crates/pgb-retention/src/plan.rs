//! The engine's input ([`Backup`]) and output ([`Plan`], [`Kept`], [`Reason`], [`Rule`]).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::Span;

/// One backup as the engine sees it.
///
/// Serialises as `{"id", "time" (RFC 3339), "labels"}`; `labels` may be omitted on input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// Unique within one evaluation. On equal times the higher id counts as newer.
    pub id: String,
    /// When the backup was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// Free-form labels (restic's tags), matched by `keep-label` rules.
    #[serde(default)]
    pub labels: Vec<String>,
}

impl Backup {
    /// A backup without labels.
    #[must_use]
    pub fn new(id: impl Into<String>, time: OffsetDateTime) -> Backup {
        Backup {
            id: id.into(),
            time,
            labels: Vec::new(),
        }
    }

    /// Adds a label.
    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Backup {
        self.labels.push(label.into());
        self
    }
}

/// The decision for one set of backups: both lists newest first, by (time desc, id desc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Backups to keep, each with every rule that keeps it.
    pub keep: Vec<Kept>,
    /// Ids of backups to delete.
    pub remove: Vec<String>,
}

impl Plan {
    /// The ids of kept backups, newest first.
    pub fn kept_ids(&self) -> impl Iterator<Item = &str> {
        self.keep.iter().map(|k| k.id.as_str())
    }
}

/// A kept backup and why it is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// The backup's id.
    pub id: String,
    /// Never empty. Order: labels, within, count rules (last..yearly), within-bucket rules
    /// (hourly..yearly), future quarantine — restic's order.
    pub reasons: Vec<Reason>,
}

/// The name of a retention rule, as used in JSON (`"rule"`) and in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Rule {
    /// `keep-last`.
    Last,
    /// `keep-hourly`.
    Hourly,
    /// `keep-daily`.
    Daily,
    /// `keep-weekly` (ISO weeks).
    Weekly,
    /// `keep-monthly`.
    Monthly,
    /// `keep-yearly`.
    Yearly,
    /// `keep-within`.
    Within,
    /// `keep-within-hourly`.
    WithinHourly,
    /// `keep-within-daily`.
    WithinDaily,
    /// `keep-within-weekly`.
    WithinWeekly,
    /// `keep-within-monthly`.
    WithinMonthly,
    /// `keep-within-yearly`.
    WithinYearly,
    /// `keep-label`.
    Label,
    /// Dated after `now`: kept, never counted.
    FutureQuarantine,
}

impl Rule {
    /// The kebab-case name, e.g. `within-daily`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Rule::Last => "last",
            Rule::Hourly => "hourly",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Yearly => "yearly",
            Rule::Within => "within",
            Rule::WithinHourly => "within-hourly",
            Rule::WithinDaily => "within-daily",
            Rule::WithinWeekly => "within-weekly",
            Rule::WithinMonthly => "within-monthly",
            Rule::WithinYearly => "within-yearly",
            Rule::Label => "label",
            Rule::FutureQuarantine => "future-quarantine",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a backup is kept.
///
/// Bucket keys are in the policy zone: `2026-11-18T14` (hour), `2026-11-18` (day),
/// `2026-W47` (ISO week), `2026-11` (month), `2026` (year); for `last` the key is the id.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// Carries every label of this `keep-label` set (`[""]` matches unlabelled backups).
    Label {
        /// The label set that matched.
        labels: Vec<String>,
    },
    /// Newer than `anchor - span`, the anchor being the newest non-future backup.
    Within {
        /// The window.
        span: Span,
    },
    /// Representative of a count rule's bucket (`last`, `hourly` .. `yearly`).
    Count {
        /// Which count rule.
        rule: Rule,
        /// 1 = the newest bucket.
        rank: u32,
        /// The bucket key.
        bucket: String,
        /// The oldest backup, kept because the rule had budget left although its bucket was
        /// already represented by a newer backup (restic >= 0.16).
        oldest: bool,
    },
    /// Newest of its bucket inside a `keep-within-<period>` window.
    WithinBucket {
        /// Which within-bucket rule.
        rule: Rule,
        /// The window.
        span: Span,
        /// The bucket key.
        bucket: String,
        /// The oldest backup inside the window, its bucket already represented.
        oldest: bool,
    },
    /// Dated after `now` (clock skew): kept, not counted, not used as the anchor.
    FutureQuarantine,
}

impl Reason {
    /// The rule this reason comes from.
    #[must_use]
    pub fn rule(&self) -> Rule {
        match self {
            Reason::Label { .. } => Rule::Label,
            Reason::Within { .. } => Rule::Within,
            Reason::Count { rule, .. } | Reason::WithinBucket { rule, .. } => *rule,
            Reason::FutureQuarantine => Rule::FutureQuarantine,
        }
    }

    /// Whether this is the "oldest" extra of a rule with budget left.
    #[must_use]
    pub fn is_oldest(&self) -> bool {
        matches!(
            self,
            Reason::Count { oldest: true, .. } | Reason::WithinBucket { oldest: true, .. }
        )
    }
}

/// Human form, e.g. `daily #3 (2026-11-18)`, `weekly #2 oldest (2026-W47)`, `within 14d`,
/// `within-daily 7d (2026-11-18)`, `label pre-migration`, `last #1`.
impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let oldest = |o: bool| if o { " oldest" } else { "" };
        match self {
            Reason::Label { labels } => {
                if labels.iter().all(String::is_empty) {
                    f.write_str("label (unlabelled)")
                } else {
                    write!(f, "label {}", labels.join("+"))
                }
            }
            Reason::Within { span } => write!(f, "within {span}"),
            Reason::Count {
                rule: Rule::Last,
                rank,
                oldest: o,
                ..
            } => write!(f, "last #{rank}{}", oldest(*o)),
            Reason::Count {
                rule,
                rank,
                bucket,
                oldest: o,
            } => write!(f, "{rule} #{rank}{} ({bucket})", oldest(*o)),
            Reason::WithinBucket {
                rule,
                span,
                bucket,
                oldest: o,
            } => write!(f, "{rule} {span}{} ({bucket})", oldest(*o)),
            Reason::FutureQuarantine => f.write_str("future-dated (quarantined)"),
        }
    }
}

/// `{"rule": "daily", "rank": 3, "bucket": "2026-11-18", "oldest": false, "text": "..."}`;
/// fields that do not apply to the rule are omitted.
impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Repr<'a> {
            rule: Rule,
            #[serde(skip_serializing_if = "Option::is_none")]
            rank: Option<u32>,
            #[serde(skip_serializing_if = "Option::is_none")]
            bucket: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            span: Option<Span>,
            #[serde(skip_serializing_if = "Option::is_none")]
            labels: Option<&'a [String]>,
            #[serde(skip_serializing_if = "Option::is_none")]
            oldest: Option<bool>,
            text: String,
        }
        let mut r = Repr {
            rule: self.rule(),
            rank: None,
            bucket: None,
            span: None,
            labels: None,
            oldest: None,
            text: self.to_string(),
        };
        match self {
            Reason::Label { labels } => r.labels = Some(labels),
            Reason::Within { span } => r.span = Some(*span),
            Reason::Count {
                rank,
                bucket,
                oldest,
                ..
            } => {
                r.rank = Some(*rank);
                r.bucket = Some(bucket);
                r.oldest = Some(*oldest);
            }
            Reason::WithinBucket {
                span,
                bucket,
                oldest,
                ..
            } => {
                r.span = Some(*span);
                r.bucket = Some(bucket);
                r.oldest = Some(*oldest);
            }
            Reason::FutureQuarantine => {}
        }
        r.serialize(serializer)
    }
}
