//! `restore_command`: fetch one WAL file, verified, and the next segments ahead into a spool.

use std::path::{Path, PathBuf};

use futures_util::future::join_all;
use pgb_wal::{WalFileKind, WalFileName};

use super::object::{self, Header};
use super::{WalArchive, WalError, segment};
use crate::crypto::mac_verify;
use crate::layout;
use crate::storage::StorageExt;

/// The largest stored WAL object read: a 1 GiB segment (PostgreSQL's largest) plus its header.
const MAX_OBJECT: u64 = (1 << 30) + 4096;

/// How to fetch.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct WalFetchOptions {
    /// A directory (outside `pg_wal`) where the next segments are fetched ahead, verified,
    /// and taken from when PostgreSQL asks for them. `None`: no prefetch.
    pub spool: Option<PathBuf>,
    /// How many segments to fetch ahead, side by side.
    pub prefetch: usize,
}

impl WalFetchOptions {
    /// Prefetches `count` segments into `spool`.
    #[must_use]
    pub fn with_prefetch(mut self, spool: PathBuf, count: usize) -> Self {
        self.spool = Some(spool);
        self.prefetch = count;
        self
    }
}

/// One fetched file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct WalFetchReport {
    /// The file's name.
    pub file: String,
    /// Its size.
    pub plain_size: u64,
    /// Taken from the spool (fetched ahead by an earlier call).
    pub from_spool: bool,
    /// Segments fetched ahead into the spool by this call.
    pub prefetched: usize,
}

impl WalArchive {
    /// Fetches WAL file `name` of cluster `system_identifier` into `dest` (the `%p` of
    /// `restore_command`), verified: size, sha256, the authentication when the repository has
    /// an authentication key, and a segment's header against its name and cluster. Then (or
    /// meanwhile) fetches the next segments into the spool.
    ///
    /// # Errors
    /// [`WalError::NotFound`] when the archive does not have it (the end of the archive);
    /// anything else means recovery must stop.
    pub async fn fetch(
        &self,
        system_identifier: u64,
        name: &str,
        dest: &Path,
        opts: &WalFetchOptions,
    ) -> Result<WalFetchReport, WalError> {
        let file: WalFileName = name.parse()?;
        let spool = opts
            .spool
            .as_deref()
            .filter(|_| opts.prefetch > 0 && file.kind() == WalFileKind::Segment);
        if let Some(spool) = spool {
            let spooled = spool.join(name);
            if let Ok(size) = tokio::fs::metadata(&spooled).await.map(|m| m.len()) {
                move_file(&spooled, dest).await?;
                let prefetched = self
                    .prefetch(system_identifier, &file, size, spool, opts.prefetch)
                    .await;
                return Ok(WalFetchReport {
                    file: name.to_owned(),
                    plain_size: size,
                    from_spool: true,
                    prefetched,
                });
            }
        }
        let data = self.fetch_verified(system_identifier, &file).await?;
        write_atomically(dest, &data).await?;
        let prefetched = match spool {
            Some(spool) => {
                self.prefetch(
                    system_identifier,
                    &file,
                    data.len() as u64,
                    spool,
                    opts.prefetch,
                )
                .await
            }
            None => 0,
        };
        Ok(WalFetchReport {
            file: name.to_owned(),
            plain_size: data.len() as u64,
            from_spool: false,
            prefetched,
        })
    }

    /// Fetches up to `count` segments after `file` into `spool` side by side, skipping those
    /// already there, and removes spooled segments before `file` (consumed or skipped).
    /// Returns how many were fetched; failures (the end of the archive among them) are left
    /// for PostgreSQL's own request of that segment to report.
    async fn prefetch(
        &self,
        system_identifier: u64,
        file: &WalFileName,
        segment_size: u64,
        spool: &Path,
        count: usize,
    ) -> usize {
        if tokio::fs::create_dir_all(spool).await.is_err() {
            return 0;
        }
        self.sweep_spool(file, segment_size, spool).await;
        let mut next = Vec::with_capacity(count);
        let mut cur = file.clone();
        for _ in 0..count {
            let Some(n) = cur.next_segment(segment_size) else {
                break;
            };
            next.push(n.clone());
            cur = n;
        }
        let fetched = join_all(next.iter().map(|n| async move {
            let path = spool.join(n.as_str());
            if tokio::fs::metadata(&path).await.is_ok() {
                return false;
            }
            match self.fetch_verified(system_identifier, n).await {
                Ok(data) => write_atomically(&path, &data).await.is_ok(),
                Err(e) => {
                    tracing::debug!(file = n.as_str(), error = %e, "prefetch stopped");
                    false
                }
            }
        }))
        .await;
        fetched.into_iter().filter(|&f| f).count()
    }

