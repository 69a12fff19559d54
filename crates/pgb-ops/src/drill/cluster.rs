//! Drills of whole-server backups (`backup --all-databases`): every database (or the one of
//! [`DrillOptions::database`]) restored into its own scratch database, each checked like a
//! drill of one database, all in one record.
//!
//! The globals (roles, memberships, tablespaces) are verified with the rest of the backup
//! but not applied: they are server-wide, so applying them would change the drill target's
//! own roles. Each database is therefore restored with `--no-owner --no-privileges`, and the
//! drill says so in a skipped `globals` check. Phases and checks of a database carry its
//! name (`shop: restore`); the scratch databases are dropped as soon as their database is
//! checked, and every one of them on every way out (end, failure, cancellation).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use pgb_core::{
    ArchiveChecker, ArchiveInfo, ArtifactKind, DumpError, Error as CoreError, Manifest, Progress,
    Repository, RestoreOptions, RestoreSink,
};
use pgb_postgres::{PgArchiveCheck, PgRestore, SqlClient, TocCapture, ToolLocator};
use time::OffsetDateTime;

use super::checks::{self, cause_of, failed, passed};
use super::scratch::{Scratch, scratch_name};
use super::{
    Clock, DrillError, DrillHook, DrillOptions, DrillReport, Found, MIGRATIONS, is_target_problem,
    verdict,
};
use crate::record::record_drill;
use crate::toc::{TocTable, toc_tables};

/// Drills the whole-server backup `m` (after [`super::prepare`] chose it).
#[allow(clippy::too_many_arguments)]
pub(super) async fn drill(
    repo: &Repository,
    opts: &DrillOptions,
    hook: Option<&dyn DrillHook>,
    progress: &dyn Progress,
    m: Manifest,
    client: SqlClient,
    started_at: OffsetDateTime,
    t0: Instant,
    cancel: impl Future<Output = ()>,
) -> Result<DrillReport, DrillError> {
    let held = m
        .cluster
        .as_ref()
        .map(|c| c.databases.clone())
        .unwrap_or_default();
    let names = match &opts.database {
        Some(d) if held.contains(d) => vec![d.clone()],
        Some(d) => {
            return Err(DrillError::Invalid(format!(
                "backup {} holds no database {d} (it holds: {})",
                m.id,
                held.join(", ")
            )));
        }
        None => held,
    };
    let mut scratches: Vec<(String, Scratch)> = Vec::with_capacity(names.len());
    for name in names {
        let mut scratch = scratch_name(&name, started_at);
        // Two names that differ only in characters a scratch name cannot hold.
        let mut n = 1;
        while scratches.iter().any(|(_, s)| s.name() == scratch) {
            n += 1;
            scratch = scratch_name(&format!("{name}_{n}"), started_at);
        }
        if client
            .database_exists(&opts.target, &scratch)
            .await
            .map_err(DrillError::Target)?
        {
            return Err(DrillError::Invalid(format!(
                "a database named {scratch} already exists on {}; another drill is running, or one was kept",
                opts.target.server()
            )));
        }
        scratches.push((
            name,
            Scratch::new(client.clone(), opts.target.clone(), scratch),
        ));
    }
    let mut cancel = std::pin::pin!(cancel);
    let steps = steps(repo, opts, hook, progress, &m, &client, &scratches);
    let ran = tokio::select! {
        biased;
        () = &mut cancel => None,
        r = steps => Some(r),
    };
    let rto = t0.elapsed();
    let keep = opts.keep && matches!(ran, Some(Ok(_)));
    let mut dropped = true;
    for (_, s) in &scratches {
        dropped &= s.finish(keep).await;
    }
    let found = ran.ok_or(DrillError::Cancelled)??;
    let names: Vec<&str> = scratches.iter().map(|(_, s)| s.name()).collect();
    let mut report = verdict(opts, &m, found, started_at, rto, dropped, &names.join(", "));
    if opts.record {
        match record_drill(repo, &report, opts.auth_key.as_ref()).await {
            Ok(key) => report.recorded_as = Some(key.as_str().to_owned()),
            Err(e) => report.record_error = Some(e.to_string()),
        }
    }
    Ok(report)
}

