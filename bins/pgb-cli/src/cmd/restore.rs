//! `pgb restore ID|latest --db URL`, then the job's `post_restore` hook (with `--job`), with
//! the migration heads checked around it ([`super::migrations`]).

use super::Ctx;
use crate::args::RestoreArgs;
use crate::exit::{FAILURE, Failure};
use crate::render::{self, Output, RestoreOut};
use crate::resolve::{self, config};

pub(super) async fn run(mut a: RestoreArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let layer = resolve::job::layer(&mut a, ctx.env)?;
    let ctx = &ctx.with_env(&layer.env);
    if let Some(dir) = a.physical.pgdata.clone() {
        return Box::pin(super::physical::restore(a, &dir, ctx)).await;
    }
    if a.cluster.selected() || a.files.files_to.is_some() {
        super::migrations::only_for_a_database(&a)?;
        return Box::pin(super::cluster::restore(a, layer.job.as_ref(), ctx)).await;
    }
    let restorer = resolve::restorer(&a, ctx.env)?;
    let keys = resolve::decryption(&a.keys, ctx.env)?;
    let keys_given = keys.has_keys();
    let repo = resolve::repository(&a.repo, ctx.env)?
        .with_decryption(keys)
        .allow_unauthenticated(a.keys.allow_unauthenticated);
    let manifest = repo
        .resolve_logical(&a.id, a.from_database.as_deref())
        .await?;
    plaintext_check(&manifest, keys_given, a.require_encrypted)?;
    let job = layer.job.as_ref();
    let expect = resolve::migrations::expectation(&a.migrations, job, ctx.env).await?;
    super::migrations::precheck(&manifest, &expect, super::migrations::migrates(job))?;
    let opts = a.options();
    let started = std::time::Instant::now();
    let progress = render::Reporter::new(&ctx.progress, "restore", Some(manifest.plain_size()));
    let report = repo.restore(&manifest, &restorer, &opts, &progress).await;
    progress.finish(report.is_ok().then(|| manifest.plain_size()));
    let report = report?;
    let seconds = started.elapsed().as_secs_f64();
    let (hook, migrations) =
        super::migrations::after_restore(job, restorer.target(), &manifest, &expect, &a.tools, ctx)
            .await?;
    let out = RestoreOut {
        backup: manifest.id.as_str(),
        database: &report.database,
        created: report.created,
        seconds,
        objects_read: report.objects_read,
        post_restore: hook.as_ref(),
        migrations: (!migrations.is_empty()).then_some(&migrations),
    };
    Output::json(a.json).emit(&out, |w| {
        render::restore_text(w, &manifest, None, &report, seconds)?;
        render::migrations::report(w, &migrations, "")
    })?;
    super::migrations::outcome(hook.as_ref(), &migrations, &report.database)
}

/// A backup that is not encrypted, restored while decryption keys were given: one warning
/// line naming it; with `--require-encrypted` a key error (exit 9) before any database is
/// touched, keys given or not.
pub(super) fn plaintext_check(
    m: &pgb::Manifest,
    keys_given: bool,
    require_encrypted: bool,
) -> Result<(), Failure> {
    if m.encryption.is_some() {
        return Ok(());
    }
    if require_encrypted {
        return Err(Failure::key(format!(
            "backup {} is not encrypted, and --require-encrypted was given: nothing was restored",
            m.id
        )));
    }
    if keys_given {
        render::note(format_args!(
            "warning: backup {} is not encrypted, although decryption keys were given (--require-encrypted refuses such backups)",
            m.id
        ));
    }
    Ok(())
}

/// Runs the job's `post_restore` hook on `target` after a successful restore of `m`.
pub(super) async fn post_restore_hook(
    job: &pgb_config::ResolvedJob,
    target: &pgb::postgres::ConnConfig,
    m: &pgb::Manifest,
    ctx: &Ctx<'_>,
) -> Option<pgb_jobs::hooks::HookReport> {
    let restored = pgb_jobs::RestoredDatabase::from_env(target.clone(), ctx.env);
    let id = m.id.to_string();
    pgb_jobs::post_restore(job, &config::hook_env(ctx.env), Some(&id), &restored).await
}

/// A failed hook fails the command, saying the data is restored.
pub(super) fn hook_outcome(
    hook: Option<&pgb_jobs::hooks::HookReport>,
    database: &str,
) -> Result<(), Failure> {
    match hook {
        Some(h) if !h.ok() => {
            render::jobs::hook_output(h);
            Err(Failure::new(
                FAILURE,
                format!(
                    "the data is restored into {database}, but the {}",
                    h.summary()
                ),
            ))
        }
        _ => Ok(()),
    }
}
