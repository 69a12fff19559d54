//! The error type of repository operations.

use crate::crypto::KeyError;
use crate::dump::{DumpError, DumpErrorKind};
use crate::manifest::BackupId;
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
    /// No backup has this id (or the text is not a backup id).
    #[error("backup {0} not found")]
    BackupNotFound(String),
    /// The repository holds no complete backup matching the request.
    #[error("no complete backup{} in the repository", .database.as_ref().map(|d| format!(" of database {d}")).unwrap_or_default())]
    NoBackups {
        /// The database asked for, if any.
        database: Option<String>,
    },
    /// A stored backup failed an integrity check.
    #[error("backup {id} failed verification: {problem}")]
    Integrity {
        /// The backup.
        id: BackupId,
        /// What was wrong.
        problem: IntegrityProblem,
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
    /// A name pg_dump wrote cannot be stored under the backup's folder (a directory-format
    /// file name that is not a valid key segment); nothing was committed.
    #[error("backup {id}: refusing the artifact name {name:?}: {source}")]
    ArtifactName {
        /// The backup.
        id: BackupId,
        /// The name as pg_dump wrote it.
        name: String,
        /// Why it is not a key.
        source: crate::key::InvalidKey,
    },
    /// Another run holds the job's lock (or the lock is unusable).
    #[error(transparent)]
    Locked(Box<crate::job_lock::JobLockError>),
    /// The request does not fit the backup or the options (e.g. a whole-server backup
    /// restored without choosing what to restore, role passwords in an unencrypted backup).
    #[error(transparent)]
    Invalid(#[from] Mismatch),
    /// Keys are missing or wrong, or the backup's protection does not match them.
    #[error("{}{source}", .id.as_ref().map(|id| format!("backup {id}: ")).unwrap_or_default())]
    Key {
        /// The backup, when one was being read.
        id: Option<BackupId>,
        /// What is wrong with the keys.
        source: KeyError,
    },
    /// The operation was cancelled (signal, shutdown); nothing was committed.
    #[error("cancelled; nothing was committed")]
    Cancelled,
    /// The streaming pipeline failed: a stage's task died, or compression or decompression
    /// failed.
    #[error("pipeline: {0}")]
    Pipeline(#[from] PipelineError),
    /// The retention policy cannot be applied (it keeps nothing, a window is empty...).
    #[error("retention policy: {0}")]
    Policy(#[from] pgb_retention::RetentionError),
    /// A physical backup's WAL did not reach the archive in time: the base backup was
    /// removed and nothing committed.
    #[error(
        "physical backup {id}: WAL segment {segment} is not in the repository's WAL archive after waiting {waited_secs}s; the backup was not committed"
    )]
    WalNotArchived {
        /// The backup that was not committed.
        id: BackupId,
        /// The first segment missing.
        segment: String,
        /// How long the backup waited.
        waited_secs: u64,
    },
    /// The recovery target lies before the end of every base backup that could serve it
    /// (PostgreSQL can only recover to a point after a base backup ended).
    #[error(
        "the recovery target ({target}) is before the end of {} {backup} ({ended}): a base backup can only recover to a point after it ended",
        if *.first { "the earliest physical backup," } else { "backup" }
    )]
    TargetBeforeBackup {
        /// The target, as text.
        target: String,
        /// The backup that ends too late (the earliest, when none was named).
        backup: BackupId,
        /// When or where it ended.
        ended: String,
        /// Whether `backup` is the earliest of the cluster (no backup was named).
        first: bool,
    },
    /// The repository holds no physical backup (of the cluster asked for).
    #[error("no complete physical backup{} in the repository", .system_identifier.as_ref().map(|s| format!(" of system {s}")).unwrap_or_default())]
    NoPhysicalBackup {
        /// The cluster asked for, if any.
        system_identifier: Option<String>,
    },
}

