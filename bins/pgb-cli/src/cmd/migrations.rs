//! Migration heads around `pgb restore`: the check before anything is written, the restored
//! database's heads before and after the job's `post_restore` hook, and the verdict (exit 13).

use pgb::Manifest;
use pgb::postgres::{ConnConfig, SqlClient};
use pgb_config::ResolvedJob;
use pgb_jobs::hooks::HookReport;
use pgb_ops::{MigrationExpectation, MigrationReport};

use super::Ctx;
use crate::args::{RestoreArgs, ToolArgs};
use crate::exit::{Failure, MIGRATION};
use crate::render;
use crate::resolve;

/// Whether a `post_restore` hook will run after the restore (it may migrate the database).
pub(super) fn migrates(job: Option<&ResolvedJob>) -> bool {
    job.is_some_and(|j| j.hooks.post_restore.is_some())
}

/// `--expect-migration` applies to the restore of one database backup only.
pub(super) fn only_for_a_database(a: &RestoreArgs) -> Result<(), Failure> {
    let m = &a.migrations;
    if m.expect_migration.is_some() || m.allow_migration_mismatch {
        return Err(Failure::usage(
            "--expect-migration and --allow-migration-mismatch apply to the restore of a database backup, not to a whole-server or files restore",
        ));
    }
    Ok(())
}

/// Refuses backup `m` before anything is written when its head does not fit the expected
/// one (see [`MigrationExpectation::check_backup`]).
pub(super) fn precheck(
    m: &Manifest,
    expect: &MigrationExpectation,
    migrates: bool,
) -> Result<(), Failure> {
    let Err(p) = expect.check_backup(m.id.as_str(), m.migrations_of(&m.database), migrates) else {
        return Ok(());
    };
    let target = expect
        .target
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    Err(Failure::new(
        MIGRATION,
        format!(
            "{p}: nothing was restored; restore a backup taken at or before it (pgb list --migration {target}), or pass --allow-migration-mismatch"
        ),
    ))
}

/// After the restore: the heads before the job's `post_restore` hook (if any), the hook, the
/// heads after it, checked against the expectation.
pub(super) async fn after_restore(
    job: Option<&ResolvedJob>,
    target: &ConnConfig,
    m: &Manifest,
    expect: &MigrationExpectation,
    tools: &ToolArgs,
    ctx: &Ctx<'_>,
) -> Result<(Option<HookReport>, MigrationReport), Failure> {
    let client = SqlClient::locate(&resolve::tools(tools, ctx.env))
        .await
        .map_err(|e| Failure::from(pgb::Error::Dump(e)))?;
    let hook = job
        .filter(|j| j.hooks.post_restore.is_some())
        .map(|j| super::restore::post_restore_hook(j, target, m, ctx));
    let backup = m.migrations_of(&m.database);
    let (ran, report) = pgb_ops::around_hook(&client, target, backup, expect, hook).await;
    Ok((ran.flatten(), report))
}

/// The command's outcome: a failed migration check (exit 13, quoting the framework's row),
/// else the hook's ([`super::restore::hook_outcome`]).
pub(super) fn outcome(
    hook: Option<&HookReport>,
    r: &MigrationReport,
    database: &str,
) -> Result<(), Failure> {
    if let (Some(false), Some(p)) = (r.passed, &r.problem) {
        if let Some(h) = hook.filter(|h| !h.ok()) {
            render::jobs::hook_output(h);
        }
        return Err(Failure::new(
            MIGRATION,
            format!("the data is restored into {database}, but the migration check failed: {p}"),
        ));
    }
    super::restore::hook_outcome(hook, database)
}
