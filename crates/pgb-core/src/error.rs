//! The error type of repository operations.

use crate::dump::{DumpError, DumpErrorKind};
use crate::storage::{StorageError, StorageErrorKind};

/// Why a backup, list, verify, restore or prune failed.
///
/// The [`Storage`](crate::Storage) and [`Dumper`](crate::Dumper) contracts have their own error
/// types because implementors outside this crate construct them; this type wraps them for the
/// operations. `Display` is always one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The repository's storage failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// pg_dump, pg_restore or psql (or the connection) failed.
    #[error("{0}")]
    Dump(#[from] DumpError),
    /// No backup has this id.
    #[error("backup {0} not found; run `pgb list` to see the backups")]
    BackupNotFound(String),
    /// The repository holds no complete backup matching the request.
    #[error("no complete backup{0} in the repository")]
    NoBackups(String),
    /// A stored backup failed an integrity check.
    #[error("backup {id} failed verification: {problem}")]
    Integrity {
        /// The backup.
        id: String,
        /// What was wrong.
        problem: String,
    },
    /// A manifest cannot be read or is of an unknown version.
    #[error("backup {id}: {problem}")]
    Manifest {
        /// The backup.
        id: String,
        /// What was wrong.
        problem: String,
    },
    /// A different manifest already exists under the new backup's id; it was left untouched.
    #[error(
        "backup {id}: a different manifest already exists under this id; it was left untouched and this backup was not committed"
    )]
    ManifestConflict {
        /// The backup id.
        id: crate::manifest::BackupId,
    },
    /// The request is refused (unsafe or invalid options).
    #[error("{0}")]
    Refused(String),
    /// Another operation holds the repository lock.
    #[error("{0}")]
    Locked(String),
    /// Keys are missing, wrong, or a manifest failed authentication.
    #[error("{0}")]
    Key(String),
    /// The operation was cancelled (signal, shutdown); nothing was committed.
    #[error("cancelled; nothing was committed")]
    Cancelled,
    /// The streaming pipeline failed (encoder error).
    #[error("pipeline: {0}")]
    Pipeline(String),
    /// The retention policy cannot be applied (it keeps nothing, a window is empty...).
    #[error("retention policy: {0}")]
    Policy(#[from] pgb_retention::RetentionError),
}

/// Coarse classes of [`Error`], for exit codes and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// Repository configuration, credentials, permissions, reachability.
    Repository,
    /// Database connection, credentials, missing database, tool versions.
    Database,
    /// A stored backup is corrupt, incomplete or unreadable.
    Integrity,
    /// The operation was refused as unsafe (non-empty target, CREATE DATABASE...).
    Refused,
    /// The named backup does not exist.
    NotFound,
    /// Another operation holds the lock.
    Locked,
    /// Encryption keys are missing or wrong.
    Key,
    /// The dump or restore failed while running, or an I/O failure.
    Runtime,
    /// The request itself is invalid (a retention policy that keeps nothing, ...).
    Invalid,
}

impl Error {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Storage(e) => match e.kind() {
                StorageErrorKind::Integrity => ErrorClass::Integrity,
                StorageErrorKind::Config
                | StorageErrorKind::PermissionDenied
                | StorageErrorKind::Unavailable
                | StorageErrorKind::NotFound => ErrorClass::Repository,
                _ => ErrorClass::Runtime,
            },
            Self::Dump(e) => match e.kind() {
                DumpErrorKind::ToolNotFound
                | DumpErrorKind::VersionMismatch
                | DumpErrorKind::Unreachable
                | DumpErrorKind::AuthFailed
                | DumpErrorKind::DatabaseNotFound
                | DumpErrorKind::Connection => ErrorClass::Database,
                DumpErrorKind::TargetNotEmpty | DumpErrorKind::Refused => ErrorClass::Refused,
                DumpErrorKind::BadArchive => ErrorClass::Integrity,
                DumpErrorKind::Failed | DumpErrorKind::Empty | DumpErrorKind::Io => {
                    ErrorClass::Runtime
                }
            },
            Self::BackupNotFound(_) | Self::NoBackups(_) => ErrorClass::NotFound,
            Self::Integrity { .. } | Self::Manifest { .. } => ErrorClass::Integrity,
            Self::Refused(_) => ErrorClass::Refused,
            Self::Locked(_) => ErrorClass::Locked,
            Self::Key(_) => ErrorClass::Key,
            Self::Pipeline(_) | Self::Cancelled | Self::ManifestConflict { .. } => {
                ErrorClass::Runtime
            }
            Self::Policy(_) => ErrorClass::Invalid,
        }
    }

    /// The failing tool's last stderr lines, if any.
    pub fn stderr_tail(&self) -> Option<&str> {
        match self {
            Self::Dump(e) => e.stderr_tail(),
            _ => None,
        }
    }
}
