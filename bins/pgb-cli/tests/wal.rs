//! `pgb wal push|fetch|verify` against real PostgreSQL 15 and 17: archive_command and
//! restore_command as PostgreSQL calls them, the archive contract (same content succeeds,
//! different content fails and leaves the archived file alone), damaged and missing files.

pub mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{PGB, pgb, stderr};
use pgb_testkit::{TempCluster, make_shared_dir};

/// The bin dir of PostgreSQL `major` from the suite's environment, or a recorded skip.
fn bin_dir(major: u32) -> Option<PathBuf> {
    match common::env(&format!("PGB_TEST_PG{major}_BIN")) {
        Some(b) => Some(PathBuf::from(b)),
        None => pgb_testkit::require_or_skip(
            &format!("PostgreSQL {major}"),
            &format!("PGB_TEST_PG{major}_BIN is not set (scripts/pg.sh start)"),
        ),
    }
}

/// A server archiving with `pgb wal push` into `repo`, and with `cp` into `copies` (what
/// PostgreSQL handed over, to compare with what comes back).
fn archiving_server(bin: &Path, repo: &Path, copies: &Path) -> TempCluster {
    let command = format!(
        "cp %p {copies}/%f && {PGB} wal push %p --repo {repo}",
        copies = copies.display(),
        repo = repo.display()
    );
    TempCluster::init(
        bin,
        &[
            ("archive_mode", "on"),
            ("archive_command", &command),
        ],
    )
    .expect("start PostgreSQL")
}

