//! Point-in-time recovery against real PostgreSQL 15 and 17, the way pgBackRest tests its own:
//! a one-row marker table `status(message text)` is updated before each recovery target is
//! captured (a time, an LSN, a restore point, an xid, the end of the archive), each target is
//! restored from one `pgb backup --physical --wal archive` into a new data directory with
//! `pgb restore latest --pgdata DIR --to-...`, started, promoted, and `select message from
//! status` must be exactly the marker of that target. Then what must not promote: a damaged
//! archived segment between the backup and the target, and a target after the last commit of
//! an idle server. A second test forks timeline 2 from a restored server archiving into a
//! second repository and restores following it.
//!
//! One server and one base backup per major version and test; every restored server is
//! stopped and its data directory removed when its `Restored` is dropped.

use crate::common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::pitr::{
    ARCHIVED, archive_command, archiving_server, bin_dir, mark, marker,
    physical_backup as backup_report, s,
};
use common::{one_line_error, pgb, stderr, stdout};
use pgb_testkit::{TempCluster, make_shared_dir, share_with_postgres};

/// How long a restored server may take to recover and promote, or to stop on its own.
const RECOVERY: Duration = Duration::from_secs(180);

/// `f`, again while it fails only because `pg_ctl status` found the postmaster's lock file
/// created but not yet written (it exits 1, "the PID file ... is empty", which
/// `TempCluster::is_running` does not take for "running"; a server that fails right after
/// starting can be seen in that instant).
fn past_empty_pid_file<T>(mut f: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    for _ in 0..100 {
        match f() {
            Err(e) if e.to_string().contains("postmaster.pid\" is empty") => {
                std::thread::sleep(Duration::from_millis(50));
            }
            r => return r,
        }
    }
    f()
}

/// `clock_timestamp()` as psql prints it (`2026-05-01 12:30:00.123456+00`): what an operator
/// would copy into `--to-time`.
fn now(pg: &TempCluster) -> String {
    pg.psql("select clock_timestamp()").unwrap()
}

/// `pgb backup --physical --wal archive` of `pg` into `repo`; the new backup's id.
fn physical_backup(pg: &TempCluster, repo: &Path) -> String {
    backup_report(pg, repo)["id"].as_str().unwrap().to_owned()
}

/// `pgb restore ID --repo REPO --pgdata DIR EXTRA...`.
fn restore(repo: &Path, id: &str, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["restore", id, "--repo", repo.to_str().unwrap(), "--pgdata"];
    let dir = s(dir);
    args.push(&dir);
    args.extend_from_slice(extra);
    pgb(&args)
}

/// `pgb restore ID --preview --json` into a directory that is never written: the exit code,
/// the plan with its WAL verdict (`wal.verdict`; null when there is none) and the run.
fn preview(repo: &Path, id: &str, extra: &[&str]) -> (Option<i32>, serde_json::Value, Output) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut flags = extra.to_vec();
    flags.extend(["--preview", "--json"]);
    let o = restore(repo, id, &data, &flags);
    let plan = if o.stdout.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("preview {extra:?}: JSON ({e}): {}", stdout(&o)))
    };
    assert!(!data.exists(), "--preview wrote the data directory");
    (o.status.code(), plan, o)
}

/// A `--preview` that must find the target reachable from base backup `backup`.
fn reachable(repo: &Path, id: &str, backup: &str, extra: &[&str]) {
    let (code, plan, o) = preview(repo, id, extra);
    assert_eq!(code, Some(0), "preview {extra:?}: {plan} {}", stderr(&o));
    assert_eq!(
        plan["wal"]["verdict"], "reachable",
        "preview {extra:?}: {plan}"
    );
    assert_eq!(plan["backup"], backup, "preview {extra:?}: {plan}");
}

/// A restored data directory and the server started on it; dropping it stops the server and
/// removes the directory.
struct Restored {
    pg: TempCluster,
    /// The `pgb restore --json` report.
    report: serde_json::Value,
    // Declared last: removed after the server stopped.
    _dir: tempfile::TempDir,
}

