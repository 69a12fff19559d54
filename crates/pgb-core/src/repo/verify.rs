//! Verify: read a backup end to end without touching a database.

use bytes::Bytes;

use super::Repository;
use crate::dump::{DumpError, DumpErrorKind, RestoreReport, RestoreSink, Restorer};
use crate::error::Error;
use crate::events::Progress;
use crate::manifest::{BackupId, Manifest};

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
        checker: Option<&dyn Restorer>,
        progress: &dyn Progress,
    ) -> Result<VerifyReport, Error> {
        let key = self.check_data_present(m).await?;
        self.check_keys(m, &key).await?;
        let mut sink: Box<dyn RestoreSink> = match checker {
            Some(c) => c.check_archive(m.format, m.pg_dump_major).await?,
            None => Box::new(NullSink),
        };
        match self.stream_verified(m, &key, sink.as_mut(), progress).await {
            Ok(()) => {
                let report = sink.finish().await.map_err(|e| {
                    Error::Dump(
                        DumpError::new(
                            DumpErrorKind::BadArchive,
                            format!("backup {}: archive check failed: {e}", m.id),
                        )
                        .with_stderr(e.stderr_tail().unwrap_or_default()),
                    )
                })?;
                Ok(VerifyReport {
                    id: m.id.clone(),
                    stored_size: m.stored_size,
                    plain_size: m.plain_size,
                    toc_entries: report.toc_entries,
                })
            }
            Err(e) => {
                sink.abort().await;
                Err(e)
            }
        }
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
