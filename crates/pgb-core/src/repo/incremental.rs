//! Incremental base backups in the repository: finding the parent and reading its
//! `backup_manifest` back from its stored tar when a backup is taken, and restoring a chain
//! (every backup fetched, verified and extracted into a scratch directory beside the data
//! directory, then combined into it with a [`BackupCombiner`]).

use std::path::PathBuf;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::Repository;
use crate::error::{Error, IntegrityProblem};
use crate::events::Progress;
use crate::manifest::{ArtifactKind, Manifest};
use crate::physical::incremental::{BrokenChain, ManifestGrab, Scratch, chain_of, choose_parent};
use crate::physical::{
    BackupCombiner, Extractor, Incremental, IncrementalParent, PhysicalRestorePlan,
    PhysicalRestoreReport, PhysicalRestoreRequest, PhysicalSource, PreparedPhysical,
};

/// The error of a backup whose chain is broken.
pub(crate) fn broken(m: &Manifest, b: BrokenChain) -> Error {
    Error::Integrity {
        id: m.id.clone(),
        problem: IntegrityProblem::BrokenChain {
            ancestor: b.ancestor.to_string(),
            why: b.why,
        },
    }
}

/// The backups a restore of `m` combines before it (oldest first), each usable.
pub(crate) async fn ancestors(repo: &Repository, m: &Manifest) -> Result<Vec<Manifest>, Error> {
    if m.physical
        .as_ref()
        .and_then(|p| p.incremental.as_ref())
        .is_none()
    {
        return Ok(Vec::new());
    }
    let listing = repo.list().await?;
    let chain = chain_of(m, &listing.backups, &listing.invalid).map_err(|b| broken(m, b))?;
    Ok(chain[..chain.len() - 1]
        .iter()
        .map(|a| (*a).clone())
        .collect())
}

/// Removes what a failed chain restore put into the data directory.
struct Target {
    dir: PathBuf,
    created: bool,
    keep: bool,
}

impl Drop for Target {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let res = if self.created {
            crate::physical::empty_dir(&self.dir).and_then(|()| std::fs::remove_dir(&self.dir))
        } else {
            crate::physical::empty_dir(&self.dir)
        };
        if let Err(e) = res {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove what the failed restore wrote");
        }
    }
}

impl Repository {
    /// Turns a prepared base backup into an incremental one: the parent is the newest usable
    /// base backup of the cluster and timeline (same major version, chain whole), its
    /// `backup_manifest` read back from its stored tar and checked against its manifest; the
    /// dumper then checks the server (PostgreSQL 17+, `summarize_wal`, summaries since the
    /// parent's start). No parent: the dumper's checks, then a full backup.
    pub(super) async fn prepare_incremental(
        &self,
        prepared: Box<dyn PreparedPhysical>,
    ) -> Result<(Box<dyn PreparedPhysical>, Option<Incremental>), Error> {
        let source: PhysicalSource = prepared.physical().clone();
        let listing = self.list().await?;
        let Some(parent) = choose_parent(
            &listing.backups,
            &listing.invalid,
            source.system_identifier,
            source.timeline,
            source.server_major,
        ) else {
            tracing::info!(
                system_identifier = source.system_identifier,
                "no base backup to build on: this one is full, the first of a chain"
            );
            return Ok((prepared.incremental(None).await?, None));
        };
        let p = parent.physical.as_ref().expect("parents are physical");
        let chain = chain_of(parent, &listing.backups, &listing.invalid)
            .map_err(|b| broken(parent, b))?
            .iter()
            .map(|m| m.id.clone())
            .collect();
        let manifest = self.backup_manifest_of(parent).await?;
        let sha = crate::codec::hex(&Sha256::digest(&manifest));
        tracing::info!(parent = %parent.id, bytes = manifest.len(), "incremental on top of the parent");
        let prepared = prepared
            .incremental(Some(IncrementalParent::new(
                parent.id.clone(),
                p.timeline,
                p.start_lsn,
                manifest,
            )))
            .await?;
        Ok((
            prepared,
            Some(Incremental {
                parent: parent.id.clone(),
                chain,
                parent_start_lsn: p.start_lsn,
                parent_backup_manifest_sha256: sha,
            }),
        ))
    }

    /// A physical backup's `backup_manifest`, read back from its stored tar (verified as a
    /// restore reads it) and checked against the sha256 its manifest records.
    async fn backup_manifest_of(&self, m: &Manifest) -> Result<Bytes, Error> {
        let p = m.physical.as_ref().expect("physical");
        let a = base_tar(m)?;
        let key = self.check_present(m, a).await?;
        self.check_keys(m, &key).await?;
        let mut grab = ManifestGrab::default();
        self.stream_verified(m, a, &key, &mut grab, &crate::events::NoProgress)
            .await?;
        let bad = |problem: String| Error::Manifest {
            id: m.id.to_string(),
            problem,
        };
        let got = grab
            .manifest
            .take()
            .ok_or_else(|| bad("its base backup holds no backup_manifest".to_owned()))?;
        let sha = crate::codec::hex(&Sha256::digest(&got));
        if sha != p.backup_manifest_sha256 {
            return Err(bad(format!(
                "its backup_manifest has sha256 {sha}, the manifest records {}",
                p.backup_manifest_sha256
            )));
        }
        Ok(Bytes::from(got))
    }

