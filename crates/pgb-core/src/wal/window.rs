//! The recoverable window: per cluster and timeline, from the end of the oldest usable base
//! backup to the newest archived commit, cut by every gap in the archive, with the gaps and
//! the backups each one cuts short. `pgb list` shows it, `pgb check` judges it, and prune
//! reports it before and after deleting WAL.
//!
//! Everything is decided from one listing of the cluster's archive (plus its timeline history
//! files): which segments exist on the path each timeline's history gives. Only the times at
//! the ends of the ranges need WAL records: the newest commit is read from the last archived
//! segments (never from object times, which say when a file was uploaded, not what it holds).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures_util::StreamExt;
use pgb_wal::{Lsn, TimelineHistory, TimelineId, WalFileKind, WalFileName, WalScanner};
use serde::Serialize;
use time::OffsetDateTime;

use super::verify::WalGap;
use super::{WalArchive, WalError};
use crate::error::Error;
use crate::key::ObjectKey;
use crate::layout;
use crate::manifest::{BackupId, Manifest};
use crate::physical::{PhysicalInfo, WalMode};
use crate::repo::{Listing, Repository};

/// The default WAL segment size, when neither a backup nor an archived segment tells.
const DEFAULT_SEGMENT_SIZE: u64 = 16 << 20;
/// How many segments are read backwards from the end of a range to find its newest commit.
pub const COMMIT_SEARCH_SEGMENTS: u64 = 8;

/// Which times [`WalArchive::window`] reads from WAL records (each a GET of a segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitTimes {
    /// None: positions only, from the listing.
    Skip,
    /// The archive's newest commit (backwards from its last segment).
    Newest,
    /// The newest commit, and the last commit of every range.
    Every,
}

/// Segments already read: per timeline and segment number, the newest commit in it.
type CommitCache = HashMap<(TimelineId, u64), Option<ArchivedCommit>>;

/// One archived WAL file, from the listing.
#[derive(Debug, Clone)]
pub(crate) struct Indexed {
    pub(crate) name: WalFileName,
    pub(crate) key: ObjectKey,
    pub(crate) size: u64,
    pub(crate) last_modified: Option<OffsetDateTime>,
}

/// One listing of a cluster's archive, with its timeline histories read.
#[derive(Debug, Clone)]
pub(crate) struct ArchiveIndex {
    pub(crate) system_identifier: u64,
    pub(crate) segment_size: u64,
    /// Every WAL file stored under its own timeline's folder.
    pub(crate) files: Vec<Indexed>,
    /// Objects under the cluster's folder that are not WAL files in their timeline's folder.
    pub(crate) foreign: Vec<String>,
    /// Complete segments per timeline.
    segments: BTreeMap<TimelineId, BTreeSet<u64>>,
    /// Each timeline with a history file: its history, or why it cannot be read.
    pub(crate) histories: BTreeMap<TimelineId, Result<TimelineHistory, String>>,
}

impl ArchiveIndex {
    pub(crate) fn new(
        system_identifier: u64,
        segment_size: u64,
        files: Vec<Indexed>,
        foreign: Vec<String>,
        histories: BTreeMap<TimelineId, Result<TimelineHistory, String>>,
    ) -> Self {
        let mut segments: BTreeMap<TimelineId, BTreeSet<u64>> = BTreeMap::new();
        for f in files
            .iter()
            .filter(|f| f.name.kind() == WalFileKind::Segment)
        {
            if let Some(n) = f.name.segment_number(segment_size) {
                segments.entry(f.name.timeline()).or_default().insert(n);
            }
        }
        Self {
            system_identifier,
            segment_size,
            files,
            foreign,
            segments,
            histories,
        }
    }

    /// The same archive without the files named in `gone` (what it is after a deletion).
    pub(crate) fn without(&self, gone: &BTreeSet<String>) -> Self {
        let files = self
            .files
            .iter()
            .filter(|f| !gone.contains(f.name.as_str()))
            .cloned()
            .collect();
        Self::new(
            self.system_identifier,
            self.segment_size,
            files,
            self.foreign.clone(),
            self.histories.clone(),
        )
    }

