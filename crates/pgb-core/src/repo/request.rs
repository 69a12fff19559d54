//! The one entry point of a backup: [`Repository::backup_request`] takes a [`BackupRequest`]
//! and decides the kind of backup in one place. Every kind shares the frame (preflight, the
//! lease, cancellation, the storage's statistics), the pipeline (`upload_artifact`) and the
//! commit protocol; only what is dumped and what the manifest records differ.

use std::time::Duration;

use super::{BackupOptions, BackupReport, ClusterBackup, Repository};
use crate::cluster::ClusterDumper;
use crate::directory::DirectoryDumper;
use crate::dump::Dumper;
use crate::error::Error;
use crate::events::Progress;
use crate::manifest::Manifest;
use crate::physical::PhysicalDumper;

/// What a backup takes its data from: the kind of backup, with what that kind needs.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum BackupSource<'a> {
    /// One database through a streaming dump (`pg_dump -Fc` or `-Fp`): one data object.
    Database(&'a dyn Dumper),
    /// A whole server: the globals and every selected database, each an artifact of one
    /// backup. Role passwords are refused without encryption.
    Cluster(&'a dyn ClusterDumper),
    /// One database in the directory format (`pg_dump -Fd -j N` into a spool): each file an
    /// artifact, `jobs` uploaded at a time.
    Directory {
        /// The directory-format dumper.
        dumper: &'a dyn DirectoryDumper,
        /// Files uploaded at a time (at least 1).
        jobs: usize,
    },
    /// A physical base backup (full, or incremental where the dumper asks for it), committed
    /// only once its WAL is safe.
    Physical {
        /// The base backup's dumper.
        dumper: &'a dyn PhysicalDumper,
        /// How long to wait for the backup's WAL in the archive (with
        /// [`WalMode::Archive`](crate::physical::WalMode::Archive)).
        wal_wait: Duration,
    },
}

impl BackupSource<'_> {
    /// The kind's name, for logs: `database`, `cluster`, `directory` or `physical`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Database(_) => "database",
            Self::Cluster(_) => "cluster",
            Self::Directory { .. } => "directory",
            Self::Physical { .. } => "physical",
        }
    }
}

/// One backup to take: its source and the options every kind shares (compression, encryption,
/// labels, files archived with it, read-back check).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct BackupRequest<'a> {
    /// What to back up.
    pub source: BackupSource<'a>,
    /// How to store it.
    pub options: &'a BackupOptions,
}

impl<'a> BackupRequest<'a> {
    /// A request for `source` with `options`.
    pub fn new(source: BackupSource<'a>, options: &'a BackupOptions) -> Self {
        Self { source, options }
    }

    /// One database through a streaming dump.
    pub fn database(dumper: &'a dyn Dumper, options: &'a BackupOptions) -> Self {
        Self::new(BackupSource::Database(dumper), options)
    }

    /// A whole server.
    pub fn cluster(dumper: &'a dyn ClusterDumper, options: &'a BackupOptions) -> Self {
        Self::new(BackupSource::Cluster(dumper), options)
    }

    /// One database in the directory format, `jobs` files uploaded at a time.
    pub fn directory(
        dumper: &'a dyn DirectoryDumper,
        jobs: usize,
        options: &'a BackupOptions,
    ) -> Self {
        Self::new(BackupSource::Directory { dumper, jobs }, options)
    }

    /// A physical base backup, waiting up to `wal_wait` for its WAL in the archive.
    pub fn physical(
        dumper: &'a dyn PhysicalDumper,
        wal_wait: Duration,
        options: &'a BackupOptions,
    ) -> Self {
        Self::new(BackupSource::Physical { dumper, wal_wait }, options)
    }
}

/// What [`Repository::backup_request`] committed. Serialized as the report it holds.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum BackupOutcome {
    /// One database, a directory-format dump or a base backup.
    Backup(BackupReport),
    /// A whole server, with the databases its previous backup covered that are gone.
    Server(ClusterBackup),
}

impl BackupOutcome {
    /// The committed manifest and what the network did.
    pub fn report(&self) -> &BackupReport {
        match self {
            Self::Backup(r) => r,
            Self::Server(c) => &c.backup,
        }
    }

    /// [`BackupOutcome::report`], by value.
    pub fn into_report(self) -> BackupReport {
        match self {
            Self::Backup(r) => r,
            Self::Server(c) => c.backup,
        }
    }

    /// The committed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.report().manifest
    }

    /// The whole-server outcome (with no databases gone for any other kind).
    pub(super) fn into_cluster(self) -> ClusterBackup {
        match self {
            Self::Server(c) => c,
            Self::Backup(backup) => ClusterBackup {
                backup,
                gone: Vec::new(),
            },
        }
    }
}

impl Repository {
    /// Takes a backup: the one entry point for every kind ([`BackupSource`]). Preflight (the
    /// source's checks, then a write probe of the repository), the lease, the source streamed
    /// through compression, hashing and encryption into its artifacts, each checked, and the
    /// manifest written last, create-only. The storage's retries, resumed downloads and
    /// exhausted budgets during the backup are reported (and logged at `info`).
    ///
    /// When `cancel` completes (a signal, a shutdown) the backup stops cleanly: the dump is
    /// killed, the stored objects discarded, the lease released, and [`Error::Cancelled`]
    /// returned. On any failure nothing becomes visible: writers are aborted, the dump killed
    /// and reaped, encoders never finalized, artifacts already stored removed, and no
    /// manifest written.
    ///
    /// # Errors
    /// Preflight (`Dump` connection/version errors, `Storage` access errors), the dump
    /// failing, storage failures, an integrity mismatch after upload, or `Cancelled`. A whole
    /// server: `Dump` with `NoMatch` for a selection glob that matches no database, `Invalid`
    /// for role passwords without encryption or an empty selection. A base backup:
    /// `WalNotArchived`; `Integrity` when the stream lacks `backup_label` or
    /// `backup_manifest` or belongs to another cluster than preflight saw.
    #[tracing::instrument(skip_all, fields(kind = request.source.kind()))]
    pub async fn backup_request(
        &self,
        request: BackupRequest<'_>,
        progress: &dyn Progress,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<BackupOutcome, Error> {
        let before = self.storage.stats();
        let opts = request.options;
        let res = match request.source {
            BackupSource::Database(dumper) => self
                .backup_database(dumper, opts, progress, cancel)
                .await
                .map(|m| (m, None)),
            BackupSource::Cluster(dumper) => self
                .backup_cluster(dumper, opts, progress, cancel)
                .await
                .map(|(m, gone)| (m, Some(gone))),
            BackupSource::Directory { dumper, jobs } => self
                .backup_directory(dumper, jobs, opts, progress, cancel)
                .await
                .map(|m| (m, None)),
            BackupSource::Physical { dumper, wal_wait } => self
                .backup_physical(dumper, opts, wal_wait, progress, cancel)
                .await
                .map(|m| (m, None)),
        };
        let storage = self.storage.stats().since(before);
        tracing::info!(
            retries = storage.retries,
            read_resumes = storage.read_resumes,
            budget_exhausted = storage.budget_exhausted,
            ok = res.is_ok(),
            "storage requests during the backup"
        );
        let (manifest, gone) = res?;
        let backup = BackupReport { manifest, storage };
        Ok(match gone {
            Some(gone) => BackupOutcome::Server(ClusterBackup { backup, gone }),
            None => BackupOutcome::Backup(backup),
        })
    }
}
