//! The daemon under abuse (issue 20, item 5): while 500 half-sent HTTP requests are held open
//! against its listener, over and over (a slowloris), its scheduled backup still runs and
//! commits, `/healthz` on a fresh connection is still answered, its log stays small (the
//! connection-limit warning is throttled, no accept loop floods it), and SIGTERM stops it
//! cleanly. The limits are pgb-scheduler's defaults: a 5 s header read timeout, 64
//! connections (the oldest closed to make room), back-off on failed accepts.

use crate::common;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const HALF_OPEN: usize = 500;

fn http_status(addr: &str, path: &str) -> Option<u16> {
    use std::io::Read as _;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Holds `HALF_OPEN` half-sent requests open, replacing the whole batch every 2 s, until
/// `stop`; counts the connections made.
fn slowloris(addr: std::net::SocketAddr, stop: Arc<AtomicBool>, made: Arc<AtomicUsize>) {
    while !stop.load(Ordering::Relaxed) {
        let mut batch = Vec::with_capacity(HALF_OPEN);
        for _ in 0..HALF_OPEN {
            if let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                let _ = s.write_all(b"GET /heal");
                batch.push(s);
                made.fetch_add(1, Ordering::Relaxed);
            }
        }
        std::thread::sleep(Duration::from_secs(2));
        drop(batch);
    }
}

#[test]
fn the_daemon_runs_its_scheduled_backup_while_500_half_sent_requests_are_held_open() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("daemon_abuse", 10, common::RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let config = dir.path().join("pgb.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.nightly]\ndatabase = \"{}\"\nrepository = \"{}\"\nschedule = \"* * * * *\"\n",
            pg.url(&db.name),
            repo.display()
        ),
    )
    .unwrap();
    let port = 20000 + (common::random_u32() % 20000);
    let addr = format!("127.0.0.1:{port}");
    let log = dir.path().join("daemon.log");
    let mut daemon = common::KillOnDrop(
        common::pgb_cmd(&[
            "daemon",
            "--listen",
            &addr,
            "--config",
            config.to_str().unwrap(),
        ])
        .env("PGB_PG_BIN_DIR", &pg.bin)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap(),
    );
    let start = std::time::Instant::now();
    while http_status(&addr, "/healthz").is_none() {
        assert!(start.elapsed().as_secs() < 30, "the daemon listens");
        std::thread::sleep(Duration::from_millis(100));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicUsize::new(0));
    let abuser = {
        let (stop, made) = (Arc::clone(&stop), Arc::clone(&made));
        let addr = addr.parse().unwrap();
        std::thread::spawn(move || slowloris(addr, stop, made))
    };
    // The scheduled run (every minute) commits while the listener is flooded.
    while !repo.is_dir() || common::ids(&repo).is_empty() {
        assert!(
            start.elapsed().as_secs() < 90,
            "a scheduled backup within a minute, despite the half-sent requests"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // Still flooded: a fresh health check is answered (503 or 200, but answered).
    let status = http_status(&addr, "/healthz");
    let opened = made.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    abuser.join().unwrap();
    assert!(
        matches!(status, Some(200 | 503)),
        "/healthz answered under the flood: {status:?}"
    );
    assert!(
        opened >= HALF_OPEN,
        "the flood opened {opened} connections, at least {HALF_OPEN}"
    );
    let o = common::pgb(&["verify", "latest", "--repo", repo.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "the backup made under the flood verifies: {o:?}"
    );

    common::kill(daemon.0.id(), libc::SIGTERM);
    let exit = daemon.0.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "a clean stop exits 0");
    let text = std::fs::read_to_string(&log).unwrap();
    eprintln!(
        "daemon_abuse: {opened} half-sent connections; daemon log ({} bytes):\n{}",
        text.len(),
        text.lines().take(40).collect::<Vec<_>>().join("\n")
    );
    assert!(
        text.len() < 256 * 1024,
        "the log stays small under the flood: {} bytes",
        text.len()
    );
    assert!(text.contains("backup committed"), "{text}");
}

/// `--listen 127.0.0.1:0` lets the system choose the port: the start line names the port
/// actually bound (not `:0`), and `/healthz` answers there.
#[test]
fn the_daemon_start_line_names_the_port_it_bound() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pgb.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.yearly]\ndatabase = \"postgres://127.0.0.1:1/none\"\nrepository = \"{}\"\n\
             schedule = \"0 0 1 1 *\"\n",
            dir.path().join("repo").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("daemon.log");
    let mut daemon = common::KillOnDrop(
        common::pgb_cmd(&[
            "daemon",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap(),
    );
    let start = std::time::Instant::now();
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if let Some(l) = text.lines().find(|l| l.contains("daemon started")) {
            break l.to_owned();
        }
        assert!(start.elapsed().as_secs() < 30, "a start line: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))
        .unwrap_or_else(|| panic!("listen= in {line}"));
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0, "the bound port, not the one given: {line}");
    // Answered there (503: the job has no backup yet).
    let status = http_status(addr, "/healthz");
    assert!(matches!(status, Some(200 | 503)), "{status:?}: {line}");
    common::kill(daemon.0.id(), libc::SIGTERM);
    assert_eq!(daemon.0.wait().unwrap().code(), Some(0));
}
