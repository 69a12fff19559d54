//! Backups of a whole server: the globals and every selected database as artifacts of one
//! backup, through the same pipeline and commit protocol as a single database; and their
//! restore (one database, the globals, or everything).

use bytes::{Bytes, BytesMut};
use time::OffsetDateTime;

use super::Repository;
use super::verify::NullSink;
use crate::cluster::{ClusterDumper, ClusterRestoreReport, ClusterRestorer, GlobalsReport};
use crate::cluster::{GlobalsRestorer, PreparedCluster};
use crate::crypto::Encryption;
use crate::dump::{DumpError, DumpErrorKind, RestoreOptions, RestoreReport, RestoreSink, Restorer};
use crate::error::{Error, IntegrityProblem, Mismatch};
use crate::events::{Event, Progress};
use crate::layout;
use crate::manifest::{Artifact, ArtifactKind, BackupId, ClusterInfo, Manifest};

use super::{BackupOptions, BackupRequest};

/// Globals larger than this are refused when read into memory (a real server's globals are
/// kilobytes).
const MAX_GLOBALS: usize = 256 << 20;

/// What a whole-server backup committed ([`BackupRequest::cluster`]).
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct ClusterBackup {
    /// The committed manifest and what the network did.
    #[serde(flatten)]
    pub backup: super::BackupReport,
    /// Databases the previous backup of this server covered that no longer exist on it
    /// (dropped or renamed since): worth a warning, since nothing backs them up any more.
    pub gone: Vec<String>,
}