    /// [`Repository::restore_physical_until`] for any physical backup: an incremental one is
    /// restored by fetching and verifying every backup of its chain, extracting each into a
    /// scratch directory beside the data directory (checked against its `backup_manifest`),
    /// and combining them into the data directory with `combiner`; then the recovery
    /// settings are written. The scratch directory is removed afterwards; on any failure
    /// the data directory is left as before (removed, if the restore created it).
    ///
    /// # Errors
    /// As [`Repository::restore_physical_until`]; `Integrity` for a broken chain; `Dump`
    /// when the combiner fails.
    pub async fn restore_physical_combined_until(
        &self,
        plan: &PhysicalRestorePlan,
        req: &PhysicalRestoreRequest,
        combiner: Option<&dyn BackupCombiner>,
        progress: &dyn Progress,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<PhysicalRestoreReport, Error> {
        if plan.chain.is_empty() {
            return Box::pin(self.restore_physical_until(plan, req, progress, cancel)).await;
        }
        Box::pin(self.restore_chain(plan, req, combiner, progress, cancel)).await
    }

    /// The chain restore of [`Repository::restore_physical_combined_until`].
    pub(super) async fn restore_chain(
        &self,
        plan: &PhysicalRestorePlan,
        req: &PhysicalRestoreRequest,
        combiner: Option<&dyn BackupCombiner>,
        progress: &dyn Progress,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<PhysicalRestoreReport, Error> {
        let Some(combiner) = combiner else {
            return Err(Error::Dump(crate::DumpError::new(
                crate::DumpErrorKind::ToolNotFound,
                format!(
                    "backup {} is incremental: restoring it needs pg_combinebackup of PostgreSQL {}",
                    plan.backup,
                    plan.manifest
                        .physical
                        .as_ref()
                        .map_or(0, |p| p.server_major)
                ),
            )));
        };
        let mut cancel = std::pin::pin!(cancel);
        let before = self.storage.stats();
        let io = |what: String| Error::Dump(crate::DumpError::new(crate::DumpErrorKind::Io, what));
        let all: Vec<&Manifest> = plan
            .chain_manifests
            .iter()
            .chain(std::iter::once(&plan.manifest))
            .collect();
        let (dir, state) =
            crate::physical::plan::check_dir(&plan.data_dir, req.clean, &req.protected)?;
        // Every backup present, its keys, and (unless told not to) its stored sha256, before
        // anything is written.
        let mut keys = Vec::with_capacity(all.len());
        for m in &all {
            let a = base_tar(m)?;
            let key = self.check_present(m, a).await?;
            self.check_keys(m, &key).await?;
            if req.verify_first {
                let got = tokio::select! {
                    got = self.hash_object(&key) => got?,
                    () = &mut cancel => return Err(Error::Cancelled),
                };
                if got != a.stored_sha256 {
                    return Err(Error::Integrity {
                        id: m.id.clone(),
                        problem: IntegrityProblem::ChecksumMismatch {
                            key: a.key.clone(),
                            expected: a.stored_sha256.clone(),
                            actual: got,
                        },
                    });
                }
            }
            keys.push(key);
        }
        let created = crate::physical::prepare_target(&dir, &state).map_err(io)?;
        let mut target = Target {
            dir: dir.clone(),
            created,
            keep: false,
        };
        let scratch = Scratch::beside(&dir)?;
        let (mut entries, mut bytes, mut checked) = (0, 0, 0);
        let mut inputs = Vec::with_capacity(all.len());
        for (m, key) in all.iter().zip(&keys) {
            let p = m.physical.as_ref().expect("physical");
            let a = base_tar(m)?;
            let sub = scratch.path.join(m.id.as_str());
            tracing::info!(backup = %m.id, dir = %sub.display(), "extracting a backup of the chain");
            let mut sink =
                Extractor::start(sub.clone(), true, Some(p.backup_manifest_sha256.clone()));
            let streamed = tokio::select! {
                res = self.stream_verified(m, a, key, &mut sink, progress) => res,
                () = &mut cancel => Err(Error::Cancelled),
            };
            if let Err(e) = streamed {
                sink.abort_extract().await;
                return Err(e);
            }
            let x = tokio::select! {
                res = sink.finish_extract() => res?,
                () = &mut cancel => {
                    sink.abort_extract().await;
                    return Err(Error::Cancelled);
                }
            };
            sink.keep();
            entries += x.entries;
            bytes += x.bytes;
            checked += x.checked;
            inputs.push(sub);
        }
        let major = plan
            .manifest
            .physical
            .as_ref()
            .map_or(0, |p| p.server_major);
        tracing::info!(backups = inputs.len(), dir = %dir.display(), "combining the chain");
        tokio::select! {
            res = combiner.combine(&inputs, &dir, major) => res?,
            () = &mut cancel => return Err(Error::Cancelled),
        }
        drop(scratch);
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| io(format!("setting the mode of {}: {e}", dir.display())))?;
        }
        let m = &plan.manifest;
        let header = format!(
            "Recovery settings written by pgb restore of incremental backup {} (chain of {}, system {}) at {}",
            m.id,
            all.len(),
            plan.system_identifier,
            OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        );
        req.settings.write(&dir, &header).map_err(|e| {
            io(format!(
                "writing the recovery settings into {}: {e}",
                dir.display()
            ))
        })?;
        target.keep = true;
        Ok(PhysicalRestoreReport {
            plan: plan.clone(),
            entries,
            bytes,
            files_checked: checked,
            storage: self.storage.stats().since(before),
        })
    }
}

/// A physical backup's base tar.
fn base_tar(m: &Manifest) -> Result<&crate::manifest::Artifact, Error> {
    m.artifacts
        .iter()
        .find(|a| a.kind == ArtifactKind::BaseTar)
        .ok_or_else(|| Error::Manifest {
            id: m.id.to_string(),
            problem: "the backup holds no base backup".to_owned(),
        })
}
