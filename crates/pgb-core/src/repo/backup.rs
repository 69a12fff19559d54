//! Backup and its commit protocol: data object, size check, sidecar, manifest last.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::lease::Lease;
use super::{
    BackupRequest, CHANNEL_DEPTH, INPUT_BUDGET, INPUT_BUDGET_SPILLING, PROGRESS_EVERY, Repository,
};
use crate::codec::{self, Compression, OuterStage};
use crate::crypto::Encryption;
use crate::dump::{DumpError, DumpErrorKind, DumpStream, Dumper, PreparedDump};
use crate::error::{Error, IntegrityProblem, PipelineError};
use crate::events::{Event, Progress};
use crate::key::ObjectKey;
use crate::layout;
use crate::manifest::{Artifact, ArtifactKind, BackupId, Manifest};
use crate::storage::{ObjectWriter, Storage, StorageErrorKind, StorageExt, WriteOptions};

/// Options of every kind of backup ([`BackupRequest`]).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BackupOptions {
    /// Compression of the stored object.
    pub compression: Compression,
    /// Labels recorded in the manifest.
    pub labels: Vec<String>,
    /// Client-side encryption (after compression); `None` stores compressed plaintext.
    pub encryption: Option<Encryption>,
    /// Read the data object back and check its sha256 before committing (catches a store
    /// that corrupts bytes while reporting success; costs one download).
    pub verify_upload: bool,
    /// Directories archived (tar) as artifacts of the same backup, after the dumps.
    pub files: Vec<crate::files::FilesDump>,
    /// Where input may wait on disk while compression is behind the source (a burst);
    /// `None`: the source waits for the in-memory queue.
    pub spill: Option<crate::SpillOptions>,
}

impl BackupOptions {
    /// Sets the compression.
    pub fn with_compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }

    /// Adds a label.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.labels.push(label.into());
        self
    }

    /// Reads the object back before committing.
    pub fn with_verify_upload(mut self, yes: bool) -> Self {
        self.verify_upload = yes;
        self
    }

    /// Adds a directory to archive with the backup.
    pub fn with_files(mut self, files: crate::files::FilesDump) -> Self {
        self.files.push(files);
        self
    }

    /// Encrypts the backup.
    pub fn with_encryption(mut self, encryption: Encryption) -> Self {
        self.encryption = Some(encryption);
        self
    }

    /// Lets input wait in a spill file while compression is behind ([`crate::SpillOptions`]).
    pub fn with_spill(mut self, spill: Option<crate::SpillOptions>) -> Self {
        self.spill = spill;
        self
    }
}

/// What a committed backup reports ([`super::BackupOutcome::report`]): the manifest and what
/// the network did while the backup ran. Serialized as the manifest's fields plus `storage`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct BackupReport {
    /// The committed manifest.
    #[serde(flatten)]
    pub manifest: Manifest,
    /// Retries, resumed downloads and exhausted retry budgets of the storage during the whole
    /// backup (preflight, lease, upload, commit). Shared storages count other operations
    /// running at the same time too.
    pub storage: crate::storage::StorageStats,
}

