//! Removal: deleting a backup (manifest first) and collecting leftovers.

use time::OffsetDateTime;

use super::lease::live_leases;
use super::{Leftover, Repository};
use crate::error::Error;
use crate::layout;
use crate::manifest::BackupId;
use crate::storage::Storage;

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

    /// Removes leftovers of uncommitted backups whose newest object is older than
    /// `now - older_than` (objects without a time are removed too). Returns what was removed.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn gc(
        &self,
        now: OffsetDateTime,
        older_than: time::Duration,
        dry_run: bool,
    ) -> Result<Vec<Leftover>, Error> {
        let listing = self.list().await?;
        let live = live_leases(self.storage.as_ref(), now, !dry_run).await?;
        let mut removed = Vec::new();
        for leftover in listing.leftovers {
            if leftover.last_modified.is_some_and(|t| t > now - older_than) {
                continue;
            }
            if live.contains(&leftover.id) {
                tracing::info!(backup = %leftover.id, "in progress (live lease); not collected");
                continue;
            }
            if !dry_run {
                for key in &leftover.keys {
                    self.storage.delete(key).await?;
                }
            }
            removed.push(leftover);
        }
        Ok(removed)
    }
}