impl Restored {
    /// The backup the restore used.
    fn backup(&self) -> &str {
        self.report["plan"]["backup"].as_str().unwrap_or_default()
    }
}

/// Restores `id` from `repo` with `extra` flags into a new directory and starts a server on
/// it with `settings` (not waiting for anything).
fn restore_and_start(
    bin: &Path,
    repo: &Path,
    id: &str,
    extra: &[&str],
    settings: &[(&str, &str)],
) -> Restored {
    let dir = tempfile::Builder::new()
        .prefix("pgb-pitr-")
        .tempdir()
        .unwrap();
    let data = dir.path().join("data");
    let mut flags = extra.to_vec();
    flags.push("--json");
    let o = restore(repo, id, &data, &flags);
    assert!(o.status.success(), "restore {extra:?}: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("restore JSON ({e}): {}", stdout(&o)));
    let pg = TempCluster::adopt(bin, &data, settings).expect("start the restored server");
    Restored {
        pg,
        report,
        _dir: dir,
    }
}

/// Previews (reachable), restores `id` (`latest` or an id), which must be base backup
/// `backup`, starts and waits until promoted; the marker the promoted server shows.
fn recovered_marker(bin: &Path, repo: &Path, id: &str, backup: &str, extra: &[&str]) -> String {
    let started = Instant::now();
    reachable(repo, id, backup, extra);
    let r = restore_and_start(bin, repo, id, extra, &[]);
    assert_eq!(r.backup(), backup, "{}", r.report);
    past_empty_pid_file(|| r.pg.wait_until_promoted(RECOVERY))
        .unwrap_or_else(|e| panic!("restore {extra:?}: {e}"));
    let m = marker(&r.pg);
    eprintln!(
        "pitr: {} {extra:?} -> {m:?} in {:.1}s",
        r.pg.bin_dir().display(),
        started.elapsed().as_secs_f64()
    );
    m
}

/// Restores and starts a server that must stop on its own without ever accepting
/// connections; its log.
fn recovery_that_stops(bin: &Path, repo: &Path, extra: &[&str]) -> String {
    let mut r = restore_and_start(bin, repo, "latest", extra, &[]);
    let stopped = past_empty_pid_file(|| r.pg.wait_until_stopped(RECOVERY)).unwrap();
    let log = r.pg.log();
    assert!(
        stopped,
        "the server is still running after {RECOVERY:?}:\n{log}"
    );
    assert!(
        !log.contains("database system is ready to accept connections")
            && !log.contains("selected new timeline ID"),
        "the server promoted:\n{log}"
    );
    assert!(
        r.pg.psql("select message from status").is_err(),
        "the server answers"
    );
    log
}

/// The source's markers and the targets captured between them.
struct Targets {
    time: String,
    lsn: String,
    xid: String,
    /// The segment written after the backup and before the xid target.
    segment_before_xid: String,
    after_last_commit: String,
}

/// Writes the markers and captures a target after each, pgBackRest style: each marker is
/// committed and its segment archived (`pg_switch_wal`) before the next one.
fn write_markers(pg: &TempCluster) -> Targets {
    let switch = || pg.switch_wal_and_wait_archived(ARCHIVED).unwrap();
    // A time: the marker committed, a second later the target, a second later the next commit.
    mark(pg, "time");
    std::thread::sleep(Duration::from_millis(1100));
    let time = now(pg);
    std::thread::sleep(Duration::from_millis(1100));
    mark(pg, "after_time");
    switch();
    // An LSN: where WAL ends just after the marker's commit.
    mark(pg, "lsn");
    let lsn = pg.psql("select pg_current_wal_lsn()").unwrap();
    mark(pg, "after_lsn");
    let segment_before_xid = switch();
    // A restore point.
    mark(pg, "name");
    pg.psql("select pg_create_restore_point('pgb-pitr')")
        .unwrap();
    mark(pg, "after_name");
    switch();
    // An xid: the transaction that sets the marker (one statement, one transaction).
    let xid = pg
        .psql(
            "with u as (update status set message = 'xid' returning 1) \
             select txid_current() from u",
        )
        .unwrap();
    mark(pg, "after_xid");
    switch();
    // The end of the archive.
    mark(pg, "end");
    switch();
    // After the last commit of a server that stays idle.
    std::thread::sleep(Duration::from_millis(1100));
    let after_last_commit = now(pg);
    Targets {
        time,
        lsn,
        xid,
        segment_before_xid,
        after_last_commit,
    }
}

/// Damages the stored object of WAL segment `name` (its body, near the end, as a disk or a
/// store would).
fn damage_segment(repo: &Path, system_id: u64, name: &str) {
    let path = repo.join(format!("wal/{system_id}/{}/{name}", &name[..8]));
    let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = bytes.len();
    bytes[n - 10] ^= 0xFF;
    std::fs::write(&path, &bytes).unwrap();
}

/// A copy of repository `repo` the server's user may write.
fn copy_repo(repo: &Path) -> tempfile::TempDir {
    let copy = make_shared_dir().unwrap();
    let o = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", s(repo)))
        .arg(copy.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "cp -a: {}", stderr(&o));
    share_with_postgres(copy.path()).unwrap();
    copy
}

fn each_target(major: u32) {
    let Some(bin) = bin_dir(major) else { return };
    let started = Instant::now();
    let repo = make_shared_dir().unwrap();
    let pg = archiving_server(&bin, repo.path());
    let system_id = pg.system_identifier().unwrap();
    mark(&pg, "backup");
    // Archiving is seen to work before the first base backup (as an operator checks it):
    // the archiver, not this root-run backup, creates the repository's folders.
    pg.switch_wal_and_wait_archived(ARCHIVED).unwrap();
    let id = physical_backup(&pg, repo.path());
    let t = write_markers(&pg);
    let r = repo.path();

    let cases: &[(&str, Vec<&str>, &str)] = &[
        ("time", vec!["--to-time", &t.time], "time"),
        ("lsn", vec!["--to-lsn", &t.lsn], "lsn"),
        ("name", vec!["--to-name", "pgb-pitr"], "name"),
        ("xid", vec!["--to-xid", &t.xid], "xid"),
        (
            "xid exclusive",
            vec!["--to-xid", &t.xid, "--exclusive"],
            "after_name",
        ),
        ("immediate", vec!["--immediate"], "backup"),
        ("end of archive", vec![], "end"),
    ];
    let mut results = Vec::new();
    for (kind, flags, expected) in cases {
        let got = recovered_marker(&bin, r, "latest", &id, flags);
        results.push(format!("{kind}: {got}"));
        assert_eq!(&got, expected, "target {kind} ({flags:?})");
    }
    eprintln!("pitr: PostgreSQL {major} markers: {}", results.join(", "));

    // A damaged segment between the backup and the target: recovery stops at it with an
    // error (wal fetch exits 255) instead of ending early and promoting at an earlier marker.
    let bad = copy_repo(r);
    damage_segment(bad.path(), system_id, &t.segment_before_xid);
    // --preview reads the WAL up to the xid, finds the damage and says which file (exit 5).
    let (code, _, o) = preview(bad.path(), "latest", &["--to-xid", &t.xid]);
    assert_eq!(code, Some(5), "{}", stderr(&o));
    let line = one_line_error(&o);
    assert!(
        line.contains(&t.segment_before_xid) && line.contains("unusable"),
        "{line}"
    );
    let log = recovery_that_stops(&bin, bad.path(), &["--to-xid", &t.xid]);
    assert!(
        log.contains(&format!(
            "could not restore file \"{}\" from archive",
            t.segment_before_xid
        )),
        "{log}"
    );
    assert!(log.contains("FATAL"), "{log}");
    drop(bad);

    // A target after the last commit of an idle server: the archive ends before it.
    // --preview says so up front (exit 14), and PostgreSQL stops on it.
    let idle = ["--to-time", t.after_last_commit.as_str()];
    let (code, plan, o) = preview(r, "latest", &idle);
    assert_eq!(code, Some(14), "{plan} {}", stderr(&o));
    assert!(
        one_line_error(&o).contains("not in the archived WAL"),
        "{}",
        stderr(&o)
    );
    assert_eq!(plan["wal"]["verdict"], "after_last_commit", "{plan}");
    let log = recovery_that_stops(&bin, r, &idle);
    assert!(
        log.contains("recovery ended before configured recovery target was reached"),
        "{log}"
    );

    eprintln!(
        "pitr: each_target on PostgreSQL {major}: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn each_recovery_target_restores_its_marker_on_postgres_15() {
    each_target(15);
}

#[test]
fn each_recovery_target_restores_its_marker_on_postgres_17() {
    each_target(17);
}

/// The timeline a server writes now (the first eight digits of its current WAL file).
fn timeline(pg: &TempCluster) -> String {
    pg.psql("select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")
        .unwrap()
}

/// Timeline 2: a restore to a restore point promotes (timeline 2) and, with archiving turned
/// on deliberately, archives into a second repository that holds the first one's base backup
/// and WAL (a copy); markers written on timeline 2 are restored from there, following the fork
/// from timeline 1's base backup, from timeline 2's own base backup, and timeline 1 is still
/// restorable to its own end.
fn second_timeline(major: u32) {
    let Some(bin) = bin_dir(major) else { return };
    let started = Instant::now();
    let repo1 = make_shared_dir().unwrap();
    let pg = archiving_server(&bin, repo1.path());
    let system_id = pg.system_identifier().unwrap();
    mark(&pg, "backup");
    pg.switch_wal_and_wait_archived(ARCHIVED).unwrap();
    let tl1_backup = physical_backup(&pg, repo1.path());
    mark(&pg, "fork");
    pg.psql("select pg_create_restore_point('fork')").unwrap();
    mark(&pg, "tl1_end");
    pg.switch_wal_and_wait_archived(ARCHIVED).unwrap();

    // The second repository starts with the first one's base backup and timeline 1's WAL.
    let repo2 = copy_repo(repo1.path());
    let archive2 = archive_command(repo2.path());
    let tl2 = restore_and_start(
        &bin,
        repo1.path(),
        "latest",
        &["--to-name", "fork"],
        &[("archive_mode", "on"), ("archive_command", &archive2)],
    );
    past_empty_pid_file(|| tl2.pg.wait_until_promoted(RECOVERY)).unwrap();
    assert_eq!(marker(&tl2.pg), "fork");
    assert_eq!(timeline(&tl2.pg), "00000002");
    // pgb wrote archive_mode = 'off' into postgresql.auto.conf; the settings appended after
    // it win.
    let auto = std::fs::read_to_string(tl2.pg.data_dir().join("postgresql.auto.conf")).unwrap();
    let off = auto
        .find("archive_mode = 'off'")
        .expect("pgb's archive_mode = 'off'");
    assert!(auto[off..].contains("archive_mode = 'on'"), "{auto}");
    assert_eq!(tl2.pg.psql("show archive_mode").unwrap(), "on");

    mark(&tl2.pg, "tl2_time");
    std::thread::sleep(Duration::from_millis(1100));
    let t2 = now(&tl2.pg);
    std::thread::sleep(Duration::from_millis(1100));
    tl2.pg.switch_wal_and_wait_archived(ARCHIVED).unwrap();
    let tl2_backup = physical_backup(&tl2.pg, repo2.path());
    mark(&tl2.pg, "tl2_end");
    tl2.pg.switch_wal_and_wait_archived(ARCHIVED).unwrap();

    // Both timelines are in the second repository, timeline 2 from its fork.
    let history = repo2
        .path()
        .join(format!("wal/{system_id}/00000002/00000002.history"));
    assert!(history.is_file(), "{} missing", history.display());
    let o = pgb(&["wal", "verify", "--repo", &s(repo2.path()), "--json"]);
    assert!(
        o.status.success(),
        "wal verify: {}{}",
        stderr(&o),
        stdout(&o)
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let timelines: Vec<u64> = report["timelines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["timeline"].as_u64())
        .collect();
    assert_eq!(timelines, [1, 2], "{report}");

    let r2 = repo2.path();
    // --preview follows the timelines: timeline 1's base backup reaches timeline 2 through
    // the fork; timeline 2's cannot go back to timeline 1 (exit 16); a time on timeline 2 is
    // after every commit of timeline 1 (exit 14).
    let (code, plan, o) = preview(r2, &tl1_backup, &["--timeline", "2"]);
    assert_eq!(code, Some(0), "{plan} {}", stderr(&o));
    assert_eq!(plan["wal"]["verdict"], "reachable", "{plan}");
    let path: Vec<u64> = plan["wal"]["path"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|span| span["timeline"].as_u64())
        .collect();
    assert_eq!(path, [1, 2], "{plan}");
    let (code, plan, o) = preview(r2, &tl2_backup, &["--timeline", "1"]);
    assert_eq!(code, Some(16), "{plan} {}", stderr(&o));
    assert_eq!(plan["wal"]["verdict"], "timeline_does_not_lead", "{plan}");
    let (code, plan, o) = preview(r2, &tl1_backup, &["--timeline", "current"]);
    assert_eq!(code, Some(0), "{plan} {}", stderr(&o));
    assert_eq!(plan["wal"]["path"][0]["timeline"], 1, "{plan}");
    let (code, plan, o) = preview(r2, "latest", &["--timeline", "1", "--to-time", &t2]);
    assert_eq!(code, Some(14), "{plan} {}", stderr(&o));
    assert_eq!(plan["wal"]["verdict"], "after_last_commit", "{plan}");

    // A time on timeline 2, from timeline 1's base backup (the only one that ended before it):
    // recovery follows the fork. The end of the archive, from timeline 2's own base backup.
    // Timeline 1 to its own end: `latest --timeline 1` takes timeline 1's base backup, not
    // the newer one on timeline 2 (which cannot go back to timeline 1).
    let to_t2 = ["--to-time", t2.as_str(), "--timeline", "latest"];
    let cases: [(&str, &str, &str, &[&str], &str); 3] = [
        (
            "time on timeline 2",
            "latest",
            &tl1_backup,
            &to_t2,
            "tl2_time",
        ),
        ("end of timeline 2", "latest", &tl2_backup, &[], "tl2_end"),
        (
            "end of timeline 1",
            "latest",
            &tl1_backup,
            &["--timeline", "1"],
            "tl1_end",
        ),
    ];
    let mut results = Vec::new();
    for (kind, id, backup, flags, expected) in cases {
        let got = recovered_marker(&bin, r2, id, backup, flags);
        results.push(format!("{kind}: {got}"));
        assert_eq!(got, expected, "{kind} ({id} {flags:?})");
    }
    // A PITR drill to the time on timeline 2: the scratch server takes timeline 2's history
    // file and the segments of both timelines from the drill's verified spool alone.
    let scratch = tempfile::tempdir().unwrap();
    let o = common::pgb_cmd(&[
        "drill",
        "--physical",
        "--repo",
        &s(r2),
        "--to-time",
        &t2,
        "--pg-bin-dir",
        &s(&bin),
        "--json",
    ])
    .env("PGB_SPOOL_DIR", scratch.path())
    .output()
    .unwrap();
    assert!(o.status.success(), "drill: {}\n{}", stdout(&o), stderr(&o));
    let drill: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(drill["outcome"], "passed", "{drill}");
    assert_eq!(drill["backup_id"], tl1_backup.as_str(), "{drill}");
    assert_eq!(drill["pitr"]["timeline"], 2, "{drill}");
    eprintln!("pitr: PostgreSQL {major} timelines: {}", results.join(", "));
    eprintln!(
        "pitr: second_timeline on PostgreSQL {major}: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_second_timeline_is_archived_and_followed_on_postgres_15() {
    second_timeline(15);
}

#[test]
fn a_second_timeline_is_archived_and_followed_on_postgres_17() {
    second_timeline(17);
}
