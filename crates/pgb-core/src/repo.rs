//! Repository operations: backup, list, verify, restore, delete and gc.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::codec::{self, Compression, EncodeMsg, OuterStage};
use crate::crypto::{Decryption, Encryption, mac_hex, mac_verify};
use crate::dump::{
    ArchiveChecker, ArchiveInfo, DumpError, DumpErrorKind, DumpStream, Dumper, PreparedDump,
    RestoreOptions, RestoreReport, RestoreSink, Restorer,
};
use crate::error::Error;
use crate::events::{Event, Progress};
use crate::key::ObjectKey;
use crate::manifest::{BackupId, MANIFEST_FORMAT_VERSION, Manifest, layout};
use crate::storage::{ObjectWriter, Storage, StorageErrorKind, StorageExt, WriteOptions};

const PROGRESS_EVERY: u64 = 64 << 20;
const CHANNEL_DEPTH: usize = 4;

/// Options for [`Repository::backup`].
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

    /// Encrypts the backup.
    pub fn with_encryption(mut self, encryption: Encryption) -> Self {
        self.encryption = Some(encryption);
        self
    }
}

/// A backup whose manifest cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// What [`Repository::verify`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// A backup repository on some [`Storage`]: the layout and the commit protocol.
#[derive(Debug, Clone)]
pub struct Repository {
    storage: Arc<dyn Storage>,
    keys: Arc<Decryption>,
    allow_unauthenticated: bool,
}

