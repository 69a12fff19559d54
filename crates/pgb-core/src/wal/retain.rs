//! WAL retention: which archived WAL files of a cluster the kept physical backups need, and
//! deleting the rest (run by prune after it deleted the backups' manifests).
//!
//! Kept, exactly:
//!
//! - from the start of the oldest backup the recovery window needs (the *window backup*: with
//!   a `keep_within` policy the newest backup that ended before the window's start, else the
//!   oldest kept backup) to the end of the archive, every WAL file on every timeline: the
//!   window's continuous WAL, and whatever is written meanwhile;
//! - on the newest timeline, when no kept backup is on it yet, everything from its fork (a
//!   server promoted from an older point: a backup of it may be running now);
//! - for older backups kept by other rules (GFS counts, labels, the guards), the segments from
//!   their start to their stop (what makes them consistent), with the `.partial` and `.backup`
//!   files of those segments; `--wal included` backups carry that WAL in their tar;
//! - every timeline history file (a few bytes each; a restore follows them).
//!
//! Everything else that parses as a WAL file in its own timeline's folder is deleted; other
//! objects under `wal/<system id>/` are left alone and reported.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt;
use pgb_wal::{Lsn, TimelineId, WalFileKind};
use serde::Serialize;
use time::OffsetDateTime;

use super::WalArchive;
use super::window::{self, ArchiveIndex, ArchivedCommit, Base, TimelineWindow, wal_error};
use crate::error::Error;
use crate::manifest::BackupId;
use crate::physical::WalMode;

/// How many deletions run side by side.
const DELETES: usize = 16;

/// A run of archived WAL files of one timeline, in name order, with one fate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WalRange {
    /// The timeline (folder).
    pub timeline: TimelineId,
    /// The first file.
    pub first: String,
    /// The last file.
    pub last: String,
    /// Files in the run (segments, `.partial`, `.backup` and `.history` files).
    pub files: u64,
    /// Their stored bytes.
    pub bytes: u64,
    /// Why it is kept (`None` for a run that is deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What prune decided and did about one cluster's archived WAL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WalRetention {
    /// The cluster.
    #[serde(with = "crate::physical::sysid_text")]
    pub system_identifier: u64,
    /// Its backup set.
    pub set: String,
    /// The policy's recovery window (`keep_within`, e.g. `30d`), if any.
    pub window: Option<String>,
    /// Where the policy wants the window to start (the newest backup's start minus the span).
    #[serde(with = "time::serde::rfc3339::option")]
    pub window_wanted_from: Option<OffsetDateTime>,
    /// The oldest backup whose continuous WAL is kept.
    pub window_backup: Option<BackupId>,
    /// From here on every WAL file is kept, on every timeline.
    pub keep_from: Option<Lsn>,
    /// What is kept, and why.
    pub keep: Vec<WalRange>,
    /// What is deleted (or, in a dry run, would be).
    pub delete: Vec<WalRange>,
    /// Files deleted (0 in a dry run).
    pub deleted_files: u64,
    /// Their stored bytes.
    pub deleted_bytes: u64,
    /// Objects under the cluster's folder that are not WAL files: never deleted.
    pub left_alone: Vec<String>,
    /// The recoverable window per timeline before the prune.
    pub before: Vec<TimelineWindow>,
    /// And after it.
    pub after: Vec<TimelineWindow>,
    /// The newest archived commit (the end of the window).
    pub newest_commit: Option<ArchivedCommit>,
}

impl WalRetention {
    /// Files that are (or would be) deleted.
    pub fn to_delete(&self) -> u64 {
        self.delete.iter().map(|r| r.files).sum()
    }
}

/// Why a file is kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Keep {
    History,
    Window(String),
    NewestTimeline(TimelineId),
    Consistency(String),
}

impl Keep {
    fn text(&self) -> String {
        match self {
            Self::History => "timeline history".to_owned(),
            Self::Window(id) => format!("recovery window from backup {id}"),
            Self::NewestTimeline(t) => format!("timeline {t} from its fork (the newest timeline)"),
            Self::Consistency(id) => format!("start to stop of backup {id}"),
        }
    }
}

