//! `pgb check --server`: the server's own account of its archiving (`pg_stat_archiver`, the
//! `.ready` backlog) against a real PostgreSQL 15 archiving with `pgb wal push`: OK while it
//! archives; CRITICAL naming the segment once `archive_command` fails; a WARNING for the
//! backlog; CRITICAL for a repository that holds none of the server's WAL; UNKNOWN (3) for a
//! server that cannot be asked.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::pitr::{archiving_server, bin_dir, physical_backup, work};
use common::{pgb, stderr, stdout};
use pgb_testkit::make_shared_dir;

fn check(repo: &Path, server: &str, extra: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut args = vec![
        "check",
        "--repo",
        repo.to_str().unwrap(),
        "--server",
        server,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--format", "json"]);
    let o = pgb(&args);
    let text = format!("{}{}", stdout(&o), stderr(&o));
    let json = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (o.status.code(), json, text)
}

fn findings(report: &serde_json::Value) -> String {
    report["findings"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|x| x["message"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[test]
fn check_server_reports_a_failing_archive_command_and_the_backlog() {
    let Some(bin) = bin_dir(15) else { return };
    let repo = make_shared_dir().unwrap();
    let pg = archiving_server(&bin, repo.path());
    physical_backup(&pg, repo.path());
    work(&pg);
    let url = pg.url();

    let (code, report, text) = check(repo.path(), &url, &[]);
    assert_eq!(code, Some(0), "{text}");
    let archiver = &report["wal"][0]["archiver"];
    assert!(archiver["archived_count"].as_u64().unwrap() > 0, "{text}");
    assert_eq!(archiver["archive_mode"], "on", "{text}");

    // archive_command starts failing: PostgreSQL retries the segment and counts failures.
    pg.psql("alter system set archive_command = 'false'")
        .unwrap();
    pg.psql("select pg_reload_conf()").unwrap();
    pg.psql("insert into status values ('after'); select pg_switch_wal()")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let failed = loop {
        let row = pg
            .psql(
                "select coalesce(last_failed_wal, '') from pg_stat_archiver where failed_count > 0",
            )
            .unwrap();
        if !row.trim().is_empty() {
            break row.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "the archiver never failed");
        std::thread::sleep(Duration::from_millis(200));
    };
    let (code, report, text) = check(repo.path(), &url, &[]);
    assert_eq!(code, Some(2), "{text}");
    let said = findings(&report);
    assert!(said.contains("archive_command is failing"), "{said}");
    assert!(said.contains(&failed), "names the segment {failed}: {said}");
    assert_eq!(
        report["wal"][0]["archiver"]["last_failed_wal"],
        failed.as_str()
    );
    assert!(
        report["wal"][0]["archiver"]["ready"].as_u64().unwrap() >= 1,
        "{text}"
    );

    // The backlog over the limit is a warning of its own.
    let (_, report, text) = check(repo.path(), &url, &["--max-ready", "0"]);
    assert!(findings(&report).contains("wait to be archived"), "{text}");

    // A repository without this server's WAL: the archive goes elsewhere.
    let empty = make_shared_dir().unwrap();
    let (code, report, text) = check(empty.path(), &url, &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        findings(&report).contains("holds none of its WAL"),
        "{text}"
    );

    // A server that cannot be asked: UNKNOWN, the monitoring-plugin code for "could not check".
    drop(pg);
    let (code, _, text) = check(repo.path(), &url, &[]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("cannot ask the server"), "{text}");
}
