//! Whether the WAL archive can take a base backup to a recovery target: the check behind
//! `restore --preview`, made before anything is written, so that an unreachable target is a
//! clear answer now instead of PostgreSQL's "recovery ended before configured recovery target
//! was reached" after the whole base backup was downloaded.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt;
use pgb_wal::{Lsn, TimelineHistory, TimelineId, WalFileKind, WalFileName, WalScanner};
use serde::Serialize;
use time::OffsetDateTime;

use super::{WalArchive, WalError};
use crate::layout;
use crate::physical::{PhysicalRestorePlan, RecoveryTarget, TimelineTarget, WalMode};

/// How many segments at the end of the reachable WAL are read for the newest commit.
const TAIL_SEGMENTS: u64 = 8;
/// The most segments read to find a restore point or a transaction id.
const MAX_SCAN_SEGMENTS: u64 = 256;

/// One timeline's share of the replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TimelineSpan {
    /// The timeline.
    pub timeline: TimelineId,
    /// Replay on it starts here.
    pub from: Lsn,
    /// And leaves it for the next timeline here (`None`: the target timeline).
    pub to: Option<Lsn>,
}

/// The answer: reachable, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reach {
    /// The archive holds the WAL from the backup to the target.
    Reachable,
    /// WAL the backup itself needs to become consistent is missing: no target is reachable
    /// from this backup.
    BackupWalMissing {
        /// The first missing segment.
        first_missing: String,
    },
    /// The target lies after the newest commit in the archive: PostgreSQL would end recovery
    /// with "recovery ended before configured recovery target was reached".
    AfterLastCommit {
        /// The newest commit the reachable WAL holds, if any was found.
        #[serde(with = "time::serde::rfc3339::option")]
        last_commit: Option<OffsetDateTime>,
    },
    /// The target lies after the end of the archived WAL.
    AfterArchiveEnd,
    /// The reachable WAL stops at a gap before the target (the archive holds later WAL that
    /// cannot be replayed).
    InGap {
        /// The first missing segment.
        first_missing: String,
        /// The next archived segment after the gap.
        resumes_at: String,
    },
    /// The target timeline does not descend from the backup's at the backup's position (or
    /// its history file is missing).
    TimelineDoesNotLead {
        /// The timeline asked for.
        timeline: TimelineId,
        /// Why.
        reason: String,
    },
    /// The restore point or transaction is not in the reachable WAL.
    NotInArchive,
}

/// What a restore would replay, and whether that reaches the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WalReach {
    /// The answer.
    #[serde(flatten)]
    pub reach: Reach,
    /// The timelines replay passes through, oldest first.
    pub path: Vec<TimelineSpan>,
    /// Archived segments replay would fetch (to the target, or to the end of the reachable
    /// WAL).
    pub segments: u64,
    /// Their stored bytes.
    pub stored_bytes: u64,
    /// The end of the WAL replay can reach without a gap.
    pub reachable_end: Lsn,
    /// The newest commit in the reachable WAL (read from the WAL records).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_commit: Option<OffsetDateTime>,
    /// Where the restore point or transaction was found.
    pub found_at: Option<Lsn>,
    /// Segments downloaded and read to answer.
    pub segments_read: u64,
}

impl WalReach {
    /// Whether the target is reachable.
    pub fn is_reachable(&self) -> bool {
        self.reach == Reach::Reachable
    }
}

/// Archived segments of one cluster: per timeline, segment number → stored size.
type Segments = BTreeMap<TimelineId, BTreeMap<u64, u64>>;

