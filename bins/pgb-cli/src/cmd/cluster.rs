//! Whole-server backups (`backup --all-databases`) and their restores (`restore --database`,
//! `--globals`, `--all`).

use super::Ctx;
use crate::args::{BackupArgs, RestoreArgs};
use crate::exit::{FAILURE, Failure, REFUSED};
use crate::render::{self, Output, RestoreOut, cluster};
use crate::resolve::{self, ClusterRestore};

/// `backup --all-databases`: one backup of every selected database plus the globals; then,
/// like a single-database backup, `--verify` and `--prune`. Returns (id, set, stored bytes).
pub(super) async fn backup(a: BackupArgs, ctx: &Ctx<'_>) -> Result<(String, String, u64), Failure> {
    let (dumper, plan) = resolve::cluster_backup(&a, ctx.env)?;
    let repo = resolve::backup_repository(&a.repo, ctx.env)?;
    let done = repo
        .backup_cluster_until(
            &dumper,
            &plan.options,
            &render::log_progress,
            ctx.cancelled(),
        )
        .await?;
    cluster::notes(&done);
    super::backup::after_commit(&a, ctx, &repo, &done.backup, plan.prune, &done, |w| {
        cluster::backup(w, &done)
    })
    .await
}

/// `backup --format directory`: pg_dump -Fd -j N into a spool, each file uploaded as an
/// artifact of one backup; then `--verify` and `--prune` as for any backup.
pub(super) async fn backup_directory(
    a: BackupArgs,
    ctx: &Ctx<'_>,
) -> Result<(String, String, u64), Failure> {
    let (dumper, plan) = resolve::directory_backup(&a, ctx.env)?;
    let repo = resolve::backup_repository(&a.repo, ctx.env)?;
    let r = repo
        .backup_directory_until(
            &dumper,
            a.directory.jobs.unwrap_or(1) as usize,
            &plan.options,
            &render::log_progress,
            ctx.cancelled(),
        )
        .await?;
    super::backup::after_commit(&a, ctx, &repo, &r, plan.prune, &r, |w| {
        render::backup_text(w, &r)
    })
    .await
}

/// `restore ID --database NAME --db URL`, `--globals --db URL` or `--all --server URL`.
pub(super) async fn restore(
    a: RestoreArgs,
    job: Option<&pgb_config::ResolvedJob>,
    ctx: &Ctx<'_>,
) -> Result<(), Failure> {
    if let Some(dir) = &a.files.files_to {
        return restore_files(&a, dir, ctx).await;
    }
    let what = resolve::cluster_restore(&a, ctx.env)?;
    let keys = resolve::decryption(&a.keys, ctx.env)?;
    let keys_given = keys.has_keys();
    let repo = resolve::repository(&a.repo, ctx.env)?
        .with_decryption(keys)
        .allow_unauthenticated(a.keys.allow_unauthenticated);
    let m = repo
        .resolve_logical(&a.id, a.from_database.as_deref())
        .await?;
    super::restore::plaintext_check(&m, keys_given, a.require_encrypted)?;
    let opts = a.options();
    let out = Output::json(a.json);
    let started = std::time::Instant::now();
    match what {
        ClusterRestore::Database(name, restorer, target) => {
            let report = repo
                .restore_database_until(
                    &m,
                    Some(&name),
                    &restorer,
                    &opts,
                    &render::log_progress,
                    ctx.cancelled(),
                )
                .await?;
            let seconds = started.elapsed().as_secs_f64();
            // The job's post_restore hook (migrations) on the database restored.
            let hook = match job {
                Some(j) => super::restore::post_restore_hook(j, &target, &m, ctx).await,
                None => None,
            };
            let o = RestoreOut {
                backup: m.id.as_str(),
                database: &report.database,
                created: report.created,
                seconds,
                objects_read: report.objects_read,
                post_restore: hook.as_ref(),
                migrations: None,
            };
            out.emit(&o, |w| {
                render::restore_text(w, &m, Some(&name), &report, seconds)
            })?;
            super::restore::hook_outcome(hook.as_ref(), &report.database)
        }
        ClusterRestore::Globals(target) => {
            let report = repo
                .restore_globals(&m, &target, &render::log_progress)
                .await?;
            cluster::globals_failures(&report);
            out.emit(&report, |w| cluster::globals(w, &report))?;
            globals_outcome(&report)
        }
        ClusterRestore::All(server) => {
            let report = repo
                .restore_cluster_until(&m, &server, &opts, &render::log_progress, ctx.cancelled())
                .await?;
            let seconds = started.elapsed().as_secs_f64();
            let o = cluster::RestoreAllOut {
                backup: m.id.as_str(),
                report: &report,
                seconds,
            };
            out.emit(&o, |w| cluster::restore_all(w, &m, &report, seconds))
        }
    }
}

/// `restore ID --files-to DIR`: the backup's files archives, and nothing else.
async fn restore_files(
    a: &RestoreArgs,
    dir: &std::path::Path,
    ctx: &Ctx<'_>,
) -> Result<(), Failure> {
    if a.db.is_some() || a.cluster.selected() {
        return Err(Failure::usage(
            "--files-to restores only the files: restore the database in a second run",
        ));
    }
    let keys = resolve::decryption(&a.keys, ctx.env)?;
    let keys_given = keys.has_keys();
    let repo = resolve::repository(&a.repo, ctx.env)?
        .with_decryption(keys)
        .allow_unauthenticated(a.keys.allow_unauthenticated);
    let m = repo
        .resolve_logical(&a.id, a.from_database.as_deref())
        .await?;
    super::restore::plaintext_check(&m, keys_given, a.require_encrypted)?;
    let opts = pgb::FilesRestoreOptions::new()
        .with_clean(a.clean)
        .with_keep_modes(a.files.keep_modes);
    // The current directory, before the restore may replace it.
    let cwd = std::env::current_dir().and_then(std::fs::canonicalize).ok();
    let done = repo
        .restore_files(&m, dir, &opts, &render::log_progress)
        .await
        .map_err(files_failure)?;
    cluster::files_notes(&done);
    if let Some(cwd) = cwd
        && let Some(r) = done.iter().find(|r| cwd.starts_with(&r.destination))
    {
        render::note(format_args!(
            "note: {} was replaced, and with it this shell's current directory: `cd \"$PWD\"` to see the restored files",
            r.destination.display()
        ));
    }
    let dests: Vec<String> = done
        .iter()
        .map(|r| r.destination.display().to_string())
        .collect();
    Output::json(a.json).emit(&dests, |w| cluster::files_restored(w, &m, &done))
}

/// A files target refused as unsafe (exit 6), with what to do; other errors as usual.
fn files_failure(e: pgb::Error) -> Failure {
    match &e {
        pgb::Error::Dump(d)
            if d.kind() == pgb::DumpErrorKind::Refused
                && d.to_string().starts_with("files target") =>
        {
            Failure::new(
                REFUSED,
                format!("{d}; nothing was changed: pass another directory to --files-to"),
            )
        }
        _ => e.into(),
    }
}

/// Failed globals statements make the restore fail (exit 1) after the summary was printed.
fn globals_outcome(r: &pgb::GlobalsReport) -> Result<(), Failure> {
    if r.failures.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        FAILURE,
        format!(
            "{} globals statement(s) failed (listed above); the others were applied",
            r.failed()
        ),
    ))
}
