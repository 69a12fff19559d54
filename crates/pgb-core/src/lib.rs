//! # pgb-core
//!
//! The heart of pgb, a PostgreSQL backup toolkit: the traits backends implement, the manifest
//! that commits a backup, the streaming pipeline and the orchestration of backup, list, verify,
//! restore, delete and gc. It has no opendal, clap or process spawning: storage backends live in
//! `pgb-storage-*`, the pg_dump/pg_restore/psql drivers in `pgb-postgres`, the CLI in `pgb-cli`.
//!
//! - [`Storage`] / [`ObjectWriter`]: where objects go, with a written contract (atomic
//!   visibility, create-only, cancellation safety) that the `pgb-testkit` conformance suite
//!   checks for every backend. [`MemoryStorage`] is always available.
//! - [`Dumper`] / [`PreparedDump`] / [`DumpStream`]: preflight a dump, then start it; end of
//!   stream means the tool succeeded.
//! - [`Restorer`] / [`RestoreSink`]: restore an archive; nothing is committed before the stored
//!   checksum was verified. [`ArchiveChecker`]: check an archive without a database.
//! - [`RetentionPolicy`]: the pure retention engine (re-exported from `pgb-retention`).
//! - [`Repository`]: the operations ([backup](Repository::backup_request) of every kind through
//!   one [`BackupRequest`], list, verify, restore, [prune](Repository::prune),
//!   gc). A backup is visible only once its [`Manifest`] is written,
//!   last and create-only.
//!
//! The library never prints, reads the environment or files on its own, creates a runtime or
//! installs handlers; progress is reported as [`Event`]s to a [`Progress`] the caller passes.
//!
//! ```
//! use std::sync::Arc;
//! use pgb_core::{MemoryStorage, Repository, StorageExt, ObjectKey, WriteOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let storage = Arc::new(MemoryStorage::new());
//! let repo = Repository::new(storage.clone());
//! repo.preflight().await?; // a writable repository
//! assert!(repo.list().await?.backups.is_empty());
//! let key = ObjectKey::parse("notes/hello.txt")?;
//! storage.put(&key, "hi".into(), WriteOptions::create_new()).await?;
//! assert_eq!(&storage.get_bytes(&key).await?[..], b"hi");
//! # Ok(()) }
//! ```

pub mod cleanup;
mod cluster;
mod codec;
mod crypto;
mod directory;
mod dump;
mod error;
mod events;
mod files;
mod job_lock;
mod key;
pub mod layout;
mod manifest;
mod memory;
pub mod migration;
pub mod physical;
mod queue;
mod repo;
mod spill;
mod storage;
pub mod wal;

pub use cluster::{
    ClusterDumper, ClusterRestoreReport, ClusterRestorer, GlobalsReport, GlobalsRestorer,
    PreparedCluster, StatementFailure, glob_match, select_databases,
};
pub use codec::{Compression, InvalidCompression};
pub use crypto::{
    AuthKey, Decryption, Encryption, EncryptionInfo, KeyError, KeyErrorKind, generate_identity,
};
pub use directory::{DirectoryDumper, DirectorySink, DumpedDirectory, PreparedDirectory};
pub use dump::{
    ArchiveChecker, ArchiveFormat, ArchiveInfo, DumpError, DumpErrorKind, DumpSource, DumpStream,
    Dumper, PreparedDump, RestoreOptions, RestoreReport, RestoreSink, Restorer, TableEstimate,
    ToolExit,
};
pub use error::{Error, ErrorClass, IntegrityProblem, Mismatch, PipelineError};
pub use events::{Event, NoProgress, Progress};
pub use files::{
    FilesDump, FilesRestore, FilesRestoreOptions, FilesRestored, Listed, ModeChange, RefusedEntry,
};
pub use job_lock::{Holder, JobLock, JobLockError, JobLockOptions, JobLockRecord, read_job_lock};
pub use key::{InvalidKey, ObjectKey};
pub use manifest::{
    Artifact, ArtifactKind, BackupId, CLUSTER_DATABASE, ClusterInfo, InvalidBackupId,
    MANIFEST_FORMAT_VERSION, Manifest, ManifestProblem, retention_set,
};
pub use memory::MemoryStorage;
pub use migration::{
    MigrationFramework, MigrationHead, MigrationProblem, MigrationTarget, UnknownFramework,
};
pub use repo::{
    BackupOptions, BackupOutcome, BackupReport, BackupRequest, BackupSource, ClusterBackup,
    GcReport, GcSkipped, InvalidBackup, Leftover, Listing, PruneAction, PruneDecision,
    PruneOptions, PruneReport, PruneSet, Repository, VerifyAllReport, VerifyOutcome, VerifyReport,
};
pub use spill::{DEFAULT_SPILL_LIMIT, SpillOptions};
pub use storage::{
    ByteStream, Capabilities, ListStream, ObjectMeta, ObjectWriter, Storage, StorageError,
    StorageErrorKind, StorageExt, StorageInfo, StorageStats, WriteMode, WriteOptions,
};

/// The retention engine (`pgb-retention`), re-exported: pure, no I/O, usable on its own.
pub use pgb_retention as retention;
pub use pgb_retention::RetentionPolicy;
