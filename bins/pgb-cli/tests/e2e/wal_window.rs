//! The recoverable window (`pgb list`, `pgb list --windows --json`) and the recovery point
//! checks (`pgb check --max-rpo`, `--max-wal-age`, a gap after the newest physical backup)
//! against a real PostgreSQL 15 and 17 archiving with `pgb wal push`: two base backups with
//! WAL between and after them; the window runs from the first backup's end to the newest
//! archived commit; removing an archived segment between the backups shrinks it to the second
//! backup (the gap listed with the backup it cuts short), one after the second backup makes
//! `pgb check` CRITICAL, in its text, Nagios line and metrics.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::pitr::{ARCHIVED, bin_dir, physical_backup as backup_report, s, work};
use common::{PGB, pgb, stderr, stdout};
use pgb_testkit::{TempCluster, make_shared_dir};

/// `pgb backup --physical`; the manifest as `pgb list --json` shows it.
fn physical_backup(pg: &TempCluster, repo: &Path) -> serde_json::Value {
    let report = backup_report(pg, repo);
    common::pitr::listed(repo, report["id"].as_str().unwrap())
}

fn windows(repo: &Path) -> serde_json::Value {
    let o = pgb(&["list", "--windows", "--json", "--repo", &s(repo)]);
    assert!(o.status.success(), "list --windows: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn check(repo: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["check", "--repo", repo.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = pgb(&args);
    (o.status.code(), format!("{}{}", stdout(&o), stderr(&o)))
}

/// The archived segments of timeline 1, in order.
fn segments(repo: &Path, sysid: u64) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo.join(format!("wal/{sysid}/00000001")))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 24)
        .collect();
    v.sort();
    v
}

fn remove_segment(repo: &Path, sysid: u64, name: &str) {
    std::fs::remove_file(repo.join(format!("wal/{sysid}/00000001/{name}"))).unwrap();
}

