//! One catalog per server (issue 22, item 1): a logical dump records the server's system
//! identifier, so `pgb list` shows it beside the same server's base backups under one heading
//! (the system identifier; `host:port` only a label), followed by that server's recoverable
//! window with its gap; `--json` carries `system_identifier` on every backup. `pgb restore
//! --to-time T --preview` names the cheaper path: the dump taken at or before T of that
//! server, beside the PITR verdict (and alone, as a note, when T is before every base backup).

use crate::common;

use std::path::Path;

use common::pitr::{archiving_server, bin_dir, physical_backup, s, work};
use common::{pgb, stderr, stdout};
use pgb_testkit::make_shared_dir;

/// `clock_timestamp()` as psql prints it: what an operator copies into `--to-time`.
fn now(pg: &pgb_testkit::TempCluster) -> String {
    pg.psql("select clock_timestamp()").unwrap()
}

fn preview(repo: &Path, to_time: &str, json: bool) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args = vec![
        "restore",
        "latest",
        "--repo",
        repo.to_str().unwrap(),
        "--pgdata",
        data.to_str().unwrap(),
        "--to-time",
        to_time,
        "--preview",
    ];
    if json {
        args.push("--json");
    }
    let o = pgb(&args);
    assert!(!data.exists(), "--preview wrote the data directory");
    o
}

fn one_catalog_per_server(major: u32) {
    let Some(bin) = bin_dir(major) else { return };
    let repo = make_shared_dir().unwrap();
    let r = repo.path();
    let pg = archiving_server(&bin, r);
    let sysid = pg.system_identifier().unwrap();
    pg.switch_wal_and_wait_archived(common::pitr::ARCHIVED)
        .unwrap();
    let o = pgb(&[
        "backup",
        "--repo",
        &s(r),
        "--db",
        &pg.url(),
        "--pg-bin-dir",
        &s(pg.bin_dir()),
        "--json",
    ]);
    assert!(o.status.success(), "backup: {}", stderr(&o));
    let dump: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let dump = dump["id"].as_str().unwrap().to_owned();
    let after_dump = now(&pg);
    work(&pg);
    let first = physical_backup(&pg, r)["id"].as_str().unwrap().to_owned();
    work(&pg);
    work(&pg);
    let second = physical_backup(&pg, r);
    let second_id = second["id"].as_str().unwrap().to_owned();
    work(&pg);
    let in_window = now(&pg);
    work(&pg);

    // Every backup carries the server's system identifier, the dump's read at backup time.
    for m in common::list_json(r) {
        assert_eq!(m["system_identifier"], sysid.to_string(), "{m}");
    }
    // `list --windows --json`: each cluster's window with the same server's dumps beside it.
    let o = pgb(&["list", "--windows", "--json", "--repo", &s(r)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let w: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(w[0]["system_identifier"], sysid.to_string(), "{w}");
    assert_eq!(w[0]["logical_backups"], serde_json::json!([dump]), "{w}");
    assert_eq!(w[0]["backups"], 2, "{w}");
    // A gap between the base backups: the window starts at the second.
    let stop1 = common::pitr::listed(r, &first)["physical"]["stop_wal_file"]
        .as_str()
        .unwrap()
        .to_owned();
    let start2 = second_id.clone();
    let start2 = common::pitr::listed(r, &start2)["physical"]["start_wal_file"]
        .as_str()
        .unwrap()
        .to_owned();
    let folder = r.join(format!("wal/{sysid}/00000001"));
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 24 && n.as_str() > stop1.as_str() && n.as_str() < start2.as_str())
        .collect();
    names.sort();
    let between = names
        .first()
        .expect("a segment between the backups")
        .clone();
    std::fs::remove_file(folder.join(&between)).unwrap();

    let o = pgb(&["list", "--repo", &s(r)]);
    assert!(o.status.success(), "list: {}", stderr(&o));
    let text = stdout(&o);
    eprintln!("catalog: pgb list on PostgreSQL {major}:\n{text}");
    let heading = format!(
        "server {sysid} (127.0.0.1:{}): 1 logical and 2 physical backup(s)",
        pg.port()
    );
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"))
    };
    let h = at(&heading);
    let window = at(&format!("recoverable window of cluster {sysid}"));
    for id in [&dump, &first, &second_id] {
        let row = at(id.as_str());
        assert!(
            h < row && row < window,
            "{id} not under its server:\n{text}"
        );
    }
    assert_eq!(
        text.matches("server ").count(),
        1,
        "one server, one heading:\n{text}"
    );
    assert!(
        text.contains(&format!("(end of backup {second_id}) to ")),
        "{text}"
    );
    assert!(
        text.contains(&format!("GAP        1 segment(s) missing, {between}")),
        "{text}"
    );

    // Inside the window: PITR reachable, and the dump offered beside it.
    let o = preview(r, &in_window, false);
    let out = stdout(&o);
    eprintln!("catalog: restore --to-time '{in_window}' --preview on PostgreSQL {major}:\n{out}");
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains("verdict      REACHABLE"), "{out}");
    assert!(
        out.contains(&format!("also fits: pgb restore {dump} --db ...")),
        "{out}"
    );
    assert!(out.contains("a logical dump from "), "{out}");
    let o = preview(r, &in_window, true);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["logical"]["backup_id"], dump.as_str(), "{v}");
    assert_eq!(v["backup"], second_id.as_str(), "{v}");

    // Before every base backup: no physical path (exit 12), the dump still named.
    let o = preview(r, &after_dump, false);
    let err = stderr(&o);
    eprintln!("catalog: restore --to-time '{after_dump}' --preview on PostgreSQL {major}:\n{err}");
    assert_eq!(o.status.code(), Some(12), "{err}");
    assert!(
        err.contains(&format!("also fits: pgb restore {dump} --db ...")),
        "{err}"
    );
}

#[test]
fn logical_and_physical_backups_of_one_server_are_listed_together_on_postgres_15() {
    one_catalog_per_server(15);
}

#[test]
fn logical_and_physical_backups_of_one_server_are_listed_together_on_postgres_17() {
    one_catalog_per_server(17);
}
