//! Reading a backup back: presence and size, keys and authentication, and the verified
//! stream shared by verify and restore.

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{CHANNEL_DEPTH, PROGRESS_EVERY, Repository};
use crate::codec::{self};
use crate::crypto::mac_verify;
use crate::dump::{DumpError, RestoreSink};
use crate::error::Error;
use crate::events::{Event, Progress};
use crate::key::ObjectKey;
use crate::manifest::Manifest;
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

    pub(super) async fn check_data_present(&self, m: &Manifest) -> Result<ObjectKey, Error> {
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

    /// Authenticates the manifest and checks that the keys open the data object, before any
    /// database is touched.
    pub(super) async fn check_keys(&self, m: &Manifest, key: &ObjectKey) -> Result<(), Error> {
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
    pub(super) async fn stream_verified(
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
}