impl Repository {
    /// A wrapper kept for existing callers: [`Repository::backup_request`] with
    /// [`BackupRequest::cluster`].
    ///
    /// # Errors
    /// As [`Repository::backup_request`].
    #[doc(hidden)]
    pub async fn backup_cluster_until(
        &self,
        dumper: &dyn ClusterDumper,
        opts: &BackupOptions,
        progress: &dyn Progress,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<ClusterBackup, Error> {
        self.backup_request(BackupRequest::cluster(dumper, opts), progress, cancel)
            .await
            .map(super::BackupOutcome::into_cluster)
    }

    /// A whole server: enumerates and prepares every selected database and the globals
    /// (before anything is written), then streams each through the pipeline as an artifact
    /// of one backup, and commits one manifest only when every artifact succeeded. On any
    /// failure the artifacts already stored are removed and nothing is committed. Role
    /// passwords are refused in an unencrypted backup. Returns the manifest and the databases
    /// the previous backup of the server covered that are gone.
    pub(super) async fn backup_cluster(
        &self,
        dumper: &dyn ClusterDumper,
        opts: &BackupOptions,
        progress: &dyn Progress,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(Manifest, Vec<String>), Error> {
        let prepared = dumper.prepare().await?;
        if prepared.role_passwords && opts.encryption.is_none() {
            return Err(Mismatch::RolePasswordsUnencrypted.into());
        }
        if prepared.databases.is_empty() {
            return Err(Mismatch::EmptySelection.into());
        }
        self.preflight().await?;
        let started_at = OffsetDateTime::now_utc();
        let id = BackupId::generate(started_at);
        let manifest = self
            .leased(
                &id,
                self.cluster_leased(prepared, id.clone(), started_at, opts, progress),
                cancel,
            )
            .await?;
        let gone = self.gone_databases(&manifest).await;
        Ok((manifest, gone))
    }

    async fn cluster_leased(
        &self,
        prepared: PreparedCluster,
        id: BackupId,
        started_at: OffsetDateTime,
        opts: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<Manifest, Error> {
        let PreparedCluster {
            globals,
            databases,
            server_databases,
            include,
            exclude,
            role_passwords,
            owners,
            ..
        } = prepared;
        // The manifest's server and versions: the globals' source, with the newest pg_dump
        // major among the dumps (what a restorer must read).
        let mut source = globals.source().clone();
        source.tool_major = databases
            .iter()
            .map(|(_, d)| d.source().tool_major)
            .chain([source.tool_major])
            .max()
            .unwrap_or(source.tool_major);
        if let Some((_, first)) = databases.first() {
            source.tool_version = first.source().tool_version.clone();
            source.options = first.source().options.clone();
        }
        tracing::info!(backup = %id, databases = databases.len(), "cluster backup started");
        progress.event(&Event::BackupStarted {
            id: id.clone(),
            database: crate::manifest::CLUSTER_DATABASE.to_owned(),
        });
        let encrypted = opts.encryption.is_some();
        let names: Vec<String> = databases.iter().map(|(n, _)| n.clone()).collect();
        // Each database's migration heads, read at its preflight.
        let migrations: std::collections::BTreeMap<String, Vec<crate::MigrationHead>> = databases
            .iter()
            .filter(|(_, d)| !d.source().migrations.is_empty())
            .map(|(n, d)| (n.clone(), d.source().migrations.clone()))
            .collect();
        let mut artifacts: Vec<Artifact> = Vec::with_capacity(databases.len() + 1);
        let globals_file = layout::globals_name(opts.compression, encrypted);
        let mut jobs = vec![(
            globals_file,
            "globals".to_owned(),
            ArtifactKind::Globals,
            globals,
        )];
        for (i, (name, dump)) in databases.into_iter().enumerate() {
            let file = layout::database_name(i + 1, &name, opts.compression, encrypted);
            jobs.push((file, name, ArtifactKind::Dump, dump));
        }
        for (file, name, kind, dump) in jobs {
            tracing::info!(backup = %id, artifact = %name, "dumping");
            match self
                .upload_artifact(&id, &file, (&name, kind), dump, opts, progress)
                .await
            {
                Ok(a) => artifacts.push(a),
                Err(e) => {
                    self.discard_artifacts(&artifacts).await;
                    return Err(match e {
                        Error::Dump(d) => Error::Dump(d.context(format_args!("{kind:?} {name}"))),
                        other => other,
                    });
                }
            }
        }
        Box::pin(self.upload_files(&id, opts, progress, &mut artifacts)).await?;
        let cluster = ClusterInfo::new(names, server_databases)
            .with_selection(include, exclude)
            .with_role_passwords(role_passwords)
            .with_owners(owners);
        let mut manifest = Manifest::new_cluster(
            id,
            &source,
            cluster,
            opts.compression,
            started_at,
            OffsetDateTime::now_utc(),
            opts.labels.clone(),
            opts.encryption.as_ref().map(Encryption::info),
            artifacts,
        );
        manifest.migrations = migrations;
        self.commit(manifest, opts, progress).await
    }

    /// Databases that the previous backup of `m`'s set covered and that are no longer on the
    /// server. A listing failure only loses the warning.
    async fn gone_databases(&self, m: &Manifest) -> Vec<String> {
        let Some(now) = &m.cluster else {
            return Vec::new();
        };
        let listing = match self.list().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the repository to compare database lists");
                return Vec::new();
            }
        };
        let previous = listing
            .backups
            .iter()
            .rev()
            .filter(|b| b.id != m.id && b.set == m.set && b.started_at <= m.started_at)
            .find_map(|b| b.cluster.as_ref());
        previous.map_or_else(Vec::new, |p| {
            p.databases
                .iter()
                .filter(|d| !now.server_databases.contains(d))
                .cloned()
                .collect()
        })
    }

    /// Restores one database of a cluster backup (or the only database of a single-database
    /// backup when `database` is `None`), like [`Repository::restore_until`].
    ///
    /// # Errors
    /// As [`Repository::restore_until`]; `Invalid` when the backup holds no such database,
    /// or holds a whole server and no database was named.
    pub async fn restore_database_until(
        &self,
        m: &Manifest,
        database: Option<&str>,
        restorer: &dyn Restorer,
        opts: &RestoreOptions,
        progress: &dyn Progress,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<RestoreReport, Error> {
        let a = self.select_dump(m, database)?;
        self.restore_artifact_until(m, a, restorer, opts, progress, cancel)
            .await
    }

    /// The dump artifact to restore.
    pub(super) fn select_dump<'m>(
        &self,
        m: &'m Manifest,
        database: Option<&str>,
    ) -> Result<&'m Artifact, Error> {
        match (&m.cluster, database) {
            (Some(c), None) => Err(Mismatch::WholeServerNeedsChoice {
                id: m.id.clone(),
                databases: c.databases.clone(),
            }
            .into()),
            (Some(c), Some(d)) => m.dump_of(d).ok_or_else(|| {
                Mismatch::NoSuchDatabase {
                    id: m.id.clone(),
                    database: d.to_owned(),
                    holds: c.databases.clone(),
                }
                .into()
            }),
            (None, Some(d)) if d != m.database => Err(Mismatch::OtherDatabase {
                id: m.id.clone(),
                database: d.to_owned(),
                holds: m.database.clone(),
            }
            .into()),
            (None, _) => self.dump_artifact(m),
        }
    }

