//! Verify: read a backup end to end without touching a database.

use bytes::Bytes;

use super::Repository;
use crate::dump::{
    ArchiveChecker, ArchiveInfo, DumpError, DumpErrorKind, RestoreReport, RestoreSink,
};
use crate::error::Error;
use crate::events::Progress;
use crate::manifest::{ArtifactKind, BackupId, Manifest};

/// What [`Repository::verify`] checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The backup.
    pub id: BackupId,
    /// Stored bytes read and hashed.
    pub stored_size: u64,
    /// Plaintext bytes decompressed and hashed.
    pub plain_size: u64,
    /// Artifacts (stored objects) checked.
    pub artifacts: usize,
    /// What the network did during the verify (retries, resumed downloads).
    pub storage: crate::storage::StorageStats,
    /// Archive table-of-contents entries, when an archive checker ran.
    pub toc_entries: Option<u64>,
}

impl Repository {
    /// Reads a backup end to end: size, sha256 of the stored bytes, decompression, sha256 of
    /// the plaintext and, with a `checker`, the archive's table of contents.
    ///
    /// # Errors
    /// `Integrity` for any mismatch, `Dump` if the archive check fails, storage failures.
    pub async fn verify(
        &self,
        m: &Manifest,
        checker: Option<&dyn ArchiveChecker>,
        progress: &dyn Progress,
    ) -> Result<VerifyReport, Error> {
        let before = self.storage.stats();
        // An incremental base backup: every backup of its chain must be usable.
        super::incremental::ancestors(self, m).await?;
        let keys = self.check_all_present(m).await?;
        if let Some(first) = keys.first() {
            self.check_keys(m, first).await?;
        }
        let mut toc_entries = None;
        for (a, key) in m.artifacts.iter().zip(&keys) {
            // The dump goes through the archive checker; everything else is checked by its
            // digests alone.
            let mut sink: Box<dyn RestoreSink> = match checker {
                // A physical base backup: every file against its backup_manifest (no tool).
                _ if a.kind == ArtifactKind::BaseTar => {
                    Box::new(crate::physical::BaseTarCheck::start(
                        m.physical
                            .as_ref()
                            .map(|p| p.backup_manifest_sha256.clone()),
                    ))
                }
                Some(c) if a.kind == ArtifactKind::Dump => {
                    c.check(&ArchiveInfo::new(m.format, m.pg_dump_major))
                        .await?
                }
                // A directory-format dump: its table of contents, against the stored files.
                Some(c) if a.kind == ArtifactKind::DirectoryFile && a.name == "toc.dat" => {
                    let files: Vec<String> = m
                        .artifacts
                        .iter()
                        .filter(|f| f.kind == ArtifactKind::DirectoryFile)
                        .map(|f| f.name.clone())
                        .collect();
                    c.check_directory(&ArchiveInfo::new(m.format, m.pg_dump_major), &files)
                        .await?
                        .unwrap_or_else(|| Box::new(NullSink))
                }
                _ => Box::new(NullSink),
            };
            if let Err(e) = self
                .stream_verified(m, a, key, sink.as_mut(), progress)
                .await
            {
                sink.abort().await;
                return Err(e);
            }
            let report = sink.finish().await.map_err(|e| {
                Error::Dump(
                    e.with_kind(DumpErrorKind::BadArchive)
                        .context(format_args!("backup {}: archive check failed", m.id)),
                )
            })?;
            // A whole-server backup: the entries of every dump.
            toc_entries = match (toc_entries, report.toc_entries) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
        }
        Ok(VerifyReport {
            id: m.id.clone(),
            stored_size: m.stored_size(),
            plain_size: m.plain_size(),
            artifacts: m.artifacts.len(),
            toc_entries,
            storage: self.storage.stats().since(before),
        })
    }
}

/// Accepts and discards a plaintext archive (verify without an archive checker).
#[derive(Debug)]
pub(super) struct NullSink;

#[async_trait::async_trait]
impl RestoreSink for NullSink {
    async fn write(&mut self, _: Bytes) -> Result<(), DumpError> {
        Ok(())
    }
    async fn finish(self: Box<Self>) -> Result<RestoreReport, DumpError> {
        Ok(RestoreReport::default())
    }
    async fn abort(self: Box<Self>) {}
}
