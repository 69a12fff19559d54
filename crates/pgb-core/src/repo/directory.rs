//! Directory-format backups: `pg_dump -Fd -j N` into a spool, each file uploaded as its own
//! artifact through the pipeline (several at a time), one manifest; and their restore: every
//! file downloaded and verified into a spool, then `pg_restore -j N`.

use futures_util::StreamExt;
use time::OffsetDateTime;

use super::{BackupOptions, BackupRequest, Repository};
use crate::crypto::Encryption;
use crate::directory::DirectoryDumper;
use crate::dump::{ArchiveFormat, ArchiveInfo, RestoreOptions, RestoreReport, Restorer};
use crate::error::Error;
use crate::events::{Event, Progress};
use crate::layout;
use crate::manifest::{Artifact, ArtifactKind, BackupId, Manifest};

/// The table of contents of a directory-format dump.
const TOC: &str = "toc.dat";

impl Repository {
    /// A wrapper kept for existing callers: [`Repository::backup_request`] with
    /// [`BackupRequest::directory`].
    ///
    /// # Errors
    /// As [`Repository::backup_request`].
    #[doc(hidden)]
    pub async fn backup_directory_until(
        &self,
        dumper: &dyn DirectoryDumper,
        jobs: usize,
        opts: &BackupOptions,
        progress: &dyn Progress,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<super::BackupReport, Error> {
        self.backup_request(
            BackupRequest::directory(dumper, jobs, opts),
            progress,
            cancel,
        )
        .await
        .map(super::BackupOutcome::into_report)
    }

    /// A database in the directory format: preflight, run the dump into the dumper's spool,
    /// upload each of its files as an artifact (`jobs` at a time) through compression,
    /// hashing and encryption, and commit one manifest once every file is stored. On any
    /// failure the stored files are removed and nothing is committed; the spool is removed
    /// either way.
    pub(super) async fn backup_directory(
        &self,
        dumper: &dyn DirectoryDumper,
        jobs: usize,
        opts: &BackupOptions,
        progress: &dyn Progress,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<Manifest, Error> {
        let prepared = dumper.prepare().await?;
        self.preflight().await?;
        let set = format!(
            "{}/{}",
            prepared.source().server,
            prepared.source().database
        );
        // The previous dump of this database: about the room the spool needs.
        let expected = match self.list().await {
            Ok(l) => l
                .backups
                .iter()
                .rev()
                .find(|m| m.set == set)
                .map(Manifest::plain_size),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the repository; the spool's free space is not checked");
                None
            }
        };
        let started_at = OffsetDateTime::now_utc();
        let id = BackupId::generate(started_at);
        let source = prepared.source().clone();
        let work = async {
            progress.event(&Event::BackupStarted {
                id: id.clone(),
                database: source.database.clone(),
            });
            let dumped = prepared.run(expected).await?;
            tracing::info!(backup = %id, files = dumped.files().len(), toc_entries = dumped.toc_entries(), "directory dump finished; uploading");
            // A Vec of futures from a method (no closure returning futures: those make the
            // future not `Send` for every lifetime, which a daemon's spawned job needs).
            let mut uploads = Vec::new();
            for (name, _) in dumped.files() {
                uploads.push(self.upload_spooled(&id, dumped.as_ref(), name, opts, progress));
            }
            let mut pending = futures_util::stream::iter(uploads).buffer_unordered(jobs.max(1));
            let mut artifacts: Vec<Artifact> = Vec::new();
            while let Some(res) = pending.next().await {
                match res {
                    Ok(a) => artifacts.push(a),
                    Err(e) => {
                        // In-flight uploads are dropped (their objects discarded).
                        drop(pending);
                        self.discard_artifacts(&artifacts).await;
                        return Err(e);
                    }
                }
            }
            drop(pending);
            drop(dumped); // removes the spool
            artifacts.sort_by(|a, b| a.name.cmp(&b.name));
            Box::pin(self.upload_files(&id, opts, progress, &mut artifacts)).await?;
            let manifest = Manifest::new_v3(
                id.clone(),
                &source,
                opts.compression,
                started_at,
                OffsetDateTime::now_utc(),
                opts.labels.clone(),
                opts.encryption.as_ref().map(Encryption::info),
                artifacts,
            );
            self.commit(manifest, opts, progress).await
        };
        self.leased(&id, work, cancel).await
    }

    /// Restores a directory-format backup: every file is downloaded through the verified
    /// stream into the restorer's spool (`jobs` at a time), and the restore runs only once
    /// all of them matched their checksums.
    pub(super) async fn restore_directory_until(
        &self,
        m: &Manifest,
        restorer: &dyn Restorer,
        opts: &RestoreOptions,
        progress: &dyn Progress,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<RestoreReport, Error> {
        let mut cancel = std::pin::pin!(cancel);
        let before = self.storage.stats();
        let keys = self.check_all_present(m).await?;
        if let Some(first) = keys.first() {
            self.check_keys(m, first).await?;
        }
        let archive = ArchiveInfo::new(ArchiveFormat::Directory, m.pg_dump_major);
        let sink = tokio::select! {
            sink = restorer.begin_directory(&archive, opts) => sink?,
            () = &mut cancel => return Err(super::restore::cancelled().await),
        };
        let mut wanted: Vec<(&Artifact, &crate::key::ObjectKey)> = m
            .artifacts
            .iter()
            .zip(&keys)
            .filter(|(a, _)| a.kind == ArtifactKind::DirectoryFile)
            .collect();
        if opts.is_selective() {
            // The table of contents first; it tells which data files the selection needs.
            let toc = wanted.iter().position(|(a, _)| a.name == TOC);
            if let Some(i) = toc {
                let (a, key) = wanted.remove(i);
                let res = tokio::select! {
                    res = self.fetch_file(m, a, key, sink.as_ref(), progress) => res,
                    () = &mut cancel => Err(Error::Cancelled),
                };
                let needed = match res {
                    Ok(()) => sink.needed().await.map_err(Error::from),
                    Err(e) => Err(e),
                };
                match needed {
                    Ok(Some(files)) => wanted.retain(|(a, _)| files.contains(&a.name)),
                    Ok(None) => {}
                    Err(e) => {
                        sink.abort().await;
                        return Err(e);
                    }
                }
            }
        }
        let objects_read = wanted.len() as u64 + u64::from(opts.is_selective());
        let mut downloads = Vec::with_capacity(wanted.len());
        for (a, key) in wanted {
            downloads.push(self.fetch_file(m, a, key, sink.as_ref(), progress));
        }
        let all = async {
            let mut pending =
                futures_util::stream::iter(downloads).buffer_unordered(opts.jobs.max(1) as usize);
            while let Some(res) = pending.next().await {
                res?;
            }
            Ok::<_, Error>(())
        };
        let fetched = tokio::select! {
            res = all => res,
            () = &mut cancel => Err(Error::Cancelled),
        };
        if let Err(e) = fetched {
            sink.abort().await;
            return Err(e);
        }
        tokio::select! {
            res = sink.finish() => {
                let mut report = res?;
                report.storage = self.storage.stats().since(before);
                report.objects_read = Some(objects_read);
                Ok(report)
            }
            () = &mut cancel => Err(super::restore::cancelled().await),
        }
    }

    /// Uploads spooled file `name` of a directory-format dump as an artifact.
    async fn upload_spooled(
        &self,
        id: &BackupId,
        dumped: &dyn crate::directory::DumpedDirectory,
        name: String,
        opts: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<Artifact, Error> {
        let file = layout::directory_file_name(&name, opts.compression, opts.encryption.is_some());
        let stream = dumped.open(&name)?;
        self.upload_artifact(
            id,
            &file,
            (&name, ArtifactKind::DirectoryFile),
            stream,
            opts,
            progress,
        )
        .await
    }

    /// Downloads one file of a directory-format backup, verified, into the restore's spool.
    async fn fetch_file(
        &self,
        m: &Manifest,
        a: &Artifact,
        key: &crate::key::ObjectKey,
        sink: &dyn crate::directory::DirectorySink,
        progress: &dyn Progress,
    ) -> Result<(), Error> {
        let mut file = sink.file(&a.name).await?;
        if let Err(e) = self
            .stream_verified(m, a, key, file.as_mut(), progress)
            .await
        {
            file.abort().await;
            return Err(e);
        }
        file.finish().await?;
        Ok(())
    }
}
