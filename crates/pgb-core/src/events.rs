//! Progress events: the library reports, the binary renders (bar, JSON lines, logs).

use crate::manifest::BackupId;

/// Something worth telling an operator about a long operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Preflight passed; the dump starts.
    BackupStarted {
        /// The new backup's id.
        id: BackupId,
        /// The database being dumped.
        database: String,
    },
    /// The first bytes of the dump were read: the data object is being written.
    DataStreaming,
    /// Bytes moved so far (emitted about every 4 MiB of plaintext).
    Progress {
        /// Uncompressed bytes read from the dump, or produced by decompression.
        plain_bytes: u64,
        /// Bytes stored or read from storage.
        stored_bytes: u64,
    },
    /// The data object is complete; the manifest comes next.
    DataFinished {
        /// Stored bytes.
        stored_bytes: u64,
    },
    /// The data object and its checksum sidecar are stored; the manifest is written next.
    ManifestWriting,
    /// The manifest was written: the backup exists.
    Committed {
        /// The backup's id.
        id: BackupId,
    },
}

/// Receives [`Event`]s. Must be cheap: it is called from the pipeline.
pub trait Progress: Send + Sync {
    /// Handles one event.
    fn event(&self, event: &Event);
}

/// Ignores every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _: &Event) {}
}

impl<F: Fn(&Event) + Send + Sync> Progress for F {
    fn event(&self, event: &Event) {
        self(event);
    }
}
