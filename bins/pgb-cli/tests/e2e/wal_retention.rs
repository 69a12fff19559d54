//! Retention over physical backups and their WAL against real PostgreSQL 15 and 17: a server
//! archiving with `pgb wal push`, three base backups with commits between them, then
//! `pgb prune --keep-last 2`: the dry run names the WAL it would delete and the window
//! before and after and deletes nothing; the prune deletes the oldest backup and exactly the
//! WAL before the oldest kept backup's start (`pgb wal verify` finds no gap); a restore to a
//! time inside the window after the prune reaches its marker.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::pitr::{
    ARCHIVED, archiving_server, bin_dir, mark, physical_backup as backup_report, s, work,
};
use common::{pgb, stderr, stdout};
use pgb_testkit::{TempCluster, make_shared_dir};

/// How long a restored server may take to recover and promote.
const RECOVERY: Duration = Duration::from_secs(180);

/// `pgb backup --physical --wal archive`; the backup's id and `physical` section.
fn physical_backup(pg: &TempCluster, repo: &Path) -> (String, serde_json::Value) {
    let id = backup_report(pg, repo)["id"].as_str().unwrap().to_owned();
    let physical = common::pitr::listed(repo, &id)["physical"].clone();
    (id, physical)
}

/// The WAL file names archived for `sysid`.
fn archived(repo: &Path, sysid: u64) -> BTreeSet<String> {
    common::files(&repo.join(format!("wal/{sysid}")))
        .into_iter()
        .map(|f| f.rsplit('/').next().unwrap().to_owned())
        .collect()
}

fn prune(repo: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "prune",
        "--repo",
        repo.to_str().unwrap(),
        "--keep-last",
        "2",
    ];
    args.extend_from_slice(extra);
    pgb(&args)
}

fn prune_keeps_the_wal_of_the_kept_backups(major: u32) {
    let Some(bin) = bin_dir(major) else { return };
    let repo = make_shared_dir().unwrap();
    let r = repo.path();
    let pg = archiving_server(&bin, r);
    let sysid = pg.system_identifier().unwrap();
    // The archiver, not this root-run test, creates the repository's WAL folders.
    pg.switch_wal_and_wait_archived(ARCHIVED).unwrap();

    let (first, _) = physical_backup(&pg, r);
    work(&pg);
    let (second, second_info) = physical_backup(&pg, r);
    work(&pg);
    // The target: a marker committed after the second backup, a time after it, a change
    // after that time.
    mark(&pg, "target");
    std::thread::sleep(Duration::from_millis(1100));
    let target = pg.psql("select clock_timestamp()").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    mark(&pg, "after target");
    work(&pg);
    let (third, _) = physical_backup(&pg, r);
    work(&pg);
    mark(&pg, "end");
    pg.switch_wal_and_wait_archived(ARCHIVED).unwrap();

    let all = archived(r, sysid);
    let start = second_info["start_wal_file"].as_str().unwrap().to_owned();
    let doomed: BTreeSet<String> = all
        .iter()
        .filter(|n| n.len() >= 24 && !n.ends_with(".history") && n[..24] < *start.as_str())
        .cloned()
        .collect();
    assert!(!doomed.is_empty(), "WAL before the second backup: {all:?}");

    // The dry run: the plan, the WAL ranges and the windows; nothing deleted.
    let o = prune(r, &["--dry-run"]);
    assert!(o.status.success(), "dry run: {}", stderr(&o));
    let text = stdout(&o);
    eprintln!("wal_retention: pgb prune --keep-last 2 --dry-run on PostgreSQL {major}:\n{text}");
    assert!(text.contains(&format!("WAL of cluster {sysid}")), "{text}");
    assert!(
        text.contains(&format!("recovery window from backup {second}")),
        "{text}"
    );
    assert!(text.contains("  delete  timeline 1 "), "{text}");
    assert!(text.contains("  before  timeline 1: "), "{text}");
    assert!(text.contains("  after   timeline 1: "), "{text}");
    assert!(text.contains(&format!("(end of backup {first})")), "{text}");
    assert!(
        text.contains(&format!("(end of backup {second})")),
        "{text}"
    );
    assert!(
        text.contains(&format!("would delete {} WAL file(s)", doomed.len())),
        "{text}\n{doomed:?}"
    );
    assert_eq!(archived(r, sysid), all, "the dry run deleted WAL");
    let o = prune(r, &["--dry-run", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let wal = &plan["wal"][0];
    assert_eq!(wal["system_identifier"], sysid.to_string());
    assert_eq!(wal["window_backup"], second.as_str());
    assert_eq!(wal["deleted_files"], 0);
    assert_eq!(wal["before"][0]["ranges"][0]["from_backup"], first.as_str());
    assert_eq!(wal["after"][0]["ranges"][0]["from_backup"], second.as_str());
    assert!(wal["after"][0]["gaps"].as_array().unwrap().is_empty());

    // The prune: the first backup and exactly the WAL before the second one's start.
    let o = prune(r, &["--json"]);
    assert!(o.status.success(), "prune: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["wal"][0]["deleted_files"], doomed.len());
    let left = archived(r, sysid);
    assert_eq!(left, all.difference(&doomed).cloned().collect());
    assert!(left.contains(&start), "{left:?}");
    let ids: Vec<String> = common::ids(r);
    assert_eq!(ids.len(), 2);
    assert!(!ids.contains(&first) && ids.contains(&second) && ids.contains(&third));
    let o = pgb(&["wal", "verify", "--repo", &s(r)]);
    assert!(
        o.status.success(),
        "wal verify after the prune: {}{}",
        stdout(&o),
        stderr(&o)
    );

    // A restore to the target inside the window, from the second backup and its WAL.
    let dir = tempfile::Builder::new()
        .prefix("pgb-walret-")
        .tempdir()
        .unwrap();
    let data = dir.path().join("data");
    let o = pgb(&[
        "restore",
        "latest",
        "--repo",
        &s(r),
        "--pgdata",
        &s(&data),
        "--to-time",
        &target,
        "--json",
    ]);
    assert!(o.status.success(), "restore: {}", stderr(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["plan"]["backup"], second.as_str(), "{plan}");
    let restored = TempCluster::adopt(&bin, &data, &[]).expect("start the restored server");
    restored.wait_until_promoted(RECOVERY).unwrap();
    assert_eq!(
        restored.psql("select message from status").unwrap(),
        "target"
    );
}

#[test]
fn prune_keeps_exactly_the_wal_of_the_kept_backups_on_postgres_15() {
    prune_keeps_the_wal_of_the_kept_backups(15);
}

#[test]
fn prune_keeps_exactly_the_wal_of_the_kept_backups_on_postgres_17() {
    prune_keeps_the_wal_of_the_kept_backups(17);
}
