//! Repository operations, one module each: the backup request (the one entry point of every
//! kind of backup), backup (and its commit protocol), list, verify,
//! verify_all, restore, prune, removal (delete and gc) and leases. The key layout lives in [`crate::layout`].

mod backup;
mod cluster;
mod directory;
mod gc;
mod incremental;
mod lease;
mod list;
mod physical;
mod prune;
mod read;
mod request;
mod restore;
mod verify;
mod verify_all;

pub use backup::{BackupOptions, BackupReport};
pub use cluster::ClusterBackup;
pub use gc::{GcReport, GcSkipped};
pub use list::{InvalidBackup, Leftover, Listing};
pub use prune::{PruneAction, PruneDecision, PruneOptions, PruneReport, PruneSet};
pub use request::{BackupOutcome, BackupRequest, BackupSource};
pub use verify::VerifyReport;
pub use verify_all::{VerifyAllReport, VerifyOutcome};

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::{self};
use crate::crypto::Decryption;
use crate::error::Error;
use crate::layout;
use crate::storage::{Storage, StorageExt, WriteOptions};

/// Progress events are emitted every this many bytes.
const PROGRESS_EVERY: u64 = 4 << 20;
/// Depth of the bounded channels between the pipeline's stages.
const CHANNEL_DEPTH: usize = 4;
/// Bytes the queue from the source (pg_dump, a base backup's tar) into the encoder may hold,
/// chunks held by the plaintext hash thread included: a producer's burst (fast COPY, then
/// pauses between tables) fills it while compression catches up, and memory stays bounded
/// whatever the chunk sizes (docs/benchmarks.md: the burst stand-in and peak RSS).
const INPUT_BUDGET: usize = 8 << 20;
/// The same queue with a spill file behind it ([`crate::SpillOptions`]): the file takes the
/// bursts, so the queue only keeps the encoder fed, and its memory is left to the file's
/// read-back buffers (which live in another malloc arena than the source's reads).
const INPUT_BUDGET_SPILLING: usize = 3 << 20;

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

    /// The keys backups are read with (shared).
    pub(crate) fn keys(&self) -> Arc<Decryption> {
        Arc::clone(&self.keys)
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
        let key = layout::probe_key(&codec::hex(&rnd));
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
}
