//! `pgb prune`: the library decides and deletes (never the newest verified backup of a set);
//! this prints its report.

use pgb::PruneOptions;

use super::Ctx;
use crate::args::PruneArgs;
use crate::exit::Failure;
use crate::render::{self, Output};
use crate::resolve;

pub(super) async fn run(mut a: PruneArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let layer = resolve::job::layer(&mut a, ctx.env)?;
    let ctx = &ctx.with_env(&layer.env);
    let policy = resolve::policy(&a.policy)?.ok_or_else(|| {
        Failure::usage(
            "no retention policy given: use --keep-last, --keep-daily, --keep-within, ... (see docs/retention.md)",
        )
    })?;
    let repo = resolve::repository(&a.repo, ctx.env)?;
    let verified = resolve::verified(&repo, ctx.env).await?;
    let opts = PruneOptions::default()
        .with_dry_run(a.dry_run)
        .with_verified(verified);
    let report = repo.prune(&policy, &opts).await?;
    render::prune_notes(&report);
    Output::json(a.json).emit(&report, |w| render::prune_text(w, &report))
}
