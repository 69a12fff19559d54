//! Incremental base backups (PostgreSQL 17+): a backup records its parent and the chain a
//! restore combines; the parent is the newest usable base backup of the same cluster,
//! timeline and major version whose own chain is whole; a chain is resolved against the
//! listing (every ancestor usable), and a restore hands the extracted backups to a
//! [`BackupCombiner`] (`pg_combinebackup`).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::tar::{TarEvent, TarReader};
use crate::dump::{DumpError, DumpErrorKind, RestoreReport, RestoreSink};
use crate::manifest::{BackupId, Manifest};
use pgb_wal::{Lsn, TimelineId};

/// The manifest's record of an incremental base backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Incremental {
    /// The backup it is incremental to (whose `backup_manifest` `pg_basebackup
    /// --incremental` was given).
    pub parent: BackupId,
    /// Every backup a restore combines before this one, oldest first: the full backup, then
    /// each incremental up to `parent` (the last). Retention keeps them all while this one
    /// is kept.
    pub chain: Vec<BackupId>,
    /// Where the parent started (the WAL summaries the server used reach back to it).
    pub parent_start_lsn: Lsn,
    /// sha256 (hex) of the parent's `backup_manifest` that was uploaded.
    pub parent_backup_manifest_sha256: String,
}

/// The parent of an incremental backup, as the dumper needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IncrementalParent {
    /// The parent backup.
    pub id: BackupId,
    /// The timeline it started on.
    pub timeline: TimelineId,
    /// Where it started: the server's WAL summaries must cover everything from here.
    pub start_lsn: Lsn,
    /// Its `backup_manifest`, as PostgreSQL wrote it (for `pg_basebackup --incremental`).
    pub backup_manifest: Bytes,
}

impl IncrementalParent {
    /// The parent `id`, started at `start_lsn` on `timeline`, with its `backup_manifest`.
    pub fn new(id: BackupId, timeline: TimelineId, start_lsn: Lsn, backup_manifest: Bytes) -> Self {
        Self {
            id,
            timeline,
            start_lsn,
            backup_manifest,
        }
    }
}

/// Reconstructs a full data directory from a full backup and incrementals on top of it
/// (implemented by `pgb_postgres::PgCombineBackup` with `pg_combinebackup`).
#[async_trait]
pub trait BackupCombiner: std::fmt::Debug + Send + Sync {
    /// Combines `inputs` (extracted backups, the full one first, then each incremental in
    /// order) into `output` (missing or empty), with the tools of PostgreSQL `major` (the
    /// backups' server major version).
    ///
    /// # Errors
    /// `ToolNotFound`/`VersionMismatch` (no `pg_combinebackup` of that major), `Failed`.
    async fn combine(&self, inputs: &[PathBuf], output: &Path, major: u32)
    -> Result<(), DumpError>;
}

/// Why an ancestor of an incremental backup cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BrokenChain {
    /// The missing or unusable ancestor.
    pub(crate) ancestor: BackupId,
    /// `missing from the repository` or `unusable: <reason>`.
    pub(crate) why: String,
}

/// The backups a restore of `m` combines, oldest first, ending with `m` itself (just `m` for
/// a full backup): each ancestor must be a usable physical backup of the same cluster in
/// `backups`; `invalid` gives the reason of an unusable one.
pub(crate) fn chain_of<'a>(
    m: &'a Manifest,
    backups: &'a [Manifest],
    invalid: &[crate::repo::InvalidBackup],
) -> Result<Vec<&'a Manifest>, BrokenChain> {
    let Some(inc) = m.physical.as_ref().and_then(|p| p.incremental.as_ref()) else {
        return Ok(vec![m]);
    };
    let sysid = m.physical.as_ref().map(|p| p.system_identifier);
    let mut out = Vec::with_capacity(inc.chain.len() + 1);
    for id in &inc.chain {
        let found = backups
            .iter()
            .find(|b| &b.id == id && b.physical.as_ref().map(|p| p.system_identifier) == sysid);
        match found {
            Some(b) => out.push(b),
            None => {
                let why = invalid.iter().find(|i| i.id == id.as_str()).map_or_else(
                    || "missing from the repository".to_owned(),
                    |i| format!("unusable ({})", i.problem),
                );
                return Err(BrokenChain {
                    ancestor: id.clone(),
                    why,
                });
            }
        }
    }
    out.push(m);
    Ok(out)
}