impl WalArchive {
    /// Checks that the archive takes `plan`'s base backup to its target: follows the
    /// timelines from the backup to the target timeline (history files), walks the archived
    /// segments without a gap, and reads the WAL records where the target needs them (the
    /// newest commit for a time target, the restore point or transaction for a name or xid).
    ///
    /// # Errors
    /// Storage failures while listing, or a damaged file that had to be read.
    pub async fn reach(&self, plan: &PhysicalRestorePlan) -> Result<WalReach, WalError> {
        let size = plan
            .manifest
            .physical
            .as_ref()
            .map_or(16 << 20, |p| p.wal_segment_size);
        let sysid = plan.system_identifier;
        let (segments, histories) = self.index(sysid, size).await?;
        let mut out = WalReach {
            reach: Reach::Reachable,
            path: Vec::new(),
            segments: 0,
            stored_bytes: 0,
            reachable_end: plan.stop_lsn,
            last_commit: None,
            found_at: None,
            segments_read: 0,
        };
        let path = match self.path(sysid, plan, &histories).await {
            Ok(p) => p,
            Err(reach) => {
                out.reach = reach;
                return Ok(out);
            }
        };
        out.path.clone_from(&path);

        // Walk the path: every segment from the backup's start, on the timeline that holds
        // it, until the first one missing.
        let included_until = (plan.wal == WalMode::Included).then_some(plan.stop_lsn);
        let mut walked: Vec<(TimelineId, u64)> = Vec::new();
        // The walked segments that are in the archive (the others came with the backup).
        let mut archived: Vec<(TimelineId, u64)> = Vec::new();
        let mut gap: Option<(TimelineId, u64)> = None;
        'path: for span in &path {
            let first = span.from.segment(size);
            let on_tl = segments.get(&span.timeline);
            let last = match span.to {
                // The segment holding the switch point is read from the next timeline.
                Some(to) => to.segment(size).checked_sub(1),
                None => on_tl.and_then(|s| s.keys().next_back().copied()),
            };
            // With the WAL inside the backup, replay reaches at least the backup's stop without
            // the archive.
            let in_backup_last = included_until
                .filter(|_| span.timeline == plan.timeline)
                .and_then(|end| Lsn(end.0.saturating_sub(1)).segment(size).checked_add(0));
            let last = match (last, in_backup_last) {
                (Some(a), Some(b)) if span.to.is_none() => Some(a.max(b)),
                (None, b) => b,
                (a, _) => a,
            };
            let Some(last) = last else { continue };
            for n in first..=last {
                // With the WAL inside the backup, the segments to its stop come with it.
                let in_backup = included_until.is_some_and(|end| n * size < end.0);
                match on_tl.and_then(|s| s.get(&n)) {
                    Some(bytes) => {
                        walked.push((span.timeline, n));
                        archived.push((span.timeline, n));
                        out.stored_bytes += bytes;
                    }
                    None if in_backup => walked.push((span.timeline, n)),
                    None => {
                        gap = Some((span.timeline, n));
                        break 'path;
                    }
                }
            }
        }
        out.segments = walked.len() as u64;
        out.reachable_end = walked
            .last()
            .map_or(plan.start_lsn, |&(_, n)| Lsn((n + 1) * size));
        let name = |(t, n): (TimelineId, u64)| WalFileName::segment(t, n, size).to_string();
        if out.reachable_end < plan.stop_lsn {
            out.reach = Reach::BackupWalMissing {
                first_missing: gap.map(name).unwrap_or_default(),
            };
            return Ok(out);
        }
        // WAL archived after the gap on the same timeline: the archive goes on, replay cannot.
        let resumes = gap.and_then(|(t, n)| {
            segments
                .get(&t)
                .and_then(|s| s.range(n + 1..).next())
                .map(|(&m, _)| (t, m))
        });
        let beyond = |out: &mut WalReach, after_commit: bool| match (gap, resumes) {
            (Some(g), Some(r)) => {
                out.reach = Reach::InGap {
                    first_missing: name(g),
                    resumes_at: name(r),
                }
            }
            _ if after_commit => {
                out.reach = Reach::AfterLastCommit {
                    last_commit: out.last_commit,
                }
            }
            _ => out.reach = Reach::AfterArchiveEnd,
        };

