//! `backup --physical` (a base backup of the whole cluster) and `restore --pgdata DIR` (into
//! a data directory, recovering from the WAL archive to a target; `--preview` plans only).

use super::Ctx;
use crate::args::{BackupArgs, RestoreArgs};
use crate::exit::Failure;
use crate::render::{self, Output, physical};
use crate::resolve;

/// `backup --physical`: one base backup, committed once its WAL is safe; then `--verify`
/// and `--prune` as for any backup. Returns (id, set, stored bytes).
pub(super) async fn backup(a: BackupArgs, ctx: &Ctx<'_>) -> Result<(String, String, u64), Failure> {
    let (dumper, plan, wal_wait) = resolve::physical::backup(&a, ctx.env)?;
    let mut repo = resolve::backup_repository(&a.repo, ctx.env)?;
    if a.physical.incremental {
        // The parent's backup_manifest is read back from its stored tar: the identities of
        // PGB_IDENTITY_FILE, the passphrase and the authentication key of the backup.
        let keys = crate::args::KeyArgs {
            passphrase_file: a.encrypt.passphrase_file.clone(),
            auth_key_file: a.encrypt.auth_key_file.clone(),
            ..Default::default()
        };
        repo = repo.with_decryption(resolve::decryption(&keys, ctx.env)?);
    }
    let progress = render::Reporter::backup(&ctx.progress, &repo);
    let report = Box::pin(repo.backup_physical_until(
        &dumper,
        &plan.options,
        wal_wait,
        &progress,
        ctx.cancelled(),
    ))
    .await;
    progress.finish(report.as_ref().ok().map(|r| r.manifest.plain_size()));
    let report = report?;
    super::backup::after_commit(&a, ctx, &repo, &report, plan.prune, &report, |w| {
        physical::backup(w, &report)
    })
    .await
}

/// `restore ID|latest --pgdata DIR [--to-...]`: plan, then (unless `--preview`) extract,
/// verified, and write the recovery settings.
pub(super) async fn restore(
    a: RestoreArgs,
    dir: &std::path::Path,
    ctx: &Ctx<'_>,
) -> Result<(), Failure> {
    let mut resolved = resolve::physical::restore(&a, dir, ctx.env)?;
    let keys = resolve::decryption(&a.keys, ctx.env)?;
    let keys_given = keys.has_keys();
    let repo = resolve::repository(&a.repo, ctx.env)?
        .with_decryption(keys)
        .allow_unauthenticated(a.keys.allow_unauthenticated);
    let mut plan = match repo.plan_physical_restore(&resolved.request).await {
        Ok(plan) => plan,
        Err(e) => {
            // A target before every base backup may still be covered by a dump.
            if a.physical.preview
                && let Some(fit) = logical_fit(&repo, &resolved.request, None).await
            {
                render::note(format_args!("{}", fit.line()));
            }
            return Err(e.into());
        }
    };
    super::restore::plaintext_check(&plan.manifest, keys_given, a.require_encrypted)?;
    let cmd = resolved.fetch.line(plan.system_identifier, &plan.data_dir);
    plan.restore_command = Some(cmd.clone());
    resolved.request.settings.restore_command = Some(cmd);
    let out = Output::json(a.json);
    if a.physical.preview {
        let wal = repo.wal().reach(&plan).await.map_err(super::wal::failure)?;
        let logical = logical_fit(&repo, &resolved.request, Some(plan.system_identifier)).await;
        let preview = render::PreviewOut {
            plan: &plan,
            wal: &wal,
            logical: logical.as_ref(),
        };
        out.emit(&preview, |w| {
            physical::plan(w, &plan)?;
            render::wal_reach_text(w, &wal)?;
            logical
                .as_ref()
                .map_or(Ok(()), |f| writeln!(w, "  also         {}", f.line()))
        })?;
        return super::wal::verdict(&wal);
    }
    for var in &resolved.env_secrets {
        render::note(format_args!(
            "warning: {var} came from the environment and is not written into the restored configuration: the restored server's environment must provide it to restore_command"
        ));
    }
    let started = std::time::Instant::now();
    let progress = render::Reporter::new(&ctx.progress, "restore", Some(plan.plain_bytes));
    let combiner = pgb::postgres::PgCombineBackup::new(resolve::tools(&a.tools, ctx.env));
    let report = Box::pin(repo.restore_physical_combined_until(
        &plan,
        &resolved.request,
        Some(&combiner),
        &progress,
        ctx.cancelled(),
    ))
    .await;
    progress.finish(report.as_ref().ok().map(|r| r.bytes));
    let report = report?;
    let seconds = started.elapsed().as_secs_f64();
    out.emit(&report, |w| physical::restored(w, &report, seconds))
}

/// With a time target: the newest logical dump of the same server (system identifier) taken
/// at or before it, the cheaper path when what happened after the dump may be lost. `sysid`
/// is the plan's cluster; without a plan, `--system-id` or the repository's only server.
async fn logical_fit(
    repo: &pgb::Repository,
    req: &pgb::physical::PhysicalRestoreRequest,
    sysid: Option<u64>,
) -> Option<render::LogicalFit> {
    let pgb::physical::RecoveryTarget::Time(at) = req.settings.target else {
        return None;
    };
    let listing = repo.list().await.ok()?;
    let sysid = sysid.or(req.system_identifier).or_else(|| {
        let ids: std::collections::BTreeSet<u64> = listing
            .backups
            .iter()
            .filter_map(pgb::Manifest::system_identifier)
            .collect();
        (ids.len() == 1).then(|| ids.into_iter().next()).flatten()
    })?;
    let m = listing.logical_at_or_before(sysid, at)?;
    Some(render::LogicalFit::new(m))
}