    /// The highest timeline with a file of any kind (the one a server writes now, normally).
    pub(crate) fn newest_timeline(&self) -> Option<TimelineId> {
        self.files.iter().map(|f| f.name.timeline()).max()
    }

    /// The path of positions to `timeline`, from its history file (the timeline alone when
    /// it has none: timeline 1, or a history that cannot be read, said in the second value).
    fn lineage(&self, timeline: TimelineId) -> (Lineage, Option<String>) {
        match self.histories.get(&timeline) {
            Some(Ok(h)) => (Lineage::of(h, self.segment_size), None),
            Some(Err(e)) => (
                Lineage::alone(timeline),
                Some(format!("its history file cannot be read: {e}")),
            ),
            None if timeline > 1 && self.segments.contains_key(&timeline) => (
                Lineage::alone(timeline),
                Some("its history file is not in the archive".to_owned()),
            ),
            None => (Lineage::alone(timeline), None),
        }
    }

    /// The archived segments from `from` to `end` (inclusive) on the way to the lineage's
    /// timeline, in order.
    fn archived_between(&self, lineage: &Lineage, from: u64, end: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut begin = 0;
        for &(t, span_end) in &lineage.spans {
            let stop = span_end.unwrap_or(u64::MAX);
            let (a, b) = (begin.max(from), stop.min(end.saturating_add(1)));
            if a < b
                && let Some(s) = self.segments.get(&t)
            {
                out.extend(s.range(a..b));
            }
            begin = begin.max(stop);
        }
        out
    }

    fn present(&self, lineage: &Lineage, n: u64) -> bool {
        self.segments
            .get(&lineage.timeline_of(n))
            .is_some_and(|s| s.contains(&n))
    }

    fn name(&self, lineage: &Lineage, n: u64) -> String {
        WalFileName::segment(lineage.timeline_of(n), n, self.segment_size).to_string()
    }
}

/// Which timeline holds each segment on the way to one timeline: spans of segment numbers
/// (each ending before its switch point's segment), oldest first. The segment holding a
/// switch point is read from the newer timeline.
#[derive(Debug, Clone)]
struct Lineage {
    spans: Vec<(TimelineId, Option<u64>)>,
    history: Option<TimelineHistory>,
}

impl Lineage {
    fn alone(timeline: TimelineId) -> Self {
        Self {
            spans: vec![(timeline, None)],
            history: None,
        }
    }

    fn of(h: &TimelineHistory, size: u64) -> Self {
        let spans = h
            .timelines()
            .into_iter()
            .map(|t| (t, h.switch_point(t).map(|to| to.segment(size))))
            .collect();
        Self {
            spans,
            history: Some(h.clone()),
        }
    }

    fn own(&self) -> TimelineId {
        self.spans.last().map_or(1, |s| s.0)
    }

    fn timeline_of(&self, n: u64) -> TimelineId {
        self.spans
            .iter()
            .find(|(_, end)| end.is_none_or(|e| n < e))
            .map_or_else(|| self.own(), |s| s.0)
    }

    /// Whether replay to this lineage's timeline passes through `lsn` on `timeline`.
    fn passes(&self, timeline: TimelineId, lsn: Lsn) -> bool {
        match &self.history {
            Some(h) => h.leads_to(timeline, lsn),
            None => timeline == self.own(),
        }
    }
}

/// A base backup as the window sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Base<'a> {
    pub(crate) id: &'a BackupId,
    pub(crate) started_at: OffsetDateTime,
    pub(crate) info: &'a PhysicalInfo,
}