        match &plan.target {
            RecoveryTarget::EndOfArchive | RecoveryTarget::Immediate => {
                let tail = tail(&archived, TAIL_SEGMENTS);
                let scan = self.scan(sysid, size, tail, &mut out).await?;
                out.last_commit = scan.last_commit;
            }
            RecoveryTarget::Lsn(target) => {
                if *target > out.reachable_end {
                    beyond(&mut out, false);
                }
            }
            RecoveryTarget::Time(t) => {
                let tail = tail(&archived, TAIL_SEGMENTS);
                let scan = self.scan(sysid, size, tail, &mut out).await?;
                out.last_commit = scan.last_commit;
                // PostgreSQL stops at the first commit after the target (at it, inclusive):
                // one must exist in the WAL it can replay.
                let reached = out.last_commit.is_some_and(|c| c >= *t);
                if !reached {
                    beyond(&mut out, true);
                }
            }
            RecoveryTarget::Name(_) | RecoveryTarget::Xid(_) => {
                let from = archived
                    .iter()
                    .position(|&(_, n)| Lsn((n + 1) * size) > plan.stop_lsn)
                    .unwrap_or(archived.len());
                let window = &archived[from..archived.len().min(from + MAX_SCAN_SEGMENTS as usize)];
                let scan = self.scan(sysid, size, window, &mut out).await?;
                out.last_commit = scan.last_commit;
                out.found_at = match &plan.target {
                    RecoveryTarget::Name(n) => scan.restore_points.get(n).copied(),
                    RecoveryTarget::Xid(x) => scan.xids.get(&(*x as u32)).copied(),
                    _ => None,
                };
                if out.found_at.is_none() {
                    if gap.is_some() && resumes.is_some() {
                        beyond(&mut out, false);
                    } else {
                        out.reach = Reach::NotInArchive;
                    }
                }
            }
        }
        Ok(out)
    }

    /// One listing of the cluster's archive: its segments and the timelines with a history.
    async fn index(
        &self,
        sysid: u64,
        size: u64,
    ) -> Result<(Segments, BTreeSet<TimelineId>), WalError> {
        let prefix = layout::wal_prefix(sysid);
        let mut segments: Segments = BTreeMap::new();
        let mut histories = BTreeSet::new();
        let mut listed = self.storage.list_stream(Some(&prefix));
        while let Some(o) = listed.next().await {
            let o = o?;
            let Some(f) = o
                .key
                .strip_prefix(&prefix)
                .and_then(|rel| rel.rsplit('/').next())
                .and_then(|n| n.parse::<WalFileName>().ok())
            else {
                continue;
            };
            match f.kind() {
                WalFileKind::Segment => {
                    if let Some(n) = f.segment_number(size) {
                        segments.entry(f.timeline()).or_default().insert(n, o.size);
                    }
                }
                WalFileKind::TimelineHistory => {
                    histories.insert(f.timeline());
                }
                _ => {}
            }
        }
        Ok((segments, histories))
    }

    /// The timelines from the backup's to the target's, from the target's history file.
    async fn path(
        &self,
        sysid: u64,
        plan: &PhysicalRestorePlan,
        histories: &BTreeSet<TimelineId>,
    ) -> Result<Vec<TimelineSpan>, Reach> {
        let own = plan.timeline;
        let target = match plan.timeline_target {
            TimelineTarget::Current => own,
            TimelineTarget::Id(t) => t,
            TimelineTarget::Latest => {
                // The newest timeline whose history passes through the backup's start.
                let mut best = own;
                for &t in histories.iter().filter(|&&t| t > own) {
                    if let Ok(h) = self.history(sysid, t).await
                        && h.leads_to(own, plan.start_lsn)
                    {
                        best = best.max(t);
                    }
                }
                best
            }
        };
        let single = vec![TimelineSpan {
            timeline: own,
            from: plan.start_lsn,
            to: None,
        }];
        if target == own {
            return Ok(single);
        }
        let does_not_lead = |reason: String| Reach::TimelineDoesNotLead {
            timeline: target,
            reason,
        };
        if target < own {
            return Err(does_not_lead(format!(
                "the backup is on timeline {own}, after timeline {target}"
            )));
        }
        let h = self.history(sysid, target).await.map_err(|e| {
            does_not_lead(format!(
                "its history file cannot be read from the archive: {e}"
            ))
        })?;
        if !h.leads_to(own, plan.start_lsn) {
            return Err(does_not_lead(format!(
                "timeline {target} does not pass through the backup's start ({} on timeline \
                 {own}): it forked from another point of the history",
                plan.start_lsn
            )));
        }
        let mut spans = Vec::new();
        let mut from = plan.start_lsn;
        for t in h.timelines().into_iter().filter(|&t| t >= own) {
            let (_, to) = h.range_of(t).unwrap_or((from, None));
            spans.push(TimelineSpan {
                timeline: t,
                from,
                to,
            });
            if let Some(to) = to {
                from = to;
            }
        }
        Ok(spans)
    }

    /// Timeline `timeline`'s history, read from the archive and verified.
    pub(crate) async fn history(
        &self,
        sysid: u64,
        timeline: TimelineId,
    ) -> Result<TimelineHistory, WalError> {
        let file = WalFileName::history(timeline);
        let text = self.fetch_verified(sysid, &file).await?;
        let text = String::from_utf8_lossy(&text);
        TimelineHistory::parse(timeline, &text).map_err(|e| WalError::Corrupt {
            name: file.to_string(),
            problem: e.to_string(),
        })
    }

    /// Reads `segments` (consecutive runs on each timeline) and collects commits, restore
    /// points and transaction ids.
    async fn scan(
        &self,
        sysid: u64,
        size: u64,
        segments: &[(TimelineId, u64)],
        out: &mut WalReach,
    ) -> Result<Scanned, WalError> {
        let mut found = Scanned::default();
        let mut scanner: Option<(TimelineId, u64, WalScanner)> = None;
        for &(t, n) in segments {
            let file = WalFileName::segment(t, n, size);
            let data = self.fetch_verified(sysid, &file).await?;
            out.segments_read += 1;
            // A new scanner at each timeline change or discontinuity.
            let continues = scanner
                .as_ref()
                .is_some_and(|(st, sn, _)| *st == t && *sn + 1 == n);
            if !continues && let Some((_, _, s)) = scanner.take() {
                found.absorb(s);
            }
            let (_, last, s) = scanner.get_or_insert_with(|| (t, n, WalScanner::new()));
            *last = n;
            if s.push(&data).is_err() {
                // A segment pgb cannot read records of (an unknown newer format): no answer
                // from it, never a wrong one.
                continue;
            }
        }
        if let Some((_, _, s)) = scanner {
            found.absorb(s);
        }
        Ok(found)
    }
}

/// The last `n` of `walked`.
fn tail(walked: &[(TimelineId, u64)], n: u64) -> &[(TimelineId, u64)] {
    &walked[walked.len().saturating_sub(n as usize)..]
}

/// What the records said.
#[derive(Debug, Default)]
struct Scanned {
    last_commit: Option<OffsetDateTime>,
    restore_points: BTreeMap<String, Lsn>,
    xids: BTreeMap<u32, Lsn>,
}

impl Scanned {
    fn absorb(&mut self, scanner: WalScanner) {
        let Some(scan) = scanner.finish() else { return };
        for x in &scan.transactions {
            self.xids.entry(x.xid).or_insert(x.lsn);
            if x.kind.is_commit() {
                let micros = pgb_wal::pg_time_to_unix_micros(x.timestamp);
                let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).ok();
                if at > self.last_commit {
                    self.last_commit = at;
                }
            }
        }
        for r in &scan.restore_points {
            self.restore_points.entry(r.name.clone()).or_insert(r.end);
        }
    }
}
