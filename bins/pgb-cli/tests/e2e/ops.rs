//! `pgb drill`, `pgb check` and `pgb list`'s drill column against a real PostgreSQL
//! (PGB_TEST_PG_URL): what an operator relies on to prove backups restore and to be paged
//! when they stop.

use crate::common;

use common::*;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

fn drill(pg: &Pg, repo: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "drill".to_owned(),
        "--repo".into(),
        repo.to_str().unwrap().into(),
        "--target".into(),
        pg.url("postgres"),
        "--pg-bin-dir".into(),
        pg.bin.to_str().unwrap().into(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    pgb(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn scratch_dbs(pg: &Pg, db: &str) -> String {
    pg.psql(
        "postgres",
        &format!(
            "select string_agg(datname, ',') from pg_database where datname like 'pgb_drill_{db}%'"
        ),
    )
}

#[test]
fn a_passing_drill_is_recorded_and_listed() {
    let Some(pg) = pg() else { return };
    let db = pg.sample_db("opsdrill", 50, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    assert!(backup(&pg, &repo, &db.name, &[]).status.success());
    let smoke = dir.path().join("count.sql");
    std::fs::write(&smoke, "select count(*) = 50 from items").unwrap();

    let out = drill(&pg, &repo, &["--smoke", smoke.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("drill --json");
    assert_eq!(report["outcome"], "passed");
    assert_eq!(report["dropped"], true);
    let recorded = report["recorded_as"].as_str().expect("recorded_as");
    assert!(recorded.starts_with("drills/"), "{recorded}");
    assert!(
        repo.join(recorded).is_file(),
        "{recorded} in the repository"
    );
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "smoke count.sql" && c["passed"] == true),
        "{report}"
    );
    assert_eq!(scratch_dbs(&pg, &db.name), "");

    let listed = list_json(&repo);
    assert_eq!(listed[0]["last_drill"]["outcome"], "passed", "{listed:?}");
    let text = pgb(&["list", "--repo", repo.to_str().unwrap()]);
    assert!(stdout(&text).contains("passed"), "{}", stdout(&text));
    let history = pgb(&[
        "drill",
        "--history",
        "--json",
        "--repo",
        repo.to_str().unwrap(),
    ]);
    let entries: serde_json::Value = serde_json::from_str(&stdout(&history)).unwrap();
    assert_eq!(entries.as_array().unwrap().len(), 1);
}

#[test]
fn a_failed_smoke_check_exits_10_and_an_old_backup_exits_11() {
    let Some(pg) = pg() else { return };
    let db = pg.sample_db("opsfail", 10, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    assert!(backup(&pg, &repo, &db.name, &[]).status.success());
    let smoke = dir.path().join("wrong.sql");
    std::fs::write(&smoke, "select count(*) = 11 from items").unwrap();

    let out = drill(&pg, &repo, &["--smoke", smoke.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(stderr(&out).contains("wrong.sql"), "{}", stderr(&out));
    assert_eq!(scratch_dbs(&pg, &db.name), "");

    std::thread::sleep(Duration::from_secs(2));
    let out = drill(&pg, &repo, &["--max-rpo", "1s"]);
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    assert!(stdout(&out).contains("limit_exceeded"), "{}", stdout(&out));
    let listed = list_json(&repo);
    assert_eq!(listed[0]["last_drill"]["outcome"], "limit_exceeded");
}

#[test]
fn sigterm_drops_the_scratch_database() {
    let Some(pg) = pg() else { return };
    let db = pg.sample_db("opsterm", 400_000, RowText::Md5);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    assert!(backup(&pg, &repo, &db.name, &[]).status.success());
    let mut child = pgb_cmd(&[
        "drill",
        "--repo",
        repo.to_str().unwrap(),
        "--target",
        &pg.url("postgres"),
        "--pg-bin-dir",
        pg.bin.to_str().unwrap(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn pgb drill");
    let deadline = Instant::now() + Duration::from_secs(30);
    while scratch_dbs(&pg, &db.name).is_empty() {
        assert!(Instant::now() < deadline, "no scratch database appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "drill ended before the signal"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(child.id(), libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    assert_eq!(
        scratch_dbs(&pg, &db.name),
        "",
        "scratch database left behind"
    );
}

#[test]
fn check_goes_critical_as_the_backup_ages() {
    let Some(pg) = pg() else { return };
    let db = pg.sample_db("opscheck", 10, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let r = repo.to_str().unwrap();
    // No backup at all: CRITICAL.
    std::fs::create_dir_all(&repo).unwrap();
    let out = pgb(&["check", "--repo", r, "--max-age", "2s"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(backup(&pg, &repo, &db.name, &[]).status.success());
    let prom = dir.path().join("prom");
    std::fs::create_dir_all(&prom).unwrap();
    let args = [
        "check",
        "--repo",
        r,
        "--max-age",
        "2s",
        "--format",
        "nagios",
        "--textfile",
        prom.to_str().unwrap(),
    ];
    let out = pgb(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("PGB OK - "), "{}", stdout(&out));
    let metrics =
        std::fs::read_to_string(prom.join(pgb_ops::metrics::textfile_name(None, r, None)))
            .expect("the check's textfile");
    assert!(
        metrics.contains("pgb_backup_last_success_timestamp_seconds"),
        "{metrics}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let out = pgb(&args);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("PGB CRITICAL - "),
        "{}",
        stdout(&out)
    );
    let json = pgb(&["check", "--repo", r, "--max-age", "2s", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(v["status"], "CRITICAL");
}

#[test]
fn prune_keeps_the_newest_verified_backup_when_newer_ones_were_never_verified() {
    let Some(pg) = pg() else { return };
    let db = pg.sample_db("opsprune", 10, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let r = repo.to_str().unwrap();
    assert!(backup(&pg, &repo, &db.name, &["--verify"]).status.success());
    let verified = list_json(&repo)[0]["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1100));
        assert!(backup(&pg, &repo, &db.name, &[]).status.success());
    }
    let dry = pgb(&["prune", "--repo", r, "--keep-last", "1", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    let line = stdout(&dry)
        .lines()
        .find(|l| l.starts_with(&verified))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(line.contains("newest verified"), "{}", stdout(&dry));
    let out = pgb(&["prune", "--repo", r, "--keep-last", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let left: Vec<String> = list_json(&repo)
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&verified), "{left:?}");
}

#[test]
fn verify_all_records_each_pass_and_prune_keeps_the_verified_backup() {
    let Some(pg) = pg() else { return };
    let db = pg.sample_db("opsverifyall", 10, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let r = repo.to_str().unwrap();
    assert!(backup(&pg, &repo, &db.name, &[]).status.success());
    let verified = list_json(&repo)[0]["id"].as_str().unwrap().to_owned();
    let out = pgb(&["verify", "--repo", r, "--all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The evidence lies beside the backup, as `pgb verify ID` leaves it.
    let evidence = repo.join(format!("backups/{verified}/verified"));
    assert_eq!(
        std::fs::read_dir(&evidence)
            .map(|d| d.count())
            .unwrap_or_default(),
        1,
        "{}",
        evidence.display()
    );
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1100));
        assert!(backup(&pg, &repo, &db.name, &[]).status.success());
    }
    let out = pgb(&["prune", "--repo", r, "--keep-last", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let left: Vec<String> = list_json(&repo)
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&verified), "{left:?}");
}

#[test]
fn notifications_reach_the_webhook_and_an_unreachable_one_changes_nothing() {
    let Some(pg) = pg() else { return };
    let db = pg.sample_db("opsnotify", 10, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    assert!(backup(&pg, &repo, &db.name, &[]).status.success());
    let (url, got) = receiver();
    let mut args = vec![
        "drill".to_owned(),
        "--repo".into(),
        repo.to_str().unwrap().into(),
        "--target".into(),
        pg.url("postgres"),
    ];
    args.extend(["--pg-bin-dir".into(), pg.bin.to_str().unwrap().into()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ping_url, ping_got) = receiver();
    let out = pgb_env(
        &argv,
        &[("PGB_NOTIFY_URL", &url), ("PGB_NOTIFY_PING", &ping_url)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let request = got
        .recv_timeout(Duration::from_secs(10))
        .expect("a webhook");
    assert!(request.contains("\"drill_passed\""), "{request}");
    // The drill is announced before it starts and its success paired with that ping.
    let [start, end] = pings(&ping_got);
    assert_eq!(start.path, "/hook/secret-token/start");
    assert_eq!(end.path, "/hook/secret-token");
    assert_eq!(start.rid, end.rid);
    assert!(end.body.starts_with("pgb: drill_passed"), "{}", end.body);

    // Stale, and the webhook's port is closed: still CRITICAL, no URL in the logs.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/hook/secret-token", closed.local_addr().unwrap());
    drop(closed);
    std::thread::sleep(Duration::from_secs(2));
    let r = repo.to_str().unwrap();
    let out = pgb_env(
        &["check", "--repo", r, "--max-age", "1s"],
        &[("PGB_NOTIFY_URL", &dead)],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("notification not delivered"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("secret-token"), "{}", stderr(&out));
}

#[test]
fn a_backup_pings_start_then_success_or_fail_with_one_run_id() {
    let Some(pg) = pg() else { return };
    let db = pg.sample_db("opsping", 10, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let (url, got) = receiver();
    let out = backup_env(&pg, &repo, &db.name, &[], &[("PGB_NOTIFY_PING", &url)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let [start, end] = pings(&got);
    assert_eq!(start.path, "/hook/secret-token/start");
    assert_eq!(end.path, "/hook/secret-token");
    assert_eq!(start.rid, end.rid);
    assert_eq!(start.rid.len(), 36, "a UUID: {}", start.rid);
    assert!(
        end.body.starts_with("pgb: backup_succeeded"),
        "{}",
        end.body
    );

    // A backup that fails (no such database): /start, then /fail with the cause, same rid.
    let out = backup_env(
        &pg,
        &repo,
        "pgbt_no_such_database",
        &[],
        &[("PGB_NOTIFY_PING", &url)],
    );
    assert!(!out.status.success());
    let [start2, fail] = pings(&got);
    assert_eq!(start2.path, "/hook/secret-token/start");
    assert_eq!(fail.path, "/hook/secret-token/fail");
    assert_eq!(start2.rid, fail.rid);
    assert_ne!(start2.rid, start.rid, "each run has its own id");
    assert!(fail.body.starts_with("pgb: backup_failed"), "{}", fail.body);
    assert!(fail.body.contains("pgbt_no_such_database"), "{}", fail.body);
}
