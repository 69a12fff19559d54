//! `pgb wal verify`: the archive walked per timeline, every gap reported.
//!
//! A hole that retention made on purpose is not a gap: when GFS counts, labels or the guards
//! keep base backups older than the recovery window, prune keeps only their start-to-stop WAL
//! (`retain.rs`), so the archive holds islands. A missing range that lies before the newest
//! base backup's start and outside every kept backup's start-to-stop range is reported as
//! `pruned` (no restore from a kept backup needs it; those backups restore to their own end);
//! every other missing range stays a gap.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt;
use pgb_wal::{Lsn, TimelineId, WalFileKind, WalFileName};

use super::object::{Header, MAX_HEADER};
use super::{WalArchive, WalError};
use crate::layout;
use crate::manifest::Manifest;
use crate::physical::WalMode;

/// The default WAL segment size, used when the archive holds no segment to read it from.
const DEFAULT_SEGMENT_SIZE: u64 = 16 << 20;

/// Segments missing between two archived ones of a timeline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct WalGap {
    /// The timeline.
    pub timeline: TimelineId,
    /// The first missing segment.
    pub first_missing: String,
    /// The last missing segment.
    pub last_missing: String,
    /// How many segments are missing.
    pub missing: u64,
    /// WAL positions without WAL: recovery cannot pass from `start` to `end`.
    pub start: Lsn,
    /// End of the missing range (exclusive).
    pub end: Lsn,
}

/// One timeline of the archive.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct WalTimelineReport {
    /// The timeline.
    pub timeline: TimelineId,
    /// Whether its history file is archived (every timeline after the first has one).
    pub history: bool,
    /// The first archived segment.
    pub first: Option<String>,
    /// The last archived segment.
    pub last: Option<String>,
    /// Archived complete segments.
    pub segments: u64,
    /// Archived `.partial` segments (the last segment of a timeline another one forked from).
    pub partial: u64,
    /// The timeline it forked from and where (from its history file), if any.
    pub forked_from: Option<pgb_wal::HistoryEntry>,
    /// Where WAL is missing: between archived segments, between the fork and the first
    /// segment, and on the parent before the fork.
    pub gaps: Vec<WalGap>,
    /// Missing ranges no kept base backup needs: before the newest backup's start and outside
    /// every backup's start-to-stop WAL (the holes a prune leaves between older backups kept
    /// by GFS counts or labels). Not gaps: no restore from a kept backup reads them.
    pub pruned: Vec<WalGap>,
}

/// The whole archive of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct WalVerifyReport {
    /// The cluster.
    pub system_identifier: u64,
    /// Its segment size, read from an archived segment's header.
    pub segment_size: u64,
    /// Each timeline, in order.
    pub timelines: Vec<WalTimelineReport>,
    /// Objects re-read and checked (with `rehash`).
    pub rehashed: u64,
    /// Objects that failed the re-read, with the reason.
    pub damaged: Vec<String>,
    /// Objects under the cluster's folder that are not WAL files pgb writes (left alone).
    pub foreign: Vec<String>,
}

impl WalVerifyReport {
    /// Every gap of every timeline.
    pub fn gaps(&self) -> impl Iterator<Item = &WalGap> {
        self.timelines.iter().flat_map(|t| t.gaps.iter())
    }

    /// Whether the archive is whole (no gap, nothing damaged).
    pub fn is_whole(&self) -> bool {
        self.gaps().next().is_none() && self.damaged.is_empty()
    }
}

