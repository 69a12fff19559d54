//! `archive_command`: push one WAL file, and optionally the next ones PostgreSQL has ready.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::future::join_all;
use pgb_wal::{WalFileKind, WalFileName};

use super::object::{self, Header, MAX_HEADER};
use super::{WalArchive, WalError, segment};
use crate::codec::Compression;
use crate::crypto::{AuthKey, Encryption, mac_hex};
use crate::layout;
use crate::storage::{StorageErrorKind, StorageExt, WriteOptions};

/// How WAL files are stored.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct WalPushOptions {
    /// Compression of the stored body.
    pub compression: Compression,
    /// age encryption to recipients (a passphrase is refused: see
    /// [`WalError::PassphraseEncryption`]).
    pub encryption: Option<Encryption>,
    /// Authenticates each stored file (else the encryption's authentication key, if any).
    pub auth_key: Option<AuthKey>,
    /// The cluster the files must belong to. Required for files without a segment header
    /// (timeline history and backup history files); checked against every segment's header.
    pub system_identifier: Option<u64>,
}

impl WalPushOptions {
    /// Sets the compression.
    #[must_use]
    pub fn with_compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }

    /// Encrypts to recipients.
    #[must_use]
    pub fn with_encryption(mut self, e: Option<Encryption>) -> Self {
        self.encryption = e;
        self
    }

    /// Authenticates with `key`.
    #[must_use]
    pub fn with_auth_key(mut self, key: Option<AuthKey>) -> Self {
        self.auth_key = key;
        self
    }

    /// The cluster the files belong to.
    #[must_use]
    pub fn with_system_identifier(mut self, id: Option<u64>) -> Self {
        self.system_identifier = id;
        self
    }

    fn mac_key(&self) -> Option<&[u8; 32]> {
        self.auth_key
            .as_ref()
            .or_else(|| self.encryption.as_ref().and_then(Encryption::auth_key))
            .map(AuthKey::bytes)
    }
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushOutcome {
    /// Stored now.
    Stored,
    /// Already in the archive with identical content (PostgreSQL re-archives after a crash;
    /// `--parallel` pushed it ahead): success, nothing written.
    AlreadyArchived,
}

/// One pushed file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct WalPushReport {
    /// The file's name.
    pub file: String,
    /// The cluster it belongs to.
    pub system_identifier: u64,
    /// Where it is stored.
    pub key: String,
    /// Stored now or already there.
    pub outcome: PushOutcome,
    /// Size of the file.
    pub plain_size: u64,
    /// Size of the stored object (0 when it was already archived).
    pub stored_size: u64,
}

