//! Restore through a [`Restorer`], completed only after the checksums matched.

use super::Repository;
use crate::dump::{ArchiveInfo, RestoreOptions, RestoreReport, Restorer};
use crate::error::{Error, IntegrityProblem};
use crate::events::Progress;
use crate::manifest::{Artifact, Manifest};

impl Repository {
    /// Restores a backup. The stored checksum is verified while streaming, and the restore is
    /// completed only after it matched (see [`Restorer`]'s contract); on any failure the target
    /// is rolled back. The archive's format and pg_dump version come from the manifest; `opts`
    /// holds only the caller's choices.
    ///
    /// Dropping the returned future cancels the restore: the [`Restorer`] contract makes that
    /// roll back too (the tool killed, a database it created dropped). For a cancellation that
    /// waits for the clean-up, use [`Repository::restore_until`].
    ///
    /// # Errors
    /// `Integrity` before or during the stream, `Dump` for target or tool failures.
    pub async fn restore(
        &self,
        m: &Manifest,
        restorer: &dyn Restorer,
        opts: &RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<RestoreReport, Error> {
        self.restore_until(m, restorer, opts, progress, std::future::pending())
            .await
    }

    /// [`Repository::restore`] that stops cleanly when `cancel` completes (a signal, a
    /// shutdown): the restore tool is killed, nothing is committed in the target, a target
    /// database this restore created is dropped, and [`Error::Cancelled`] is returned once that
    /// clean-up is done.
    ///
    /// # Errors
    /// As [`Repository::restore`], or `Cancelled`.
    pub async fn restore_until(
        &self,
        m: &Manifest,
        restorer: &dyn Restorer,
        opts: &RestoreOptions,
        progress: &dyn Progress,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<RestoreReport, Error> {
        if m.is_physical() {
            return Err(crate::error::Mismatch::Physical { id: m.id.clone() }.into());
        }
        if m.format == crate::dump::ArchiveFormat::Directory && m.cluster.is_none() {
            // Boxed: a directory restore's state would otherwise grow every restore's future.
            return Box::pin(self.restore_directory_until(m, restorer, opts, progress, cancel))
                .await;
        }
        let a = self.select_dump(m, None)?;
        self.restore_artifact_until(m, a, restorer, opts, progress, cancel)
            .await
    }

    /// Restores the dump artifact `a` of `m` (see [`Repository::restore_until`]).
    pub(super) async fn restore_artifact_until(
        &self,
        m: &Manifest,
        a: &Artifact,
        restorer: &dyn Restorer,
        opts: &RestoreOptions,
        progress: &dyn Progress,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<RestoreReport, Error> {
        let mut cancel = std::pin::pin!(cancel);
        let before = self.storage.stats();
        let key = self.check_present(m, a).await?;
        self.check_keys(m, &key).await?;
        let archive = ArchiveInfo::new(m.format, m.pg_dump_major);
        if opts.verify_first && !restorer.applies_only_verified(&archive, opts) {
            // A corrupted backup is caught before any database is touched.
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
        // A `begin` dropped half-way rolls back by the Restorer contract (its guards hand
        // the drop of a created database to the runtime: awaited before `Cancelled`).
        let mut sink = tokio::select! {
            sink = restorer.begin(&archive, opts) => sink?,
            () = &mut cancel => return Err(cancelled().await),
        };
        let streamed = tokio::select! {
            res = self.stream_verified(m, a, &key, sink.as_mut(), progress) => res,
            () = &mut cancel => Err(Error::Cancelled),
        };
        match streamed {
            Ok(()) => tokio::select! {
                res = sink.finish() => {
                    let mut report = res?;
                    report.storage = self.storage.stats().since(before);
                    Ok(report)
                }
                // `finish` dropped: the sink's drop rolls back, awaited here.
                () = &mut cancel => Err(cancelled().await),
            },
            Err(e) => {
                sink.abort().await;
                Err(e)
            }
        }
    }
}

/// `Cancelled`, once the clean-ups the dropped restore futures handed to the runtime (a created
/// target database's drop) are done ([`crate::cleanup::settle_cleanups`]).
pub(super) async fn cancelled() -> Error {
    crate::cleanup::settle_cleanups().await;
    Error::Cancelled
}
