//! `pgb verify [ID|latest|--all]`.

use pgb::VerifyOutcome;

use super::Ctx;
use crate::args::VerifyArgs;
use crate::exit::{Failure, INTEGRITY};
use crate::render::{self, Output};
use crate::resolve;

pub(super) async fn run(a: VerifyArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let keys = resolve::decryption(&a.keys, ctx.env)?;
    let repo = resolve::repository(&a.repo, ctx.env)?
        .with_decryption(keys)
        .allow_unauthenticated(a.keys.allow_unauthenticated);
    let checker = resolve::checker(&a.tools, ctx.env);
    let out = Output::json(a.json);
    if !a.all {
        let m = repo
            .resolve(a.id.as_deref().unwrap_or("latest"), None)
            .await?;
        let r = repo
            .verify(&m, Some(&checker), &render::log_progress)
            .await?;
        let outcome = [VerifyOutcome::from(&r)];
        return out.emit(&outcome[0], |w| render::verify_text(w, &outcome));
    }
    let report = repo
        .verify_all(Some(&checker), &render::log_progress)
        .await?;
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
