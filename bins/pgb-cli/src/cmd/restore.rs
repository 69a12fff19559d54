//! `pgb restore ID|latest --db URL`.

use super::Ctx;
use crate::args::RestoreArgs;
use crate::exit::Failure;
use crate::render::{self, Output, RestoreOut};
use crate::resolve;

pub(super) async fn run(a: RestoreArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let target = resolve::restore(&a, ctx.env)?;
    let keys = resolve::decryption(&a.keys, ctx.env)?;
    let repo = resolve::repository(&a.repo, ctx.env)?
        .with_decryption(keys)
        .allow_unauthenticated(a.keys.allow_unauthenticated);
    let manifest = repo.resolve(&a.id, a.from_database.as_deref()).await?;
    let opts = resolve::restore_options(&a, &target, &manifest);
    let started = std::time::Instant::now();
    let progress = render::Reporter::new(&ctx.progress, "restore", Some(manifest.plain_size()));
    let report = repo
        .restore(&manifest, &target.restorer, &opts, &progress)
        .await;
    progress.finish(report.is_ok().then(|| manifest.plain_size()));
    let report = report?;
    let seconds = started.elapsed().as_secs_f64();
    let out = RestoreOut {
        backup: manifest.id.as_str(),
        database: &report.database,
        created: report.created,
        seconds,
    };
    Output::json(a.json).emit(&out, |w| {
        render::restore_text(w, &manifest, &report, seconds)
    })
}