/// The decision for every file of the index.
pub(crate) struct Decision {
    keep_from: Option<u64>,
    /// Per file of the index: why it is kept, or `None`: delete.
    fate: Vec<Option<Keep>>,
}

/// Decides which files of `index` the `kept` backups need. `window` is the oldest backup
/// whose WAL to the end of the archive is kept (`None`: the oldest kept backup).
pub(crate) fn decide(
    index: &ArchiveIndex,
    kept: &[Base<'_>],
    window: Option<&BackupId>,
) -> Decision {
    let size = index.segment_size;
    let oldest = kept.iter().min_by_key(|b| (b.started_at, b.id));
    let anchor = window
        .and_then(|id| kept.iter().find(|b| b.id == id))
        .or(oldest);
    let Some(anchor) = anchor else {
        // No backup kept: nothing is known to be needed, so nothing is deleted.
        return Decision {
            keep_from: None,
            fate: vec![Some(Keep::History); index.files.len()],
        };
    };
    let in_window: Vec<&Base<'_>> = kept
        .iter()
        .filter(|b| (b.started_at, b.id) >= (anchor.started_at, anchor.id))
        .collect();
    let keep_from = in_window
        .iter()
        .map(|b| b.info.start_lsn.segment(size))
        .min()
        .unwrap_or_else(|| anchor.info.start_lsn.segment(size));
    // A newest timeline without a kept backup on it yet (a server promoted from an older
    // point): everything from its fork, as a backup of it may be running now.
    let newest = index.newest_timeline().filter(|&t| {
        !kept
            .iter()
            .any(|b| b.info.timeline == t || b.info.stop_timeline == t)
    });
    let newest_from = newest.map(|t| match index.histories.get(&t) {
        Some(Ok(h)) => h.entries.last().map_or(0, |e| e.switch_point.segment(size)),
        // Its fork is unknown: all of it stays.
        Some(Err(_)) => 0,
        None if t > 1 => 0,
        None => keep_from,
    });
    let mut consistency: BTreeMap<(TimelineId, u64), &BackupId> = BTreeMap::new();
    for b in kept.iter().filter(|b| b.info.wal == WalMode::Archive) {
        for f in b.info.required_segments() {
            if let Some(n) = f.segment_number(size) {
                consistency.entry((f.timeline(), n)).or_insert(b.id);
            }
        }
    }
    let fate = index
        .files
        .iter()
        .map(|f| {
            let t = f.name.timeline();
            let Some(n) = f.name.segment_number(size) else {
                return Some(Keep::History);
            };
            if n >= keep_from {
                Some(Keep::Window(anchor.id.to_string()))
            } else if Some(t) == newest && newest_from.is_some_and(|from| n >= from) {
                Some(Keep::NewestTimeline(t))
            } else {
                consistency
                    .get(&(t, n))
                    .map(|id| Keep::Consistency(id.to_string()))
            }
        })
        .collect();
    Decision {
        keep_from: Some(keep_from),
        fate,
    }
}

/// Groups the index's files into runs per timeline with one fate each.
fn runs(index: &ArchiveIndex, d: &Decision) -> (Vec<WalRange>, Vec<WalRange>) {
    let size = index.segment_size;
    let mut order: Vec<usize> = (0..index.files.len()).collect();
    order.sort_by_key(|&i| {
        let f = &index.files[i].name;
        let history = f.kind() == WalFileKind::TimelineHistory;
        (
            f.timeline(),
            history,
            f.segment_number(size),
            f.as_str().to_owned(),
        )
    });
    let mut keep: Vec<WalRange> = Vec::new();
    let mut delete: Vec<WalRange> = Vec::new();
    let mut last: Option<(TimelineId, Option<Keep>)> = None;
    for i in order {
        let f = &index.files[i];
        let fate = d.fate[i].clone();
        let key = (f.name.timeline(), fate.clone());
        let list = if fate.is_some() {
            &mut keep
        } else {
            &mut delete
        };
        if last.as_ref() == Some(&key)
            && let Some(r) = list.last_mut()
        {
            r.last = f.name.to_string();
            r.files += 1;
            r.bytes += f.size;
        } else {
            list.push(WalRange {
                timeline: f.name.timeline(),
                first: f.name.to_string(),
                last: f.name.to_string(),
                files: 1,
                bytes: f.size,
                reason: fate.as_ref().map(Keep::text),
            });
        }
        last = Some(key);
    }
    (keep, delete)
}

/// What prune asks for one cluster.
pub(crate) struct RetainRequest<'a> {
    pub(crate) set: &'a str,
    pub(crate) system_identifier: u64,
    /// Every usable physical backup of the cluster before the prune.
    pub(crate) before: Vec<Base<'a>>,
    /// Those kept.
    pub(crate) kept: Vec<Base<'a>>,
    pub(crate) window: Option<String>,
    pub(crate) window_wanted_from: Option<OffsetDateTime>,
    pub(crate) window_backup: Option<&'a BackupId>,
    pub(crate) dry_run: bool,
}

