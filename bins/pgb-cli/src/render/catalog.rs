//! `pgb list`'s text: one heading per server (its system identifier; `host:port` only as a
//! label), its logical and physical backups side by side, then its recoverable window.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use pgb::Manifest;
use pgb::wal::ClusterWindow;
use time::OffsetDateTime;

/// What a group of backups is keyed by: the server's system identifier, or (for backups that
/// did not record one) the address they were taken from. Identified servers come first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Server {
    Cluster(u64),
    Address(String),
}

/// The backups grouped by server, each group followed by its cluster's window; windows of
/// clusters with archived WAL but no backup in `rows` come last.
pub(crate) fn catalog(
    w: &mut dyn Write,
    rows: &[&Manifest],
    drills: &BTreeMap<pgb::BackupId, pgb_ops::DrillReport>,
    verified: &BTreeMap<pgb::BackupId, OffsetDateTime>,
    location: &str,
    windows: &[ClusterWindow],
) -> io::Result<()> {
    if rows.is_empty() && windows.is_empty() {
        return super::text::list(w, rows, drills, verified, location);
    }
    let mut groups: BTreeMap<Server, Vec<&Manifest>> = BTreeMap::new();
    for m in rows {
        let key = m
            .system_identifier()
            .map_or_else(|| Server::Address(m.server.clone()), Server::Cluster);
        groups.entry(key).or_default().push(m);
    }
    for c in windows {
        groups
            .entry(Server::Cluster(c.system_identifier))
            .or_default();
    }
    let mut first = true;
    for (key, members) in &groups {
        if !first {
            writeln!(w)?;
        }
        first = false;
        heading(w, key, members)?;
        if !members.is_empty() {
            super::text::list(w, members, drills, verified, location)?;
        }
        if let Server::Cluster(id) = key {
            for c in windows.iter().filter(|c| c.system_identifier == *id) {
                super::window::windows(w, std::slice::from_ref(c))?;
            }
        }
    }
    Ok(())
}

/// `server 7715... (db.example:5432): 2 logical and 1 physical backup(s)`.
fn heading(w: &mut dyn Write, key: &Server, members: &[&Manifest]) -> io::Result<()> {
    let addresses: BTreeSet<&str> = members.iter().map(|m| m.server.as_str()).collect();
    let physical = members.iter().filter(|m| m.is_physical()).count();
    let logical = members.len() - physical;
    let counts = format!("{logical} logical and {physical} physical backup(s)");
    match key {
        Server::Cluster(id) if addresses.is_empty() => {
            writeln!(w, "server {id}: {counts} (archived WAL only)")
        }
        Server::Cluster(id) => {
            let names: Vec<&str> = addresses.into_iter().collect();
            writeln!(w, "server {id} ({}): {counts}", names.join(", "))
        }
        Server::Address(a) => writeln!(
            w,
            "server {a} (system identifier not recorded by these backups): {counts}"
        ),
    }
}

/// `pgb list --windows --json`: each cluster's window (as the library reports it) with the
/// logical backups of the same server beside it, so the JSON carries the catalog too.
#[derive(Debug, serde::Serialize)]
pub(crate) struct CatalogCluster<'a> {
    #[serde(flatten)]
    window: &'a ClusterWindow,
    /// Ids of the dumps that recorded this system identifier, oldest first.
    logical_backups: Vec<&'a str>,
}

/// The windows of `windows`, each with the logical backups of `listing` from its server.
pub(crate) fn catalog_json<'a>(
    listing: &'a pgb::Listing,
    windows: &'a [ClusterWindow],
) -> Vec<CatalogCluster<'a>> {
    windows
        .iter()
        .map(|w| CatalogCluster {
            window: w,
            logical_backups: listing
                .backups
                .iter()
                .filter(|m| !m.is_physical() && m.system_identifier() == Some(w.system_identifier))
                .map(|m| m.id.as_str())
                .collect(),
        })
        .collect()
}