impl WalArchive {
    /// Walks the archive of `system_identifier` timeline by timeline and reports every gap;
    /// with `rehash`, downloads and checks every stored file as `fetch` would. `backups` are
    /// the repository's kept backups (others' clusters and logical ones are ignored): a
    /// missing range none of them needs, before the newest one's start, is reported as
    /// [`WalTimelineReport::pruned`] instead of a gap. With no backup every missing range is
    /// a gap.
    ///
    /// # Errors
    /// Storage failures while listing.
    pub async fn verify(
        &self,
        system_identifier: u64,
        rehash: bool,
        backups: &[&Manifest],
    ) -> Result<WalVerifyReport, WalError> {
        let prefix = layout::wal_prefix(system_identifier);
        let mut files: Vec<WalFileName> = Vec::new();
        let mut foreign = Vec::new();
        let mut listed = self.storage.list_stream(Some(&prefix));
        while let Some(o) = listed.next().await {
            let o = o?;
            let rel = o.key.strip_prefix(&prefix).unwrap_or_default();
            let parsed = rel.split_once('/').and_then(|(tli, name)| {
                let f = name.parse::<WalFileName>().ok()?;
                (format!("{:08X}", f.timeline()) == tli).then_some(f)
            });
            match parsed {
                Some(f) => files.push(f),
                None => foreign.push(o.key.to_string()),
            }
        }
        let segment_size = self
            .segment_size(system_identifier, &files)
            .await?
            .unwrap_or(DEFAULT_SEGMENT_SIZE);

        let mut by_timeline: BTreeMap<TimelineId, (BTreeSet<u64>, u64, bool)> = BTreeMap::new();
        for f in &files {
            let entry = by_timeline.entry(f.timeline()).or_default();
            match f.kind() {
                WalFileKind::Segment => {
                    entry
                        .0
                        .insert(f.segment_number(segment_size).unwrap_or_default());
                }
                WalFileKind::Partial => entry.1 += 1,
                WalFileKind::TimelineHistory => entry.2 = true,
                WalFileKind::BackupHistory => {}
            }
        }
        let mut timelines: Vec<WalTimelineReport> = Vec::new();
        for (timeline, (segments, partial, history)) in &by_timeline {
            let timeline = *timeline;
            let name = |n: u64| WalFileName::segment(timeline, n, segment_size).to_string();
            let gap = |from: u64, to: u64| WalGap {
                timeline,
                first_missing: name(from),
                last_missing: name(to),
                missing: to - from + 1,
                start: Lsn(from * segment_size),
                end: Lsn((to + 1) * segment_size),
            };
            let mut gaps: Vec<WalGap> = segments
                .iter()
                .zip(segments.iter().skip(1))
                .filter(|(a, b)| **b > **a + 1)
                .map(|(a, b)| gap(a + 1, b - 1))
                .collect();
            // A timeline's WAL starts at its fork: its first segment holds the parent's WAL
            // up to the switch point, then its own.
            let forked_from = if *history {
                self.fork_of(system_identifier, timeline).await
            } else {
                None
            };
            if let (Some(fork), Some(&first)) = (&forked_from, segments.first()) {
                let start = fork.switch_point.segment(segment_size);
                if first > start {
                    gaps.insert(0, gap(start, first - 1));
                }
            }
            timelines.push(WalTimelineReport {
                timeline,
                history: *history,
                first: segments.first().map(|&n| name(n)),
                last: segments.last().map(|&n| name(n)),
                segments: segments.len() as u64,
                partial: *partial,
                forked_from,
                gaps,
                pruned: Vec::new(),
            });
        }
        // The parent of each fork needs its WAL up to the segment before the switch point.
        let forks: Vec<(TimelineId, Lsn)> = timelines
            .iter()
            .filter_map(|t| t.forked_from.as_ref().map(|f| (f.parent, f.switch_point)))
            .collect();
        for (parent, switch) in forks {
            let needed_last = switch.segment(segment_size).checked_sub(1);
            let Some(t) = timelines.iter_mut().find(|t| t.timeline == parent) else {
                continue;
            };
            let last = by_timeline
                .get(&parent)
                .and_then(|(s, _, _)| s.last().copied());
            if let (Some(needed), Some(last)) = (needed_last, last)
                && last < needed
            {
                let name = |n: u64| WalFileName::segment(parent, n, segment_size).to_string();
                t.gaps.push(WalGap {
                    timeline: parent,
                    first_missing: name(last + 1),
                    last_missing: name(needed),
                    missing: needed - last,
                    start: Lsn((last + 1) * segment_size),
                    end: Lsn((needed + 1) * segment_size),
                });
            }
        }

        set_aside_pruned(
            &mut timelines,
            &Needed::of(backups, system_identifier, segment_size),
            segment_size,
        );

        let mut damaged = Vec::new();
        let mut rehashed = 0;
        if rehash {
            let mut checks = futures_util::stream::iter(
                files
                    .iter()
                    .map(|f| async move { (f, self.fetch_verified(system_identifier, f).await) }),
            )
            .buffer_unordered(8);
            while let Some((f, r)) = checks.next().await {
                rehashed += 1;
                if let Err(e) = r {
                    damaged.push(format!("{}: {e}", f.as_str()));
                }
            }
            damaged.sort();
        }
        Ok(WalVerifyReport {
            system_identifier,
            segment_size,
            timelines,
            rehashed,
            damaged,
            foreign,
        })
    }

