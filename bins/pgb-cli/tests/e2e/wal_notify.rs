//! WAL notifications (issue 22, item 3): `wal_push_failed` from `pgb wal push` rate-limited per
//! cluster (PostgreSQL retries a failing archive_command every few seconds), with the failures
//! in between counted in the next one and the state in the data directory; `wal_gap` from
//! `pgb check` when the archive has a gap after the newest base backup, and from
//! `pgb wal verify`.

use crate::common;

use std::path::Path;

use common::pitr::{ARCHIVED, archiving_server, bin_dir, physical_backup, s, work};
use common::{pgb_cmd, pgb_env, receiver, stderr};
use serde_json::Value;

/// The JSON body of the next request the receiver got.
fn next_body(got: &std::sync::mpsc::Receiver<String>) -> Value {
    let request = got
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("a notification");
    let body = request.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body.trim_start_matches("\r\n"))
        .unwrap_or_else(|e| panic!("JSON body ({e}): {request}"))
}

fn push(data: &Path, repo: &Path, url: &str, interval: &str) -> std::process::Output {
    pgb_cmd(&[
        "wal",
        "push",
        "pg_wal/000000010000000000000003",
        "--repo",
        &s(repo),
        "--system-id",
        "7300000000000000042",
    ])
    .current_dir(data)
    .env("PGB_NOTIFY_URL", url)
    .env("PGB_WAL_NOTIFY_INTERVAL", interval)
    .env("HOSTNAME", "db-1")
    .output()
    .expect("run pgb")
}

#[test]
fn a_failing_archive_command_notifies_once_per_interval_with_the_failures_counted() {
    let (url, got) = receiver();
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir(data.path().join("pg_wal")).unwrap();
    // Not a segment: its header cannot match its name. PostgreSQL would retry it forever.
    std::fs::write(
        data.path().join("pg_wal/000000010000000000000003"),
        b"not WAL",
    )
    .unwrap();
    for _ in 0..3 {
        let o = push(data.path(), repo.path(), &url, "15m");
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    }
    let first = next_body(&got);
    assert_eq!(first["event"], "wal_push_failed", "{first}");
    assert_eq!(first["status"], "failed");
    assert_eq!(first["host"], "db-1");
    assert_eq!(first["system_identifier"], "7300000000000000042");
    assert_eq!(first["wal"]["segment"], "000000010000000000000003");
    assert_eq!(first["wal"]["failures"], "1");
    assert_eq!(first["wal"]["interval_s"], "900");
    assert!(first["cause"].as_str().unwrap().len() > 10, "{first}");
    let state = data.path().join("pgb-wal-push-7300000000000000042.json");
    assert!(
        state.is_file(),
        "the rate limit is kept in the data directory"
    );
    // The interval over: the next notification counts the two suppressed failures and itself,
    // so the 2nd and 3rd push sent nothing.
    let o = push(data.path(), repo.path(), &url, "0s");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let next = next_body(&got);
    assert_eq!(next["event"], "wal_push_failed", "{next}");
    assert_eq!(next["wal"]["failures"], "3", "{next}");
}

fn gap_notified(major: u32) {
    let Some(bin) = bin_dir(major) else { return };
    let repo = pgb_testkit::make_shared_dir().unwrap();
    let r = repo.path();
    let pg = archiving_server(&bin, r);
    let sysid = pg.system_identifier().unwrap();
    pg.switch_wal_and_wait_archived(ARCHIVED).unwrap();
    let backup = physical_backup(&pg, r);
    let id = backup["id"].as_str().unwrap();
    let listed = common::pitr::listed(r, id);
    let stop = listed["physical"]["stop_wal_file"]
        .as_str()
        .unwrap()
        .to_owned();
    work(&pg);
    work(&pg);
    work(&pg);
    let folder = r.join(format!("wal/{sysid}/00000001"));
    let mut after: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 24 && n.as_str() > stop.as_str())
        .collect();
    after.sort();
    std::fs::remove_file(folder.join(&after[0])).unwrap();

    let (url, got) = receiver();
    let o = pgb_env(
        &["check", "--repo", &s(r)],
        &[("PGB_NOTIFY_URL", url.as_str())],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let failed = next_body(&got);
    assert_eq!(failed["event"], "check_failed", "{failed}");
    let gap = next_body(&got);
    eprintln!("wal_notify: wal_gap on PostgreSQL {major}: {gap}");
    assert_eq!(gap["event"], "wal_gap", "{gap}");
    assert_eq!(gap["status"], "CRITICAL");
    assert_eq!(gap["system_identifier"], sysid.to_string());
    assert_eq!(gap["wal"]["gaps"], "1");
    assert_eq!(gap["wal"]["timeline_1_gaps"], "1");
    assert!(
        gap["cause"].as_str().unwrap().contains(&after[0]),
        "the cause names the first missing segment: {gap}"
    );

    // `pgb wal verify` finds the same gap (exit 5) and says so too.
    let o = pgb_env(
        &["wal", "verify", "--repo", &s(r)],
        &[("PGB_NOTIFY_URL", url.as_str())],
    );
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let gap = next_body(&got);
    assert_eq!(gap["event"], "wal_gap", "{gap}");
    assert_eq!(gap["system_identifier"], sysid.to_string());
    assert_eq!(gap["wal"]["first_missing"], after[0].as_str(), "{gap}");
    assert_eq!(gap["wal"]["gaps"], "1");
}

#[test]
fn a_gap_after_the_newest_base_backup_sends_wal_gap_on_postgres_15() {
    gap_notified(15);
}
