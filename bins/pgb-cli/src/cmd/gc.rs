//! `pgb gc`: remove leftovers of backups that never committed.

use time::OffsetDateTime;

use super::Ctx;
use crate::args::GcArgs;
use crate::exit::Failure;
use crate::render::{self, GcOut, Output};
use crate::resolve;

pub(super) async fn run(mut a: GcArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let layer = resolve::job::layer(&mut a, ctx.env)?;
    let ctx = &ctx.with_env(&layer.env);
    let grace = pgb_jobs::gc_grace(a.older_than.as_deref())?;
    let older_than = a
        .older_than
        .as_deref()
        .unwrap_or(resolve::defaults::GC_OLDER_THAN);
    let repo = resolve::listed_repository(&a.repo, a.auth_key_file.as_deref(), ctx.env)?;
    let report = repo.gc(OffsetDateTime::now_utc(), grace, a.dry_run).await?;
    let out = GcOut::new(&report, older_than);
    Output::json(a.json).emit(&out, |w| render::gc_text(w, &report, older_than))
}