    /// Reads the globals of a cluster backup (verified: sizes, digests and authentication)
    /// and applies them through `restorer`.
    ///
    /// # Errors
    /// `Invalid` for a backup without globals, integrity and key errors before anything is
    /// applied, connection failures.
    pub async fn restore_globals(
        &self,
        m: &Manifest,
        restorer: &dyn GlobalsRestorer,
        progress: &dyn Progress,
    ) -> Result<GlobalsReport, Error> {
        let sql = self.read_globals(m, progress).await?;
        Ok(restorer.apply_globals(&sql).await?)
    }

    async fn read_globals(&self, m: &Manifest, progress: &dyn Progress) -> Result<String, Error> {
        let a = m
            .globals()
            .ok_or_else(|| Mismatch::NoGlobals { id: m.id.clone() })?;
        let key = self.check_present(m, a).await?;
        self.check_keys(m, &key).await?;
        let mut sink = Collect::default();
        self.stream_verified(m, a, &key, &mut sink, progress)
            .await?;
        String::from_utf8(sink.buf.to_vec()).map_err(|_| Error::Integrity {
            id: m.id.clone(),
            problem: IntegrityProblem::Undecodable {
                key: a.key.clone(),
                cause: "the globals are not UTF-8 text".to_owned(),
            },
        })
    }

