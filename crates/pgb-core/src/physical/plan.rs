//! Planning a physical restore: which base backup serves the target, what it needs from the
//! archive, what would be fetched and where it goes, before anything is written.

use std::path::{Path, PathBuf};

use pgb_wal::{Lsn, TimelineId};
use serde::Serialize;
use time::OffsetDateTime;

use super::{RecoverySettings, RecoveryTarget, TargetAction, TimelineTarget, WalMode, sysid_text};
use crate::dump::{DumpError, DumpErrorKind};
use crate::error::{Error, Mismatch};
use crate::manifest::{BackupId, Manifest};

/// What a physical restore is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PhysicalRestoreRequest {
    /// `latest` or a backup id.
    pub selector: String,
    /// Only backups of this cluster (needed when the repository holds several).
    pub system_identifier: Option<u64>,
    /// What the restored server recovers to, and how it gets its WAL.
    pub settings: RecoverySettings,
    /// The data directory to restore into.
    pub dir: PathBuf,
    /// Replace a non-empty directory's content.
    pub clean: bool,
    /// Read the stored object once and check its sha256 before writing anything.
    pub verify_first: bool,
    /// Paths the data directory must not hold (it would be emptied), with what they are
    /// (`the repository`).
    pub protected: Vec<(PathBuf, String)>,
}

impl PhysicalRestoreRequest {
    /// A restore of `selector` into `dir` with `settings`: verify first, no clean.
    pub fn new(
        selector: impl Into<String>,
        dir: impl Into<PathBuf>,
        settings: RecoverySettings,
    ) -> Self {
        Self {
            selector: selector.into(),
            system_identifier: None,
            settings,
            dir: dir.into(),
            clean: false,
            verify_first: true,
            protected: Vec::new(),
        }
    }

    /// Only backups of this cluster.
    pub fn with_system_identifier(mut self, id: Option<u64>) -> Self {
        self.system_identifier = id;
        self
    }

    /// Replaces a non-empty directory's content.
    pub fn with_clean(mut self, clean: bool) -> Self {
        self.clean = clean;
        self
    }

    /// Sets `verify_first`.
    pub fn with_verify_first(mut self, yes: bool) -> Self {
        self.verify_first = yes;
        self
    }

    /// A path the data directory must not hold.
    pub fn with_protected(mut self, path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        self.protected.push((path.into(), what.into()));
        self
    }
}

/// The data directory before the restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TargetDir {
    /// It does not exist; the restore creates it (mode 0700).
    Missing,
    /// It exists and is empty.
    Empty,
    /// It holds `entries` entries, which the restore removes (`clean`).
    Replaced {
        /// Entries directly inside it.
        entries: u64,
    },
}

/// Which base backup a restore uses and what it needs: printed by `restore --preview`
/// (nothing written), then carried out by
/// [`Repository::restore_physical_until`](crate::Repository::restore_physical_until).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PhysicalRestorePlan {
    /// The base backup.
    pub backup: BackupId,
    /// Its cluster.
    #[serde(with = "sysid_text")]
    pub system_identifier: u64,
    /// Its server's version (restore with this major's PostgreSQL).
    pub server_version: String,
    /// The timeline it started on.
    pub timeline: TimelineId,
    /// Where replay starts.
    pub start_lsn: Lsn,
    /// Where the restored cluster is consistent (no target before it is reachable).
    pub stop_lsn: Lsn,
    /// When the backup ended (a time target must be later).
    #[serde(with = "time::serde::rfc3339")]
    pub backup_stop_time: OffsetDateTime,
    /// Where its WAL lives.
    pub wal: WalMode,
    /// The first WAL segment replay needs.
    pub wal_from: String,
    /// The segment replay must reach at least (the backup's end); beyond it, what the target
    /// needs, up to the end of the archive.
    pub wal_consistent_at: String,
    /// For an incremental backup: the backups combined before it, oldest (the full one)
    /// first; empty for a full backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<BackupId>,
    /// Their manifests, in the same order.
    #[serde(skip)]
    pub chain_manifests: Vec<Manifest>,
    /// Bytes fetched from the repository (the stored base backup, and its chain's).
    pub fetch_bytes: u64,
    /// Bytes written into the data directory.
    pub plain_bytes: u64,
    /// Where recovery stops.
    pub target: RecoveryTarget,
    /// Stop just before the target.
    pub exclusive: bool,
    /// `recovery_target_timeline`.
    pub timeline_target: TimelineTarget,
    /// `recovery_target_action`.
    pub action: TargetAction,
    /// The data directory (absolute).
    pub data_dir: PathBuf,
    /// What is there now.
    pub dir: TargetDir,
    /// The `restore_command` written, if any.
    pub restore_command: Option<String>,
    /// The backup's manifest.
    #[serde(skip)]
    pub manifest: Manifest,
}

/// What a physical restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PhysicalRestoreReport {
    /// The plan carried out.
    pub plan: PhysicalRestorePlan,
    /// Entries (files, directories) written.
    pub entries: u64,
    /// File bytes written.
    pub bytes: u64,
    /// Files checked against the backup's `backup_manifest`.
    pub files_checked: u64,
    /// What the network did while the backup was read.
    pub storage: crate::storage::StorageStats,
}

/// A time or LSN target a backup `m` ended after: it cannot serve it.
fn ends_after(m: &Manifest, target: &RecoveryTarget) -> bool {
    let Some(p) = &m.physical else { return true };
    match target {
        RecoveryTarget::Time(t) => p.stop_time >= *t,
        RecoveryTarget::Lsn(l) => p.stop_lsn > *l,
        _ => false,
    }
}

