//! Checking a base backup's tar against its `backup_manifest`: every file hashed as it
//! passes (on a thread of its own), compared once the manifest, which comes last, arrived.
//! Memory grows with the number of files (a path and a digest each), not with their size.

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::capture::MAX_BACKUP_MANIFEST;
use super::pgfiles::{self, BackupManifest, SeenFile};
use super::tar::{EntryKind, TarError, TarEvent, TarReader};
use crate::dump::{DumpError, DumpErrorKind, RestoreReport, RestoreSink};

/// A damaged archive: `BadArchive` (an integrity failure, exit 5 in the binary).
pub(crate) fn bad_archive(what: impl std::fmt::Display) -> DumpError {
    DumpError::new(DumpErrorKind::BadArchive, what.to_string())
}

/// The files of an archive as they pass: each regular file's size and sha256, and the
/// `backup_manifest` itself.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    seen: HashMap<Vec<u8>, SeenFile>,
    current: Option<(Vec<u8>, Sha256, u64)>,
    manifest: Option<Vec<u8>>,
    keeping: bool,
    buf: Vec<u8>,
}

impl Tally {
    /// Takes one event of the archive.
    pub(crate) fn event(&mut self, e: &TarEvent<'_>) -> Result<(), TarError> {
        match e {
            TarEvent::Entry(h) => {
                if h.kind == EntryKind::File {
                    self.current = Some((h.path.clone(), Sha256::new(), 0));
                    self.keeping = h.path == b"backup_manifest";
                    if self.keeping && h.size > MAX_BACKUP_MANIFEST as u64 {
                        return Err(TarError(format!(
                            "backup_manifest is {} bytes, over pgb's limit of {MAX_BACKUP_MANIFEST}",
                            h.size
                        )));
                    }
                    self.buf.clear();
                }
            }
            TarEvent::Data(d) => {
                if let Some((_, h, n)) = &mut self.current {
                    h.update(d);
                    *n += d.len() as u64;
                }
                if self.keeping {
                    self.buf.extend_from_slice(d);
                }
            }
            TarEvent::EntryEnd => {
                if let Some((path, h, size)) = self.current.take() {
                    if self.seen.contains_key(&path) {
                        return Err(TarError(format!(
                            "{} appears twice in the archive",
                            String::from_utf8_lossy(&path)
                        )));
                    }
                    self.seen.insert(
                        path,
                        SeenFile {
                            size,
                            sha256: h.finalize().into(),
                        },
                    );
                }
                if std::mem::take(&mut self.keeping) {
                    self.manifest = Some(std::mem::take(&mut self.buf));
                }
            }
        }
        Ok(())
    }

    /// Compares the files with `backup_manifest` (whose sha256 must be `manifest_sha256` when
    /// given); returns how many files it lists that were checked.
    pub(crate) fn finish(self, manifest_sha256: Option<&str>) -> Result<u64, DumpError> {
        let text = self
            .manifest
            .ok_or_else(|| bad_archive("the base backup holds no backup_manifest"))?;
        if let Some(want) = manifest_sha256 {
            let got = crate::codec::hex(&Sha256::digest(&text));
            if got != want {
                return Err(bad_archive(format!(
                    "backup_manifest has sha256 {got}, pgb's manifest says {want}"
                )));
            }
        }
        let manifest = BackupManifest::parse(&text).map_err(|e| bad_archive(e.0))?;
        pgfiles::compare(&manifest, &self.seen).map_err(|e| bad_archive(e.0))
    }
}

/// A [`RestoreSink`] that checks a base backup (verify): the tar read and every file hashed
/// on a blocking thread, compared with `backup_manifest` at `finish`; the report's
/// `toc_entries` is the number of files checked.
#[derive(Debug)]
pub(crate) struct BaseTarCheck {
    tx: Option<mpsc::Sender<Bytes>>,
    task: Option<JoinHandle<Result<u64, DumpError>>>,
}

impl BaseTarCheck {
    /// Starts a check; `manifest_sha256` is the manifest's record of `backup_manifest`.
    pub(crate) fn start(manifest_sha256: Option<String>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Bytes>(4);
        let task = tokio::task::spawn_blocking(move || {
            let mut reader = TarReader::new();
            let mut tally = Tally::default();
            let damaged = |e: TarError| bad_archive(format!("base backup: {e}"));
            while let Some(chunk) = rx.blocking_recv() {
                reader
                    .feed(&chunk, &mut |e| tally.event(&e))
                    .map_err(damaged)?;
            }
            reader.finish().map_err(damaged)?;
            tally.finish(manifest_sha256.as_deref())
        });
        Self {
            tx: Some(tx),
            task: Some(task),
        }
    }

    async fn outcome(&mut self) -> Result<u64, DumpError> {
        self.tx = None;
        match self.task.take() {
            Some(t) => t.await.map_err(|e| {
                DumpError::new(DumpErrorKind::Io, format!("base backup check task: {e}"))
            })?,
            None => Err(DumpError::new(
                DumpErrorKind::Io,
                "base backup check stopped",
            )),
        }
    }
}

#[async_trait]
impl RestoreSink for BaseTarCheck {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError> {
        let sent = match &self.tx {
            Some(tx) => tx.send(chunk).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The checker stopped early: its error says why.
        Err(self
            .outcome()
            .await
            .err()
            .unwrap_or_else(|| bad_archive("base backup: data after the end of the archive")))
    }

    async fn finish(mut self: Box<Self>) -> Result<RestoreReport, DumpError> {
        let files = self.outcome().await?;
        Ok(RestoreReport::new("", false, "backup_manifest").with_toc_entries(files))
    }

    async fn abort(mut self: Box<Self>) {
        let _ = self.outcome().await;
    }
}