    /// The last fork of `timeline`'s history file (its parent and switch point), when the
    /// file can be fetched and read; `None` otherwise (the report then shows no fork).
    async fn fork_of(
        &self,
        system_identifier: u64,
        timeline: TimelineId,
    ) -> Option<pgb_wal::HistoryEntry> {
        let file = WalFileName::history(timeline);
        let text = self.fetch_verified(system_identifier, &file).await.ok()?;
        let history =
            pgb_wal::TimelineHistory::parse(timeline, std::str::from_utf8(&text).ok()?).ok()?;
        history.entries.last().cloned()
    }

    /// The segment size, from the header line of one archived segment (its plaintext size).
    pub(super) async fn segment_size(
        &self,
        system_identifier: u64,
        files: &[WalFileName],
    ) -> Result<Option<u64>, WalError> {
        let Some(f) = files.iter().find(|f| f.kind() == WalFileKind::Segment) else {
            return Ok(None);
        };
        let key = layout::wal_key(system_identifier, f);
        let meta = self.storage.head(&key).await?;
        let mut stream = self
            .storage
            .reader(&key, Some(0..meta.size.min(MAX_HEADER as u64)))
            .await?;
        let mut head = Vec::new();
        while let Some(chunk) = stream.next().await {
            head.extend_from_slice(&chunk?);
        }
        Ok(Header::parse(&head)
            .ok()
            .map(|(h, _)| h.plain_size)
            .filter(|s| s.is_power_of_two()))
    }
}

/// What the kept base backups of one cluster need of the archive, in segment numbers.
#[derive(Debug, Default)]
struct Needed {
    /// Each backup's start-to-stop segments (with its WAL in the archive).
    ranges: Vec<(u64, u64)>,
    /// The newest backup's start segment: everything from there on is needed.
    from: Option<u64>,
}

impl Needed {
    fn of(backups: &[&Manifest], system_identifier: u64, size: u64) -> Self {
        let bases: Vec<_> = backups
            .iter()
            .filter_map(|m| Some((m, m.physical.as_ref()?)))
            .filter(|(_, p)| p.system_identifier == system_identifier)
            .collect();
        let ranges = bases
            .iter()
            .filter(|(_, p)| p.wal == WalMode::Archive)
            .map(|(_, p)| {
                let first = p.start_lsn.segment(size);
                (
                    first,
                    Lsn(p.stop_lsn.0.saturating_sub(1)).segment(size).max(first),
                )
            })
            .collect();
        let from = bases
            .iter()
            .max_by_key(|(m, _)| (m.started_at, &m.id))
            .map(|(_, p)| p.start_lsn.segment(size));
        Self { ranges, from }
    }

    /// Whether a kept backup needs any of the segments `first..=last` (on any timeline: a
    /// range is compared by position only, which may keep a gap that is not needed, never
    /// the reverse).
    fn any(&self, first: u64, last: u64) -> bool {
        match self.from {
            None => true,
            Some(from) => last >= from || self.ranges.iter().any(|&(a, b)| first <= b && a <= last),
        }
    }
}

