//! `check`'s WAL part: the recovery point in seconds, from the repository alone. The newest
//! archived commit is read from the WAL records of the last archived segment (not from object
//! times: a segment closed by `archive_timeout` on an idle server is new but holds nothing);
//! the newest segment's age says whether the archiver still delivers; a gap in the WAL after
//! the newest physical backup means a restore cannot reach the present.

use std::time::Duration;

use pgb_core::wal::{ClusterWindow, CommitTimes};
use pgb_core::{Listing, Repository};
use serde::Serialize;
use time::OffsetDateTime;

use crate::check::{CheckOptions, CheckStatus, Finding, human, secs};

/// One cluster's WAL archive as the check saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WalCheck {
    /// The cluster's system identifier (text: it does not fit a JSON double).
    pub system_identifier: String,
    /// Its usable physical backups.
    pub physical_backups: u64,
    /// The newest archived commit (read only with a maximum RPO).
    #[serde(with = "time::serde::rfc3339::option")]
    pub newest_commit: Option<OffsetDateTime>,
    /// Its age at check time: the recovery point, seconds.
    pub rpo_s: Option<u64>,
    /// The maximum RPO applied, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rpo_s: Option<u64>,
    /// The most recently stored segment.
    pub newest_segment: Option<String>,
    /// When the store says it was written.
    #[serde(with = "time::serde::rfc3339::option")]
    pub newest_segment_stored_at: Option<OffsetDateTime>,
    /// Its age at check time, seconds.
    pub wal_age_s: Option<u64>,
    /// The maximum age applied, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_wal_age_s: Option<u64>,
    /// Where the recoverable window of the newest physical backup's timeline starts (the end
    /// of its oldest base backup), when that window reaches the end of the archive.
    #[serde(with = "time::serde::rfc3339::option")]
    pub window_from: Option<OffsetDateTime>,
    /// Gaps in the WAL after the newest physical backup's start.
    pub gaps_after_newest_backup: u64,
    /// Per timeline of the archive: its recoverable window and the gaps on its path.
    pub timelines: Vec<TimelineCheck>,
    /// What the server itself says about archiving (`pgb check --server`): failures and the
    /// backlog, which the repository cannot show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archiver: Option<pgb_postgres::ArchiverStatus>,
    /// What is wrong.
    pub findings: Vec<Finding>,
    /// The worst finding's status.
    pub status: CheckStatus,
}

/// One timeline's recoverable window as the check saw it (`/metrics` per cluster and
/// timeline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TimelineCheck {
    /// The timeline.
    pub timeline: u32,
    /// Where its window (the range reaching the end of the archive) starts: the end of its
    /// oldest base backup. `None`: no range reaches the end.
    #[serde(with = "time::serde::rfc3339::option")]
    pub window_from: Option<OffsetDateTime>,
    /// Where the window ends: the newest archived commit in it, when read.
    #[serde(with = "time::serde::rfc3339::option")]
    pub window_to: Option<OffsetDateTime>,
    /// Gaps on the timeline's path (each shortens the window or cuts older backups off).
    pub gaps: u64,
}

/// Whether the check looks at WAL at all: asked for, or physical backups among those checked.
pub(crate) fn wanted(opts: &CheckOptions, physical: bool) -> bool {
    opts.max_rpo.is_some() || opts.max_wal_age.is_some() || physical
}

/// Every cluster of the archive, checked; or the findings that say why not.
pub(crate) async fn check_wal(
    repo: &Repository,
    listing: &Listing,
    opts: &CheckOptions,
) -> (Vec<WalCheck>, Vec<Finding>) {
    // The newest commit is read (normally one GET) whenever WAL is checked: the metrics
    // carry it and the window's end; only `--max-rpo` judges it.
    let windows = match repo.recoverable_windows(listing, CommitTimes::Newest).await {
        Ok(w) => w,
        Err(e) => {
            return (
                Vec::new(),
                vec![Finding {
                    status: CheckStatus::Unknown,
                    message: format!("cannot read the WAL archive: {e}"),
                }],
            );
        }
    };
    let mut findings = Vec::new();
    if windows.is_empty() && (opts.max_rpo.is_some() || opts.max_wal_age.is_some()) {
        findings.push(Finding {
            status: CheckStatus::Critical,
            message: "no archived WAL in the repository (--max-rpo, --max-wal-age): is \
                      archive_command set to pgb wal push into it?"
                .to_owned(),
        });
    }
    let checks = windows.iter().map(|w| cluster(w, opts)).collect();
    (checks, findings)
}

fn limit(d: Duration) -> u64 {
    d.as_secs()
}

fn age(now: OffsetDateTime, t: OffsetDateTime) -> u64 {
    secs(now - t)
}

