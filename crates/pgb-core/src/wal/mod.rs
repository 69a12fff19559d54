//! The WAL archive: `archive_command` and `restore_command` as library calls.
//!
//! Each file PostgreSQL archives is stored once, under its own name, at
//! `wal/<system id>/<TLI>/<name>` ([`layout::wal_key`]), as one self-describing object
//! (see `object.rs`): a header line with the plaintext's size and sha256 (and an HMAC with an
//! authentication key), then the file compressed and encrypted by the backup pipeline's
//! stages. The write is create-only, so an interrupted push leaves nothing that looks
//! archived, and a second push of the same name is judged by comparing digests:
//! PostgreSQL's archive contract (identical content succeeds, different content fails and
//! the stored file stays untouched; timeline history files are never replaced).

mod fetch;
mod object;
mod push;
mod reach;
pub(crate) mod retain;
mod segment;
mod stream;
mod verify;
pub(crate) mod window;

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::StreamExt;

pub use fetch::{WalFetchOptions, WalFetchReport};
pub use push::{PushOutcome, WalPushOptions, WalPushReport};
pub use reach::{Reach, TimelineSpan, WalReach};
pub use retain::{WalRange, WalRetention};
pub use stream::{PartialUpload, SpoolPass, SpoolUploader};
pub use verify::{WalGap, WalTimelineReport, WalVerifyReport};
pub use window::{
    ArchivedCommit, ArchivedSegment, COMMIT_SEARCH_SEGMENTS, ClusterWindow, CommitTimes,
    RecoverableRange, TimelineWindow, UnrecoverableBackup, WindowGap,
};

use crate::crypto::{Decryption, KeyError};
use crate::layout;
use crate::repo::Repository;
use crate::storage::{Storage, StorageError, StorageErrorKind};

/// The WAL archive of a repository.
#[derive(Debug, Clone)]
pub struct WalArchive {
    storage: Arc<dyn Storage>,
    keys: Arc<Decryption>,
}

/// Why a WAL operation failed. [`WalError::is_not_found`] is the one outcome
/// `restore_command` reports as "no such file" (the end of the archive); every other error
/// must stop recovery rather than end it early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// The name is none of the WAL file forms.
    #[error(transparent)]
    NotWalFile(#[from] pgb_wal::InvalidWalFileName),
    /// A segment whose first page does not match its name.
    #[error("{name} is not a valid WAL segment: {problem}; nothing was archived")]
    BadSegment {
        /// The file.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// A file of another cluster than the one expected.
    #[error(
        "{name} belongs to the cluster with system identifier {found}, not {expected}: this \
         archive (or --system-id) is another cluster's; nothing was archived"
    )]
    OtherCluster {
        /// The file.
        name: String,
        /// The system identifier expected.
        expected: u64,
        /// The one in the file.
        found: u64,
    },
    /// No system identifier for a file without a segment header.
    #[error(
        "cannot tell which cluster {name} belongs to: run pgb wal push from the data directory \
         (it reads global/pg_control) or give --system-id"
    )]
    UnknownCluster {
        /// The file.
        name: String,
    },
    /// Already archived with different content.
    #[error(
        "{name} is already archived with different content (stored sha256 {stored}, this file \
         {pushed}); the archived file was left untouched. Two servers are archiving the same \
         timeline into one repository (a split brain, or a restored copy with archiving on): \
         stop one of them and check which holds the real history"
    )]
    Conflict {
        /// The file.
        name: String,
        /// sha256 of the archived plaintext.
        stored: String,
        /// sha256 of the file pushed now.
        pushed: String,
    },
    /// Not in the archive.
    #[error("{name} is not in the archive")]
    NotFound {
        /// The file.
        name: String,
    },
    /// The stored object is damaged or not what its name says.
    #[error("archived {name} is unusable: {problem}")]
    Corrupt {
        /// The file.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// The stored object's authentication failed or is missing.
    #[error("archived {name} failed authentication: {problem}")]
    Unauthenticated {
        /// The file.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// Passphrase encryption was asked for WAL.
    #[error(
        "WAL is encrypted to age recipients, not with a passphrase (a passphrase costs a key \
         derivation per segment): use --recipient/--recipients-file (pgb key generate) and \
         --auth-key-file"
    )]
    PassphraseEncryption,
    /// Keys missing or wrong.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// Several clusters in the archive and none chosen.
    #[error(
        "the archive holds WAL of {count} clusters ({list}); give --system-id",
        count = found.len(),
        list = found.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    AmbiguousCluster {
        /// The system identifiers found.
        found: Vec<u64>,
    },
}

impl WalError {
    /// Whether the file is simply not archived (the end of the archive for recovery).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    fn storage(name: &str, e: StorageError) -> Self {
        if e.kind() == StorageErrorKind::NotFound {
            Self::NotFound {
                name: name.to_owned(),
            }
        } else {
            Self::Storage(e)
        }
    }
}

/// The system identifier in the bytes of a data directory's `global/pg_control`.
///
/// # Errors
/// A file that is not a control file pgb can read.
pub fn system_identifier_from_pg_control(bytes: &[u8]) -> Result<u64, String> {
    pgb_wal::system_identifier_from_pg_control(bytes).map_err(|e| e.to_string())
}

impl Repository {
    /// The repository's WAL archive, with the repository's keys for reading.
    pub fn wal(&self) -> WalArchive {
        WalArchive {
            storage: Arc::clone(self.storage()),
            keys: self.keys(),
        }
    }
}

impl WalArchive {
    /// The system identifiers of the clusters with WAL in the archive.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn clusters(&self) -> Result<Vec<u64>, WalError> {
        let root = layout::wal_root();
        // Streamed: the archive may hold many segments, only their first folder is kept.
        let mut ids = std::collections::BTreeSet::new();
        let mut listed = self.storage.list_stream(Some(&root));
        while let Some(o) = listed.next().await {
            let o = o?;
            if let Some(id) = o
                .key
                .as_str()
                .strip_prefix("wal/")
                .and_then(|rel| rel.split('/').next())
                .and_then(|id| id.parse::<u64>().ok())
            {
                ids.insert(id);
            }
        }
        Ok(ids.into_iter().collect())
    }

    /// The cluster to use: `given`, else the only one in the archive.
    ///
    /// # Errors
    /// [`WalError::AmbiguousCluster`] with several and none given; `NotFound` with none.
    pub async fn choose_cluster(&self, given: Option<u64>) -> Result<u64, WalError> {
        if let Some(id) = given {
            return Ok(id);
        }
        match self.clusters().await?[..] {
            [one] => Ok(one),
            [] => Err(WalError::NotFound {
                name: "any WAL (the archive is empty)".to_owned(),
            }),
            ref many => Err(WalError::AmbiguousCluster {
                found: many.to_vec(),
            }),
        }
    }
}