impl<'a> Base<'a> {
    /// The physical backups of `system_identifier` among `manifests`.
    pub(crate) fn of(manifests: &[&'a Manifest], system_identifier: u64) -> Vec<Self> {
        manifests
            .iter()
            .filter_map(|m| Self::from_manifest(m, system_identifier))
            .collect()
    }

    /// `m` when it is a physical backup of `system_identifier`.
    pub(crate) fn from_manifest(m: &'a Manifest, system_identifier: u64) -> Option<Self> {
        let info = m.physical.as_ref()?;
        (info.system_identifier == system_identifier).then_some(Base {
            id: &m.id,
            started_at: m.started_at,
            info,
        })
    }

    /// The byte before the stop position: the last the backup needs replayed.
    fn last_needed(&self) -> Lsn {
        Lsn(self.info.stop_lsn.0.saturating_sub(1))
    }

    /// The first archived segment a restore from this backup reads.
    fn need_from(&self, size: u64) -> u64 {
        match self.info.wal {
            WalMode::Archive => self.info.start_lsn.segment(size),
            // The WAL to its stop is in the tar; replay goes on with the next segment.
            _ => self.last_needed().segment(size) + 1,
        }
    }
}

/// A stretch of time a restore can reach on one timeline: from the end of the oldest base
/// backup that replays into it to where the archived WAL stops (a gap, or the archive's end).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RecoverableRange {
    /// The oldest backup that restores into it.
    pub from_backup: BackupId,
    /// When that backup ended: the earliest recovery target time.
    #[serde(with = "time::serde::rfc3339")]
    pub from_time: OffsetDateTime,
    /// Where that backup is consistent: the earliest recovery target position.
    pub from_lsn: Lsn,
    /// The end of the WAL replay can reach (the end of the last segment before the gap or
    /// of the archive; the backup's own end for a `--wal included` backup with nothing after).
    pub to_lsn: Lsn,
    /// The last archived segment of the range (`None`: only a backup's own WAL).
    pub to_segment: Option<String>,
    /// The newest commit in the range's last segments: the latest time a restore reaches
    /// (`None`: not read, or no commit in them).
    #[serde(with = "time::serde::rfc3339::option")]
    pub to_commit: Option<OffsetDateTime>,
    /// Whether it reaches the end of the archive on this timeline (else a gap cuts it).
    pub reaches_end: bool,
    /// Every usable backup that restores into it, oldest end first.
    pub backups: Vec<BackupId>,
}

/// A gap, and the backups whose restores stop at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WindowGap {
    /// The missing segments.
    #[serde(flatten)]
    pub gap: WalGap,
    /// Backups whose recovery cannot pass it (they reach the WAL before it only).
    pub affects: Vec<BackupId>,
}

/// A backup that cannot become consistent: WAL between its start and stop is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UnrecoverableBackup {
    /// The backup.
    pub backup: BackupId,
    /// The first segment it needs that is not archived.
    pub first_missing: String,
}

/// One timeline's recoverable window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TimelineWindow {
    /// The timeline.
    pub timeline: TimelineId,
    /// Where it forked from its parent (its history file's last line).
    pub forked_from: Option<pgb_wal::HistoryEntry>,
    /// Why its history could not be followed (then only its own WAL counts).
    pub history_problem: Option<String>,
    /// Its first archived segment.
    pub first_segment: Option<String>,
    /// Its last archived segment.
    pub last_segment: Option<String>,
    /// What a restore can reach, oldest first; the last one reaching the end of the archive
    /// is the window (see [`TimelineWindow::window`]); earlier ones are cut off by a gap.
    pub ranges: Vec<RecoverableRange>,
    /// Gaps after the start of the oldest backup that replays into this timeline.
    pub gaps: Vec<WindowGap>,
    /// Backups of this timeline that cannot be restored at all (their own WAL is missing).
    pub unrecoverable: Vec<UnrecoverableBackup>,
}

impl TimelineWindow {
    /// The range reaching the end of the archive: the window a restore to "now" has.
    pub fn window(&self) -> Option<&RecoverableRange> {
        self.ranges.last().filter(|r| r.reaches_end)
    }
}

/// The newest commit found in the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ArchivedCommit {
    /// Its commit time, as PostgreSQL recorded it in the WAL record.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Where the record is.
    pub lsn: Lsn,
    /// The timeline.
    pub timeline: TimelineId,
    /// The segment holding it.
    pub segment: String,
}

/// The newest archived segment object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ArchivedSegment {
    /// Its name.
    pub name: String,
    /// When the store says it was written (`None`: the store does not tell).
    #[serde(with = "time::serde::rfc3339::option")]
    pub stored_at: Option<OffsetDateTime>,
}