impl Repository {
    /// Backs up one database through a streaming dump: shorthand for
    /// [`Repository::backup_request`] with [`BackupRequest::database`], never cancelled,
    /// returning the committed manifest.
    ///
    /// # Errors
    /// As [`Repository::backup_request`].
    pub async fn backup(
        &self,
        dumper: &dyn Dumper,
        opts: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<Manifest, Error> {
        self.backup_until(dumper, opts, progress, std::future::pending())
            .await
    }

    /// [`Repository::backup`] that stops cleanly when `cancel` completes: shorthand for
    /// [`Repository::backup_request`] with [`BackupRequest::database`], returning the
    /// committed manifest.
    ///
    /// # Errors
    /// As [`Repository::backup_request`].
    pub async fn backup_until(
        &self,
        dumper: &dyn Dumper,
        opts: &BackupOptions,
        progress: &dyn Progress,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<Manifest, Error> {
        self.backup_report_until(dumper, opts, progress, cancel)
            .await
            .map(|r| r.manifest)
    }

    /// A wrapper kept for existing callers: [`Repository::backup_request`] with
    /// [`BackupRequest::database`].
    ///
    /// # Errors
    /// As [`Repository::backup_request`].
    #[doc(hidden)]
    pub async fn backup_report_until(
        &self,
        dumper: &dyn Dumper,
        opts: &BackupOptions,
        progress: &dyn Progress,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<BackupReport, Error> {
        self.backup_request(BackupRequest::database(dumper, opts), progress, cancel)
            .await
            .map(super::BackupOutcome::into_report)
    }

    /// One database through a streaming dump: preflight, the dump streamed through the
    /// pipeline into one data object, the files archives, the manifest.
    pub(super) async fn backup_database(
        &self,
        dumper: &dyn Dumper,
        opts: &BackupOptions,
        progress: &dyn Progress,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<Manifest, Error> {
        let prepared = dumper.prepare().await?;
        self.preflight().await?;

        let started_at = OffsetDateTime::now_utc();
        let id = BackupId::generate(started_at);
        self.leased(
            &id,
            self.backup_leased(prepared, id.clone(), started_at, opts, progress),
            cancel,
        )
        .await
    }

    /// Runs `work` under the backup's lease (which tells `gc` that the backup is in progress,
    /// whatever its grace period; refreshed while it runs, expiring on its own if pgb is
    /// killed) and stops it when `cancel` completes: dropping the work kills the dump (kill on
    /// drop) and discards the unfinished objects (the storage contract's cancellation
    /// safety); [`Error::Cancelled`] is returned and nothing is committed.
    pub(super) async fn leased(
        &self,
        id: &BackupId,
        work: impl std::future::Future<Output = Result<Manifest, Error>> + Send,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<Manifest, Error> {
        let lease = Lease::acquire(Arc::clone(&self.storage), id).await?;
        let res = tokio::select! {
            res = work => res,
            () = cancel => Err(Error::Cancelled),
        };
        lease.release().await;
        res
    }

    async fn backup_leased(
        &self,
        prepared: Box<dyn PreparedDump>,
        id: BackupId,
        started_at: OffsetDateTime,
        opts: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<Manifest, Error> {
        let source = prepared.source().clone();
        let file = layout::data_name(source.format, opts.compression, opts.encryption.is_some());
        tracing::info!(backup = %id, database = %source.database, "backup started");
        progress.event(&Event::BackupStarted {
            id: id.clone(),
            database: source.database.clone(),
        });
        let artifact = self
            .upload_artifact(
                &id,
                &file,
                ("data", ArtifactKind::Dump),
                prepared,
                opts,
                progress,
            )
            .await?;
        let mut artifacts = vec![artifact];
        Box::pin(self.upload_files(&id, opts, progress, &mut artifacts)).await?;
        let finished_at = OffsetDateTime::now_utc();
        let manifest = Manifest::new_v3(
            id.clone(),
            &source,
            opts.compression,
            started_at,
            finished_at,
            opts.labels.clone(),
            opts.encryption.as_ref().map(Encryption::info),
            artifacts,
        );
        self.commit(manifest, opts, progress).await
    }

    /// Streams one prepared dump through compression, hashing and (optionally) encryption into
    /// `backups/<id>/<file>`, checks what the store holds, writes its `sha256sum -c` sidecar
    /// and returns its manifest entry. On failure the dump is killed and whatever this
    /// artifact stored is removed again.
    pub(super) async fn upload_artifact(
        &self,
        id: &BackupId,
        file: &str,
        (name, kind): (&str, ArtifactKind),
        prepared: Box<dyn PreparedDump>,
        opts: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<Artifact, Error> {
        let data_key = layout::backup_dir(id)
            .join(file)
            .map_err(|source| Error::ArtifactName {
                id: id.clone(),
                name: file.to_owned(),
                source,
            })?;
        let mut writer = self
            .storage
            .writer(&data_key, write_options(prepared.source()))
            .await?;
        let mut dump = match prepared.start().await {
            Ok(d) => d,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(e.into());
            }
        };
        let outer = opts.encryption.as_ref().map(Encryption::stage);
        // A file of a directory dump may be empty (an empty table's data); a dump may not.
        let allow_empty = kind == ArtifactKind::DirectoryFile;
        let pumped = pump(
            dump.as_mut(),
            writer.as_mut(),
            (opts.compression, outer, opts.spill.as_ref()),
            progress,
            allow_empty,
        )
        .await;
        let sizes = match pumped {
            Ok(s) => s,
            Err(e) => {
                dump.abort().await;
                let _ = writer.abort().await;
                tracing::warn!(backup = %id, artifact = name, error = %e, "backup failed; nothing committed");
                return Err(e);
            }
        };
        drop(dump);
        let meta = writer.finish().await?;
        progress.event(&Event::DataFinished {
            stored_bytes: sizes.stored_size,
        });

        // The writer said it succeeded; check what the store actually holds before committing.
        let stored = match self.storage.head(&data_key).await {
            Ok(m) => m,
            Err(e) => {
                let _ = self.storage.delete(&data_key).await;
                return Err(e.into());
            }
        };
        if stored.size != sizes.stored_size || meta.size != sizes.stored_size {
            let _ = self.storage.delete(&data_key).await;
            return Err(Error::Integrity {
                id: id.clone(),
                problem: IntegrityProblem::UploadSizeMismatch {
                    key: data_key.to_string(),
                    sent: sizes.stored_size,
                    stored: stored.size,
                },
            });
        }

        if opts.verify_upload {
            let read_back = self.hash_object(&data_key).await;
            if read_back.as_ref().ok() != Some(&sizes.stored_sha256) {
                let _ = self.storage.delete(&data_key).await;
                return Err(match read_back {
                    Err(e) => e,
                    Ok(got) => Error::Integrity {
                        id: id.clone(),
                        problem: IntegrityProblem::ReadBackMismatch {
                            key: data_key.to_string(),
                            sent: sizes.stored_sha256,
                            read: got,
                        },
                    },
                });
            }
        }

        // A `sha256sum -c` sidecar, so the object can be checked with standard tools alone.
        let sidecar = layout::sidecar_key(&data_key);
        let line = format!("{}  {}\n", sizes.stored_sha256, data_key.file_name());
        if let Err(e) = self
            .storage
            .put(&sidecar, Bytes::from(line), WriteOptions::default())
            .await
        {
            let _ = self.storage.delete(&data_key).await;
            return Err(e.into());
        }

        Ok(Artifact {
            name: name.to_owned(),
            kind,
            key: data_key.to_string(),
            compression: opts.compression,
            encrypted: opts.encryption.is_some(),
            stored_size: sizes.stored_size,
            stored_sha256: sizes.stored_sha256,
            plain_size: sizes.plain_size,
            plain_sha256: sizes.plain_sha256,
        })
    }

    /// Archives each of `opts.files` as an artifact after `artifacts`; on failure removes
    /// `artifacts` too (nothing of the backup is left to commit).
    pub(super) async fn upload_files(
        &self,
        id: &BackupId,
        opts: &BackupOptions,
        progress: &dyn Progress,
        artifacts: &mut Vec<Artifact>,
    ) -> Result<(), Error> {
        for (i, dir) in opts.files.iter().enumerate() {
            let file = layout::files_name(i + 1, opts.compression, opts.encryption.is_some());
            let name = dir.path().display().to_string();
            match self
                .upload_artifact(
                    id,
                    &file,
                    (&name, ArtifactKind::Files),
                    dir.prepared(),
                    opts,
                    progress,
                )
                .await
            {
                Ok(a) => artifacts.push(a),
                Err(e) => {
                    self.discard_artifacts(artifacts).await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Removes the stored objects (and sidecars) of artifacts that will never be committed.
    pub(super) async fn discard_artifacts(&self, artifacts: &[Artifact]) {
        for a in artifacts {
            if let Ok(key) = a.key() {
                let _ = self.storage.delete(&layout::sidecar_key(&key)).await;
                let _ = self.storage.delete(&key).await;
            }
        }
    }

    /// Commits a backup whose artifacts are all stored: seals the manifest (signed when the
    /// encryption has an authentication key) and writes it last, create-only.
    pub(super) async fn commit(
        &self,
        mut manifest: Manifest,
        opts: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<Manifest, Error> {
        let id = manifest.id.clone();
        let mac_key = match &opts.encryption {
            Some(enc) => match enc.mac_key(id.as_str()) {
                Ok(k) => k,
                Err(source) => {
                    self.discard_artifacts(&manifest.artifacts).await;
                    return Err(Error::Key { id: None, source });
                }
            },
            None => None,
        };
        progress.event(&Event::ManifestWriting);
        let body = Bytes::from(manifest.seal(mac_key.as_ref()));
        let manifest_key = layout::manifest_key(&id);
        if let Err(e) = self
            .storage
            .put(&manifest_key, body.clone(), WriteOptions::create_new())
            .await
        {
            match self.settle_manifest_write(&manifest_key, &body).await {
                ManifestState::Ours => {
                    // The store applied the write but its answer was lost (the retry then saw
                    // "already exists", or gave up): the backup is committed.
                    tracing::info!(backup = %id, error = %e, "manifest write was applied although its acknowledgement was lost");
                }
                ManifestState::Absent => {
                    // Without its manifest the data is garbage; remove it now rather than at gc.
                    self.discard_artifacts(&manifest.artifacts).await;
                    return Err(e.into());
                }
                ManifestState::Other => {
                    // Somebody else's manifest: never touch it, nor the data it may refer to.
                    return Err(Error::ManifestConflict { id });
                }
                ManifestState::Unknown => {
                    // Cannot tell whether the manifest landed: keep the data (a manifest must
                    // never be left without it); `gc` removes it if no manifest appears.
                    return Err(e.into());
                }
            }
        }
        tracing::info!(backup = %id, stored = manifest.stored_size(), "backup committed");
        progress.event(&Event::Committed { id });
        Ok(manifest)
    }

    /// After a failed create-only manifest write: is a manifest there now, and is it ours?
    async fn settle_manifest_write(&self, key: &ObjectKey, ours: &[u8]) -> ManifestState {
        match self.storage.get_bytes(key).await {
            Ok(found) if found.as_ref() == ours => ManifestState::Ours,
            Ok(_) => ManifestState::Other,
            Err(e) if e.kind() == StorageErrorKind::NotFound => ManifestState::Absent,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "cannot read the manifest back after a failed write");
                ManifestState::Unknown
            }
        }
    }
}

/// The data object's write options: the dumper's size estimate (an upper bound of the
/// plaintext) is the size hint multipart backends size their parts by.
fn write_options(source: &crate::dump::DumpSource) -> WriteOptions {
    match source.size_estimate {
        Some(bytes) => WriteOptions::default().with_size_hint(bytes),
        None => WriteOptions::default(),
    }
}

/// What a failed create-only manifest write left behind.
enum ManifestState {
    /// Our manifest, byte for byte: the write was applied.
    Ours,
    /// No manifest.
    Absent,
    /// A different manifest.
    Other,
    /// Could not be read.
    Unknown,
}

/// Digests and sizes of a finished backup stream.
struct Sizes {
    plain_size: u64,
    plain_sha256: String,
    stored_size: u64,
    stored_sha256: String,
}

/// Dump → encoder thread → hash and store. Returns only when all three succeeded; the encoder
/// is finished only after the dump reported success.
async fn pump(
    dump: &mut dyn DumpStream,
    writer: &mut dyn ObjectWriter,
    (compression, outer, spill): (
        Compression,
        Option<OuterStage>,
        Option<&crate::SpillOptions>,
    ),
    progress: &dyn Progress,
    allow_empty: bool,
) -> Result<Sizes, Error> {
    let budget = if spill.is_some() {
        INPUT_BUDGET_SPILLING
    } else {
        INPUT_BUDGET
    };
    let (queue, in_rx) = crate::queue::byte_queue(budget);
    let (in_tx, drain) = crate::spill::spill_queue(queue, spill);
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let encoder = codec::spawn_encoder(compression, outer, in_rx, out_tx);
    // Stored bytes written so far, for the progress events of the producing side.
    let stored_written = AtomicU64::new(0);
    let stored_written = &stored_written;

    let produce = async move {
        let mut total = 0u64;
        let mut next_event = PROGRESS_EVERY;
        loop {
            match dump.next_chunk().await? {
                Some(chunk) => {
                    if total == 0 {
                        progress.event(&Event::DataStreaming);
                    }
                    total += chunk.len() as u64;
                    if total >= next_event {
                        next_event += PROGRESS_EVERY;
                        progress.event(&Event::Progress {
                            plain_bytes: total,
                            stored_bytes: stored_written.load(Ordering::Relaxed),
                        });
                    }
                    if in_tx.send(chunk).await.is_err() {
                        return Ok(false); // the encoder failed; its error is reported below
                    }
                }
                None if total == 0 && !allow_empty => {
                    return Err(Error::Dump(DumpError::new(
                        DumpErrorKind::Empty,
                        "pg_dump exited successfully but wrote nothing; refusing to record an empty backup",
                    )));
                }
                None => {
                    in_tx.finish();
                    return Ok(true);
                }
            }
        }
    };
    let drain = async move {
        drain
            .run()
            .await
            .map_err(|e| Error::from(PipelineError::Spill(e)))
    };
    let consume = async move {
        let mut hasher = Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = out_rx.recv().await {
            hasher.update(&chunk);
            n += chunk.len() as u64;
            writer.write(chunk).await?;
            stored_written.store(n, Ordering::Relaxed);
        }
        Ok::<_, Error>((n, codec::hex(&hasher.finalize())))
    };
    let (_, _, (stored_size, stored_sha256)) = tokio::try_join!(produce, drain, consume)?;
    let digests = encoder
        .await
        .map_err(|source| PipelineError::Task {
            stage: "encoder",
            source,
        })?
        .map_err(PipelineError::Compression)?;
    Ok(Sizes {
        plain_size: digests.plain_size,
        plain_sha256: digests.plain_sha256,
        stored_size,
        stored_sha256,
    })
}
