//! Reading a backup back: presence and size, keys and authentication, and the verified
//! stream shared by verify and restore.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{CHANNEL_DEPTH, PROGRESS_EVERY, Repository};
use crate::codec::{self};
use crate::crypto::mac_verify;
use crate::crypto::{KeyError, KeyErrorKind};
use crate::dump::{DumpError, RestoreSink};
use crate::error::{Error, IntegrityProblem};
use crate::events::{Event, Progress};
use crate::key::ObjectKey;
use crate::manifest::{Artifact, Manifest};
use crate::storage::{Storage, StorageErrorKind};

impl Repository {
    pub(super) async fn hash_object(&self, key: &ObjectKey) -> Result<String, Error> {
        let mut stream = self.storage.reader(key, None).await?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk?);
        }
        Ok(codec::hex(&hasher.finalize()))
    }

    /// The artifact's object exists with the size the manifest records.
    pub(super) async fn check_present(
        &self,
        m: &Manifest,
        a: &Artifact,
    ) -> Result<ObjectKey, Error> {
        let key = a.key().map_err(|e| Error::Manifest {
            id: m.id.to_string(),
            problem: e.to_string(),
        })?;
        let integrity = |problem| Error::Integrity {
            id: m.id.clone(),
            problem,
        };
        match self.storage.head(&key).await {
            Ok(meta) if meta.size == a.stored_size => Ok(key),
            Ok(meta) => Err(integrity(IntegrityProblem::SizeMismatch {
                key: key.to_string(),
                expected: a.stored_size,
                actual: meta.size,
            })),
            Err(e) if e.kind() == StorageErrorKind::NotFound => {
                Err(integrity(IntegrityProblem::Missing {
                    key: key.to_string(),
                }))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every artifact is present with its recorded size; returns their keys in order.
    pub(super) async fn check_all_present(&self, m: &Manifest) -> Result<Vec<ObjectKey>, Error> {
        let mut keys = Vec::with_capacity(m.artifacts.len());
        for a in &m.artifacts {
            keys.push(self.check_present(m, a).await?);
        }
        Ok(keys)
    }

    /// The dump artifact of a single-database backup.
    pub(super) fn dump_artifact<'m>(&self, m: &'m Manifest) -> Result<&'m Artifact, Error> {
        m.dump().ok_or_else(|| Error::Manifest {
            id: m.id.to_string(),
            problem: "the backup holds no database dump".to_owned(),
        })
    }

    /// Authenticates the manifest and checks that the keys open the data object, before any
    /// database is touched.
    pub(super) async fn check_keys(&self, m: &Manifest, key: &ObjectKey) -> Result<(), Error> {
        let keyerr = |source: KeyError| Error::Key {
            id: Some(m.id.clone()),
            source,
        };
        let Some(info) = &m.encryption else {
            if self.keys.expects_authentication() && !self.allow_unauthenticated {
                return Err(keyerr(KeyError::of(
                    KeyErrorKind::Unauthenticated,
                    "neither encrypted nor authenticated, but a passphrase or authentication key was given; refusing a possible substitute",
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
                if !mac_verify(&k, m.mac_input(), mac) {
                    return Err(Error::Integrity {
                        id: m.id.clone(),
                        problem: IntegrityProblem::AuthenticationFailed,
                    });
                }
            }
            (Some(_), None) => {
                return Err(Error::Integrity {
                    id: m.id.clone(),
                    problem: IntegrityProblem::AuthenticationMissing,
                });
            }
            (None, _) => {
                if self.keys.expects_authentication() && !self.allow_unauthenticated {
                    return Err(keyerr(KeyError::of(
                        KeyErrorKind::Unauthenticated,
                        "the backup has an unauthenticated manifest (recipients without an authentication key)",
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
    pub(super) async fn stream_verified(
        &self,
        m: &Manifest,
        a: &Artifact,
        key: &ObjectKey,
        sink: &mut dyn RestoreSink,
        progress: &dyn Progress,
    ) -> Result<(), Error> {
        let mut stream = self.storage.reader(key, None).await?;
        let (in_tx, in_rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
        let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
        let outer = a.encrypted.then(|| self.keys.stage());
        let decoder = codec::spawn_decoder(a.compression, outer, in_rx, out_tx);
        // Stored bytes read so far, for progress events emitted by the delivering side.
        let stored_read = AtomicU64::new(0);
        let stored_read = &stored_read;

        let feed = async move {
            let mut hasher = Sha256::new();
            let mut n = 0u64;
            let mut decoding = true;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                hasher.update(&chunk);
                n += chunk.len() as u64;
                stored_read.store(n, Ordering::Relaxed);
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
                        stored_bytes: stored_read.load(Ordering::Relaxed),
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
            .map_err(|source| crate::error::PipelineError::Task {
                stage: "decoder",
                source,
            })?;

        let integrity = |problem| Error::Integrity {
            id: m.id.clone(),
            problem,
        };
        if stored_size != a.stored_size {
            return Err(integrity(IntegrityProblem::SizeMismatch {
                key: a.key.clone(),
                expected: a.stored_size,
                actual: stored_size,
            }));
        }
        if stored_sha != a.stored_sha256 {
            return Err(integrity(IntegrityProblem::ChecksumMismatch {
                key: a.key.clone(),
                expected: a.stored_sha256.clone(),
                actual: stored_sha,
            }));
        }
        let decoded = decoded.map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => Error::Key {
                id: Some(m.id.clone()),
                source: KeyError::of(KeyErrorKind::WrongKey, e.to_string()),
            },
            _ => integrity(IntegrityProblem::Undecodable {
                key: a.key.clone(),
                cause: e.to_string(),
            }),
        })?;
        if decoded.plain_size != a.plain_size || decoded.plain_sha256 != a.plain_sha256 {
            return Err(integrity(IntegrityProblem::PlainMismatch {
                key: a.key.clone(),
                actual_size: decoded.plain_size,
                actual_sha256: decoded.plain_sha256,
            }));
        }
        if let Some(e) = sink_failed {
            return Err(e.into());
        }
        if let Some(last) = held {
            sink.write(last).await?;
        }
        Ok(())
    }
}
