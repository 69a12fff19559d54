//! Listing a repository and reading manifests.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::Repository;
use super::lease::live_leases;
use crate::error::Error;
use crate::key::ObjectKey;
use crate::layout;
use crate::manifest::{BackupId, Manifest};
use crate::storage::{Storage, StorageErrorKind, StorageExt};

/// A backup whose manifest cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct InvalidBackup {
    /// The backup's folder name.
    pub id: String,
    /// Why it is unusable.
    pub problem: String,
}

/// Objects of a backup that never committed (no manifest): not a backup, garbage for `gc`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Leftover {
    /// The folder name (an id).
    pub id: String,
    /// Its objects.
    pub keys: Vec<ObjectKey>,
    /// The newest modification time among them, where known.
    pub last_modified: Option<OffsetDateTime>,
}

/// The content of a repository.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Listing {
    /// Complete backups, oldest first (by start time, then id).
    pub backups: Vec<Manifest>,
    /// Folders with a corrupt or unknown-version manifest.
    pub invalid: Vec<InvalidBackup>,
    /// Folders without a manifest.
    pub leftovers: Vec<Leftover>,
    /// Backups running now (a live lease and no manifest yet): never counted or touched.
    pub in_progress: Vec<String>,
}

impl Listing {
    /// The newest complete backup, optionally of one database only.
    pub fn latest(&self, database: Option<&str>) -> Option<&Manifest> {
        self.backups
            .iter()
            .rev()
            .find(|m| database.is_none_or(|d| m.database == d))
    }
}

impl Repository {
    /// Lists complete backups, invalid manifests and leftovers of uncommitted backups.
    ///
    /// # Errors
    /// Storage failures while listing or reading manifests.
    pub async fn list(&self) -> Result<Listing, Error> {
        let prefix = layout::backups_prefix();
        let mut dirs: BTreeMap<String, Vec<crate::storage::ObjectMeta>> = BTreeMap::new();
        for meta in self.storage.list(Some(&prefix)).await? {
            let Some(rest) = meta.key.strip_prefix(&prefix) else {
                continue;
            };
            let Some((dir, _)) = rest.split_once('/') else {
                continue;
            };
            dirs.entry(dir.to_owned()).or_default().push(meta);
        }
        let mut listing = Listing::default();
        for (dir, objects) in dirs {
            let manifest = objects
                .iter()
                .find(|m| m.key.file_name() == layout::MANIFEST);
            match manifest {
                None => listing.leftovers.push(Leftover {
                    last_modified: objects.iter().filter_map(|m| m.last_modified).max(),
                    keys: objects.into_iter().map(|m| m.key).collect(),
                    id: dir,
                }),
                Some(meta) => match self.read_manifest_at(&dir, &meta.key).await {
                    Ok(m) => listing.backups.push(m),
                    // Deleted between listing and reading (a concurrent prune): not a backup.
                    Err(Error::BackupNotFound(_)) => {}
                    Err(Error::Manifest { problem, .. }) => {
                        listing.invalid.push(InvalidBackup { id: dir, problem });
                    }
                    Err(e) => return Err(e),
                },
            }
        }
        listing
            .backups
            .sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
        let live = live_leases(self.storage.as_ref(), OffsetDateTime::now_utc(), false).await?;
        listing.in_progress = live
            .into_iter()
            .filter(|id| !listing.backups.iter().any(|m| m.id.as_str() == id))
            .collect();
        Ok(listing)
    }

    pub(super) async fn read_manifest_at(
        &self,
        dir: &str,
        key: &ObjectKey,
    ) -> Result<Manifest, Error> {
        let bad = |problem: String| Error::Manifest {
            id: dir.to_owned(),
            problem,
        };
        let bytes = match self.storage.get_bytes(key).await {
            Ok(b) => b,
            Err(e) if e.kind() == StorageErrorKind::NotFound => {
                return Err(Error::BackupNotFound(dir.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        let m = Manifest::from_json(&bytes).map_err(|e| bad(e.to_string()))?;
        if m.id.as_str() != dir {
            return Err(bad(format!(
                "manifest names backup {} but lives in {dir}",
                m.id
            )));
        }
        let folder = layout::backup_dir(&m.id);
        if m.artifacts.iter().any(|a| {
            a.key().map_or(true, |k| {
                !k.starts_with(&folder) || k == layout::manifest_key(&m.id)
            })
        }) {
            return Err(bad("manifest points outside its backup folder".to_owned()));
        }
        Ok(m)
    }

    /// Reads one backup's manifest.
    ///
    /// # Errors
    /// `BackupNotFound`, `Manifest` (corrupt or unknown version), storage failures.
    pub async fn manifest(&self, id: &BackupId) -> Result<Manifest, Error> {
        self.read_manifest_at(id.as_str(), &layout::manifest_key(id))
            .await
    }

    /// Resolves `latest` (optionally for one database) or an id to a manifest.
    ///
    /// # Errors
    /// `BackupNotFound`, `NoBackups`, `Manifest`.
    pub async fn resolve(&self, selector: &str, database: Option<&str>) -> Result<Manifest, Error> {
        if selector == "latest" {
            let listing = self.list().await?;
            return listing
                .latest(database)
                .cloned()
                .ok_or_else(|| Error::NoBackups {
                    database: database.map(str::to_owned),
                });
        }
        let id: BackupId = selector
            .parse()
            .map_err(|_| Error::BackupNotFound(selector.to_owned()))?;
        self.manifest(&id).await
    }
}
