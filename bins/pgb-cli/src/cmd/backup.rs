//! `pgb backup`: one backup, then (only after it committed) with `--verify` a recorded verify
//! and with `--prune` a prune.

use pgb::PruneOptions;

use super::Ctx;
use crate::args::BackupArgs;
use crate::exit::Failure;
use crate::render::{self, BackupOut, Output};
use crate::resolve;

pub(super) async fn run(a: BackupArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let plan = resolve::backup(&a, ctx.env)?;
    let repo = resolve::repository(&a.repo, ctx.env)?;
    let out = Output::json(a.json);
    let manifest = repo
        .backup_until(
            &plan.dumper,
            &plan.options,
            &render::log_progress,
            ctx.cancelled(),
        )
        .await?;
    if a.verify {
        let checker = resolve::checker(&a.tools, ctx.env);
        let r = repo
            .verify(&manifest, Some(&checker), &render::log_progress)
            .await?;
        super::verify::record(&repo, &manifest, &r, ctx).await;
    }
    let Some(policy) = plan.prune else {
        return out.emit(&manifest, |w| render::backup_text(w, &manifest));
    };
    if out == Output::Text {
        render::stdout(|w| render::backup_text(w, &manifest))?;
    }
    let verified = resolve::verified(&repo, ctx.env).await?;
    let report = repo
        .prune(&policy, &PruneOptions::default().with_verified(verified))
        .await?;
    render::prune_notes(&report);
    let both = BackupOut {
        backup: &manifest,
        prune: &report,
    };
    out.emit(&both, |w| render::prune_text(w, &report))
}
