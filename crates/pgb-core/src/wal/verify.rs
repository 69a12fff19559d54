//! `pgb wal verify`: the archive walked per timeline, every gap reported.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt;
use pgb_wal::{Lsn, TimelineId, WalFileKind, WalFileName};

use super::object::{Header, MAX_HEADER};
use super::{WalArchive, WalError};
use crate::layout;

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
    /// Where WAL is missing.
    pub gaps: Vec<WalGap>,
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
    /// with `rehash`, downloads and checks every stored file as `fetch` would.
    ///
    /// # Errors
    /// Storage failures while listing.
    pub async fn verify(
        &self,
        system_identifier: u64,
        rehash: bool,
    ) -> Result<WalVerifyReport, WalError> {
        let prefix = layout::wal_prefix(system_identifier);
        let objects = self.storage.list(Some(&prefix)).await?;
        let mut files: Vec<WalFileName> = Vec::new();
        let mut foreign = Vec::new();
        for o in &objects {
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
        let timelines = by_timeline
            .into_iter()
            .map(|(timeline, (segments, partial, history))| {
                let name = |n: u64| WalFileName::segment(timeline, n, segment_size).to_string();
                let gaps = segments
                    .iter()
                    .zip(segments.iter().skip(1))
                    .filter(|(a, b)| **b > **a + 1)
                    .map(|(a, b)| WalGap {
                        timeline,
                        first_missing: name(a + 1),
                        last_missing: name(b - 1),
                        missing: b - a - 1,
                        start: Lsn((a + 1) * segment_size),
                        end: Lsn(b * segment_size),
                    })
                    .collect();
                WalTimelineReport {
                    timeline,
                    history,
                    first: segments.first().map(|&n| name(n)),
                    last: segments.last().map(|&n| name(n)),
                    segments: segments.len() as u64,
                    partial,
                    gaps,
                }
            })
            .collect();

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

    /// The segment size, from the header line of one archived segment (its plaintext size).
    async fn segment_size(
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