    /// Removes spooled segments of `file`'s timeline that come before it.
    async fn sweep_spool(&self, file: &WalFileName, segment_size: u64, spool: &Path) {
        let Some(current) = file.segment_number(segment_size) else {
            return;
        };
        let Ok(mut entries) = tokio::fs::read_dir(spool).await else {
            return;
        };
        while let Ok(Some(e)) = entries.next_entry().await {
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(f) = name.parse::<WalFileName>() else {
                continue;
            };
            if f.kind() == WalFileKind::Segment
                && f.timeline() == file.timeline()
                && f.segment_number(segment_size).is_some_and(|n| n < current)
            {
                let _ = tokio::fs::remove_file(e.path()).await;
            }
        }
    }

    /// Downloads and checks one archived file; returns its plaintext.
    ///
    /// # Errors
    /// `NotFound`, `Corrupt`, `Unauthenticated`, `Key`, `Storage`.
    pub(super) async fn fetch_verified(
        &self,
        system_identifier: u64,
        file: &WalFileName,
    ) -> Result<Vec<u8>, WalError> {
        let name = file.as_str();
        let key = layout::wal_key(system_identifier, file);
        let corrupt = |problem: String| WalError::Corrupt {
            name: name.to_owned(),
            problem,
        };
        let stored = self
            .storage
            .get_bytes_limited(&key, MAX_OBJECT)
            .await
            .map_err(|e| WalError::storage(name, e))?
            .ok_or_else(|| corrupt("larger than any WAL file".to_owned()))?;
        let (header, body) = Header::parse(&stored).map_err(corrupt)?;
        if header.name != name {
            return Err(corrupt(format!("it holds {} instead", header.name)));
        }
        if let Some(k) = self.keys.auth_key() {
            let ok = header.mac.as_deref().is_some_and(|mac| {
                mac_verify(
                    k.bytes(),
                    header.mac_input(system_identifier).as_bytes(),
                    mac,
                )
            });
            if !ok {
                return Err(WalError::Unauthenticated {
                    name: name.to_owned(),
                    problem: if header.mac.is_some() {
                        "its HMAC does not match (wrong authentication key, or the object was altered or moved)".to_owned()
                    } else {
                        "it has no HMAC although an authentication key was given (written without the key, or replaced)".to_owned()
                    },
                });
            }
        }
        if header.encrypted && !self.keys.has_keys() {
            return Err(WalError::Key(crate::crypto::KeyError::of(
                crate::crypto::KeyErrorKind::MissingIdentity,
                "the archived WAL is encrypted, and no identity was given (--identity-file)",
            )));
        }
        let outer = header.encrypted.then(|| self.keys.stage());
        let (compression, limit) = (header.compression, header.plain_size);
        let body = stored.slice(body..);
        let plain =
            tokio::task::spawn_blocking(move || object::decode(body, compression, outer, limit))
                .await
                .map_err(|e| corrupt(format!("decoder failed: {e}")))?
                .map_err(|e| {
                    if e.kind() == std::io::ErrorKind::PermissionDenied {
                        WalError::Key(crate::crypto::KeyError::of(
                            crate::crypto::KeyErrorKind::WrongKey,
                            e.to_string(),
                        ))
                    } else {
                        corrupt(format!("cannot decode: {e}"))
                    }
                })?;
        if plain.len() as u64 != header.plain_size {
            return Err(corrupt(format!(
                "{} bytes, the header says {}",
                plain.len(),
                header.plain_size
            )));
        }
        let sha = object::sha256_hex(&plain);
        if sha != header.plain_sha256 {
            return Err(corrupt(format!(
                "sha256 {sha} does not match the archived {}",
                header.plain_sha256
            )));
        }
        if matches!(file.kind(), WalFileKind::Segment | WalFileKind::Partial) {
            let found = segment::check(&plain, file).map_err(corrupt)?;
            if found != system_identifier {
                return Err(corrupt(format!(
                    "it belongs to the cluster {found}, not {system_identifier}"
                )));
            }
        }
        Ok(plain)
    }
}

/// Writes `data` to `dest` through a temporary file beside it and a rename, so PostgreSQL
/// (or a later fetch from the spool) never sees a partial file.
async fn write_atomically(dest: &Path, data: &[u8]) -> Result<(), WalError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| WalError::Io { path, source }
    };
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("wal");
    let tmp = dest.with_file_name(format!(".{name}.pgb-{}", std::process::id()));
    tokio::fs::write(&tmp, data).await.map_err(io(&tmp))?;
    if let Err(e) = tokio::fs::rename(&tmp, dest).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io(dest)(e));
    }
    Ok(())
}

/// Moves a spooled file to `dest` (a rename, or a copy across file systems).
async fn move_file(from: &Path, dest: &Path) -> Result<(), WalError> {
    if tokio::fs::rename(from, dest).await.is_ok() {
        return Ok(());
    }
    let data = tokio::fs::read(from).await.map_err(|source| WalError::Io {
        path: from.to_owned(),
        source,
    })?;
    write_atomically(dest, &data).await?;
    let _ = tokio::fs::remove_file(from).await;
    Ok(())
}