/// The recoverable window of one cluster: per timeline, and its newest commit and segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ClusterWindow {
    /// The cluster.
    #[serde(with = "crate::physical::sysid_text")]
    pub system_identifier: u64,
    /// Its WAL segment size.
    pub segment_size: u64,
    /// Usable physical backups of the cluster.
    pub backups: u64,
    /// Each timeline with archived WAL or a backup, in order.
    pub timelines: Vec<TimelineWindow>,
    /// The newest commit in the archive (read from WAL records on the newest timeline).
    pub newest_commit: Option<ArchivedCommit>,
    /// Why `newest_commit` is unknown when it was looked for.
    pub commit_problem: Option<String>,
    /// The most recently stored segment.
    pub newest_segment: Option<ArchivedSegment>,
    /// Objects under the cluster's folder that are not WAL files (never read or deleted).
    pub foreign: Vec<String>,
}

impl ClusterWindow {
    /// Every gap of every timeline.
    pub fn gaps(&self) -> impl Iterator<Item = &WindowGap> {
        self.timelines.iter().flat_map(|t| t.gaps.iter())
    }

    /// The newest usable physical backup, with the timeline window and range holding it.
    pub fn newest_backup(&self) -> Option<(&BackupId, &TimelineWindow, &RecoverableRange)> {
        self.timelines
            .iter()
            .flat_map(|t| {
                t.ranges
                    .iter()
                    .flat_map(move |r| r.backups.iter().map(move |b| (b, t, r)))
            })
            .max_by_key(|(b, t, _)| (*b, t.timeline))
    }
}

