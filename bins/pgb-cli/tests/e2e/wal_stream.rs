//! `pgb wal stream` against real PostgreSQL 15 and 17 (`pgb_testkit::TempCluster`): a server
//! without `archive_command` streamed into a repository through a physical slot, the stream
//! stopped (SIGTERM) and killed (SIGKILL) and restarted, the server restarted, and then
//! `pgb wal verify` finds no gap and a restore to the end of the streamed WAL shows the last
//! marker; the segment being received is stored as `<name>.partial` and never handed out as
//! the segment. And the preflight's refusals: a role without REPLICATION, a missing slot
//! without `--create-slot`, a logical slot and a slot in use, each with nothing created.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{PGB, kill, one_line_error, pgb, stderr, stdout};
use pgb_testkit::{TempCluster, make_shared_dir};

/// How long a segment may take from `pg_switch_wal` to the repository.
const STREAMED: Duration = Duration::from_secs(60);
/// How long a restored server may take to recover and promote.
const RECOVERY: Duration = Duration::from_secs(180);

fn bin_dir(major: u32) -> Option<PathBuf> {
    match common::env(&format!("PGB_TEST_PG{major}_BIN")) {
        Some(b) => Some(PathBuf::from(b)),
        None => pgb_testkit::require_or_skip(
            &format!("PostgreSQL {major}"),
            &format!("PGB_TEST_PG{major}_BIN is not set (scripts/pg.sh start)"),
        ),
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A running `pgb wal stream`; its stderr goes to a file.
struct Stream {
    child: Child,
    log: PathBuf,
}

impl Stream {
    /// Starts `pgb wal stream` from `pg` into `repo` with `extra` flags and waits until it
    /// says it streams.
    fn start(pg: &TempCluster, repo: &Path, spool: &Path, log: &Path, extra: &[&str]) -> Self {
        let err = std::fs::File::create(log).unwrap();
        let child = common::pgb_cmd(
            &[
                &["wal", "stream", "--db", &pg.url(), "--repo", &s(repo)][..],
                &["--spool", &s(spool), "--partial-interval", "1s"],
                &["--pg-bin-dir", &s(pg.bin_dir())],
                extra,
            ]
            .concat(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("run pgb wal stream");
        let st = Self {
            child,
            log: log.to_owned(),
        };
        st.wait_for_log("pgb: streaming WAL of cluster");
        st
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + STREAMED;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "pgb wal stream did not say {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM; the exit code of the clean stop.
    fn stop(mut self) -> Option<i32> {
        kill(self.child.id(), 15);
        let status = self.child.wait().unwrap();
        status.code()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until WAL file `name` of `system_id` is in the repository.
fn wait_archived(st: &Stream, repo: &Path, system_id: u64, name: &str) {
    let path = repo.join(format!("wal/{system_id}/{}/{name}", &name[..8]));
    let deadline = Instant::now() + STREAMED;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{name} did not reach the repository within {STREAMED:?}; archived: {:?}; \
             pgb wal stream:\n{}",
            common::files(&repo.join("wal")),
            st.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mark(pg: &TempCluster, message: &str) {
    pg.psql(&format!("update status set message = '{message}'"))
        .unwrap();
}

/// Marks, closes the segment and waits until the stream archived it.
fn mark_and_stream(st: &Stream, pg: &TempCluster, repo: &Path, system_id: u64, message: &str) {
    mark(pg, message);
    let name = pg.psql("select pg_walfile_name(pg_switch_wal())").unwrap();
    wait_archived(st, repo, system_id, &name);
}

fn receivers_on(spool: &Path) -> usize {
    common::processes_mentioning(&["pg_receivewal", &s(spool)]).len()
}

fn stream_survives_restarts(major: u32) {
    let Some(bin) = bin_dir(major) else { return };
    let repo = make_shared_dir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("spool");
    let log = work.path().join("stream.log");
    let mut pg = TempCluster::init(&bin, &[]).expect("start PostgreSQL");
    let system_id = pg.system_identifier().unwrap();
    pg.psql("create table status(message text); insert into status values ('initdb')")
        .unwrap();

    // First start: the slot is created; the server has no archive_command at all.
    let st = Stream::start(&pg, repo.path(), &spool, &log, &["--create-slot"]);
    // The physical slot was created and pg_receivewal takes it (once it connected).
    let deadline = Instant::now() + STREAMED;
    loop {
        let slot = pg
            .psql("select slot_type || ' ' || active from pg_replication_slots where slot_name = 'pgb'")
            .unwrap();
        if slot == "physical true" {
            break;
        }
        assert!(
            slot == "physical false" && Instant::now() < deadline,
            "slot pgb: {slot:?}; {}",
            st.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A base backup whose WAL comes with it; the stream carries everything after.
    let o = pgb(&[
        "backup",
        "--physical",
        "--wal",
        "included",
        "--repo",
        &s(repo.path()),
        "--db",
        &pg.url(),
        "--pg-bin-dir",
        &s(&bin),
        "--json",
    ]);
    assert!(o.status.success(), "backup --physical: {}", stderr(&o));
    mark_and_stream(&st, &pg, repo.path(), system_id, "one");

    // The segment being received is stored as <name>.partial, and only that way.
    mark(&pg, "partial");
    let current = pg
        .psql("select pg_walfile_name(pg_current_wal_lsn())")
        .unwrap();
    wait_archived(&st, repo.path(), system_id, &format!("{current}.partial"));
    let fetched = work.path().join("fetched");
    let o = pgb(&[
        "wal",
        "fetch",
        &current,
        &s(&fetched),
        "--repo",
        &s(repo.path()),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "fetch of the partial's segment: {}",
        stderr(&o)
    );
    assert!(!fetched.exists());
    // The newest commit `pgb list` and `check --max-rpo` read is the one in the partial.
    let partial = format!("{current}.partial");
    let deadline = Instant::now() + STREAMED;
    loop {
        let o = pgb(&["list", "--windows", "--json", "--repo", &s(repo.path())]);
        assert!(o.status.success(), "list --windows: {}", stderr(&o));
        let w: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        if w[0]["newest_commit"]["segment"] == partial.as_str() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the newest commit is not read from {partial}: {w}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // SIGTERM: a clean stop (exit 0), pg_receivewal reaped; WAL written meanwhile waits in
    // the slot.
    assert_eq!(
        st.stop(),
        Some(0),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert_eq!(
        receivers_on(&spool),
        0,
        "pg_receivewal outlived pgb wal stream"
    );
    mark(&pg, "while_stopped");
    pg.switch_wal().unwrap();
    let st = Stream::start(&pg, repo.path(), &spool, &log, &[]);
    mark_and_stream(&st, &pg, repo.path(), system_id, "after_stop");

    // The server restarts under the stream: pg_receivewal reconnects by itself.
    pg.stop().unwrap();
    pg.start().unwrap();
    mark_and_stream(&st, &pg, repo.path(), system_id, "after_server_restart");

    // SIGKILL leaves pg_receivewal behind holding the slot; the next start stops it.
    let mut st = st;
    kill(st.child.id(), 9);
    st.child.wait().unwrap();
    mark(&pg, "while_killed");
    pg.switch_wal().unwrap();
    let st = Stream::start(&pg, repo.path(), &spool, &log, &[]);
    mark_and_stream(&st, &pg, repo.path(), system_id, "last");
    // One more commit that only the stored partial segment holds.
    let before = lsn(&pg.psql("select pg_current_wal_lsn()").unwrap());
    mark(&pg, "in_partial");
    let current = pg
        .psql("select pg_walfile_name(pg_current_wal_lsn())")
        .unwrap();
    let deadline = Instant::now() + STREAMED;
    loop {
        let o = pgb(&["list", "--windows", "--json", "--repo", &s(repo.path())]);
        let w: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        let c = &w[0]["newest_commit"];
        if c["lsn"].as_str().is_some_and(|l| lsn(l) >= before) {
            assert_eq!(c["segment"], format!("{current}.partial").as_str(), "{w}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the partial never held the last commit: {w}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(st.stop(), Some(0));
    assert_eq!(receivers_on(&spool), 0);

    let o = pgb(&["wal", "verify", "--repo", &s(repo.path())]);
    assert!(
        o.status.success(),
        "wal verify: {}{}",
        stdout(&o),
        stderr(&o)
    );

    // A restore to the end of the streamed WAL stops at the last complete segment: the last
    // marker switched out; with the partial fetched by its name into pg_wal, the one after.
    for (partial, expected) in [(false, "last"), (true, "in_partial")] {
        let dir = tempfile::Builder::new()
            .prefix("pgb-stream-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        let o = pgb(&[
            "restore",
            "latest",
            "--repo",
            &s(repo.path()),
            "--pgdata",
            &s(&data),
        ]);
        assert!(o.status.success(), "restore: {}", stderr(&o));
        if partial {
            let o = pgb(&[
                "wal",
                "fetch",
                &format!("{current}.partial"),
                &s(&data.join("pg_wal").join(&current)),
                "--repo",
                &s(repo.path()),
            ]);
            assert!(o.status.success(), "fetch of the partial: {}", stderr(&o));
        }
        let restored = TempCluster::adopt(&bin, &data, &[]).expect("start the restored server");
        restored.wait_until_promoted(RECOVERY).unwrap();
        assert_eq!(
            restored.psql("select message from status").unwrap(),
            expected
        );
    }
    eprintln!(
        "wal stream on PostgreSQL {major}: {PGB} restored 'last', and 'in_partial' with the partial"
    );
}

/// An LSN as PostgreSQL prints it (`0/3000060`), as a number.
fn lsn(text: &str) -> u64 {
    let (hi, lo) = text
        .split_once('/')
        .unwrap_or_else(|| panic!("LSN {text:?}"));
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

#[test]
fn stream_survives_restarts_on_postgres_15() {
    stream_survives_restarts(15);
}

#[test]
fn stream_survives_restarts_on_postgres_17() {
    stream_survives_restarts(17);
}

/// `pgb wal stream --preflight` with `extra` flags against `url`.
fn preflight(pg: &TempCluster, url: &str, spool: &Path, extra: &[&str]) -> std::process::Output {
    let repo = tempfile::tempdir().unwrap();
    pgb(&[
        &[
            "wal",
            "stream",
            "--preflight",
            "--db",
            url,
            "--repo",
            &s(repo.path()),
        ][..],
        &["--spool", &s(spool), "--pg-bin-dir", &s(pg.bin_dir())],
        extra,
    ]
    .concat())
}

fn slots(pg: &TempCluster) -> String {
    pg.psql("select string_agg(slot_name, ',' order by slot_name) from pg_replication_slots")
        .unwrap()
}

#[test]
fn preflight_refuses_a_role_without_replication_and_a_slot_of_another_tool() {
    let Some(bin) = bin_dir(15) else { return };
    let pg = TempCluster::init(&bin, &[("wal_level", "logical")]).expect("start PostgreSQL");
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("spool");
    pg.psql("create role plain login").unwrap();
    pg.psql("select pg_create_logical_replication_slot('other', 'test_decoding')")
        .unwrap();
    pg.psql("select pg_create_physical_replication_slot('busy', true)")
        .unwrap();
    let before = slots(&pg);

    // A role without REPLICATION: exit 4, naming the fix.
    let url = format!("postgres://plain@127.0.0.1:{}/postgres", pg.port());
    let o = preflight(&pg, &url, &spool, &["--create-slot"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        one_line_error(&o).contains("neither REPLICATION nor SUPERUSER"),
        "{}",
        stderr(&o)
    );

    // A missing slot without --create-slot: exit 4.
    let o = preflight(&pg, &pg.url(), &spool, &["--slot", "missing"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        one_line_error(&o).contains("--create-slot"),
        "{}",
        stderr(&o)
    );

    // A logical slot of the same name: another tool's, exit 6.
    let o = preflight(
        &pg,
        &pg.url(),
        &spool,
        &["--slot", "other", "--create-slot"],
    );
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        one_line_error(&o).contains("logical slot"),
        "{}",
        stderr(&o)
    );

    // A physical slot another receiver holds: exit 6, also when streaming for real.
    let other = work.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let mut receiver = Command::new(bin.join("pg_receivewal"))
        .args(["-D", &s(&other), "--slot", "busy", "-d", &pg.url()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + STREAMED;
    while pg
        .psql("select active from pg_replication_slots where slot_name = 'busy'")
        .unwrap()
        != "t"
    {
        assert!(
            Instant::now() < deadline,
            "pg_receivewal did not take the slot"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = preflight(&pg, &pg.url(), &spool, &["--slot", "busy"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        one_line_error(&o).contains("in use by another client"),
        "{}",
        stderr(&o)
    );
    let repo = tempfile::tempdir().unwrap();
    let o = pgb(&[
        "wal",
        "stream",
        "--db",
        &pg.url(),
        "--repo",
        &s(repo.path()),
        "--slot",
        "busy",
        "--spool",
        &s(&spool),
        "--pg-bin-dir",
        &s(&bin),
    ]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    receiver.kill().unwrap();
    receiver.wait().unwrap();
    assert_eq!(slots(&pg), before, "a refused preflight created a slot");
    assert!(
        !repo.path().join("wal").exists(),
        "a refused stream wrote WAL"
    );

    // A usable slot passes, with the warning about max_slot_wal_keep_size = -1 (the default).
    let o = preflight(
        &pg,
        &pg.url(),
        &spool,
        &["--slot", "pgb", "--create-slot", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("max_slot_wal_keep_size = -1"),
        "{}",
        stderr(&o)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["slot_exists"], false, "{v}");
    assert_eq!(
        v["system_identifier"],
        pg.system_identifier().unwrap(),
        "{v}"
    );
    assert_eq!(slots(&pg), before, "--preflight created the slot");
}

/// A standby streamed (its own slot, cascading) and then promoted: `pg_receivewal` follows
/// timeline 2, whose history file is archived and whose segments go under `00000002`; the
/// last, incomplete segment of timeline 1 is stored as its `.partial`; no gap; and a restore of
/// a base backup taken on timeline 1 follows timeline 2 to its last marker.
fn promoted_standby(major: u32) {
    let Some(bin) = bin_dir(major) else { return };
    let repo = make_shared_dir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("spool");
    let log = work.path().join("stream.log");
    let primary = TempCluster::init(&bin, &[]).expect("start PostgreSQL");
    let system_id = primary.system_identifier().unwrap();
    primary
        .psql("create table status(message text); insert into status values ('initdb')")
        .unwrap();
    let standby_dir = tempfile::Builder::new()
        .prefix("pgb-standby-")
        .tempdir()
        .unwrap();
    let data = standby_dir.path().join("data");
    let o = Command::new(bin.join("pg_basebackup"))
        .args([
            "-D",
            &s(&data),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-d",
            &primary.url(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "pg_basebackup: {}", stderr(&o));
    // primary_conninfo written here: pg_basebackup -R of a newer major can write options
    // (sslnegotiation) that an older libpq of the server's walreceiver refuses.
    let conninfo = format!("host=127.0.0.1 port={} user=postgres", primary.port());
    let standby = TempCluster::adopt(&bin, &data, &[("primary_conninfo", &conninfo)])
        .expect("start the standby");
    standby.wait_until_ready(RECOVERY).unwrap();
    assert_eq!(standby.psql("select pg_is_in_recovery()").unwrap(), "t");

    let st = Stream::start(&standby, repo.path(), &spool, &log, &["--create-slot"]);
    let o = pgb(&[
        "backup",
        "--physical",
        "--wal",
        "included",
        "--repo",
        &s(repo.path()),
        "--db",
        &standby.url(),
        "--pg-bin-dir",
        &s(&bin),
    ]);
    assert!(
        o.status.success(),
        "backup --physical of the standby: {}",
        stderr(&o)
    );
    mark(&primary, "timeline_1");
    let name = primary
        .psql("select pg_walfile_name(pg_switch_wal())")
        .unwrap();
    // WAL after the switch (a cascading standby passes on a closed segment once WAL after it
    // arrived): the segment timeline 1 ends in, replayed by the standby.
    mark(&primary, "timeline_1_tail");
    let last_of_1 = primary
        .psql("select pg_walfile_name(pg_current_wal_lsn())")
        .unwrap();
    wait_archived(&st, repo.path(), system_id, &name);
    let deadline = Instant::now() + RECOVERY;
    while standby.psql("select message from status").unwrap() != "timeline_1_tail" {
        assert!(
            Instant::now() < deadline,
            "the standby did not replay the tail"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut primary = primary;
    primary.stop().unwrap();

    // Promote the standby; the stream goes on with timeline 2.
    assert_eq!(standby.psql("select pg_promote()").unwrap(), "t");
    standby.wait_until_promoted(RECOVERY).unwrap();
    mark_and_stream(&st, &standby, repo.path(), system_id, "timeline_2");
    wait_archived(&st, repo.path(), system_id, "00000002.history");
    let old_partial = format!("{last_of_1}.partial");
    wait_archived(&st, repo.path(), system_id, &old_partial);
    assert_eq!(
        st.stop(),
        Some(0),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );

    let o = pgb(&["wal", "verify", "--repo", &s(repo.path()), "--json"]);
    assert!(
        o.status.success(),
        "wal verify: {}{}",
        stdout(&o),
        stderr(&o)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let timelines: Vec<u64> = v["timelines"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .filter_map(|t| t["timeline"].as_u64())
        .collect();
    assert_eq!(timelines, [1, 2], "{v}");

    let dir = tempfile::Builder::new()
        .prefix("pgb-stream-")
        .tempdir()
        .unwrap();
    let data = dir.path().join("data");
    let o = pgb(&[
        "restore",
        "latest",
        "--repo",
        &s(repo.path()),
        "--pgdata",
        &s(&data),
    ]);
    assert!(o.status.success(), "restore: {}", stderr(&o));
    let restored = TempCluster::adopt(&bin, &data, &[]).expect("start the restored server");
    restored.wait_until_promoted(RECOVERY).unwrap();
    assert_eq!(
        restored.psql("select message from status").unwrap(),
        "timeline_2"
    );
}

#[test]
fn a_promoted_standby_is_followed_onto_its_new_timeline_on_postgres_15() {
    promoted_standby(15);
}

#[test]
fn a_promoted_standby_is_followed_onto_its_new_timeline_on_postgres_17() {
    promoted_standby(17);
}