/// Fetch and verify the whole backup once, then each database in turn: restore, hooks,
/// analyze, checks, drop.
async fn steps(
    repo: &Repository,
    opts: &DrillOptions,
    hook: Option<&dyn DrillHook>,
    progress: &dyn Progress,
    m: &Manifest,
    client: &SqlClient,
    scratches: &[(String, Scratch)],
) -> Result<Found, DrillError> {
    let mut found = Found::default();
    let mut clock = Clock::new();
    for (name, _) in scratches {
        if let Err(p) =
            opts.migrations
                .check_backup(m.id.as_str(), m.migrations_of(name), hook.is_some())
        {
            let target = opts
                .migrations
                .target
                .as_ref()
                .expect("a problem needs a target");
            found.migrations = Some(crate::MigrationReport::refused(
                target,
                m.migrations_of(name),
                &p,
            ));
            found.checks.push(failed(
                MIGRATIONS,
                format!("database {name}: {p}; nothing was restored"),
            ));
            return Ok(found);
        }
    }
    let (verified, mut tables) = fetch_verify(repo, opts, m, progress).await?;
    let ok = verified.passed;
    found.checks.push(verified);
    found.phases.push(clock.lap("fetch_verify"));
    if !ok {
        return Ok(found);
    }
    found.checks.push(skipped(
        "globals",
        "verified, not applied: roles and tablespaces are server-wide and the drill leaves the target's as they are, so each database is restored without owners and privileges (pgb restore --globals applies them)",
    ));
    let single = scratches.len() == 1;
    for (name, scratch) in scratches {
        let db_tables = tables.remove(name.as_str());
        let lap = |clock: &mut Clock, phase: &str| clock.lap(&format!("{name}: {phase}"));
        let named = |c: super::CheckResult| {
            if c.name == MIGRATIONS {
                let detail = format!("database {name}: {}", c.detail);
                super::CheckResult { detail, ..c }
            } else {
                let name = format!("{name}: {}", c.name);
                super::CheckResult { name, ..c }
            }
        };
        let restored = restore(repo, opts, m, name, progress, scratch).await?;
        let ok = restored.passed;
        found.checks.push(named(restored));
        found.phases.push(lap(&mut clock, "restore"));
        if !ok {
            if !opts.keep {
                scratch.finish(false).await;
            }
            continue;
        }
        let target = scratch.conn();
        let hook_run = hook.map(|h| h.post_restore(&target));
        let recorded = m.migrations_of(name);
        let (ran, heads) =
            crate::migrations::around_hook(client, &target, recorded, &opts.migrations, hook_run)
                .await;
        if let Some(r) = ran {
            found.checks.push(named(match r {
                Ok(()) => passed("post_restore hooks", "ran"),
                Err(e) => failed("post_restore hooks", e.to_string()),
            }));
        }
        match (&heads.passed, &heads.problem) {
            (Some(false), Some(p)) => found.checks.push(named(failed(MIGRATIONS, p.clone()))),
            (Some(true), _) => found.checks.push(named(passed(
                MIGRATIONS,
                heads
                    .last()
                    .iter()
                    .map(pgb_core::MigrationHead::label)
                    .collect::<Vec<_>>()
                    .join(", "),
            ))),
            _ => {}
        }
        if single && !heads.is_empty() {
            found.migrations = Some(heads);
        }
        found.phases.push(lap(&mut clock, "hooks"));
        if let Err(e) = client.query(&target, "analyze;", &[]).await {
            found.checks.push(named(failed("analyze", cause_of(&e))));
        }
        found.phases.push(lap(&mut clock, "analyze"));
        found.toc_tables += db_tables.as_ref().map_or(0, |t| t.len() as u64);
        // A whole-server backup records no per-table row estimates: the rows check says so.
        let checked = checks::run(
            client,
            &target,
            db_tables.as_deref(),
            &m.table_estimates,
            &opts.smoke,
        )
        .await;
        found.checks.extend(checked.into_iter().map(named));
        found.phases.push(lap(&mut clock, "checks"));
        // Done with this database: its scratch copy goes now (unless kept), not at the end.
        if !opts.keep {
            scratch.finish(false).await;
        }
    }
    Ok(found)
}