impl Repository {
    /// A repository rooted at `storage` (already scoped to its prefix).
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            keys: Arc::new(Decryption::none()),
            allow_unauthenticated: false,
        }
    }

    /// Keys for reading (verifying, restoring) encrypted backups.
    pub fn with_decryption(mut self, keys: Decryption) -> Self {
        self.keys = Arc::new(keys);
        self
    }

    /// Accept backups without an authenticated manifest even though a passphrase or an
    /// authentication key was given (which otherwise means "expect authenticated backups" and
    /// guards against a downgrade to an unencrypted, unauthenticated substitute).
    pub fn allow_unauthenticated(mut self, allow: bool) -> Self {
        self.allow_unauthenticated = allow;
        self
    }

    /// The underlying storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Checks that the repository is writable: writes, reads and deletes a small probe object.
    ///
    /// # Errors
    /// The storage error, e.g. permission denied or unreachable.
    pub async fn preflight(&self) -> Result<(), Error> {
        let mut rnd = [0u8; 6];
        let _ = getrandom::fill(&mut rnd);
        let key = ObjectKey::parse(&format!(".pgb-probe-{}", codec::hex(&rnd))).expect("valid key");
        self.storage
            .put(
                &key,
                Bytes::from_static(b"pgb write probe\n"),
                WriteOptions::default(),
            )
            .await?;
        let res = self.storage.head(&key).await;
        self.storage.delete(&key).await?;
        res?;
        Ok(())
    }

    /// Runs a backup: preflight, stream the dump through compression and hashing into a data
    /// object, check it, and commit by writing the manifest last, create-only.
    ///
    /// On any failure nothing becomes visible: the writer is aborted, the dump killed and
    /// reaped, encoders are never finalized, and no manifest is written.
    ///
    /// # Errors
    /// Preflight (`Dump` connection/version errors, `Storage` access errors), the dump failing,
    /// storage failures, or an integrity mismatch after upload.
    pub async fn backup(
        &self,
        dumper: &dyn Dumper,
        opts: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<Manifest, Error> {
        self.backup_until(dumper, opts, progress, std::future::pending())
            .await
    }

    /// [`Repository::backup`] that stops cleanly when `cancel` completes (a signal, a
    /// shutdown): the dump is killed, the data object discarded, the lease released, and
    /// [`Error::Cancelled`] returned. Nothing is committed.
    ///
    /// # Errors
    /// As [`Repository::backup`], or `Cancelled`.
    #[tracing::instrument(skip_all)]
    pub async fn backup_until(
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
        // The lease tells `gc` that this backup is in progress, whatever its grace period;
        // it is refreshed while the backup runs and expires on its own if pgb is killed.
        let lease = Lease::acquire(Arc::clone(&self.storage), &id).await?;
        // Dropping the backup future kills pg_dump (kill on drop) and discards the unfinished
        // data object (the storage contract's cancellation safety).
        let res = tokio::select! {
            res = self.backup_leased(prepared, id, started_at, opts, progress) => res,
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
        let data_key = layout::backup_dir(&id)
            .join(&layout::data_name(source.format, opts.compression))
            .expect("valid key");
        tracing::info!(backup = %id, database = %source.database, "backup started");
        progress.event(&Event::BackupStarted {
            id: id.clone(),
            database: source.database.clone(),
        });

        let mut writer = self
            .storage
            .writer(&data_key, WriteOptions::default())
            .await?;
        let mut dump = match prepared.start().await {
            Ok(d) => d,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(e.into());
            }
        };
        let outer = opts.encryption.as_ref().map(Encryption::stage);
        let pumped = pump(
            dump.as_mut(),
            writer.as_mut(),
            opts.compression,
            outer,
            progress,
        )
        .await;
        let sizes = match pumped {
            Ok(s) => s,
            Err(e) => {
                dump.abort().await;
                let _ = writer.abort().await;
                tracing::warn!(backup = %id, error = %e, "backup failed; nothing committed");
                return Err(e);
            }
        };
        drop(dump);
        let meta = writer.finish().await?;
        let finished_at = OffsetDateTime::now_utc();
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
                id: id.to_string(),
                problem: format!(
                    "storage holds {} bytes after upload, {} were sent",
                    stored.size, sizes.stored_size
                ),
            });
        }

        if opts.verify_upload {
            let read_back = self.hash_object(&data_key).await;
            if read_back.as_ref().ok() != Some(&sizes.stored_sha256) {
                let _ = self.storage.delete(&data_key).await;
                return Err(match read_back {
                    Err(e) => e,
                    Ok(got) => Error::Integrity {
                        id: id.to_string(),
                        problem: format!(
                            "read back after upload: sha256 {got}, {} was sent",
                            sizes.stored_sha256
                        ),
                    },
                });
            }
        }

        // A `sha256sum -c` sidecar, so the object can be checked with standard tools alone.
        let sidecar = ObjectKey::parse(&format!("{data_key}.sha256")).expect("valid key");
        let line = format!("{}  {}\n", sizes.stored_sha256, data_key.file_name());
        if let Err(e) = self
            .storage
            .put(&sidecar, Bytes::from(line), WriteOptions::default())
            .await
        {
            let _ = self.storage.delete(&data_key).await;
            return Err(e.into());
        }

        let mut manifest = Manifest {
            format_version: if opts.encryption.is_some() {
                MANIFEST_FORMAT_VERSION
            } else {
                1
            },
            id: id.clone(),
            pgb_version: env!("CARGO_PKG_VERSION").to_owned(),
            set: format!("{}/{}", source.server, source.database),
            database: source.database,
            server: source.server,
            server_version: source.server_version,
            pg_dump_version: source.tool_version,
            pg_dump_major: source.tool_major,
            format: source.format,
            compression: opts.compression,
            data_key: data_key.to_string(),
            stored_size: sizes.stored_size,
            stored_sha256: sizes.stored_sha256,
            plain_size: sizes.plain_size,
            plain_sha256: sizes.plain_sha256,
            started_at,
            finished_at,
            labels: opts.labels.clone(),
            encryption: opts.encryption.as_ref().map(Encryption::info),
            mac: None,
        };
        if let Some(enc) = &opts.encryption {
            let key = enc
                .mac_key(id.as_str())
                .map_err(|e| Error::Key(e.to_string()))?;
            manifest.mac = key.map(|k| mac_hex(&k, &manifest.mac_input()));
        }
        progress.event(&Event::ManifestWriting);
        let body = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        if let Err(e) = self
            .storage
            .put(
                &layout::manifest_key(&id),
                Bytes::from(body),
                WriteOptions::create_new(),
            )
            .await
        {
            // Without its manifest the data is garbage; remove it now rather than at gc.
            let _ = self.storage.delete(&sidecar).await;
            let _ = self.storage.delete(&data_key).await;
            return Err(e.into());
        }
        tracing::info!(backup = %id, stored = sizes.stored_size, "backup committed");
        progress.event(&Event::Committed { id });
        Ok(manifest)
    }

    async fn hash_object(&self, key: &ObjectKey) -> Result<String, Error> {
        let mut stream = self.storage.reader(key, None).await?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk?);
        }
        Ok(codec::hex(&hasher.finalize()))
    }

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

    async fn read_manifest_at(&self, dir: &str, key: &ObjectKey) -> Result<Manifest, Error> {
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
        let m = Manifest::from_json(&bytes).map_err(bad)?;
        if m.id.as_str() != dir {
            return Err(bad(format!(
                "manifest names backup {} but lives in {dir}",
                m.id
            )));
        }
        if m.data_key()
            .map_or(true, |k| !k.starts_with(&layout::backup_dir(&m.id)))
        {
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
            return listing.latest(database).cloned().ok_or_else(|| {
                Error::NoBackups(
                    database
                        .map(|d| format!(" of database {d}"))
                        .unwrap_or_default(),
                )
            });
        }
        let id: BackupId = selector
            .parse()
            .map_err(|_| Error::BackupNotFound(selector.to_owned()))?;
        self.manifest(&id).await
    }

    async fn check_data_present(&self, m: &Manifest) -> Result<ObjectKey, Error> {
        let key = m.data_key().map_err(|e| Error::Manifest {
            id: m.id.to_string(),
            problem: e.to_string(),
        })?;
        match self.storage.head(&key).await {
            Ok(meta) if meta.size == m.stored_size => Ok(key),
            Ok(meta) => Err(Error::Integrity {
                id: m.id.to_string(),
                problem: if meta.size < m.stored_size {
                    format!(
                        "data object is truncated: {} bytes where the manifest says {}",
                        meta.size, m.stored_size
                    )
                } else {
                    format!(
                        "data object is {} bytes where the manifest says {} (appended to or replaced)",
                        meta.size, m.stored_size
                    )
                },
            }),
            Err(e) if e.kind() == StorageErrorKind::NotFound => Err(Error::Integrity {
                id: m.id.to_string(),
                problem: format!("backup is incomplete: data object {key} is missing"),
            }),
            Err(e) => Err(e.into()),
        }
    }

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
        let key = self.check_data_present(m).await?;
        self.check_keys(m, &key).await?;
        let mut sink: Box<dyn RestoreSink> = match checker {
            Some(c) => {
                c.check(&ArchiveInfo::new(m.format, m.pg_dump_major))
                    .await?
            }
            None => Box::new(NullSink),
        };
        match self.stream_verified(m, &key, sink.as_mut(), progress).await {
            Ok(()) => {
                let report = sink.finish().await.map_err(|e| {
                    Error::Dump(
                        e.with_kind(DumpErrorKind::BadArchive)
                            .context(format_args!("backup {}: archive check failed", m.id)),
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
        let mut cancel = std::pin::pin!(cancel);
        let key = self.check_data_present(m).await?;
        self.check_keys(m, &key).await?;
        if opts.verify_first {
            // A corrupted backup is caught before any database is touched.
            let got = tokio::select! {
                got = self.hash_object(&key) => got?,
                () = &mut cancel => return Err(Error::Cancelled),
            };
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
        let archive = ArchiveInfo::new(m.format, m.pg_dump_major);
        // A `begin` dropped half-way rolls back by the Restorer contract.
        let mut sink = tokio::select! {
            sink = restorer.begin(&archive, opts) => sink?,
            () = &mut cancel => return Err(Error::Cancelled),
        };
        let streamed = tokio::select! {
            res = self.stream_verified(m, &key, sink.as_mut(), progress) => res,
            () = &mut cancel => Err(Error::Cancelled),
        };
        match streamed {
            Ok(()) => tokio::select! {
                res = sink.finish() => Ok(res?),
                // `finish` dropped: the sink's drop rolls back.
                () = &mut cancel => Err(Error::Cancelled),
            },
            Err(e) => {
                sink.abort().await;
                Err(e)
            }
        }
    }

    /// Authenticates the manifest and checks that the keys open the data object, before any
    /// database is touched.
    async fn check_keys(&self, m: &Manifest, key: &ObjectKey) -> Result<(), Error> {
        let keyerr = |e: crate::crypto::KeyError| Error::Key(format!("backup {}: {e}", m.id));
        let Some(info) = &m.encryption else {
            if self.keys.expects_authentication() && !self.allow_unauthenticated {
                return Err(Error::Key(format!(
                    "backup {} is neither encrypted nor authenticated, but a passphrase or authentication key was given; refusing a possible substitute (pass --allow-unauthenticated to accept it)",
                    m.id
                )));
            }
            return Ok(());
        };
        // Keys first, so a wrong passphrase or identity is reported as such, not as tampering.
        let mut stream = self.storage.reader(key, Some(0..64 * 1024)).await?;
        let mut head = Vec::new();
        while let Some(chunk) = stream.next().await {
            head.extend_from_slice(&chunk?);
        }
        self.keys.check_header(&head).map_err(keyerr)?;
        match (
            self.keys.mac_key(info, m.id.as_str()).map_err(keyerr)?,
            &m.mac,
        ) {
            (Some(k), Some(mac)) => {
                if !mac_verify(&k, &m.mac_input(), mac) {
                    return Err(Error::Integrity {
                        id: m.id.to_string(),
                        problem: "manifest authentication failed: the manifest or its key was altered, or the key is wrong".to_owned(),
                    });
                }
            }
            (Some(_), None) => {
                return Err(Error::Integrity {
                    id: m.id.to_string(),
                    problem: "manifest authentication missing although the backup declares it"
                        .to_owned(),
                });
            }
            (None, _) => {
                if self.keys.expects_authentication() && !self.allow_unauthenticated {
                    return Err(Error::Key(format!(
                        "backup {} has an unauthenticated manifest (recipients without an authentication key); pass --allow-unauthenticated to accept it",
                        m.id
                    )));
                }
                tracing::warn!(backup = %m.id, "manifest is not authenticated (no authentication key was configured at backup time)");
            }
        }
        Ok(())
    }

    /// Streams a backup's plaintext into `sink`, holding back the last chunk until the stored
    /// size and sha256 and the plaintext sha256 have been checked, so that a sink committing
    /// at end of input never sees a complete corrupt archive.
    async fn stream_verified(
        &self,
        m: &Manifest,
        key: &ObjectKey,
        sink: &mut dyn RestoreSink,
        progress: &dyn Progress,
    ) -> Result<(), Error> {
        let mut stream = self.storage.reader(key, None).await?;
        let (in_tx, in_rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
        let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
        let outer = m.encryption.as_ref().map(|_| self.keys.stage());
        let decoder = codec::spawn_decoder(m.compression, outer, in_rx, out_tx);

        let feed = async move {
            let mut hasher = Sha256::new();
            let mut n = 0u64;
            let mut decoding = true;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                hasher.update(&chunk);
                n += chunk.len() as u64;
                // The decoder stops early on corrupt input or after the last frame; keep
                // hashing so the verdict covers every stored byte.
                if decoding && in_tx.send(chunk).await.is_err() {
                    decoding = false;
                }
            }
            Ok::<_, Error>((n, codec::hex(&hasher.finalize())))
        };
        let sink_ref = &mut *sink;
        let deliver = async move {
            let mut held: Option<Bytes> = None;
            let mut failed: Option<DumpError> = None;
            let mut plain = 0u64;
            let mut next_event = PROGRESS_EVERY;
            while let Some(chunk) = out_rx.recv().await {
                plain += chunk.len() as u64;
                if plain >= next_event {
                    next_event += PROGRESS_EVERY;
                    progress.event(&Event::Progress {
                        plain_bytes: plain,
                        stored_bytes: 0,
                    });
                }
                if failed.is_some() {
                    continue; // drain, so the integrity verdict can still be reached
                }
                if let Some(prev) = held.replace(chunk)
                    && let Err(e) = sink_ref.write(prev).await
                {
                    failed = Some(e);
                }
            }
            Ok::<_, Error>((held, failed))
        };
        let ((stored_size, stored_sha), (held, sink_failed)) = tokio::try_join!(feed, deliver)?;
        let decoded = decoder
            .await
            .map_err(|e| Error::Pipeline(format!("decoder task: {e}")))?;

        let integrity = |problem: String| Error::Integrity {
            id: m.id.to_string(),
            problem,
        };
        if stored_size != m.stored_size {
            return Err(integrity(format!(
                "read {stored_size} bytes, the manifest says {} (truncated or appended)",
                m.stored_size
            )));
        }
        if stored_sha != m.stored_sha256 {
            return Err(integrity(format!(
                "checksum mismatch: stored object has sha256 {stored_sha}, the manifest says {}",
                m.stored_sha256
            )));
        }
        let decoded = decoded.map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => Error::Key(format!("backup {}: {e}", m.id)),
            _ if m.encryption.is_some() => {
                integrity(format!("decryption or decompression failed: {e}"))
            }
            _ => integrity(format!("decompression failed: {e}")),
        })?;
        if decoded.plain_size != m.plain_size || decoded.plain_sha256 != m.plain_sha256 {
            return Err(integrity(format!(
                "decompressed dump does not match the manifest ({} bytes, sha256 {})",
                decoded.plain_size, decoded.plain_sha256
            )));
        }
        if let Some(e) = sink_failed {
            return Err(e.into());
        }
        if let Some(last) = held {
            sink.write(last).await?;
        }
        Ok(())
    }

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
    compression: Compression,
    outer: Option<OuterStage>,
    progress: &dyn Progress,
) -> Result<Sizes, Error> {
    let (in_tx, in_rx) = mpsc::channel::<EncodeMsg>(CHANNEL_DEPTH);
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let encoder = codec::spawn_encoder(compression, outer, in_rx, out_tx);

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
                            stored_bytes: 0,
                        });
                    }
                    if in_tx.send(EncodeMsg::Data(chunk)).await.is_err() {
                        return Ok(false); // the encoder failed; its error is reported below
                    }
                }
                None if total == 0 => {
                    return Err(Error::Dump(DumpError::new(
                        DumpErrorKind::Empty,
                        "pg_dump exited successfully but wrote nothing; refusing to record an empty backup",
                    )));
                }
                None => return Ok(in_tx.send(EncodeMsg::Finish).await.is_ok()),
            }
        }
    };
    let consume = async move {
        let mut hasher = Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = out_rx.recv().await {
            hasher.update(&chunk);
            n += chunk.len() as u64;
            writer.write(chunk).await?;
        }
        Ok::<_, Error>((n, codec::hex(&hasher.finalize())))
    };
    let (_, (stored_size, stored_sha256)) = tokio::try_join!(produce, consume)?;
    let digests = encoder
        .await
        .map_err(|e| Error::Pipeline(format!("encoder task: {e}")))?
        .map_err(|e| Error::Pipeline(format!("compression failed: {e}")))?;
    Ok(Sizes {
        plain_size: digests.plain_size,
        plain_sha256: digests.plain_sha256,
        stored_size,
        stored_sha256,
    })
}