impl WalArchive {
    /// Decides (and unless a dry run, deletes) the cluster's WAL that no kept backup needs.
    ///
    /// # Errors
    /// Storage failures while listing or deleting (a re-run finishes the job).
    pub(crate) async fn retain(&self, r: RetainRequest<'_>) -> Result<WalRetention, Error> {
        let size = r.kept.first().map(|b| b.info.wal_segment_size);
        let index = self
            .archive_index(r.system_identifier, size)
            .await
            .map_err(wal_error)?;
        let d = decide(&index, &r.kept, r.window_backup);
        let (keep, delete) = runs(&index, &d);
        let doomed: Vec<&window::Indexed> = index
            .files
            .iter()
            .zip(&d.fate)
            .filter(|(_, fate)| fate.is_none())
            .map(|(f, _)| f)
            .collect();
        let gone: BTreeSet<String> = doomed.iter().map(|f| f.name.to_string()).collect();
        let mut deleted_files = 0;
        let mut deleted_bytes = 0;
        if !r.dry_run {
            // Owned keys and futures: a future borrowing into a closure is not `Send` for
            // every lifetime, which a spawned prune (the daemon's jobs and report) needs.
            let storage = std::sync::Arc::clone(&self.storage);
            let owned: Vec<(crate::key::ObjectKey, u64)> =
                doomed.iter().map(|f| (f.key.clone(), f.size)).collect();
            let mut deletes = futures_util::stream::iter(owned)
                .map(move |(key, size)| {
                    let storage = std::sync::Arc::clone(&storage);
                    async move { storage.delete(&key).await.map(|()| size) }
                })
                .buffer_unordered(DELETES);
            while let Some(done) = deletes.next().await {
                deleted_bytes += done?;
                deleted_files += 1;
            }
            tracing::info!(
                cluster = r.system_identifier,
                files = deleted_files,
                "pruned archived WAL"
            );
        }
        let mut before = window::timelines(&index, &r.before);
        let mut after = window::timelines(&index.without(&gone), &r.kept);
        let (newest_commit, _) = self
            .newest_commit(&index, &mut std::collections::HashMap::new())
            .await;
        for w in before.iter_mut().chain(after.iter_mut()) {
            window::end_at(w, newest_commit.as_ref());
        }
        let oldest_kept = r.kept.iter().min_by_key(|b| (b.started_at, b.id));
        Ok(WalRetention {
            system_identifier: r.system_identifier,
            set: r.set.to_owned(),
            window: r.window,
            window_wanted_from: r.window_wanted_from,
            window_backup: r.window_backup.or(oldest_kept.map(|b| b.id)).cloned(),
            keep_from: d.keep_from.map(|n| Lsn(n * index.segment_size)),
            keep,
            delete,
            deleted_files,
            deleted_bytes,
            left_alone: index.foreign.clone(),
            before,
            after,
            newest_commit,
        })
    }
}
