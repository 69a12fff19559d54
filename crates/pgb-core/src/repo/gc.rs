//! Removal: deleting a backup (manifest first) and collecting leftovers.
//!
//! `gc` deletes only what it can prove is pgb's own and no longer needed (a repository is
//! untrusted input: others may write there):
//!
//! - a folder under `backups/` whose name is a backup id, that holds only names pgb writes
//!   ([`layout::is_backup_object`]), has no manifest, no live lease, and whose every object is
//!   older than the grace period; the manifest and the lease are read again right before its
//!   objects are deleted, so a backup that committed or started meanwhile is never touched
//!   (a backup writes its lease before its data, and its manifest before it drops the lease);
//! - a lease `locks/<id>.json` that has expired (with the clock-skew tolerance) and was last
//!   written before the grace period. Job locks (`locks/jobs/`) are the job lock's own.
//!
//! Everything else is reported as left alone, with the reason. On local disk, a `backups/` or
//! `locks/` that is a symbolic link is refused by the storage, never followed.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use super::lease::{LeaseState, lease_state};
use super::{Leftover, Repository};
use crate::error::Error;
use crate::key::ObjectKey;
use crate::layout;
use crate::manifest::BackupId;
use crate::storage::{ObjectMeta, Storage, StorageExt};

/// Something `gc` found and did not delete, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct GcSkipped {
    /// The folder or key.
    pub path: String,
    /// Why it was left alone.
    pub reason: String,
}

/// What [`Repository::gc`] deleted (or, in a dry run, would delete) and left alone.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct GcReport {
    /// Nothing was deleted.
    pub dry_run: bool,
    /// Leftover folders of backups that never committed.
    pub leftovers: Vec<Leftover>,
    /// Expired leases of backups that ended without removing them.
    pub expired_leases: Vec<ObjectKey>,
    /// What was found and left alone: not pgb's, too recent, running, committed meanwhile.
    pub skipped: Vec<GcSkipped>,
}

impl GcReport {
    /// How many objects were (or would be) deleted.
    #[must_use]
    pub fn objects(&self) -> usize {
        self.leftovers.iter().map(|l| l.keys.len()).sum::<usize>() + self.expired_leases.len()
    }
}

impl Repository {
    /// Deletes a backup: the manifest first (so it stops being a backup at once), then the
    /// rest of its folder.
    ///
    /// # Errors
    /// Storage failures; a re-run finishes an interrupted delete.
    pub async fn delete_backup(&self, id: &BackupId) -> Result<(), Error> {
        self.storage.delete(&layout::manifest_key(id)).await?;
        for meta in self.storage.list(Some(&layout::backup_dir(id))).await? {
            self.storage.delete(&meta.key).await?;
        }
        Ok(())
    }

    /// Removes leftovers of uncommitted backups and expired leases older than
    /// `now - older_than`, under the rules of this module. With `dry_run`, reports the same
    /// without deleting.
    ///
    /// # Errors
    /// Storage failures (a symlinked `backups/` or `locks/` on local disk is one).
    pub async fn gc(
        &self,
        now: OffsetDateTime,
        older_than: time::Duration,
        dry_run: bool,
    ) -> Result<GcReport, Error> {
        let cutoff = now - older_than;
        let mut report = GcReport {
            dry_run,
            ..GcReport::default()
        };
        let prefix = layout::backups_prefix();
        let mut dirs: BTreeMap<String, Vec<ObjectMeta>> = BTreeMap::new();
        for meta in self.storage.list(Some(&prefix)).await? {
            let Some(rest) = meta.key.strip_prefix(&prefix) else {
                continue;
            };
            let dir = rest.split_once('/').map_or(rest, |(d, _)| d);
            dirs.entry(dir.to_owned()).or_default().push(meta);
        }
        for (dir, objects) in dirs {
            let skip = |reason: &str| GcSkipped {
                path: format!("{prefix}/{dir}"),
                reason: reason.to_owned(),
            };
            let Ok(id) = dir.parse::<BackupId>() else {
                report.skipped.push(skip("not a backup id: not pgb's"));
                continue;
            };
            let folder = layout::backup_dir(&id);
            let manifest = layout::manifest_key(&id);
            if objects.iter().any(|o| o.key == manifest) {
                continue;
            }
            let foreign = objects.iter().any(|o| {
                o.key
                    .strip_prefix(&folder)
                    .is_none_or(|rel| !layout::is_backup_object(rel))
            });
            if foreign {
                report
                    .skipped
                    .push(skip("holds objects pgb does not write: not pgb's"));
                continue;
            }
            if objects
                .iter()
                .any(|o| o.last_modified.is_none_or(|t| t > cutoff))
            {
                report
                    .skipped
                    .push(skip("written within the grace period (--older-than)"));
                continue;
            }
            // Read after the listing: a backup writes its lease before any data, and its
            // manifest before it drops the lease, so one of the two is seen if it ran.
            if lease_state(self.storage.as_ref(), id.as_str(), now).await? == LeaseState::Live {
                tracing::info!(backup = %id, "in progress (live lease); not collected");
                report
                    .skipped
                    .push(skip("a backup is running (live lease)"));
                continue;
            }
            if self.storage.exists(&manifest).await? {
                report.skipped.push(skip("committed while gc ran"));
                continue;
            }
            if !dry_run {
                for o in &objects {
                    self.storage.delete(&o.key).await?;
                }
            }
            report.leftovers.push(Leftover {
                last_modified: objects.iter().filter_map(|m| m.last_modified).max(),
                keys: objects.into_iter().map(|m| m.key).collect(),
                id: dir,
            });
        }
        self.collect_leases(now, cutoff, dry_run, &mut report)
            .await?;
        Ok(report)
    }

    /// Expired leases (`locks/<id>.json`, never job locks) last written before `cutoff`.
    async fn collect_leases(
        &self,
        now: OffsetDateTime,
        cutoff: OffsetDateTime,
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<(), Error> {
        let prefix = layout::locks_prefix();
        for meta in self.storage.list(Some(&prefix)).await? {
            let Some(rest) = meta.key.strip_prefix(&prefix) else {
                continue;
            };
            if rest.starts_with(&format!("{}/", layout::JOB_LOCKS)) {
                continue;
            }
            let skip = |reason: &str| GcSkipped {
                path: meta.key.to_string(),
                reason: reason.to_owned(),
            };
            let Some(id) = rest
                .strip_suffix(".json")
                .filter(|id| id.parse::<BackupId>().is_ok())
            else {
                report.skipped.push(skip("not a lease name: not pgb's"));
                continue;
            };
            if meta.last_modified.is_none_or(|t| t > cutoff) {
                report
                    .skipped
                    .push(skip("written within the grace period (--older-than)"));
                continue;
            }
            match lease_state(self.storage.as_ref(), id, now).await? {
                LeaseState::Expired => {}
                LeaseState::Live | LeaseState::Absent => continue,
                LeaseState::Unreadable => {
                    report
                        .skipped
                        .push(skip("not a lease pgb wrote (unreadable): not pgb's"));
                    continue;
                }
            }
            if !dry_run {
                self.storage.delete(&meta.key).await?;
            }
            report.expired_leases.push(meta.key);
        }
        Ok(())
    }
}