/// Accepts and discards a plaintext archive (verify without an archive checker).
#[derive(Debug)]
struct NullSink;

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

/// How long a lease lasts without a refresh, how often it is refreshed, and how much clock
/// skew between hosts is tolerated before another host treats it as expired.
const LEASE_TTL: time::Duration = time::Duration::minutes(30);
const LEASE_REFRESH: std::time::Duration = std::time::Duration::from_secs(5 * 60);
const CLOCK_SKEW: time::Duration = time::Duration::minutes(15);

#[derive(serde::Serialize, serde::Deserialize)]
struct LeaseRecord {
    id: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

fn lease_key(id: &str) -> ObjectKey {
    ObjectKey::parse("locks")
        .and_then(|k| k.join(&format!("{id}.json")))
        .expect("ids are valid segments")
}

async fn write_lease(storage: &dyn Storage, id: &str) -> Result<(), Error> {
    let rec = LeaseRecord {
        id: id.to_owned(),
        expires_at: OffsetDateTime::now_utc() + LEASE_TTL,
    };
    let body = serde_json::to_vec(&rec).expect("lease serializes");
    storage
        .put(&lease_key(id), Bytes::from(body), WriteOptions::default())
        .await?;
    Ok(())
}

/// A backup's lease: written at start, refreshed in the background, deleted at the end.
struct Lease {
    storage: Arc<dyn Storage>,
    id: String,
    refresher: tokio::task::JoinHandle<()>,
}

impl Lease {
    async fn acquire(storage: Arc<dyn Storage>, id: &BackupId) -> Result<Self, Error> {
        write_lease(storage.as_ref(), id.as_str()).await?;
        let (s, i) = (Arc::clone(&storage), id.to_string());
        let refresher = tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE_REFRESH).await;
                if let Err(e) = write_lease(s.as_ref(), &i).await {
                    tracing::warn!(backup = %i, error = %e, "could not refresh the backup lease");
                }
            }
        });
        Ok(Self {
            storage,
            id: id.to_string(),
            refresher,
        })
    }

    async fn release(self) {
        self.refresher.abort();
        let _ = self.storage.delete(&lease_key(&self.id)).await;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A cancelled backup stops refreshing; its lease then simply expires.
        self.refresher.abort();
    }
}

/// Ids with a lease that has not expired, even on a clock up to `CLOCK_SKEW` ahead of the
/// writer's. With `cleanup`, expired leases are removed.
async fn live_leases(
    storage: &dyn Storage,
    now: OffsetDateTime,
    cleanup: bool,
) -> Result<Vec<String>, Error> {
    let prefix = ObjectKey::parse("locks").expect("static key");
    let mut live = Vec::new();
    for meta in storage.list(Some(&prefix)).await? {
        let Ok(bytes) = storage.get_bytes(&meta.key).await else {
            continue;
        };
        match serde_json::from_slice::<LeaseRecord>(&bytes) {
            Ok(rec) if rec.expires_at + CLOCK_SKEW > now => live.push(rec.id),
            _ if cleanup => {
                let _ = storage.delete(&meta.key).await;
            }
            _ => {}
        }
    }
    Ok(live)
}