fn cluster(w: &ClusterWindow, opts: &CheckOptions) -> WalCheck {
    let now = opts.now;
    let mut findings = Vec::new();
    let rpo_s = w.newest_commit.as_ref().map(|c| age(now, c.at));
    if let Some(max) = opts.max_rpo {
        match (&w.newest_commit, rpo_s) {
            (Some(c), Some(rpo)) if rpo > limit(max) => findings.push(Finding {
                status: CheckStatus::Critical,
                message: format!(
                    "newest archived commit is {} old (max {}), in {}",
                    human(rpo),
                    human(limit(max)),
                    c.segment
                ),
            }),
            (Some(_), _) => {}
            (None, _) => {
                let problem = w
                    .commit_problem
                    .clone()
                    .unwrap_or_else(|| "no archived commit".to_owned());
                // A segment pgb cannot read is an unknown state; no commit is a lost one.
                let status = if problem.starts_with("cannot read") {
                    CheckStatus::Unknown
                } else {
                    CheckStatus::Critical
                };
                findings.push(Finding {
                    status,
                    message: format!("recovery point unknown: {problem}"),
                });
            }
        }
    }
    let segment = w.newest_segment.as_ref();
    let stored_at = segment.and_then(|s| s.stored_at);
    let wal_age_s = stored_at.map(|t| age(now, t));
    if let Some(max) = opts.max_wal_age {
        match (segment, wal_age_s) {
            (Some(s), Some(a)) if a > limit(max) => findings.push(Finding {
                status: CheckStatus::Critical,
                message: format!(
                    "newest archived segment {} was stored {} ago (max {}): is archive_command \
                     failing? (pg_stat_archiver)",
                    s.name,
                    human(a),
                    human(limit(max))
                ),
            }),
            (Some(_), Some(_)) => {}
            (Some(s), None) => findings.push(Finding {
                status: CheckStatus::Unknown,
                message: format!("the store does not say when {} was stored", s.name),
            }),
            (None, _) => findings.push(Finding {
                status: CheckStatus::Critical,
                message: "no archived segment".to_owned(),
            }),
        }
    }
    let (window_from, gaps) = newest_backup(w, &mut findings);
    let status = findings
        .iter()
        .map(|f| f.status)
        .fold(CheckStatus::Ok, std::cmp::Ord::max);
    WalCheck {
        system_identifier: w.system_identifier.to_string(),
        physical_backups: w.backups,
        newest_commit: w.newest_commit.as_ref().map(|c| c.at),
        rpo_s,
        max_rpo_s: opts.max_rpo.map(limit),
        newest_segment: segment.map(|s| s.name.clone()),
        newest_segment_stored_at: stored_at,
        wal_age_s,
        max_wal_age_s: opts.max_wal_age.map(limit),
        window_from,
        gaps_after_newest_backup: gaps,
        timelines: w
            .timelines
            .iter()
            .map(|t| TimelineCheck {
                timeline: t.timeline,
                window_from: t.window().map(|r| r.from_time),
                window_to: t.window().and_then(|r| r.to_commit),
                gaps: t.gaps.len() as u64,
            })
            .collect(),
        archiver: None,
        findings,
        status,
    }
}

/// The newest physical backup must restore to the end of the archive: a gap after it (or its
/// own WAL missing) is CRITICAL. Returns the window's start and the gaps after the backup.
fn newest_backup(w: &ClusterWindow, findings: &mut Vec<Finding>) -> (Option<OffsetDateTime>, u64) {
    let in_range = w.newest_backup();
    let unusable = w
        .timelines
        .iter()
        .flat_map(|t| t.unrecoverable.iter())
        .max_by(|a, b| a.backup.cmp(&b.backup));
    if let Some(u) = unusable
        && in_range.is_none_or(|(id, _, _)| &u.backup > id)
    {
        findings.push(Finding {
            status: CheckStatus::Critical,
            message: format!(
                "the newest physical backup {} cannot be restored: its WAL from {} is not \
                 archived",
                u.backup, u.first_missing
            ),
        });
        return (None, 0);
    }
    let Some((id, t, r)) = in_range else {
        return (None, 0);
    };
    let after: Vec<_> = t
        .gaps
        .iter()
        .filter(|g| g.gap.start >= r.from_lsn)
        .collect();
    if !r.reaches_end {
        let gap = after.first().map_or_else(String::new, |g| {
            format!(
                ": {} segment(s) missing from {}",
                g.gap.missing, g.gap.first_missing
            )
        });
        findings.push(Finding {
            status: CheckStatus::Critical,
            message: format!(
                "a gap in the WAL after the newest physical backup {id} on timeline {}{gap}; \
                 restores stop at {} (take a new base backup, check archive_command)",
                t.timeline, r.to_lsn
            ),
        });
    }
    (t.window().map(|win| win.from_time), after.len() as u64)
}
