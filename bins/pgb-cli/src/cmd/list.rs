//! `pgb list`: the complete backups, each with its last drill's outcome, the date of its newest
//! passed verify or drill, whether it is encrypted and how many files archives it holds,
//! grouped by server (system identifier), each server's group followed by its recoverable
//! window per timeline (or only the windows, with `--windows`).

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::Ctx;
use crate::args::ListArgs;
use crate::exit::Failure;
use crate::render::{self, ListEntry, Output};
use crate::resolve;

pub(super) async fn run(mut a: ListArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let layer = resolve::job::layer(&mut a, ctx.env)?;
    let ctx = &ctx.with_env(&layer.env);
    let keys = resolve::wal_reading(a.auth_key_file.as_deref(), &a.identity_file, ctx.env)?;
    let repo = resolve::repository(&a.repo, ctx.env)?.with_decryption(keys);
    let listing = repo.list().await?;
    render::listing_notes(&listing);
    if a.windows {
        let windows = repo
            .recoverable_windows(&listing, pgb::wal::CommitTimes::Every)
            .await?;
        let catalog = render::catalog_json(&listing, &windows);
        return Output::json(a.json).emit(&catalog, |w| render::windows_text(w, &windows));
    }
    let auth = resolve::auth_key(a.auth_key_file.as_deref(), ctx.env)?;
    let history = pgb_ops::drill_history(&repo, auth.as_ref()).await?;
    let mut drills = BTreeMap::new();
    for r in history.iter().filter_map(|e| e.report.as_ref()) {
        drills.insert(r.backup_id.clone(), r.clone());
    }
    let rows: Vec<&pgb::Manifest> = listing
        .backups
        .iter()
        .filter(|m| {
            a.database.as_ref().is_none_or(|d| {
                &m.database == d || m.cluster.as_ref().is_some_and(|c| c.databases.contains(d))
            })
        })
        .collect();
    // `--migration NAME`: the backups taken at or before that migration.
    let rows = match resolve::migrations::list_target(&a.migration)? {
        Some(t) => pgb::migration::at_or_before(&rows, &t, a.database.as_deref()),
        None => rows,
    };
    let verified = verified_dates(&repo, &listing, &rows, &history, auth.as_ref()).await?;
    let entries: Vec<ListEntry<'_>> = rows
        .iter()
        .map(|m| {
            ListEntry::from(*m)
                .with_drill(drills.get(&m.id))
                .with_verified(verified.get(&m.id).copied())
        })
        .collect();
    let location = &repo.storage().info().location;
    // The whole repository's text also shows each cluster's recoverable window.
    let windows = if a.json || a.database.is_some() || rows.len() < listing.backups.len() {
        Vec::new()
    } else {
        repo.recoverable_windows(&listing, pgb::wal::CommitTimes::Every)
            .await?
    };
    Output::json(a.json).emit(&entries, |w| {
        render::catalog_text(w, &rows, &drills, &verified, location, &windows)
    })
}

/// For each backup of `rows` with valid verification evidence ([`pgb_ops::verified_ids`]): the
/// time of its newest passed drill or verify record (a verify record's time is in its name,
/// `backups/<id>/verified/<utc time>.json`).
async fn verified_dates(
    repo: &pgb::Repository,
    listing: &pgb::Listing,
    rows: &[&pgb::Manifest],
    history: &[pgb_ops::DrillEntry],
    auth: Option<&pgb::AuthKey>,
) -> Result<BTreeMap<pgb::BackupId, OffsetDateTime>, Failure> {
    let ids = pgb_ops::verified_ids(repo, listing, auth).await?;
    let mut out: BTreeMap<pgb::BackupId, OffsetDateTime> = BTreeMap::new();
    let mut newer = |id: &pgb::BackupId, t: OffsetDateTime| {
        let e = out.entry(id.clone()).or_insert(t);
        *e = (*e).max(t);
    };
    for r in history.iter().filter_map(|e| e.report.as_ref()) {
        if r.passed() && ids.contains(&r.backup_id) {
            newer(&r.backup_id, r.started_at);
        }
    }
    for m in rows.iter().filter(|m| ids.contains(&m.id)) {
        let prefix = pgb::layout::verified_prefix(&m.id);
        let metas = repo.storage().list(Some(&prefix)).await;
        for meta in metas.map_err(pgb_ops::RecordError::from)? {
            let name = meta.key.as_str().rsplit('/').next().unwrap_or_default();
            if let Some(t) = compact_time(name) {
                newer(&m.id, t);
            }
        }
    }
    Ok(out)
}

/// The time at the start of a record's name: `20240501T030405Z...`.
fn compact_time(name: &str) -> Option<OffsetDateTime> {
    let b = name.as_bytes();
    if b.len() < 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| name.get(r)?.parse::<u32>().ok();
    let date = time::Date::from_calendar_date(
        i32::try_from(num(0..4)?).ok()?,
        time::Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?,
        u8::try_from(num(6..8)?).ok()?,
    )
    .ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(num(9..11)?).ok()?,
        u8::try_from(num(11..13)?).ok()?,
        u8::try_from(num(13..15)?).ok()?,
    )
    .ok()?;
    Some(date.with_time(clock).assume_utc())
}

#[cfg(test)]
mod tests {
    #[test]
    fn record_names_give_their_time() {
        let t = super::compact_time("20240501T030405Z.json").unwrap();
        assert_eq!(t.to_string(), "2024-05-01 3:04:05.0 +00:00:00");
        assert!(super::compact_time("2024-05-01.json").is_none());
        assert!(super::compact_time("20241301T030405Z.json").is_none());
    }
}