/// Where backup `m` ended, as the target is measured.
fn end_of(m: &Manifest, target: &RecoveryTarget) -> String {
    match (&m.physical, target) {
        (Some(p), RecoveryTarget::Lsn(_)) => format!("LSN {}", p.stop_lsn),
        (Some(p), _) => crate::physical::recovery::conf_time(p.stop_time),
        (None, _) => String::new(),
    }
}

/// Chooses the base backup for `target` among `backups` (oldest first): the newest physical
/// backup of the cluster that ended before a time or LSN target, else the newest; or the one
/// `id` names, which must end before the target.
pub(crate) fn choose<'a>(
    backups: &'a [Manifest],
    id: Option<&BackupId>,
    system_identifier: Option<u64>,
    target: &RecoveryTarget,
) -> Result<&'a Manifest, Error> {
    let target_text = target.to_string();
    if let Some(id) = id {
        let m = backups
            .iter()
            .find(|m| &m.id == id)
            .ok_or_else(|| Error::BackupNotFound(id.to_string()))?;
        let Some(p) = &m.physical else {
            return Err(Mismatch::NotPhysical { id: id.clone() }.into());
        };
        if let Some(want) = system_identifier
            && p.system_identifier != want
        {
            return Err(Mismatch::OtherCluster {
                id: id.clone(),
                system_identifier: p.system_identifier.to_string(),
                wanted: want.to_string(),
            }
            .into());
        }
        if ends_after(m, target) {
            return Err(Error::TargetBeforeBackup {
                target: target_text,
                backup: m.id.clone(),
                ended: end_of(m, target),
                first: false,
            });
        }
        return Ok(m);
    }
    let physical: Vec<&Manifest> = backups
        .iter()
        .filter(|m| {
            m.physical
                .as_ref()
                .is_some_and(|p| system_identifier.is_none_or(|s| p.system_identifier == s))
        })
        .collect();
    let Some(first) = physical.first() else {
        return Err(Error::NoPhysicalBackup {
            system_identifier: system_identifier.map(|s| s.to_string()),
        });
    };
    let mut clusters: Vec<String> = physical
        .iter()
        .filter_map(|m| m.physical.as_ref().map(|p| p.system_identifier.to_string()))
        .collect();
    clusters.sort();
    clusters.dedup();
    if clusters.len() > 1 {
        return Err(Mismatch::SeveralClusters { clusters }.into());
    }
    physical
        .iter()
        .rev()
        .find(|m| !ends_after(m, target))
        .copied()
        .ok_or_else(|| {
            // The first to end: backups need not end in the order they started.
            let earliest = physical
                .iter()
                .min_by_key(|m| m.physical.as_ref().map(|p| (p.stop_time, p.stop_lsn)))
                .copied()
                .unwrap_or(first);
            Error::TargetBeforeBackup {
                target: target_text,
                backup: earliest.id.clone(),
                ended: end_of(earliest, target),
                first: true,
            }
        })
}

/// Resolves `dir` (absolute, symlinks resolved; a missing one under its nearest existing
/// ancestor) and checks that restoring into it is safe; touches nothing.
pub(crate) fn check_dir(
    dir: &Path,
    clean: bool,
    protected: &[(PathBuf, String)],
) -> Result<(PathBuf, TargetDir), DumpError> {
    let refused = |what: String| DumpError::new(DumpErrorKind::Refused, what);
    let io = |e: std::io::Error| {
        DumpError::new(
            DumpErrorKind::Io,
            format!("data directory {}: {e}", dir.display()),
        )
    };
    let abs = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir().map_err(io)?.join(dir)
    };
    // The nearest existing ancestor, resolved, and the rest appended.
    let mut base = abs.as_path();
    let mut rest = Vec::new();
    let resolved = loop {
        match std::fs::canonicalize(base) {
            Ok(p) => break p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (Some(parent), Some(name)) = (base.parent(), base.file_name()) else {
                    return Err(io(e));
                };
                rest.push(name.to_owned());
                base = parent;
            }
            Err(e) => return Err(io(e)),
        }
    };
    let dest = rest.iter().rev().fold(resolved, |p, n| p.join(n));
    let shown = dest.display();
    if dest.parent().is_none() {
        return Err(refused(format!(
            "data directory {shown} is the root directory"
        )));
    }
    for (path, what) in protected {
        let Ok(p) = std::fs::canonicalize(path) else {
            continue;
        };
        if p.starts_with(&dest) {
            return Err(refused(format!(
                "data directory {shown} holds {what} ({}), which the restore would overwrite",
                p.display()
            )));
        }
    }
    match std::fs::symlink_metadata(&dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((dest, TargetDir::Missing)),
        Err(e) => Err(io(e)),
        Ok(m) if !m.is_dir() => Err(refused(format!(
            "data directory {shown} is not a directory"
        ))),
        Ok(_) => {
            let entries = std::fs::read_dir(&dest).map_err(io)?.count() as u64;
            if dest.join("postmaster.pid").exists() {
                return Err(refused(format!(
                    "data directory {shown} holds postmaster.pid: a server may be running on it (stop it; remove the file if it is stale)"
                )));
            }
            match entries {
                0 => Ok((dest, TargetDir::Empty)),
                n if clean => Ok((dest, TargetDir::Replaced { entries: n })),
                n => Err(DumpError::new(
                    DumpErrorKind::DirectoryNotEmpty,
                    format!("data directory {shown} is not empty ({n} entries)"),
                )),
            }
        }
    }
}