impl WalArchive {
    /// Archives the file at `path` (the `%p` of `archive_command`) under its file name.
    ///
    /// # Errors
    /// See [`WalArchive::push`]; [`WalError::Io`] when the file cannot be read.
    pub async fn push_file(
        &self,
        path: &Path,
        opts: &WalPushOptions,
    ) -> Result<WalPushReport, WalError> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        // Refuse a name that is not WAL before reading anything.
        name.parse::<WalFileName>()?;
        let contents = tokio::fs::read(path).await.map_err(|source| WalError::Io {
            path: path.to_owned(),
            source,
        })?;
        self.push(&name, Bytes::from(contents), opts).await
    }

    /// Archives `contents` as WAL file `name`: checks a segment's header against its name
    /// (and the expected cluster), then stores it create-only. A file already archived with
    /// the same content is a success; with different content it is [`WalError::Conflict`]
    /// and the archived one is left untouched.
    ///
    /// # Errors
    /// [`WalError`]: a bad name or segment, another cluster's file, a conflict, storage.
    pub async fn push(
        &self,
        name: &str,
        contents: Bytes,
        opts: &WalPushOptions,
    ) -> Result<WalPushReport, WalError> {
        if opts
            .encryption
            .as_ref()
            .is_some_and(Encryption::is_passphrase)
        {
            return Err(WalError::PassphraseEncryption);
        }
        let (key, system_identifier) = Self::checked_key(name, &contents, opts)?;
        let plain_sha256 = object::sha256_hex(&contents);
        let report = |outcome, stored_size| WalPushReport {
            file: name.to_owned(),
            system_identifier,
            key: key.to_string(),
            outcome,
            plain_size: contents.len() as u64,
            stored_size,
        };
        if let Some(stored) = self.stored_header(&key).await? {
            return self
                .judge_existing(name, &stored, &plain_sha256, contents.len() as u64)
                .map(|()| report(PushOutcome::AlreadyArchived, 0));
        }

        let stored = stored_object(name, system_identifier, &contents, &plain_sha256, opts).await?;
        let stored_size = stored.len() as u64;
        match self
            .storage
            .put(&key, Bytes::from(stored), WriteOptions::create_new())
            .await
        {
            Ok(_) => {
                tracing::info!(file = name, key = %key, stored_size, "WAL file archived");
                Ok(report(PushOutcome::Stored, stored_size))
            }
            // Another push of the same file won the race (or a retry of ours landed).
            Err(e) if e.kind() == StorageErrorKind::AlreadyExists => {
                let stored = self
                    .stored_header(&key)
                    .await?
                    .ok_or_else(|| WalError::Storage(e))?;
                self.judge_existing(name, &stored, &plain_sha256, contents.len() as u64)
                    .map(|()| report(PushOutcome::AlreadyArchived, 0))
            }
            Err(e) => Err(WalError::Storage(e)),
        }
    }

    /// Checks `contents` as WAL file `name` would be checked by [`WalArchive::push`] (name,
    /// segment header, cluster) and returns its key and system identifier.
    pub(super) fn checked_key(
        name: &str,
        contents: &[u8],
        opts: &WalPushOptions,
    ) -> Result<(crate::key::ObjectKey, u64), WalError> {
        let file: WalFileName = name.parse()?;
        let system_identifier = match file.kind() {
            WalFileKind::Segment | WalFileKind::Partial => {
                let found =
                    segment::check(contents, &file).map_err(|problem| WalError::BadSegment {
                        name: name.to_owned(),
                        problem,
                    })?;
                match opts.system_identifier {
                    Some(expected) if expected != found => {
                        return Err(WalError::OtherCluster {
                            name: name.to_owned(),
                            expected,
                            found,
                        });
                    }
                    _ => found,
                }
            }
            WalFileKind::BackupHistory | WalFileKind::TimelineHistory => opts
                .system_identifier
                .ok_or_else(|| WalError::UnknownCluster {
                    name: name.to_owned(),
                })?,
        };
        Ok((layout::wal_key(system_identifier, &file), system_identifier))
    }

    /// Pushes up to `limit` files PostgreSQL has marked ready in `pg_wal` (its
    /// `archive_status/*.ready`) that sort after `after`, side by side: the archiver then
    /// finds them archived and moves on without waiting for the store. Failures are left for
    /// PostgreSQL's own call for that file to report.
    pub async fn push_ready_ahead(
        &self,
        pg_wal: &Path,
        after: &str,
        limit: usize,
        opts: &WalPushOptions,
    ) -> Vec<Result<WalPushReport, WalError>> {
        if limit == 0 {
            return Vec::new();
        }
        let status = pg_wal.join("archive_status");
        let Ok(mut entries) = tokio::fs::read_dir(&status).await else {
            return Vec::new();
        };
        let mut ready = Vec::new();
        while let Ok(Some(e)) = entries.next_entry().await {
            let n = e.file_name();
            if let Some(name) = n.to_str().and_then(|n| n.strip_suffix(".ready")) {
                // History files sort before segments of their timeline and are archived
                // first by PostgreSQL; push-ahead is for segments.
                if name > after
                    && name
                        .parse::<WalFileName>()
                        .is_ok_and(|f| f.kind() == WalFileKind::Segment)
                {
                    ready.push(name.to_owned());
                }
            }
        }
        ready.sort();
        ready.truncate(limit);
        let paths: Vec<PathBuf> = ready.iter().map(|name| pg_wal.join(name)).collect();
        join_all(paths.iter().map(|p| self.push_file(p, opts))).await
    }

    /// The header of the object at `key`, or `None` when there is none.
    async fn stored_header(&self, key: &crate::key::ObjectKey) -> Result<Option<Header>, WalError> {
        let meta = match self.storage.head(key).await {
            Ok(m) => m,
            Err(e) if e.kind() == StorageErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let range = 0..meta.size.min(MAX_HEADER as u64);
        let mut stream = self.storage.reader(key, Some(range)).await?;
        let mut head = Vec::new();
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            head.extend_from_slice(&chunk?);
        }
        let name = key.file_name().to_owned();
        Header::parse(&head)
            .map(|(h, _)| Some(h))
            .map_err(|problem| WalError::Corrupt {
                name: name.clone(),
                problem: format!(
                    "{problem}; an object pgb did not write is in its place (left untouched)"
                ),
            })
    }

    fn judge_existing(
        &self,
        name: &str,
        stored: &Header,
        pushed_sha256: &str,
        pushed_size: u64,
    ) -> Result<(), WalError> {
        if stored.plain_sha256 == pushed_sha256 && stored.plain_size == pushed_size {
            tracing::info!(
                file = name,
                "WAL file already archived with identical content"
            );
            Ok(())
        } else {
            tracing::error!(
                file = name,
                "WAL file already archived with DIFFERENT content"
            );
            Err(WalError::Conflict {
                name: name.to_owned(),
                stored: stored.plain_sha256.clone(),
                pushed: pushed_sha256.to_owned(),
            })
        }
    }
}

/// The stored object of WAL file `name`: the header line (size, sha256, HMAC) and the body
/// compressed and encrypted as `opts` says. The one encoder of `push` and of the stream's
/// partial segments.
pub(super) async fn stored_object(
    name: &str,
    system_identifier: u64,
    contents: &Bytes,
    plain_sha256: &str,
    opts: &WalPushOptions,
) -> Result<Vec<u8>, WalError> {
    if opts
        .encryption
        .as_ref()
        .is_some_and(Encryption::is_passphrase)
    {
        return Err(WalError::PassphraseEncryption);
    }
    let mut header = Header {
        name: name.to_owned(),
        plain_size: contents.len() as u64,
        plain_sha256: plain_sha256.to_owned(),
        compression: opts.compression,
        encrypted: opts.encryption.is_some(),
        mac: None,
    };
    header.mac = opts
        .mac_key()
        .map(|k| mac_hex(k, header.mac_input(system_identifier).as_bytes()));
    let outer = opts.encryption.as_ref().map(Encryption::stage);
    let compression = opts.compression;
    let data = contents.clone();
    let body = tokio::task::spawn_blocking(move || object::encode(&data, compression, outer))
        .await
        .map_err(|e| WalError::Io {
            path: PathBuf::from(name),
            source: std::io::Error::other(e),
        })?
        .map_err(|source| WalError::Io {
            path: PathBuf::from(name),
            source,
        })?;
    let mut stored = header.line().into_bytes();
    stored.extend_from_slice(&body);
    Ok(stored)
}
