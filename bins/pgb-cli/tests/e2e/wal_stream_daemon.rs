//! `pgb daemon` supervises the WAL stream of a job with `wal = "stream"` (PostgreSQL 15,
//! `pgb_testkit::TempCluster`, no `archive_command`): a closed segment reaches the repository,
//! the job's base backup (`pgb run`) carries its own WAL, a killed `pg_receivewal` is
//! restarted (logged) and later segments arrive, and SIGTERM stops
//! the daemon with exit 0 and no `pg_receivewal` left; `/metrics` shows the stream up and its
//! restarts.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::kill;
use pgb_testkit::{TempCluster, make_shared_dir};

/// How long a segment, or a restart after a failure, may take.
const STREAMED: Duration = Duration::from_secs(90);

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A running `pgb daemon`; its log goes to a file.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log says `needle` `times` times.
    fn wait_for_log(&self, needle: &str, times: usize) {
        let deadline = Instant::now() + STREAMED;
        while self.log().matches(needle).count() < times {
            assert!(
                Instant::now() < deadline,
                "the daemon did not say {needle:?} {times} time(s):\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Closes the current segment and waits until it is in the repository.
    fn switch_and_wait(&self, pg: &TempCluster, repo: &Path, system_id: u64, message: &str) {
        pg.psql(&format!("update status set message = '{message}'"))
            .unwrap();
        let name = pg.psql("select pg_walfile_name(pg_switch_wal())").unwrap();
        let path = repo.join(format!("wal/{system_id}/{}/{name}", &name[..8]));
        let deadline = Instant::now() + STREAMED;
        while !path.exists() {
            assert!(
                Instant::now() < deadline,
                "{name} did not reach the repository; archived: {:?}; daemon:\n{}",
                common::files(&repo.join("wal")),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The body of `GET /metrics` on `addr`.
fn metrics(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the daemon");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned()
}

/// The value of `name{pgb_job="cluster"}` in a Prometheus text.
fn sample(text: &str, name: &str) -> Option<u64> {
    let series = format!("{name}{{pgb_job=\"cluster\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_daemon_streams_restarts_and_stops_a_jobs_wal_stream_on_postgres_15() {
    let Some(bin) = common::pitr::bin_dir(15) else {
        return;
    };
    let repo = make_shared_dir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let pg = TempCluster::init(&bin, &[]).expect("start PostgreSQL");
    let system_id = pg.system_identifier().unwrap();
    pg.psql("create table status(message text); insert into status values ('initdb')")
        .unwrap();
    let config = work.path().join("pgb.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.cluster]\ndatabase = \"{}\"\nrepository = \"{}\"\nformat = \"physical\"\nwal = \"stream\"\n",
            pg.url(),
            s(repo.path()),
        ),
    )
    .unwrap();
    let check = common::pgb(&["config", "check", "--config", &s(&config)]);
    assert!(check.status.success(), "{}", common::stderr(&check));

    let log = work.path().join("daemon.log");
    let addr = format!("127.0.0.1:{}", 20000 + common::random_u32() % 20000);
    let child = common::pgb_cmd(&["daemon", "--listen", &addr, "--config", &s(&config)])
        .env("PGB_PG_BIN_DIR", &bin)
        .env("PGB_STATE_DIR", &state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("run pgb daemon");
    let mut d = Daemon { child, log };
    d.wait_for_log("streaming WAL of cluster", 1);
    // The slot was created by the daemon's stream; a closed segment is archived.
    d.switch_and_wait(&pg, repo.path(), system_id, "one");
    let m = metrics(&addr);
    assert_eq!(sample(&m, "pgb_wal_stream_up"), Some(1), "{m}");
    assert!(sample(&m, "pgb_wal_stream_restarts_total").is_some(), "{m}");

    // The job's base backup carries its own WAL: the server does not archive.
    let run = common::pgb_cmd(&["run", "cluster", "--config", &s(&config), "--json"])
        .env("PGB_PG_BIN_DIR", &bin)
        .output()
        .unwrap();
    assert!(run.status.success(), "pgb run: {}", common::stderr(&run));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert!(report["backup"]["id"].is_string(), "{report}");

    // pg_receivewal dies: the daemon logs the failure and starts the stream again.
    let spool = std::fs::read_dir(state.join("wal-stream"))
        .unwrap()
        .next()
        .expect("a spool under PGB_STATE_DIR/wal-stream")
        .unwrap()
        .path();
    let pid: u32 = std::fs::read_to_string(spool.join("pgb-receivewal.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kill(pid, 9);
    d.wait_for_log("wal stream failed", 1);
    d.wait_for_log("streaming WAL of cluster", 2);
    d.switch_and_wait(&pg, repo.path(), system_id, "two");
    let m = metrics(&addr);
    assert_eq!(sample(&m, "pgb_wal_stream_up"), Some(1), "{m}");
    let restarts = sample(&m, "pgb_wal_stream_restarts_total").unwrap_or(0);
    assert!(restarts >= 1, "{m}");

    // SIGTERM: the stream stops cleanly, then the daemon, exit 0, no receiver left.
    kill(d.child.id(), 15);
    let status = d.child.wait().unwrap();
    let out = d.log();
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("wal stream stopped"), "{out}");
    assert!(
        common::processes_mentioning(&["pg_receivewal", &s(&spool)]).is_empty(),
        "a pg_receivewal is left:\n{out}"
    );
}