/// A check that was skipped on purpose, with the reason.
fn skipped(name: &str, detail: &str) -> super::CheckResult {
    super::CheckResult {
        skipped: true,
        ..passed(name, detail)
    }
}

/// Reads the whole backup with `Repository::verify`; the check and each database's tables.
async fn fetch_verify(
    repo: &Repository,
    opts: &DrillOptions,
    m: &Manifest,
    progress: &dyn Progress,
) -> Result<
    (
        super::CheckResult,
        std::collections::HashMap<String, Vec<TocTable>>,
    ),
    DrillError,
> {
    const NAME: &str = "fetch and verify";
    let lister = TocsLister {
        locator: opts.locator.clone(),
        spool_dir: opts.spool_dir.clone(),
        captures: Mutex::new(Vec::new()),
    };
    let check = match repo.verify(m, Some(&lister), progress).await {
        Ok(r) => passed(
            NAME,
            format!(
                "{} stored bytes, {} plain bytes, checksums match, {} databases and the globals",
                r.stored_size,
                r.plain_size,
                m.artifacts
                    .iter()
                    .filter(|a| a.kind == ArtifactKind::Dump)
                    .count()
            ),
        ),
        Err(e @ (CoreError::Integrity { .. } | CoreError::Manifest { .. })) => {
            failed(NAME, e.to_string())
        }
        Err(CoreError::Dump(e)) if !is_target_problem(&e) => failed(NAME, cause_of(&e)),
        Err(CoreError::Dump(e)) => return Err(DrillError::Target(e)),
        Err(e) => return Err(e.into()),
    };
    // The checker saw the dumps in the order of the manifest's artifacts.
    let captures = lister
        .captures
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tables = m
        .artifacts
        .iter()
        .filter(|a| a.kind == ArtifactKind::Dump)
        .zip(captures)
        .filter_map(|(a, c)| c.take().map(|toc| (a.name.clone(), toc_tables(&toc))))
        .collect();
    Ok((check, tables))
}

/// Restores database `name` of the backup into its scratch database.
async fn restore(
    repo: &Repository,
    opts: &DrillOptions,
    m: &Manifest,
    name: &str,
    progress: &dyn Progress,
    scratch: &Scratch,
) -> Result<super::CheckResult, DrillError> {
    const NAME: &str = "restore";
    scratch.create().await.map_err(DrillError::Target)?;
    let restorer = PgRestore::new(scratch.conn(), opts.locator.clone(), &opts.spool_dir);
    let ropts = RestoreOptions::new()
        .with_verify_first(false)
        .with_jobs(opts.jobs);
    let res = repo
        .restore_database_until(
            m,
            Some(name),
            &restorer,
            &ropts,
            progress,
            std::future::pending(),
        )
        .await;
    match res {
        Ok(_) => Ok(passed(NAME, "pg_restore exited cleanly")),
        Err(CoreError::Dump(e)) if is_target_problem(&e) => Err(DrillError::Target(e)),
        Err(CoreError::Dump(e)) => Ok(failed(NAME, cause_of(&e))),
        Err(e @ CoreError::Storage(_)) => Err(e.into()),
        Err(e) => Ok(failed(NAME, e.to_string())),
    }
}

/// An [`ArchiveChecker`] keeping the table of contents of every dump it checks, in order.
#[derive(Debug)]
struct TocsLister {
    locator: ToolLocator,
    spool_dir: PathBuf,
    captures: Mutex<Vec<TocCapture>>,
}

impl TocsLister {
    fn checker(&self) -> PgArchiveCheck {
        let capture = TocCapture::default();
        self.captures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(capture.clone());
        PgArchiveCheck::new(self.locator.clone())
            .with_spool_dir(&self.spool_dir)
            .with_toc_capture(capture)
    }
}

#[async_trait]
impl ArchiveChecker for TocsLister {
    async fn check(&self, archive: &ArchiveInfo) -> Result<Box<dyn RestoreSink>, DumpError> {
        self.checker().check(archive).await
    }

    async fn check_directory(
        &self,
        archive: &ArchiveInfo,
        files: &[String],
    ) -> Result<Option<Box<dyn RestoreSink>>, DumpError> {
        ArchiveChecker::check_directory(&self.checker(), archive, files).await
    }
}