/// A request that does not fit the backup or the options; each names what to choose instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mismatch {
    /// A whole-server backup restored without naming a database, the globals or all of it.
    #[error(
        "backup {id} holds a whole server ({} databases: {}); choose one database, the globals, or all of it",
        .databases.len(),
        .databases.join(", ")
    )]
    WholeServerNeedsChoice {
        /// The backup.
        id: BackupId,
        /// The databases it holds.
        databases: Vec<String>,
    },
    /// A database the whole-server backup does not hold.
    #[error("backup {id} holds no database {database:?} (it holds {})", .holds.join(", "))]
    NoSuchDatabase {
        /// The backup.
        id: BackupId,
        /// The database asked for.
        database: String,
        /// The databases it holds.
        holds: Vec<String>,
    },
    /// A single-database backup asked for another database.
    #[error("backup {id} holds database {holds}, not {database}")]
    OtherDatabase {
        /// The backup.
        id: BackupId,
        /// The database asked for.
        database: String,
        /// The database it holds.
        holds: String,
    },
    /// Globals asked of a backup that has none.
    #[error("backup {id} holds no globals (it is not a whole-server backup)")]
    NoGlobals {
        /// The backup.
        id: BackupId,
    },
    /// A whole-server restore of a single-database backup.
    #[error("backup {id} is of one database ({database}), not of a whole server")]
    NotWholeServer {
        /// The backup.
        id: BackupId,
        /// The database it holds.
        database: String,
    },
    /// A files restore of a backup without files.
    #[error("backup {id} holds no files archive")]
    NoFiles {
        /// The backup.
        id: BackupId,
    },
    /// Role passwords without encryption.
    #[error("refusing to store role passwords in an unencrypted backup")]
    RolePasswordsUnencrypted,
    /// The database selection of a whole-server backup leaves nothing.
    #[error("the database selection leaves no database to back up")]
    EmptySelection,
    /// A physical base backup asked to restore into a database.
    #[error(
        "backup {id} is a physical base backup of a whole cluster; it restores into a data directory, not a database"
    )]
    Physical {
        /// The backup.
        id: BackupId,
    },
    /// A restore into a data directory of a backup that is not physical.
    #[error(
        "backup {id} is a logical dump, not a physical base backup; it restores into a database"
    )]
    NotPhysical {
        /// The backup.
        id: BackupId,
    },
    /// A physical backup of another cluster than the one asked for.
    #[error("backup {id} is of system {system_identifier}, not {wanted}")]
    OtherCluster {
        /// The backup.
        id: BackupId,
        /// Its cluster.
        system_identifier: String,
        /// The cluster asked for.
        wanted: String,
    },
    /// `latest` in a repository with physical backups of several clusters.
    #[error("the repository holds physical backups of {} clusters (systems {}); choose one", .clusters.len(), .clusters.join(", "))]
    SeveralClusters {
        /// Their system identifiers.
        clusters: Vec<String>,
    },
}