fn wal_verify_json(repo: &Path) -> serde_json::Value {
    let o = pgb(&[
        "wal",
        "verify",
        "--repo",
        &repo.display().to_string(),
        "--json",
    ]);
    assert!(o.status.success(), "wal verify: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("JSON")
}

fn archive_round_trip(major: u32) {
    let Some(bin) = bin_dir(major) else { return };
    let repo = make_shared_dir().unwrap();
    let copies = make_shared_dir().unwrap();
    let pg = archiving_server(&bin, repo.path(), copies.path());
    pg.psql("create table t(i int); insert into t select generate_series(1, 10000)")
        .unwrap();
    let first = pg
        .switch_wal_and_wait_archived(Duration::from_secs(60))
        .unwrap();
    pg.psql("insert into t select generate_series(1, 10000)")
        .unwrap();
    let second = pg
        .switch_wal_and_wait_archived(Duration::from_secs(60))
        .unwrap();
    let system_id = pg.system_identifier().unwrap();
    let r = repo.path().display().to_string();

    // Each archived segment is stored under its own name, in the cluster's folder.
    let stored = repo
        .path()
        .join(format!("wal/{system_id}/00000001/{second}"));
    assert!(stored.is_file(), "{} missing", stored.display());
    let report = wal_verify_json(repo.path());
    assert_eq!(report["system_identifier"], system_id);
    assert_eq!(report["segment_size"], 16 << 20);
    let tl = &report["timelines"][0];
    assert_eq!(tl["timeline"], 1);
    assert!(tl["segments"].as_u64().unwrap() >= 2, "{report}");
    assert_eq!(tl["gaps"].as_array().unwrap().len(), 0, "{report}");

    // restore_command: the file comes back byte for byte, checked; the spool gets the next.
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("RECOVERYXLOG");
    let spool = out.path().join("spool");
    let o = pgb(&[
        "wal",
        "fetch",
        &first,
        &dest.display().to_string(),
        "--repo",
        &r,
        "--spool",
        &spool.display().to_string(),
        "--prefetch",
        "2",
    ]);
    assert!(o.status.success(), "fetch: {}", stderr(&o));
    let original = std::fs::read(copies.path().join(&first)).unwrap();
    assert!(
        std::fs::read(&dest).unwrap() == original,
        "fetched {first} differs"
    );
    assert!(
        spool.join(&second).is_file(),
        "the next segment was not prefetched"
    );
    // The next request is served from the spool and leaves it.
    let o = pgb(&[
        "wal",
        "fetch",
        &second,
        &dest.display().to_string(),
        "--repo",
        &r,
        "--spool",
        &spool.display().to_string(),
    ]);
    assert!(o.status.success(), "fetch from spool: {}", stderr(&o));
    assert!(std::fs::read(&dest).unwrap() == std::fs::read(copies.path().join(&second)).unwrap());
    assert!(!spool.join(&second).exists());

    // The end of the archive is "not found" (1), never a failure PostgreSQL would stop on.
    let o = pgb(&[
        "wal",
        "fetch",
        "0000000100000000000000FE",
        &dest.display().to_string(),
        "--repo",
        &r,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = pgb(&[
        "wal",
        "fetch",
        "00000002.history",
        &dest.display().to_string(),
        "--repo",
        &r,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    // PostgreSQL re-archives after a crash: the same content again succeeds, writes nothing.
    let before = std::fs::read(&stored).unwrap();
    let copy = copies.path().join(&second);
    let o = pgb(&["wal", "push", &copy.display().to_string(), "--repo", &r]);
    assert!(o.status.success(), "re-push: {}", stderr(&o));
    // Different content under the same name: refused loudly, the archived file untouched.
    let mut altered = std::fs::read(&copy).unwrap();
    altered[100_000] ^= 0xFF;
    let other = out.path().join(&second);
    std::fs::write(&other, &altered).unwrap();
    let o = pgb(&["wal", "push", &other.display().to_string(), "--repo", &r]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("different content"), "{}", stderr(&o));
    assert!(
        std::fs::read(&stored).unwrap() == before,
        "the archived segment changed"
    );

    // A damaged archived segment is never handed to PostgreSQL: 255 stops recovery.
    let mut damaged = before.clone();
    let n = damaged.len();
    damaged[n - 10] ^= 0xFF;
    std::fs::write(&stored, &damaged).unwrap();
    let dest2 = out.path().join("RECOVERYXLOG2");
    let o = pgb(&[
        "wal",
        "fetch",
        &second,
        &dest2.display().to_string(),
        "--repo",
        &r,
    ]);
    assert_eq!(o.status.code(), Some(255), "{}", stderr(&o));
    assert!(!dest2.exists(), "a damaged segment reached the destination");
    let o = pgb(&["wal", "verify", "--repo", &r, "--rehash"]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(
        common::stdout(&o).contains("DAMAGED"),
        "{}",
        common::stdout(&o)
    );
    std::fs::write(&stored, &before).unwrap();

    // A removed segment is a gap that verify names.
    std::fs::remove_file(
        repo.path()
            .join(format!("wal/{system_id}/00000001/{first}")),
    )
    .unwrap();
    pg.psql("insert into t values (1)").unwrap();
    pg.switch_wal_and_wait_archived(Duration::from_secs(60))
        .unwrap();
    let o = pgb(&["wal", "verify", "--repo", &r, "--json"]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let gaps = report["timelines"][0]["gaps"].as_array().unwrap().clone();
    assert_eq!(gaps.len(), 1, "{report}");
    assert_eq!(gaps[0]["first_missing"], second.as_str());
    assert_eq!(gaps[0]["missing"], 1);
}

#[test]
fn archive_round_trip_on_postgres_15() {
    archive_round_trip(15);
}

#[test]
fn archive_round_trip_on_postgres_17() {
    archive_round_trip(17);
}

#[test]
fn files_that_are_not_wal_or_of_another_cluster_are_refused_with_nothing_written() {
    let repo = make_shared_dir().unwrap();
    let r = repo.path().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "hello").unwrap();
    let o = pgb(&["wal", "push", &junk.display().to_string(), "--repo", &r]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a WAL file name"), "{}", stderr(&o));
    // A file with a segment's name but not a segment's content.
    let fake = dir.path().join("000000010000000000000001");
    std::fs::write(&fake, vec![0u8; 16 << 20]).unwrap();
    let o = pgb(&["wal", "push", &fake.display().to_string(), "--repo", &r]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not a valid WAL segment"),
        "{}",
        stderr(&o)
    );
    // A history file names no cluster: it needs the data directory or --system-id.
    let history = dir.path().join("00000002.history");
    std::fs::write(&history, "1\t0/3000000\tno recovery target specified\n").unwrap();
    let o = pgb(&["wal", "push", &history.display().to_string(), "--repo", &r]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--system-id"), "{}", stderr(&o));
    assert!(!repo.path().join("wal").exists(), "something was written");
    // With it, stored; a different history under the same name is never accepted.
    let h = history.display().to_string();
    let o = pgb(&["wal", "push", &h, "--repo", &r, "--system-id", "7"]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(&history, "1\t0/4000000\tno recovery target specified\n").unwrap();
    let o = pgb(&["wal", "push", &h, "--repo", &r, "--system-id", "7"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    // restore_command with bad arguments stops recovery (255), never "not found".
    let o = pgb(&["wal", "fetch", "00000002.history"]);
    assert_eq!(o.status.code(), Some(255), "{}", stderr(&o));
}
