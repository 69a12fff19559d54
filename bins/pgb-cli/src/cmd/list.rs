//! `pgb list`.

use super::Ctx;
use crate::args::ListArgs;
use crate::exit::Failure;
use crate::render::{self, ListEntry, Output};
use crate::resolve;

pub(super) async fn run(a: ListArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let repo = resolve::repository(&a.repo, ctx.env)?;
    let listing = repo.list().await?;
    render::listing_notes(&listing);
    let rows: Vec<&pgb::Manifest> = listing
        .backups
        .iter()
        .filter(|m| a.database.as_ref().is_none_or(|d| &m.database == d))
        .collect();
    let entries: Vec<ListEntry<'_>> = rows.iter().map(|m| ListEntry::from(*m)).collect();
    let location = &repo.storage().info().location;
    Output::json(a.json).emit(&entries, |w| render::list_text(w, &rows, location))
}