/// The parent for an incremental backup of cluster `sysid` on `timeline` with a server of
/// `major`: the newest usable physical backup of that cluster that ended on that timeline,
/// taken by the same major version, whose own chain is whole. `None`: take a full backup.
pub(crate) fn choose_parent<'a>(
    backups: &'a [Manifest],
    invalid: &[crate::repo::InvalidBackup],
    sysid: u64,
    timeline: TimelineId,
    major: u32,
) -> Option<&'a Manifest> {
    backups
        .iter()
        .filter(|m| {
            m.physical.as_ref().is_some_and(|p| {
                p.system_identifier == sysid
                    && p.stop_timeline == timeline
                    && p.timeline == timeline
                    && p.server_major == major
            })
        })
        .filter(|m| chain_of(m, backups, invalid).is_ok())
        .max_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)))
}

/// A [`RestoreSink`] that reads a base backup's tar and keeps only its `backup_manifest`.
#[derive(Debug, Default)]
pub(crate) struct ManifestGrab {
    reader: TarReader,
    keeping: bool,
    buf: Vec<u8>,
    pub(crate) manifest: Option<Vec<u8>>,
}

impl ManifestGrab {
    fn feed(&mut self, chunk: &[u8]) -> Result<(), DumpError> {
        let Self {
            reader,
            keeping,
            buf,
            manifest,
        } = self;
        reader
            .feed(chunk, &mut |e| {
                match e {
                    TarEvent::Entry(h) => {
                        *keeping = h.path == b"backup_manifest";
                        if *keeping && h.size > super::capture::MAX_BACKUP_MANIFEST as u64 {
                            return Err(super::tar::TarError(format!(
                                "backup_manifest is {} bytes, over pgb's limit",
                                h.size
                            )));
                        }
                        buf.clear();
                    }
                    TarEvent::Data(d) => {
                        if *keeping {
                            buf.extend_from_slice(d);
                        }
                    }
                    TarEvent::EntryEnd => {
                        if std::mem::take(keeping) {
                            *manifest = Some(std::mem::take(buf));
                        }
                    }
                }
                Ok(())
            })
            .map_err(|e| super::check::bad_archive(format!("base backup: {e}")))
    }
}

#[async_trait]
impl RestoreSink for ManifestGrab {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError> {
        self.feed(&chunk)
    }

    async fn finish(mut self: Box<Self>) -> Result<RestoreReport, DumpError> {
        self.reader
            .finish()
            .map_err(|e| super::check::bad_archive(format!("base backup: {e}")))?;
        Ok(RestoreReport::default())
    }

    async fn abort(self: Box<Self>) {}
}

/// A scratch directory holding the extracted backups of a chain, next to the data
/// directory; removed when dropped.
#[derive(Debug)]
pub(crate) struct Scratch {
    pub(crate) path: PathBuf,
}

impl Scratch {
    /// Creates `.pgb-combine-<name>-<random>` (0700) beside `data_dir`.
    pub(crate) fn beside(data_dir: &Path) -> Result<Self, DumpError> {
        use std::os::unix::fs::DirBuilderExt as _;
        let parent = data_dir.parent().unwrap_or(data_dir);
        let name = data_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut rnd = [0u8; 4];
        getrandom::fill(&mut rnd)
            .map_err(|e| DumpError::new(DumpErrorKind::Io, format!("random scratch name: {e}")))?;
        let path = parent.join(format!(".pgb-combine-{name}-{}", crate::codec::hex(&rnd)));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| {
                DumpError::new(
                    DumpErrorKind::Io,
                    format!(
                        "creating the scratch directory {} for pg_combinebackup: {e}",
                        path.display()
                    ),
                )
            })?;
        Ok(Self { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = super::empty_dir(&self.path).and_then(|()| std::fs::remove_dir(&self.path))
        {
            tracing::warn!(dir = %self.path.display(), error = %e, "could not remove the scratch directory");
        }
    }
}
