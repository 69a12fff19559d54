//! `pgb prune`: the library decides and deletes (never the newest verified backup of a set;
//! with `--job` or `--set`, only that set); this prints its report.

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
    let auth = resolve::auth_key(a.auth_key_file.as_deref(), ctx.env)?;
    let repo = resolve::listed_repository(&a.repo, a.auth_key_file.as_deref(), ctx.env)?;
    let listing = repo.list().await?;
    let verified = pgb_ops::verified_ids(&repo, &listing, auth.as_ref()).await?;
    let mut opts = PruneOptions::default()
        .with_dry_run(a.dry_run)
        .with_verified(verified);
    if !a.set.is_empty() {
        opts = opts.with_sets(a.set.iter().cloned());
    }
    let report = repo.prune(&policy, &opts).await?;
    render::prune_notes(&report);
    Output::json(a.json).emit(&report, |w| render::prune_text(w, &report))
}