/// The timeline windows of one cluster: pure, from the index and the backups.
pub(crate) fn timelines(index: &ArchiveIndex, bases: &[Base<'_>]) -> Vec<TimelineWindow> {
    let mut all: BTreeSet<TimelineId> = index.segments.keys().copied().collect();
    all.extend(bases.iter().map(|b| b.info.stop_timeline));
    all.into_iter().map(|t| timeline(index, bases, t)).collect()
}

fn timeline(index: &ArchiveIndex, bases: &[Base<'_>], t: TimelineId) -> TimelineWindow {
    let size = index.segment_size;
    let (lineage, history_problem) = index.lineage(t);
    let own = index.segments.get(&t);
    let end = own.and_then(|s| s.last().copied());
    let leading: Vec<&Base<'_>> = bases
        .iter()
        .filter(|b| lineage.passes(b.info.stop_timeline, b.last_needed()))
        .collect();
    // The missing runs from the oldest backup's first segment to the end.
    let from = leading.iter().map(|b| b.need_from(size)).min();
    let mut runs: Vec<(u64, u64)> = Vec::new();
    if let (Some(from), Some(end)) = (from, end) {
        // Over the archived segments only (positions can be far apart).
        let mut expect = from;
        for n in index.archived_between(&lineage, from, end) {
            if n > expect {
                runs.push((expect, n - 1));
            }
            expect = n + 1;
        }
    }
    let after_end = end.map_or(0, |e| e + 1);
    // Where replay from `n` stops: the first missing segment at or after it.
    let stops_at = |n: u64| -> u64 {
        runs.iter()
            .find(|(_, last)| *last >= n)
            .map_or(after_end.max(n), |(first, _)| (*first).max(n))
    };
    let mut groups: BTreeMap<u64, Vec<&Base<'_>>> = BTreeMap::new();
    let mut unrecoverable = Vec::new();
    let mut stops: HashMap<&BackupId, u64> = HashMap::new();
    for b in &leading {
        let stop = stops_at(b.need_from(size));
        stops.insert(b.id, stop);
        let consistent = match b.info.wal {
            WalMode::Archive => stop > b.last_needed().segment(size),
            _ => true,
        };
        if consistent {
            groups.entry(stop).or_default().push(b);
        } else {
            unrecoverable.push(UnrecoverableBackup {
                backup: b.id.clone(),
                first_missing: index.name(&lineage, stop),
            });
        }
    }
    let ranges = groups
        .into_iter()
        .map(|(stop, mut group)| {
            group.sort_by_key(|b| (b.info.stop_lsn, b.id));
            let first = group[0];
            let has_wal = group.iter().any(|b| stop > b.need_from(size));
            RecoverableRange {
                from_backup: first.id.clone(),
                from_time: first.info.stop_time,
                from_lsn: first.info.stop_lsn,
                to_lsn: if has_wal {
                    Lsn(stop * size)
                } else {
                    group
                        .iter()
                        .map(|b| b.info.stop_lsn)
                        .max()
                        .unwrap_or_default()
                },
                to_segment: has_wal.then(|| index.name(&lineage, stop - 1)),
                to_commit: None,
                reaches_end: end.is_some() && stop >= after_end,
                backups: group.iter().map(|b| b.id.clone()).collect(),
            }
        })
        .collect();
    let gaps = runs
        .iter()
        .map(|&(first, last)| WindowGap {
            gap: WalGap {
                timeline: lineage.timeline_of(first),
                first_missing: index.name(&lineage, first),
                last_missing: index.name(&lineage, last),
                missing: last - first + 1,
                start: Lsn(first * size),
                end: Lsn((last + 1) * size),
            },
            affects: leading
                .iter()
                .filter(|b| stops.get(b.id) == Some(&first))
                .map(|b| b.id.clone())
                .collect(),
        })
        .collect();
    let name = |n: u64| WalFileName::segment(t, n, size).to_string();
    TimelineWindow {
        timeline: t,
        forked_from: lineage
            .history
            .as_ref()
            .and_then(|h| h.entries.last().cloned()),
        history_problem,
        first_segment: own.and_then(|s| s.first().copied()).map(name),
        last_segment: end.map(name),
        ranges,
        gaps,
        unrecoverable,
    }
}

/// What a backwards search for the newest commit found.
#[derive(Debug, Clone)]
enum CommitSearch {
    Found(ArchivedCommit),
    /// No commit in the segments searched.
    None,
    /// A segment could not be read.
    Failed(String),
}

impl WalArchive {
    /// Lists the cluster's archive once and reads its timeline history files.
    /// `segment_size`: from the cluster's backups when known, else read from a segment.
    ///
    /// # Errors
    /// Storage failures while listing.
    pub(crate) async fn archive_index(
        &self,
        system_identifier: u64,
        segment_size: Option<u64>,
    ) -> Result<ArchiveIndex, WalError> {
        let prefix = layout::wal_prefix(system_identifier);
        let mut files = Vec::new();
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
                Some(name) => files.push(Indexed {
                    name,
                    key: o.key,
                    size: o.size,
                    last_modified: o.last_modified,
                }),
                None => foreign.push(o.key.to_string()),
            }
        }
        let names: Vec<WalFileName> = files.iter().map(|f| f.name.clone()).collect();
        let segment_size = match segment_size {
            Some(s) => s,
            None => self
                .segment_size(system_identifier, &names)
                .await?
                .unwrap_or(DEFAULT_SEGMENT_SIZE),
        };
        let mut histories = BTreeMap::new();
        for f in names
            .iter()
            .filter(|f| f.kind() == WalFileKind::TimelineHistory)
        {
            let read = match self.fetch_verified(system_identifier, f).await {
                Ok(bytes) => TimelineHistory::parse(f.timeline(), &String::from_utf8_lossy(&bytes))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            histories.insert(f.timeline(), read);
        }
        Ok(ArchiveIndex::new(
            system_identifier,
            segment_size,
            files,
            foreign,
            histories,
        ))
    }

    /// The newest commit in the segments before `end` (exclusive) on the way to `timeline`,
    /// reading backwards one segment at a time, at most [`COMMIT_SEARCH_SEGMENTS`] and none
    /// before `floor`.
    async fn commit_before(
        &self,
        index: &ArchiveIndex,
        timeline: TimelineId,
        end: u64,
        floor: u64,
        cache: &mut CommitCache,
    ) -> CommitSearch {
        let (lineage, _) = index.lineage(timeline);
        let size = index.segment_size;
        let lowest = end.saturating_sub(COMMIT_SEARCH_SEGMENTS).max(floor);
        for n in (lowest..end).rev() {
            if !index.present(&lineage, n) {
                break;
            }
            let tli = lineage.timeline_of(n);
            let found = match cache.get(&(tli, n)) {
                Some(c) => c.clone(),
                None => {
                    let file = WalFileName::segment(tli, n, size);
                    let data = match self.fetch_verified(index.system_identifier, &file).await {
                        Ok(d) => d,
                        Err(e) => return CommitSearch::Failed(format!("{}: {e}", file.as_str())),
                    };
                    let c = newest_commit_in(&data, tli, &file);
                    cache.insert((tli, n), c.clone());
                    c
                }
            };
            if let Some(c) = found {
                return CommitSearch::Found(c);
            }
        }
        CommitSearch::None
    }

    /// The recoverable window of one cluster over `manifests` (every usable backup; those of
    /// other clusters and logical ones are ignored), with the commit times `times` asks for
    /// read from the WAL records.
    ///
    /// # Errors
    /// Storage failures while listing; a segment that cannot be read only leaves its time
    /// unknown (`commit_problem`).
    pub async fn window(
        &self,
        system_identifier: u64,
        manifests: &[&Manifest],
        times: CommitTimes,
    ) -> Result<ClusterWindow, WalError> {
        let bases = Base::of(manifests, system_identifier);
        let size = bases.first().map(|b| b.info.wal_segment_size);
        let index = self.archive_index(system_identifier, size).await?;
        let mut w = ClusterWindow {
            system_identifier,
            segment_size: index.segment_size,
            backups: bases.len() as u64,
            timelines: timelines(&index, &bases),
            newest_commit: None,
            commit_problem: None,
            newest_segment: newest_segment(&index),
            foreign: index.foreign.clone(),
        };
        self.read_commits(&index, &mut w, times).await;
        Ok(w)
    }

    /// The newest commit of the archive, read backwards from the last segment of the newest
    /// timeline; or why it is unknown.
    pub(crate) async fn newest_commit(
        &self,
        index: &ArchiveIndex,
        cache: &mut CommitCache,
    ) -> (Option<ArchivedCommit>, Option<String>) {
        let Some((&t, segs)) = index.segments.iter().next_back() else {
            return (None, Some("no archived segment".to_owned()));
        };
        let end = segs.last().map_or(0, |l| l + 1);
        if let Some(c) = self.commit_in_partial(index, t, end).await {
            return (Some(c), None);
        }
        match self.commit_before(index, t, end, 0, cache).await {
            CommitSearch::Found(c) => (Some(c), None),
            CommitSearch::None => (
                None,
                Some(format!(
                    "no commit in the newest {COMMIT_SEARCH_SEGMENTS} archived segment(s) of \
                     timeline {t}: the newest archived commit is older than they are"
                )),
            ),
            CommitSearch::Failed(e) => (None, Some(format!("cannot read archived WAL: {e}"))),
        }
    }

    /// The newest commit in the partial segment stored after the complete segments (`pgb wal
    /// stream` stores the segment it receives as `<name>.partial` every few seconds): on
    /// timeline `t` at or after segment `end`, or on a later timeline. `None` when there is
    /// none, it holds no commit or cannot be read (the complete segments answer then).
    async fn commit_in_partial(
        &self,
        index: &ArchiveIndex,
        t: TimelineId,
        end: u64,
    ) -> Option<ArchivedCommit> {
        let size = index.segment_size;
        let (file, _) = index
            .files
            .iter()
            .filter(|f| f.name.kind() == WalFileKind::Partial)
            .filter_map(|f| Some((f, f.name.segment_number(size)?)))
            .filter(|(f, n)| f.name.timeline() > t || (f.name.timeline() == t && *n >= end))
            .max_by_key(|(f, n)| (f.name.timeline(), *n))?;
        match self
            .fetch_verified(index.system_identifier, &file.name)
            .await
        {
            Ok(data) => newest_commit_in(&data, file.name.timeline(), &file.name),
            Err(e) => {
                tracing::warn!(file = %file.name, error = %e, "cannot read the stored partial segment");
                None
            }
        }
    }

    /// Fills in the newest commit of the archive and of each range.
    async fn read_commits(&self, index: &ArchiveIndex, w: &mut ClusterWindow, times: CommitTimes) {
        let size = index.segment_size;
        let mut cache = CommitCache::new();
        if times == CommitTimes::Skip {
            return;
        }
        (w.newest_commit, w.commit_problem) = self.newest_commit(index, &mut cache).await;
        if times == CommitTimes::Newest {
            for tw in &mut w.timelines {
                end_at(tw, w.newest_commit.as_ref());
            }
            return;
        }
        for tw in &mut w.timelines {
            for r in &mut tw.ranges {
                let Some(last) = r.to_segment.as_deref().and_then(|s| {
                    s.parse::<WalFileName>()
                        .ok()
                        .and_then(|f| f.segment_number(size))
                }) else {
                    continue;
                };
                let floor = r.from_lsn.segment(size);
                if let CommitSearch::Found(c) = self
                    .commit_before(index, tw.timeline, last + 1, floor, &mut cache)
                    .await
                {
                    r.to_commit = Some(c.at);
                }
            }
        }
    }
}

/// Sets the end time of `w`'s range that reaches the end of the archive when `commit` (the
/// archive's newest) lies in it.
pub(crate) fn end_at(w: &mut TimelineWindow, commit: Option<&ArchivedCommit>) {
    // A commit only a stored partial segment holds is not where a restore to the end of
    // the archive gets (it stops at the last complete segment).
    let Some(c) = commit.filter(|c| c.timeline == w.timeline && !c.segment.ends_with(".partial"))
    else {
        return;
    };
    if let Some(r) = w
        .ranges
        .last_mut()
        .filter(|r| r.reaches_end && c.lsn >= r.from_lsn)
    {
        r.to_commit = Some(c.at);
    }
}

/// The most recently stored segment (or partial segment) of the archive.
pub(crate) fn newest_segment(index: &ArchiveIndex) -> Option<ArchivedSegment> {
    index
        .files
        .iter()
        .filter(|f| matches!(f.name.kind(), WalFileKind::Segment | WalFileKind::Partial))
        .max_by(|a, b| {
            (a.last_modified, a.name.timeline(), a.name.as_str()).cmp(&(
                b.last_modified,
                b.name.timeline(),
                b.name.as_str(),
            ))
        })
        .map(|f| ArchivedSegment {
            name: f.name.to_string(),
            stored_at: f.last_modified,
        })
}

/// The newest commit whose record starts in one segment, read on its own (a record begun in
/// the previous segment is skipped).
fn newest_commit_in(
    data: &[u8],
    timeline: TimelineId,
    file: &WalFileName,
) -> Option<ArchivedCommit> {
    let mut s = WalScanner::new();
    s.push(data).ok()?;
    let scan = s.finish()?;
    scan.commits()
        .filter_map(|x| {
            let micros = pgb_wal::pg_time_to_unix_micros(x.timestamp);
            let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).ok()?;
            Some(ArchivedCommit {
                at,
                lsn: x.lsn,
                timeline,
                segment: file.to_string(),
            })
        })
        .max_by_key(|c| (c.at, c.lsn))
}

