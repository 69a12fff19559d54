//! `pgb verify [ID|latest|--all]`. Each passed verify (of one backup, or of each with `--all`)
//! is recorded beside its backup (`backups/<id>/verified/`), which prune's newest-verified
//! guard relies on.

use pgb::VerifyOutcome;

use super::Ctx;
use crate::args::VerifyArgs;
use crate::exit::{Failure, INTEGRITY};
use crate::render::{self, Output};
use crate::resolve;

pub(super) async fn run(mut a: VerifyArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let layer = resolve::job::layer(&mut a, ctx.env)?;
    let ctx = &ctx.with_env(&layer.env);
    let keys = resolve::decryption(&a.keys, ctx.env)?;
    let repo = resolve::repository(&a.repo, ctx.env)?
        .with_decryption(keys)
        .allow_unauthenticated(a.keys.allow_unauthenticated);
    let checker = pgb_jobs::archive_checker(resolve::tools(&a.tools, ctx.env), ctx.env);
    let out = Output::json(a.json);
    if !a.all {
        let m = repo
            .resolve(
                a.id.as_deref().unwrap_or("latest"),
                a.from_database.as_deref(),
            )
            .await?;
        let progress = render::Reporter::new(&ctx.progress, "verify", Some(m.plain_size()));
        let r = repo.verify(&m, Some(&checker), &progress).await;
        progress.finish(r.is_ok().then(|| m.plain_size()));
        let r = r?;
        record(&repo, &m, &r, ctx).await;
        let outcome = [VerifyOutcome::from(&r)];
        return out.emit(&outcome[0], |w| render::verify_text(w, &outcome));
    }
    let auth = resolve::auth_key(None, ctx.env).ok().flatten();
    let now = time::OffsetDateTime::now_utc();
    let progress = render::Reporter::new(&ctx.progress, "verify", None);
    let done =
        pgb_ops::verify_all_recorded(&repo, Some(&checker), &progress, now, auth.as_ref()).await;
    let total = done.as_ref().ok().map(|d| {
        d.report
            .backups
            .iter()
            .filter_map(|b| b.plain_size)
            .sum::<u64>()
    });
    progress.finish(total);
    let done = done?;
    for e in &done.not_recorded {
        render::note(format_args!("warning: the verify was not recorded: {e}"));
    }
    let report = done.report;
    render::verify_failures(&report);
    out.emit(&report.backups, |w| render::verify_text(w, &report.backups))?;
    match report.failures().count() {
        0 => Ok(()),
        n => Err(Failure::new(
            INTEGRITY,
            format!("{n} backup(s) failed verification"),
        )),
    }
}

/// Records a passed verify; a failure to record is a warning (the verify itself passed).
pub(super) async fn record(
    repo: &pgb::Repository,
    m: &pgb::Manifest,
    r: &pgb::VerifyReport,
    ctx: &Ctx<'_>,
) {
    let auth = resolve::auth_key(None, ctx.env).ok().flatten();
    let now = time::OffsetDateTime::now_utc();
    if let Err(e) = pgb_ops::record_verified(repo, m, r, now, auth.as_ref()).await {
        render::note(format_args!(
            "warning: the verify of {} was not recorded: {e}",
            m.id
        ));
    }
}