    /// Rebuilds a whole server from a cluster backup: checks every artifact (and, with
    /// `verify_first`, reads each once) and every target database (missing, or empty unless
    /// `clean`) before anything is written, applies the globals, then restores every database
    /// under its own name. Globals statements that fail stop the restore before any database.
    ///
    /// # Errors
    /// As [`Repository::restore_until`]; `Invalid` for a single-database backup; `Dump`
    /// (`Failed`) when globals statements failed.
    pub async fn restore_cluster_until(
        &self,
        m: &Manifest,
        restorer: &dyn ClusterRestorer,
        opts: &RestoreOptions,
        progress: &dyn Progress,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<ClusterRestoreReport, Error> {
        let mut cancel = std::pin::pin!(cancel);
        let Some(cluster) = &m.cluster else {
            return Err(Mismatch::NotWholeServer {
                id: m.id.clone(),
                database: m.database.clone(),
            }
            .into());
        };
        let keys = self.check_all_present(m).await?;
        if let Some(first) = keys.first() {
            self.check_keys(m, first).await?;
        }
        if opts.verify_first {
            for (a, key) in m.artifacts.iter().zip(&keys) {
                let mut sink = NullSink;
                tokio::select! {
                    res = self.stream_verified(m, a, key, &mut sink, progress) => res?,
                    () = &mut cancel => return Err(Error::Cancelled),
                }
            }
        }
        restorer
            .check_targets(&cluster.databases, opts.clean)
            .await?;
        let sql = self.read_globals(m, progress).await?;
        let globals = restorer.apply_globals(&sql).await?;
        if let Some(first) = globals.failures.first() {
            return Err(Error::Dump(DumpError::new(
                DumpErrorKind::Failed,
                format!(
                    "globals: {} statement(s) failed ({} created, {} existed), no database restored; first: {}: {}",
                    globals.failed(),
                    globals.created,
                    globals.existed,
                    first.statement,
                    first.error
                ),
            )));
        }
        let per_db = opts.clone().with_verify_first(false);
        let mut databases = Vec::with_capacity(cluster.databases.len());
        for name in &cluster.databases {
            let a = self.select_dump(m, Some(name))?;
            let target = restorer.restorer(name);
            let report = self
                .restore_artifact_until(m, a, target.as_ref(), &per_db, progress, &mut cancel)
                .await
                .map_err(|e| match e {
                    Error::Dump(d) => Error::Dump(d.context(format_args!("database {name}"))),
                    other => other,
                })?;
            if opts.keep_owner
                && let Some(owner) = cluster.owners.get(name)
            {
                restorer
                    .set_owner(name, owner)
                    .await
                    .map_err(|e| Error::Dump(e.context(format_args!("database {name}"))))?;
            }
            databases.push(report);
        }
        Ok(ClusterRestoreReport { globals, databases })
    }
}

/// Collects a small plaintext (the globals) in memory.
#[derive(Debug, Default)]
struct Collect {
    buf: BytesMut,
}

#[async_trait::async_trait]
impl RestoreSink for Collect {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError> {
        if self.buf.len() + chunk.len() > MAX_GLOBALS {
            return Err(DumpError::new(
                DumpErrorKind::Refused,
                "the globals are larger than 256 MiB",
            ));
        }
        self.buf.extend_from_slice(&chunk);
        Ok(())
    }
    async fn finish(self: Box<Self>) -> Result<RestoreReport, DumpError> {
        Ok(RestoreReport::default())
    }
    async fn abort(self: Box<Self>) {}
}

impl Repository {
    /// Restores the files archives of a backup (`backup --files`) into `target`: one archive
    /// into `target` itself, several each into `target/<name of its directory>` (colliding
    /// names numbered with their archive: `uploads-1`, `uploads-2`). Every destination is checked
    /// before anything is touched ([`FilesRestore::check_target`]; a local repository is
    /// protected: a destination holding it is refused), every archive is extracted beside its
    /// destination and verified, and only then are they moved into place.
    ///
    /// # Errors
    /// `Invalid` for a backup without files; `Dump` (`Refused`, `TargetNotEmpty`, `Io`);
    /// integrity and key errors.
    ///
    /// [`FilesRestore::check_target`]: crate::FilesRestore::check_target
    pub async fn restore_files(
        &self,
        m: &Manifest,
        target: &std::path::Path,
        opts: &crate::files::FilesRestoreOptions,
        progress: &dyn Progress,
    ) -> Result<Vec<crate::files::FilesRestored>, Error> {
        use crate::files::FilesRestore;
        let files: Vec<&Artifact> = m
            .artifacts
            .iter()
            .filter(|a| a.kind == ArtifactKind::Files)
            .collect();
        if files.is_empty() {
            return Err(Mismatch::NoFiles { id: m.id.clone() }.into());
        }
        let mut keys = Vec::with_capacity(files.len());
        for a in &files {
            keys.push(self.check_present(m, a).await?);
        }
        self.check_keys(m, &keys[0]).await?;
        let dests: Vec<std::path::PathBuf> = if files.len() == 1 {
            vec![target.to_path_buf()]
        } else {
            let names: Vec<&str> = files.iter().map(|a| a.name.as_str()).collect();
            crate::files::destination_names(&names)
                .into_iter()
                .map(|n| target.join(n))
                .collect()
        };
        let mut opts = opts.clone();
        let info = self.storage.info();
        if info.scheme == "file"
            && let Some(root) = info.location.strip_prefix("file://")
        {
            opts = opts.with_protected(root, "the repository");
        }
        // Refuse before anything is touched.
        for d in &dests {
            FilesRestore::check_target(d, &opts)?;
        }
        let mut sinks = Vec::with_capacity(files.len());
        for d in &dests {
            sinks.push(FilesRestore::begin_with(d, &opts)?);
        }
        // Every archive extracted and verified before any is moved into place.
        let mut failed = None;
        for ((a, key), sink) in files.iter().zip(&keys).zip(sinks.iter_mut()) {
            if let Err(e) = self.stream_verified(m, a, key, sink, progress).await {
                failed = Some(e);
                break;
            }
        }
        if let Some(e) = failed {
            for sink in sinks {
                sink.abort_files().await;
            }
            return Err(e);
        }
        let mut done: Vec<crate::files::FilesRestored> = Vec::with_capacity(sinks.len());
        let mut pending = files.iter().zip(sinks);
        while let Some((a, sink)) = pending.next() {
            match sink.finish_files().await {
                Ok(mut r) => {
                    r.source = a.name.clone();
                    done.push(r);
                }
                Err(e) => {
                    for (_, sink) in pending {
                        sink.abort_files().await;
                    }
                    if done.is_empty() {
                        return Err(e.into());
                    }
                    let placed: Vec<String> = done
                        .iter()
                        .map(|r| r.destination.display().to_string())
                        .collect();
                    return Err(Error::Dump(DumpError::new(
                        e.kind(),
                        format!("{e}; already restored: {}", placed.join(", ")),
                    )));
                }
            }
        }
        Ok(done)
    }
}
