//! Restore through a [`Restorer`], completed only after the checksums matched.

use super::Repository;
use crate::dump::{RestoreOptions, RestoreReport, Restorer};
use crate::error::Error;
use crate::events::Progress;
use crate::manifest::Manifest;

impl Repository {
    /// Restores a backup. The stored checksum is verified while streaming, and the restore is
    /// completed only after it matched (see [`Restorer`]'s contract); on any failure the target
    /// is rolled back.
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
        let key = self.check_data_present(m).await?;
        self.check_keys(m, &key).await?;
        if opts.verify_first {
            // A corrupted backup is caught before any database is touched.
            let got = self.hash_object(&key).await?;
            if got != m.stored_sha256 {
                return Err(Error::Integrity {
                    id: m.id.to_string(),
                    problem: format!(
                        "checksum mismatch: stored object has sha256 {got}, the manifest says {}",
                        m.stored_sha256
                    ),
                });
            }
        }
        let mut sink = restorer.begin(opts).await?;
        match self.stream_verified(m, &key, sink.as_mut(), progress).await {
            Ok(()) => Ok(sink.finish().await?),
            Err(e) => {
                sink.abort().await;
                Err(e)
            }
        }
    }
}