/// Moves every gap no kept backup needs to its timeline's `pruned`.
fn set_aside_pruned(timelines: &mut [WalTimelineReport], needed: &Needed, size: u64) {
    for t in timelines {
        let (gaps, pruned) = std::mem::take(&mut t.gaps)
            .into_iter()
            .partition(|g| needed.any(g.start.segment(size), Lsn(g.end.0 - 1).segment(size)));
        t.gaps = gaps;
        t.pruned = pruned;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::super::WalPushOptions;
    use crate::memory::MemoryStorage;
    use crate::repo::Repository;

    const SEG: u64 = 1 << 20;

    /// A 1 MiB segment with a valid first page header.
    fn segment(timeline: u32, segno: u64) -> (String, Bytes) {
        let name = pgb_wal::WalFileName::segment(timeline, segno, SEG).to_string();
        let mut d = vec![0u8; SEG as usize];
        d[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
        d[2..4].copy_from_slice(&pgb_wal::XLP_LONG_HEADER.to_le_bytes());
        d[4..8].copy_from_slice(&timeline.to_le_bytes());
        d[8..16].copy_from_slice(&(segno * SEG).to_le_bytes());
        d[24..32].copy_from_slice(&99u64.to_le_bytes());
        d[32..36].copy_from_slice(&(SEG as u32).to_le_bytes());
        d[36..40].copy_from_slice(&8192u32.to_le_bytes());
        (name, Bytes::from(d))
    }

    #[tokio::test]
    async fn verify_follows_timelines_and_names_every_gap() {
        let repo = Repository::new(Arc::new(MemoryStorage::new()));
        let wal = repo.wal();
        let opts = WalPushOptions::default().with_system_identifier(Some(99));
        // Timeline 1: segments 1, 2, 3 and 6; timeline 2 forked at segment 5 and holds 6, 7.
        for (tli, n) in [(1, 1), (1, 2), (1, 3), (1, 6), (2, 6), (2, 7)] {
            let (name, data) = segment(tli, n);
            wal.push(&name, data, &opts).await.unwrap();
        }
        let history = format!("1\t0/{:X}\tno recovery target specified\n", 5 * SEG);
        wal.push("00000002.history", Bytes::from(history), &opts)
            .await
            .unwrap();
        let r = wal.verify(99, true, &[]).await.unwrap();
        assert_eq!(r.segment_size, SEG);
        assert_eq!(r.rehashed, 7);
        assert!(r.damaged.is_empty(), "{:?}", r.damaged);
        let gaps: Vec<(u32, &str, u64)> = r
            .gaps()
            .map(|g| (g.timeline, g.first_missing.as_str(), g.missing))
            .collect();
        // On timeline 1: 4 and 5 between 3 and 6 (4 also because the fork needs WAL to 5);
        // timeline 2 starts at its fork, segment 5, but its first archived one is 6.
        assert_eq!(
            gaps,
            [
                (1, "000000010000000000000004", 2),
                (2, "000000020000000000000005", 1),
            ]
        );
        let tl2 = &r.timelines[1];
        assert_eq!(tl2.forked_from.as_ref().map(|f| f.parent), Some(1));
        assert!(!r.is_whole());
    }

    #[tokio::test]
    async fn holes_no_kept_backup_needs_are_pruned_ranges_not_gaps() {
        let repo = Repository::new(Arc::new(MemoryStorage::new()));
        let wal = repo.wal();
        let opts = WalPushOptions::default().with_system_identifier(Some(99));
        // Backups at 1..=2 and 5..=6 (their start-to-stop WAL kept), the newest from 9 on;
        // 3-4 and 7-8 pruned between them; 11 missing after the newest one's start.
        for n in [1, 2, 5, 6, 9, 10, 12] {
            let (name, data) = segment(1, n);
            wal.push(&name, data, &opts).await.unwrap();
        }
        let mut r = wal.verify(99, false, &[]).await.unwrap();
        assert_eq!(r.gaps().count(), 3, "without backups every hole is a gap");
        let needed = super::Needed {
            ranges: vec![(1, 2), (5, 6), (9, 9)],
            from: Some(9),
        };
        super::set_aside_pruned(&mut r.timelines, &needed, SEG);
        let names = |g: &[super::WalGap]| {
            g.iter()
                .map(|g| (g.first_missing.clone(), g.missing))
                .collect::<Vec<_>>()
        };
        let t = &r.timelines[0];
        assert_eq!(
            names(&t.pruned),
            [
                ("000000010000000000000003".to_owned(), 2),
                ("000000010000000000000007".to_owned(), 2)
            ]
        );
        assert_eq!(names(&t.gaps), [("00000001000000000000000B".to_owned(), 1)]);
        assert!(!r.is_whole(), "a gap after the newest backup's start");
        // A hole inside a kept backup's start-to-stop WAL is a gap.
        let needed = super::Needed {
            ranges: vec![(1, 4), (5, 6)],
            from: Some(9),
        };
        let mut r = wal.verify(99, false, &[]).await.unwrap();
        super::set_aside_pruned(&mut r.timelines, &needed, SEG);
        assert_eq!(
            names(&r.timelines[0].gaps),
            [
                ("000000010000000000000003".to_owned(), 2),
                ("00000001000000000000000B".to_owned(), 1)
            ]
        );
    }
}