/// A failure of the streaming pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// A pipeline stage's task panicked or was cancelled.
    #[error("the {stage} task failed: {source}")]
    Task {
        /// `encoder` or `decoder`.
        stage: &'static str,
        /// Why.
        source: tokio::task::JoinError,
    },
    /// Compression (with encryption) failed.
    #[error("compression failed: {0}")]
    Compression(#[source] std::io::Error),
    /// Input waiting in the spill file could not be read back.
    #[error("the spill file could not be read back: {0}")]
    Spill(#[source] std::io::Error),
}

/// What an integrity check found, with the expected and actual values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrityProblem {
    /// An object the manifest lists is missing.
    #[error("backup is incomplete: data object {key} is missing")]
    Missing {
        /// The object.
        key: String,
    },
    /// An incremental base backup whose chain is broken: an ancestor a restore combines is
    /// missing or unusable.
    #[error(
        "it is an incremental backup whose parent chain is broken: {ancestor} is {why}; it cannot be restored (restore an older chain, or take a full backup: pgb backup --physical without --incremental)"
    )]
    BrokenChain {
        /// The missing or unusable ancestor.
        ancestor: String,
        /// `missing from the repository`, or `unusable (reason)`.
        why: String,
    },
    /// An object's size differs from the manifest's (truncated, appended to, replaced).
    #[error("data object {key} is {}", size_change(*.expected, *.actual))]
    SizeMismatch {
        /// The object.
        key: String,
        /// Size in the manifest.
        expected: u64,
        /// Size found.
        actual: u64,
    },
    /// An object's sha256 differs from the manifest's.
    #[error("checksum mismatch: {key} has sha256 {actual}, the manifest says {expected}")]
    ChecksumMismatch {
        /// The object.
        key: String,
        /// sha256 in the manifest.
        expected: String,
        /// sha256 found.
        actual: String,
    },
    /// The decoded content differs from the manifest's plaintext size or sha256.
    #[error(
        "decoded content of {key} does not match the manifest ({actual_size} bytes, sha256 {actual_sha256})"
    )]
    PlainMismatch {
        /// The object.
        key: String,
        /// Plaintext size found.
        actual_size: u64,
        /// Plaintext sha256 found.
        actual_sha256: String,
    },
    /// The stored bytes cannot be decompressed or decrypted.
    #[error("decryption or decompression failed for {key}: {cause}")]
    Undecodable {
        /// The object.
        key: String,
        /// The decoder's error.
        cause: String,
    },
    /// Right after an upload, the store holds a different number of bytes than were sent.
    #[error("storage holds {stored} bytes after upload of {key}, {sent} were sent")]
    UploadSizeMismatch {
        /// The object.
        key: String,
        /// Bytes sent.
        sent: u64,
        /// Bytes the store reports.
        stored: u64,
    },
    /// Reading an object back right after its upload gave different bytes.
    #[error("read back after upload: sha256 {read}, {sent} was sent")]
    ReadBackMismatch {
        /// The object.
        key: String,
        /// sha256 of what was sent.
        sent: String,
        /// sha256 of what was read.
        read: String,
    },
    /// The manifest's MAC does not match: the manifest or its key was altered, or the key is
    /// wrong.
    #[error(
        "manifest authentication failed: the manifest or its key was altered, or the key is wrong"
    )]
    AuthenticationFailed,
    /// The manifest declares authentication but carries no MAC.
    #[error("manifest authentication missing although the backup declares it")]
    AuthenticationMissing,
}

fn size_change(expected: u64, actual: u64) -> String {
    if actual < expected {
        format!("truncated: {actual} bytes where the manifest says {expected}")
    } else {
        format!("{actual} bytes where the manifest says {expected} (appended to or replaced)")
    }
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
                | DumpErrorKind::NotConfigured
                | DumpErrorKind::Unreachable
                | DumpErrorKind::AuthFailed
                | DumpErrorKind::DatabaseNotFound
                | DumpErrorKind::Connection => ErrorClass::Database,
                DumpErrorKind::TargetNotEmpty
                | DumpErrorKind::DirectoryNotEmpty
                | DumpErrorKind::Refused
                | DumpErrorKind::CreatesDatabase => ErrorClass::Refused,
                DumpErrorKind::BadArchive => ErrorClass::Integrity,
                DumpErrorKind::NoMatch => ErrorClass::Invalid,
                DumpErrorKind::Failed
                | DumpErrorKind::Empty
                | DumpErrorKind::Io
                | DumpErrorKind::NoSpace => ErrorClass::Runtime,
            },
            Self::BackupNotFound(_)
            | Self::NoBackups { .. }
            | Self::NoPhysicalBackup { .. }
            | Self::TargetBeforeBackup { .. } => ErrorClass::NotFound,
            Self::WalNotArchived { .. } => ErrorClass::Runtime,
            Self::Integrity { .. } | Self::Manifest { .. } => ErrorClass::Integrity,
            Self::ArtifactName { .. } => ErrorClass::Refused,
            Self::Locked(_) => ErrorClass::Locked,
            Self::Key { .. } => ErrorClass::Key,
            Self::Pipeline(_) | Self::Cancelled | Self::ManifestConflict { .. } => {
                ErrorClass::Runtime
            }
            Self::Policy(_) | Self::Invalid(_) => ErrorClass::Invalid,
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