fn window_shrinks_and_check_goes_critical(major: u32) {
    let Some(bin) = bin_dir(major) else { return };
    let repo = make_shared_dir().unwrap();
    let r = repo.path();
    let command = format!("{PGB} wal push %p --repo {}", s(r));
    let pg = TempCluster::init(
        &bin,
        &[("archive_mode", "on"), ("archive_command", &command)],
    )
    .expect("start PostgreSQL");
    let sysid = pg.system_identifier().unwrap();
    pg.switch_wal_and_wait_archived(ARCHIVED).unwrap();
    let first = physical_backup(&pg, r);
    work(&pg);
    work(&pg);
    let second = physical_backup(&pg, r);
    for _ in 0..3 {
        work(&pg);
    }
    let (b1, b2) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );

    // The whole window: from the first backup's end to the newest commit, no gap.
    let w = windows(r);
    assert_eq!(w.as_array().unwrap().len(), 1, "{w}");
    let c = &w[0];
    assert_eq!(c["system_identifier"], sysid.to_string());
    assert_eq!(c["backups"], 2);
    assert!(c["newest_commit"]["at"].is_string(), "{c}");
    let tl = &c["timelines"][0];
    assert_eq!(tl["timeline"], 1);
    assert!(tl["gaps"].as_array().unwrap().is_empty(), "{tl}");
    assert_eq!(tl["ranges"].as_array().unwrap().len(), 1, "{tl}");
    let range = &tl["ranges"][0];
    assert_eq!(range["from_backup"], b1);
    assert_eq!(range["from_time"], first["physical"]["stop_time"]);
    assert_eq!(range["reaches_end"], true);
    assert_eq!(range["to_commit"], c["newest_commit"]["at"]);

    // Fresh: OK, with the recovery point in the Nagios perfdata.
    let (code, out) = check(
        r,
        &[
            "--max-rpo",
            "1h",
            "--max-wal-age",
            "1h",
            "--format",
            "nagios",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("PGB OK"), "{out}");
    assert!(out.contains(&format!("'rpo {sysid}'=")), "{out}");
    assert!(out.contains(&format!("'wal_age {sysid}'=")), "{out}");

    // Idle for longer than the limits: the newest commit and segment are too old.
    std::thread::sleep(Duration::from_millis(2100));
    let (code, line) = check(r, &["--max-rpo", "1s", "--format", "nagios"]);
    eprintln!("wal_window: pgb check --max-rpo 1s --format nagios on PostgreSQL {major}:\n{line}");
    assert_eq!(code, Some(2), "{line}");
    assert!(line.starts_with("PGB CRITICAL - WAL of "), "{line}");
    let (code, out) = check(r, &["--max-rpo", "1s", "--max-wal-age", "1s"]);
    eprintln!("wal_window: pgb check --max-rpo 1s --max-wal-age 1s on PostgreSQL {major}:\n{out}");
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("newest archived commit is"), "{out}");
    assert!(out.contains("(max 1s)"), "{out}");
    assert!(out.contains("newest archived segment"), "{out}");

    // A segment between the backups goes: the window starts at the second backup; the first
    // restores only up to the gap.
    let all = segments(r, sysid);
    let stop1 = first["physical"]["stop_wal_file"].as_str().unwrap();
    let start2 = second["physical"]["start_wal_file"].as_str().unwrap();
    let between = all
        .iter()
        .find(|n| n.as_str() > stop1 && n.as_str() < start2)
        .unwrap_or_else(|| panic!("no segment between {stop1} and {start2}: {all:?}"))
        .clone();
    remove_segment(r, sysid, &between);
    let w = windows(r);
    let tl = &w[0]["timelines"][0];
    let ranges = tl["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 2, "{tl}");
    assert_eq!(ranges[0]["from_backup"], b1);
    assert_eq!(ranges[0]["reaches_end"], false);
    assert_eq!(ranges[1]["from_backup"], b2);
    assert_eq!(ranges[1]["reaches_end"], true);
    assert_eq!(ranges[1]["from_time"], second["physical"]["stop_time"]);
    let gaps = tl["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{tl}");
    assert_eq!(gaps[0]["first_missing"], between.as_str());
    assert_eq!(gaps[0]["affects"], serde_json::json!([b1]));
    let o = pgb(&["list", "--repo", &s(r)]);
    let text = stdout(&o);
    eprintln!("wal_window: pgb list after removing {between} on PostgreSQL {major}:\n{text}");
    assert!(
        text.contains(&format!("recoverable window of cluster {sysid}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("(end of backup {b2}) to ")),
        "{text}"
    );
    assert!(
        text.contains(&format!("GAP        1 segment(s) missing, {between}")),
        "{text}"
    );
    // A gap before the newest physical backup: a restore from it still reaches the end.
    let (code, out) = check(r, &["--max-rpo", "1h"]);
    assert_eq!(code, Some(0), "{out}");

    // A segment after the second backup goes: no restore reaches the present. CRITICAL, in
    // every output.
    let stop2 = second["physical"]["stop_wal_file"].as_str().unwrap();
    let last = all.last().unwrap().clone();
    let after = all
        .iter()
        .find(|n| n.as_str() > stop2 && **n != last)
        .unwrap_or_else(|| panic!("no segment after {stop2} before {last}: {all:?}"))
        .clone();
    remove_segment(r, sysid, &after);
    let metrics = tempfile::tempdir().unwrap();
    let (code, out) = check(r, &["--textfile", &s(metrics.path())]);
    eprintln!(
        "wal_window: pgb check with a gap after the newest backup on PostgreSQL {major}:\n{out}"
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(&format!(
            "a gap in the WAL after the newest physical backup {b2}"
        )),
        "{out}"
    );
    assert!(out.contains(&after), "{out}");
    let (code, line) = check(r, &["--format", "nagios"]);
    assert_eq!(code, Some(2));
    assert!(line.starts_with("PGB CRITICAL - WAL of "), "{line}");
    let prom = std::fs::read_dir(metrics.path())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    let labels = format!("system_identifier=\"{sysid}\",pgb_job=\"\"");
    assert!(
        prom.contains(&format!("pgb_wal_gaps_after_newest_backup{{{labels}}} 1")),
        "{prom}"
    );
    assert!(
        prom.contains(&format!("pgb_wal_check_status{{{labels}}} 2")),
        "{prom}"
    );
    assert!(
        prom.contains("pgb_wal_last_segment_timestamp_seconds{"),
        "{prom}"
    );
    let o = pgb(&["check", "--repo", &s(r), "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["wal"][0]["gaps_after_newest_backup"], 1, "{v}");
    assert_eq!(v["wal"][0]["status"], "CRITICAL");
}

#[test]
fn the_window_shrinks_with_a_missing_segment_and_check_goes_critical_on_postgres_15() {
    window_shrinks_and_check_goes_critical(15);
}

#[test]
fn the_window_shrinks_with_a_missing_segment_and_check_goes_critical_on_postgres_17() {
    window_shrinks_and_check_goes_critical(17);
}
