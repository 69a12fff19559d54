//! Servers of a test's own for the physical and PITR tests: PostgreSQL's bin dir per major
//! version, a `TempCluster` archiving with `pgb wal push`, a one-row marker table whose value
//! tells which point a restored server reached, WAL written and archived on demand, and
//! `pgb backup --physical`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pgb_testkit::TempCluster;

use super::{PGB, pgb, stderr, stdout};

/// How long the archiver may take to hand over a segment.
pub const ARCHIVED: Duration = Duration::from_secs(60);

/// The bin dir of PostgreSQL `major` from the suite's environment, or a recorded skip.
pub fn bin_dir(major: u32) -> Option<PathBuf> {
    match super::env(&format!("PGB_TEST_PG{major}_BIN")) {
        Some(b) => Some(PathBuf::from(b)),
        None => pgb_testkit::require_or_skip(
            &format!("PostgreSQL {major}"),
            &format!("PGB_TEST_PG{major}_BIN is not set (scripts/pg.sh start)"),
        ),
    }
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `archive_command` pushing into `repo` with this pgb.
pub fn archive_command(repo: &Path) -> String {
    format!("{PGB} wal push %p --repo {}", s(repo))
}

/// A new server archiving every WAL segment into `repo`, with the marker table
/// `status(message text)` holding `initdb`.
pub fn archiving_server(bin: &Path, repo: &Path) -> TempCluster {
    let pg = TempCluster::init(
        bin,
        &[
            ("archive_mode", "on"),
            ("archive_command", &archive_command(repo)),
        ],
    )
    .expect("start PostgreSQL");
    pg.psql("create table status(message text); insert into status values ('initdb')")
        .unwrap();
    pg
}

/// Sets the marker (its own committed transaction).
pub fn mark(pg: &TempCluster, message: &str) {
    pg.psql(&format!("update status set message = '{message}'"))
        .unwrap();
}

/// The marker a server shows.
pub fn marker(pg: &TempCluster) -> String {
    pg.psql("select message from status").unwrap()
}

/// Some WAL: a few thousand rows committed, then the segment closed and archived.
pub fn work(pg: &TempCluster) {
    pg.psql(
        "create table if not exists churn(i int, t text); \
         insert into churn select g, repeat('x', 200) from generate_series(1, 20000) g",
    )
    .unwrap();
    pg.switch_wal_and_wait_archived(ARCHIVED).unwrap();
}

/// `pgb backup --physical` (WAL from the archive) of `pg` into `repo`; the backup's JSON
/// report (its `id` among others).
pub fn physical_backup(pg: &TempCluster, repo: &Path) -> serde_json::Value {
    let o = pgb(&[
        "backup",
        "--physical",
        "--repo",
        &s(repo),
        "--db",
        &pg.url(),
        "--pg-bin-dir",
        &s(pg.bin_dir()),
        "--json",
    ]);
    assert!(o.status.success(), "backup --physical: {}", stderr(&o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("backup JSON ({e}): {}", stdout(&o)))
}

/// The manifest of backup `id` as `pgb list --json` shows it.
pub fn listed(repo: &Path, id: &str) -> serde_json::Value {
    super::list_json(repo)
        .into_iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("backup {id} is not listed"))
}
