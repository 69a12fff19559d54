//! `pgb list`: the complete backups, each with its last drill's outcome.

use super::Ctx;
use crate::args::ListArgs;
use crate::exit::Failure;
use crate::render::{self, ListEntry, Output};
use crate::resolve;

pub(super) async fn run(mut a: ListArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let layer = resolve::job::layer(&mut a, ctx.env)?;
    let ctx = &ctx.with_env(&layer.env);
    let repo = resolve::listed_repository(&a.repo, a.auth_key_file.as_deref(), ctx.env)?;
    let listing = repo.list().await?;
    render::listing_notes(&listing);
    let auth = resolve::auth_key(a.auth_key_file.as_deref(), ctx.env)?;
    let drills = pgb_ops::last_drills(&repo, auth.as_ref()).await?;
    let rows: Vec<&pgb::Manifest> = listing
        .backups
        .iter()
        .filter(|m| {
            a.database.as_ref().is_none_or(|d| {
                &m.database == d || m.cluster.as_ref().is_some_and(|c| c.databases.contains(d))
            })
        })
        .collect();
    let entries: Vec<ListEntry<'_>> = rows
        .iter()
        .map(|m| ListEntry::from(*m).with_drill(drills.get(&m.id)))
        .collect();
    let location = &repo.storage().info().location;
    Output::json(a.json).emit(&entries, |w| render::list_text(w, &rows, &drills, location))
}