impl Repository {
    /// The recoverable window of every cluster with archived WAL or a physical backup
    /// among `listing`'s usable backups, by system identifier, with the commit times `times`
    /// asks for.
    ///
    /// # Errors
    /// Storage failures while listing.
    pub async fn recoverable_windows(
        &self,
        listing: &Listing,
        times: CommitTimes,
    ) -> Result<Vec<ClusterWindow>, Error> {
        let wal = self.wal();
        let mut clusters: BTreeSet<u64> = wal
            .clusters()
            .await
            .map_err(wal_error)?
            .into_iter()
            .collect();
        clusters.extend(
            listing
                .backups
                .iter()
                .filter_map(|m| m.physical.as_ref().map(|p| p.system_identifier)),
        );
        let manifests: Vec<&Manifest> = listing.backups.iter().collect();
        let mut out = Vec::new();
        for sysid in clusters {
            out.push(
                wal.window(sysid, &manifests, times)
                    .await
                    .map_err(wal_error)?,
            );
        }
        Ok(out)
    }
}

/// A WAL error where only storage can fail (listing): the storage error itself.
pub(crate) fn wal_error(e: WalError) -> Error {
    match e {
        WalError::Storage(s) => Error::Storage(s),
        other => Error::Storage(crate::storage::StorageError::new(
            crate::storage::StorageErrorKind::Other,
            "read",
            layout::wal_root().to_string(),
            other.to_string(),
        )),
    }
}
