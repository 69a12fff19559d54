//! Physical backups: the base backup's tar through the pipeline as one artifact, committed
//! only once its WAL is safe (in the archive, or inside the tar); their restore into a data
//! directory, verified while extracting; and their check against `backup_manifest`.

use std::time::Duration;

use time::OffsetDateTime;

use super::{BackupOptions, BackupReport, BackupRequest, Repository};
use crate::crypto::Encryption;
use crate::error::{Error, IntegrityProblem};
use crate::events::{Event, Progress};
use crate::layout;
use crate::manifest::{ArtifactKind, BackupId, Manifest};
use crate::physical::{
    Extractor, FollowedDump, PhysicalDumper, PhysicalInfo, PhysicalRestorePlan,
    PhysicalRestoreReport, PhysicalRestoreRequest, WalMode,
};
use crate::storage::{Storage, StorageErrorKind};

/// How often the WAL archive is checked while a backup waits for its segments.
const WAL_POLL: Duration = Duration::from_secs(1);

impl Repository {
    /// A wrapper kept for existing callers: [`Repository::backup_request`] with
    /// [`BackupRequest::physical`].
    ///
    /// # Errors
    /// As [`Repository::backup_request`].
    #[doc(hidden)]
    pub async fn backup_physical_until(
        &self,
        dumper: &dyn PhysicalDumper,
        opts: &BackupOptions,
        wal_wait: Duration,
        progress: &dyn Progress,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<BackupReport, Error> {
        self.backup_request(
            BackupRequest::physical(dumper, wal_wait, opts),
            progress,
            cancel,
        )
        .await
        .map(super::BackupOutcome::into_report)
    }

    /// A physical base backup: preflight (the dumper's checks of the server and role, then
    /// the repository), stream the tar through compression, hashing and encryption into
    /// `backups/<id>/base.tar…` while following it for `backup_label` and `backup_manifest`,
    /// then commit. With [`WalMode::Archive`] the manifest is written only once every WAL
    /// segment from the backup's start to its stop is in the archive
    /// ([`layout::wal_key`]), waiting up to `wal_wait` (which also bounds how long the server
    /// may wait for its archiver before the stream ends); on timeout the stored tar is removed
    /// and [`Error::WalNotArchived`] names the first missing segment.
    pub(super) async fn backup_physical(
        &self,
        dumper: &dyn PhysicalDumper,
        opts: &BackupOptions,
        wal_wait: Duration,
        progress: &dyn Progress,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<Manifest, Error> {
        let prepared = dumper.prepare().await?;
        self.preflight().await?;
        let (prepared, incremental) = if dumper.incremental() {
            self.prepare_incremental(prepared).await?
        } else {
            (prepared, None)
        };
        let source = prepared.physical().clone();
        let started_at = OffsetDateTime::now_utc();
        let id = BackupId::generate(started_at);
        let work = async {
            progress.event(&Event::BackupStarted {
                id: id.clone(),
                database: crate::manifest::CLUSTER_DATABASE.to_owned(),
            });
            tracing::info!(backup = %id, system_identifier = source.system_identifier, wal = %source.wal, "physical backup started");
            let stall = (source.wal == WalMode::Archive).then_some(wal_wait);
            let (followed, capture) = FollowedDump::new(prepared, stall);
            let file = layout::base_name(opts.compression, opts.encryption.is_some());
            let uploaded = self
                .upload_artifact(
                    &id,
                    &file,
                    ("base", ArtifactKind::BaseTar),
                    Box::new(followed),
                    opts,
                    progress,
                )
                .await;
            let artifact = match uploaded {
                Ok(a) => a,
                Err(e) => {
                    let (stalled, label) = capture
                        .lock()
                        .map(|c| (c.stalled, c.label()))
                        .unwrap_or((false, None));
                    if stalled {
                        let first = self.first_missing_from(&source, label).await;
                        return Err(Error::WalNotArchived {
                            id: id.clone(),
                            segment: first,
                            waited_secs: wal_wait.as_secs(),
                        });
                    }
                    return Err(e);
                }
            };
            let captured = capture
                .lock()
                .map_err(|_| "capture poisoned".to_owned())
                .and_then(|c| c.captured());
            let captured = match captured {
                Ok(c) => c,
                Err(problem) => {
                    self.discard_artifacts(std::slice::from_ref(&artifact))
                        .await;
                    return Err(Error::Manifest {
                        id: id.to_string(),
                        problem,
                    });
                }
            };
            if let Some(sysid) = captured.manifest.system_identifier
                && sysid != source.system_identifier
            {
                self.discard_artifacts(std::slice::from_ref(&artifact))
                    .await;
                return Err(Error::Manifest {
                    id: id.to_string(),
                    problem: format!(
                        "backup_manifest names system {sysid}, the server said {}",
                        source.system_identifier
                    ),
                });
            }
            let (start, stop) = (captured.manifest.start(), captured.manifest.stop());
            let size = source.wal_segment_size;
            let segments = crate::physical::segments(
                start.timeline,
                start.start,
                stop.timeline,
                stop.end,
                size,
            );
            let info = PhysicalInfo {
                system_identifier: source.system_identifier,
                timeline: captured.label.timeline,
                start_lsn: start.start,
                stop_timeline: stop.timeline,
                stop_lsn: stop.end,
                wal_segment_size: size,
                wal: source.wal,
                start_wal_file: segments
                    .first()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                stop_wal_file: segments
                    .last()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                stop_time: captured.ended_at,
                backup_manifest_sha256: captured.manifest_sha256.clone(),
                files: captured.manifest.files.len() as u64,
                server_major: source.server_major,
                incremental,
            };
            if source.wal == WalMode::Archive
                && let Err(segment) = self
                    .wait_for_segments(source.system_identifier, &segments, wal_wait)
                    .await
            {
                self.discard_artifacts(std::slice::from_ref(&artifact))
                    .await;
                return Err(Error::WalNotArchived {
                    id: id.clone(),
                    segment,
                    waited_secs: wal_wait.as_secs(),
                });
            }
            let manifest = Manifest::new_physical(
                id.clone(),
                &source.dump,
                info,
                opts.compression,
                started_at,
                OffsetDateTime::now_utc(),
                opts.labels.clone(),
                opts.encryption.as_ref().map(Encryption::info),
                vec![artifact],
            );
            self.commit(manifest, opts, progress).await
        };
        self.leased(&id, work, cancel).await
    }

    /// Polls the archive until every segment of `segments` is there, at most `wait`; the
    /// first missing one when time ran out (or the store cannot be read).
    async fn wait_for_segments(
        &self,
        system_identifier: u64,
        segments: &[pgb_wal::WalFileName],
        wait: Duration,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut next = 0;
        loop {
            while let Some(seg) = segments.get(next) {
                match self
                    .storage
                    .head(&layout::wal_key(system_identifier, seg))
                    .await
                {
                    Ok(_) => next += 1,
                    Err(e) if e.kind() == StorageErrorKind::NotFound => break,
                    Err(e) => {
                        tracing::warn!(segment = %seg, error = %e, "cannot check the WAL archive");
                        break;
                    }
                }
            }
            let Some(missing) = segments.get(next) else {
                tracing::info!(
                    segments = segments.len(),
                    "the backup's WAL is in the archive"
                );
                return Ok(());
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(missing.as_str().to_owned());
            }
            tracing::debug!(segment = %missing, "waiting for the archive");
            tokio::time::sleep(WAL_POLL.min(deadline - tokio::time::Instant::now())).await;
        }
    }

    /// The first segment from the backup's start (its `backup_label`, the first file of the
    /// stream) that is not in the archive: what the server still waits for.
    async fn first_missing_from(
        &self,
        source: &crate::physical::PhysicalSource,
        label: Option<crate::physical::pgfiles::BackupLabel>,
    ) -> String {
        let Some(label) = label else {
            return format!("(the backup's first, on timeline {})", source.timeline);
        };
        let size = source.wal_segment_size;
        let prefix = layout::wal_timeline_prefix(source.system_identifier, label.timeline);
        let archived: std::collections::HashSet<String> =
            match self.storage.list(Some(&prefix)).await {
                Ok(objects) => objects
                    .iter()
                    .map(|o| o.key.file_name().to_owned())
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list the WAL archive");
                    std::collections::HashSet::new()
                }
            };
        let mut n = label.start_lsn.segment(size);
        loop {
            let name = pgb_wal::WalFileName::segment(label.timeline, n, size);
            if !archived.contains(name.as_str()) {
                return name.as_str().to_owned();
            }
            n += 1;
        }
    }

    /// Plans a physical restore: the base backup for the target (the newest of the cluster
    /// that ended before a time or LSN target, else the newest; or the one named), the WAL
    /// it needs, the bytes it fetches, and the data directory's state. Writes nothing.
    ///
    /// # Errors
    /// `BackupNotFound`, `NoPhysicalBackup`, `TargetBeforeBackup`, `Invalid` (not a physical
    /// backup, another cluster, several clusters and none chosen), `Dump` for a data
    /// directory that is not safe to restore into (`Refused`, `DirectoryNotEmpty`).
    pub async fn plan_physical_restore(
        &self,
        req: &PhysicalRestoreRequest,
    ) -> Result<PhysicalRestorePlan, Error> {
        let listing = self.list().await?;
        let id = if req.selector == "latest" {
            None
        } else {
            let id: BackupId = req
                .selector
                .parse()
                .map_err(|_| Error::BackupNotFound(req.selector.clone()))?;
            if !listing.backups.iter().any(|m| m.id == id) {
                // Unusable or absent: say why, as reading it does.
                self.manifest(&id).await?;
                return Err(Error::BackupNotFound(id.to_string()));
            }
            Some(id)
        };
        let mut m = crate::physical::plan::choose(
            &listing.backups,
            id.as_ref(),
            req.system_identifier,
            &req.settings.target,
        )?;
        // A timeline asked for by number: the newest backup on a timeline leading to it, not
        // the newest of all (one on a later timeline can never reach an earlier one).
        if let (None, crate::physical::TimelineTarget::Id(want)) = (&id, req.settings.timeline)
            && let Some(p) = &m.physical
            && p.timeline != want
        {
            let sysid = p.system_identifier;
            // No history file: only backups on that timeline itself lead to it.
            let history = self
                .wal()
                .history(sysid, want)
                .await
                .unwrap_or_else(|_| pgb_wal::TimelineHistory::root(want));
            let leading: Vec<Manifest> = listing
                .backups
                .iter()
                .filter(|b| {
                    b.physical.as_ref().is_some_and(|q| {
                        q.system_identifier == sysid
                            && (q.timeline == want || history.leads_to(q.timeline, q.start_lsn))
                    })
                })
                .cloned()
                .collect();
            if let Ok(found) =
                crate::physical::plan::choose(&leading, None, Some(sysid), &req.settings.target)
                && let Some(same) = listing.backups.iter().find(|b| b.id == found.id)
            {
                m = same;
            }
        }
        let p = m.physical.as_ref().expect("chosen backups are physical");
        let chain: Vec<Manifest> =
            crate::physical::incremental::chain_of(m, &listing.backups, &listing.invalid)
                .map_err(|b| super::incremental::broken(m, b))?
                .iter()
                .take_while(|a| a.id != m.id)
                .map(|a| (*a).clone())
                .collect();
        let (data_dir, dir) =
            crate::physical::plan::check_dir(&req.dir, req.clean, &req.protected)?;
        let s = &req.settings;
        Ok(PhysicalRestorePlan {
            backup: m.id.clone(),
            system_identifier: p.system_identifier,
            server_version: m.server_version.clone(),
            timeline: p.timeline,
            start_lsn: p.start_lsn,
            stop_lsn: p.stop_lsn,
            backup_stop_time: p.stop_time,
            wal: p.wal,
            wal_from: p.start_wal_file.clone(),
            wal_consistent_at: p.stop_wal_file.clone(),
            fetch_bytes: m.stored_size() + chain.iter().map(Manifest::stored_size).sum::<u64>(),
            plain_bytes: m.plain_size() + chain.iter().map(Manifest::plain_size).sum::<u64>(),
            chain: chain.iter().map(|a| a.id.clone()).collect(),
            chain_manifests: chain,
            target: s.target.clone(),
            exclusive: s.exclusive,
            timeline_target: s.timeline,
            action: s.action,
            data_dir,
            dir,
            restore_command: s.restore_command.clone(),
            manifest: m.clone(),
        })
    }

    /// Carries out a physical restore `plan`: checks the data directory again, verifies the
    /// stored object first (unless `verify_first` is off: then a mismatch found while
    /// extracting removes what was extracted), empties the directory with `clean`, extracts
    /// the tar (checked against the manifest's digests and each file against
    /// `backup_manifest`), then writes `recovery.signal` and the recovery settings. On any
    /// failure or cancellation everything extracted is removed (and the directory, if the
    /// restore created it).
    ///
    /// # Errors
    /// `Integrity` (checksums, `backup_manifest`), `Key`, `Dump` (`DirectoryNotEmpty`,
    /// `Refused`, `Io`), storage failures, `Cancelled`.
    pub async fn restore_physical_until(
        &self,
        plan: &PhysicalRestorePlan,
        req: &PhysicalRestoreRequest,
        progress: &dyn Progress,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<PhysicalRestoreReport, Error> {
        if !plan.chain.is_empty() {
            return Box::pin(self.restore_chain(plan, req, None, progress, cancel)).await;
        }
        let mut cancel = std::pin::pin!(cancel);
        let before = self.storage.stats();
        let m = &plan.manifest;
        let p = m.physical.as_ref().expect("planned backups are physical");
        let a = m
            .artifacts
            .iter()
            .find(|a| a.kind == ArtifactKind::BaseTar)
            .ok_or_else(|| Error::Manifest {
                id: m.id.to_string(),
                problem: "the backup holds no base backup".to_owned(),
            })?;
        let (dir, state) =
            crate::physical::plan::check_dir(&plan.data_dir, req.clean, &req.protected)?;
        let key = self.check_present(m, a).await?;
        self.check_keys(m, &key).await?;
        if req.verify_first {
            let got = tokio::select! {
                got = self.hash_object(&key) => got?,
                () = &mut cancel => return Err(Error::Cancelled),
            };
            if got != a.stored_sha256 {
                return Err(Error::Integrity {
                    id: m.id.clone(),
                    problem: IntegrityProblem::ChecksumMismatch {
                        key: a.key.clone(),
                        expected: a.stored_sha256.clone(),
                        actual: got,
                    },
                });
            }
        }
        let io = |what: String| Error::Dump(crate::DumpError::new(crate::DumpErrorKind::Io, what));
        let created = crate::physical::prepare_target(&dir, &state).map_err(io)?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| io(format!("setting the mode of {}: {e}", dir.display())))?;
        }
        tracing::info!(backup = %m.id, dir = %dir.display(), "extracting the base backup");
        let mut sink =
            Extractor::start(dir.clone(), created, Some(p.backup_manifest_sha256.clone()));
        let streamed = tokio::select! {
            res = self.stream_verified(m, a, &key, &mut sink, progress) => res,
            () = &mut cancel => Err(Error::Cancelled),
        };
        if let Err(e) = streamed {
            sink.abort_extract().await;
            return Err(e);
        }
        let extracted = tokio::select! {
            res = sink.finish_extract() => res?,
            () = &mut cancel => {
                sink.abort_extract().await;
                return Err(Error::Cancelled);
            }
        };
        let header = format!(
            "Recovery settings written by pgb restore of backup {} (system {}) at {}",
            m.id,
            p.system_identifier,
            OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        );
        if let Err(e) = req.settings.write(&dir, &header) {
            sink.unkeep();
            drop(sink);
            return Err(io(format!(
                "writing the recovery settings into {}: {e}",
                dir.display()
            )));
        }
        sink.keep();
        Ok(PhysicalRestoreReport {
            plan: plan.clone(),
            entries: extracted.entries,
            bytes: extracted.bytes,
            files_checked: extracted.checked,
            storage: self.storage.stats().since(before),
        })
    }
}
