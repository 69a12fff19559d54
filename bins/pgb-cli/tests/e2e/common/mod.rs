//! Test support shared by the `pgb` binary's integration tests: the PostgreSQL fixture and its
//! sample databases, running `pgb` with a clean environment, reading its output and the
//! repository it wrote, pg_dump stand-ins, and process and signal helpers.
//!
//! Every module of the test binary uses a subset of these helpers; `main.rs` declares this one
//! `pub`, so items no module uses do not trip the `dead_code` lint.

pub mod pitr;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `pgb` binary under test.
pub const PGB: &str = env!("CARGO_BIN_EXE_pgb");

/// Environment variables that change what `pgb` (or the pg_dump it runs) does; removed from every
/// `pgb` a test starts so that the developer's shell cannot leak into a test.
pub const PGB_ENV_VARS: [&str; 11] = [
    "DATABASE_URL",
    "PGB_REPO",
    "PGB_PASSPHRASE",
    "PGB_AUTH_KEY",
    "PGB_IDENTITY_FILE",
    "PGB_PG_BIN_DIR",
    "PGB_TEST_FAILPOINT",
    "PGB_PROGRESS",
    "PGB_PROGRESS_INTERVAL",
    "PGPASSWORD",
    "RUST_LOG",
];

/// The value of environment variable `name`, if it is set and not empty.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Four random bytes from `/dev/urandom`.
pub fn random_u32() -> u32 {
    let mut rnd = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut rnd))
        .expect("urandom");
    u32::from_le_bytes(rnd)
}

/// `prefix`, an underscore and eight random hex digits: a fresh database or role name, a
/// canary, a repository prefix.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{:08x}", random_u32())
}

/// The test PostgreSQL server (`PGB_TEST_PG_URL`, `PGB_TEST_PG_BIN`).
#[derive(Debug)]
pub struct Pg {
    /// The server's URL without a database (`postgres://user@host:port`).
    pub base: String,
    /// The directory of the server's client tools (psql, pg_dump, pg_restore).
    pub bin: PathBuf,
}

/// The test server, or `None` (after a loud skip notice) when it is not configured.
pub fn pg() -> Option<Pg> {
    match (env("PGB_TEST_PG_URL"), env("PGB_TEST_PG_BIN")) {
        (Some(url), Some(bin)) => Some(Pg {
            base: url.trim_end_matches("/postgres").to_owned(),
            bin: bin.into(),
        }),
        _ => pgb_testkit::require_or_skip(
            "PostgreSQL (PGB_TEST_PG_URL, PGB_TEST_PG_BIN)",
            "run scripts/test.sh",
        ),
    }
}

/// How [`Pg::sample_db`] fills the `name` column of row `g`.
#[derive(Clone, Copy, Debug)]
pub enum RowText {
    /// `item <g> ✓`: short, very compressible, not ASCII.
    Plain,
    /// `item <g> <md5 of g>`: the same on every run, hard to compress.
    Md5,
    /// `item <g> <md5 of random()>`: different on every run, hard to compress.
    Random,
}

impl RowText {
    fn sql(self) -> &'static str {
        match self {
            Self::Plain => "'item ' || g || ' ✓'",
            Self::Md5 => "'item ' || g || ' ' || md5(g::text)",
            Self::Random => "'item ' || g || ' ' || md5(random()::text)",
        }
    }
}

impl Pg {
    /// The URL of database `db` on the test server.
    pub fn url(&self, db: &str) -> String {
        format!("{}/{db}", self.base)
    }

    /// `host:port` of the test server.
    pub fn hostport(&self) -> &str {
        self.base.rsplit('@').next().unwrap_or_default()
    }

    /// Runs `sql` in `db` with psql, asserting success; its unaligned, trimmed output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url(db),
                "-c",
                sql,
            ])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Whether database `db` exists.
    pub fn db_exists(&self, db: &str) -> bool {
        self.psql(
            "postgres",
            &format!("select count(*) from pg_database where datname = '{db}'"),
        ) == "1"
    }

    /// A fresh database named `<prefix>_<random>`: a table `items (id, name, doc)` of `rows`
    /// rows whose names are filled as `text` says, and a sequence `counter` at 42. Dropped when
    /// the guard is.
    pub fn sample_db(&self, prefix: &str, rows: u32, text: RowText) -> DbGuard<'_> {
        let name = unique(prefix);
        self.psql("postgres", &format!("create database {name}"));
        let guard = DbGuard { pg: self, name };
        self.psql(
            &guard.name,
            &format!(
                "create table items (id int primary key, name text, doc jsonb);
                 insert into items select g, {}, jsonb_build_object('g', g) from generate_series(1, {rows}) g;
                 create sequence counter; select setval('counter', 42);",
                text.sql()
            ),
        );
        guard
    }

    /// The content of a [`sample_db`](Self::sample_db): row count, a hash of every row of
    /// `items`, the `counter` sequence.
    pub fn fingerprint(&self, db: &str) -> String {
        self.psql(
            db,
            "select count(*) || ':' || md5(string_agg(i::text, '|' order by id)) || ':' || (select last_value from counter) from items i",
        )
    }

    /// The content of `table` (which has an `id` column) in `db`: row count and a hash of every
    /// row.
    pub fn table_fingerprint(&self, db: &str, table: &str) -> String {
        self.psql(
            db,
            &format!(
                "select count(*) || ':' || md5(string_agg(t::text, '|' order by id)) from {table} t"
            ),
        )
    }
}

/// A database that is dropped (quietly) when the guard is.
#[derive(Debug)]
pub struct DbGuard<'a> {
    /// The server holding it.
    pub pg: &'a Pg,
    /// The database's name.
    pub name: String,
}

impl Drop for DbGuard<'_> {
    fn drop(&mut self) {
        drop_db_quietly(self.pg, &self.name);
    }
}

/// Drops database `name` if it exists, asserting that psql succeeded.
pub fn drop_db(pg: &Pg, name: &str) {
    pg.psql(
        "postgres",
        &format!("drop database if exists {name} with (force)"),
    );
}

/// Drops database `name` if it exists, ignoring any failure (for clean-up).
pub fn drop_db_quietly(pg: &Pg, name: &str) {
    let _ = Command::new(pg.bin.join("psql"))
        .args([
            "-X",
            "-q",
            "-d",
            &pg.url("postgres"),
            "-c",
            &format!("drop database if exists {name} with (force)"),
        ])
        .output();
}

/// Removes every variable of [`PGB_ENV_VARS`] from `cmd`'s environment.
pub fn without_pgb_env(cmd: &mut Command) -> &mut Command {
    for var in PGB_ENV_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// A `pgb` command with `args` and a clean environment (no inherited pgb settings).
pub fn pgb_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(PGB);
    cmd.args(args);
    without_pgb_env(&mut cmd);
    cmd
}

/// Runs `pgb` with `args` and a clean environment.
pub fn pgb(args: &[&str]) -> Output {
    pgb_env(args, &[])
}

/// Runs `pgb` with `args` and a clean environment plus `envs`.
pub fn pgb_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    pgb_cmd(args)
        .envs(envs.iter().copied())
        .output()
        .expect("run pgb")
}

/// A run's stderr, lossily decoded.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A run's stdout, lossily decoded.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The single `pgb: error:` line of a failed run (asserting there is exactly one, and no
/// panic or backtrace).
pub fn one_line_error(o: &Output) -> String {
    let err = stderr(o);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("pgb: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "exactly one error line in {err:?}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "no panic: {err}"
    );
    lines[0].to_owned()
}

/// The first `pgb: error:` line of a failed run (asserting there is one, and no panic).
pub fn first_error_line(o: &Output) -> String {
    let err = stderr(o);
    let first = err
        .lines()
        .find(|l| l.starts_with("pgb: error:"))
        .unwrap_or_else(|| panic!("no error line in {err:?}"));
    assert!(!err.contains("panicked"), "no panic: {err}");
    first.to_owned()
}

/// The arguments of `pgb backup` of database `db` into `repo`, then `extra`.
pub fn backup_args(pg: &Pg, repo: &Path, db: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "backup".into(),
        "--repo".into(),
        repo.to_str().unwrap().into(),
        "--db".into(),
        pg.url(db),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// Runs `pgb backup` of database `db` into `repo` with arguments `extra`.
pub fn backup(pg: &Pg, repo: &Path, db: &str, extra: &[&str]) -> Output {
    backup_env(pg, repo, db, extra, &[])
}

/// Runs `pgb backup` of database `db` into `repo` with arguments `extra` and environment `envs`.
pub fn backup_env(pg: &Pg, repo: &Path, db: &str, extra: &[&str], envs: &[(&str, &str)]) -> Output {
    let args = backup_args(pg, repo, db, extra);
    pgb_env(&args.iter().map(String::as_str).collect::<Vec<_>>(), envs)
}

/// Every file under `dir` (relative paths, sorted), staging area included.
pub fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(
                    e.path()
                        .strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

/// `pgb list --json` of `repo` (asserting success).
pub fn list_json(repo: &Path) -> Vec<serde_json::Value> {
    let out = pgb(&["list", "--repo", repo.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("list --json is JSON")
}

/// The ids of the backups in `repo`, oldest first.
pub fn ids(repo: &Path) -> Vec<String> {
    list_json(repo)
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Writes an executable script (mode 755) to `path`, creating its directory.
pub fn write_script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// A pg_dump shim directory `dir/name` whose pg_dump answers `--version` like a real 15 and
/// otherwise runs `body` (a bash fragment).
pub fn shim(dir: &Path, name: &str, body: &str) -> PathBuf {
    let bin = dir.join(name);
    write_script(
        &bin.join("pg_dump"),
        &format!(
            "#!/bin/bash\nif [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) 15.99'; exit 0; fi\n{body}\n"
        ),
    );
    bin
}

/// A pg_dump shim directory (`dir/slow-bin`) that runs the real pg_dump through a slow pipe
/// (`delay` seconds per 8 KiB), with `set -o pipefail` so the real pg_dump's failure is the
/// shim's failure.
pub fn slow_pg_dump(pg: &Pg, dir: &Path, delay: f64) -> PathBuf {
    let bin = dir.join("slow-bin");
    write_script(
        &bin.join("pg_dump"),
        &format!(
            "#!/bin/bash\nset -o pipefail\nreal='{}/pg_dump'\n\
             if [ \"$1\" = --version ]; then exec \"$real\" --version; fi\n\
             \"$real\" \"$@\" | /usr/bin/python3 -c 'import sys, time\n\
             while True:\n    b = sys.stdin.buffer.read(8192)\n    if not b:\n        break\n    \
             sys.stdout.buffer.write(b); sys.stdout.buffer.flush(); time.sleep({delay})\n'\n",
            pg.bin.display()
        ),
    );
    bin
}

/// Command lines of live processes (other than this one) containing every one of `needles`,
/// cargo's excepted (zombies have none).
pub fn processes_mentioning(needles: &[&str]) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if e.file_name().to_string_lossy() == me {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if needles.iter().all(|n| cmd.contains(n)) && !cmd.contains("cargo") {
                found.push(cmd);
            }
        }
    }
    found
}

/// Sends signal `sig` to process `pid`; whether kill(2) succeeded.
pub fn send_signal(pid: u32, sig: i32) -> bool {
    let (Some(pid), Some(sig)) = (
        i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw),
        rustix::process::Signal::from_named_raw(sig),
    ) else {
        return false;
    };
    rustix::process::kill_process(pid, sig).is_ok()
}

/// Sends signal `sig` to process `pid`, asserting that kill(2) succeeded.
pub fn kill(pid: u32, sig: i32) {
    assert!(send_signal(pid, sig), "kill({pid}, {sig})");
}

/// A one-shot HTTP receiver on 127.0.0.1: its URL, and the bodies of the requests it got.
pub fn receiver() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/hook/secret-token",
        listener.local_addr().unwrap()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let (mut line, mut len) = (String::new(), 0usize);
            let mut request = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                request.push_str(&line);
                line.clear();
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send(format!("{request}\r\n{}", String::from_utf8_lossy(&body)));
        }
    });
    (url, rx)
}

/// One request a [`receiver`] got, as a healthchecks ping: its path, its `rid`, its body.
#[derive(Debug, Clone)]
pub struct Ping {
    /// The request path, without the query (`/hook/secret-token/start`).
    pub path: String,
    /// The `rid` query parameter: the run id pairing a run's pings.
    pub rid: String,
    /// The request body.
    pub body: String,
}

/// The next `N` requests `got` receives (10 s each at most), as pings, in order.
pub fn pings<const N: usize>(got: &std::sync::mpsc::Receiver<String>) -> [Ping; N] {
    std::array::from_fn(|i| {
        let request = got
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("ping {} of {N} never came", i + 1));
        let target = request
            .lines()
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or_default()
            .to_owned();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let rid = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("rid="))
            .unwrap_or_default()
            .to_owned();
        let body = request
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ping {
            path: path.to_owned(),
            rid,
            body,
        }
    })
}

/// A local repository both this test (root, on CI) and a `TempCluster`'s `archive_command`
/// (`pgb wal push`, as the OS user `postgres`) write into: the directory and the store's
/// staging area belong to `postgres` with mode 0777, so neither locks the other out (in
/// production both run as one user).
pub fn shared_repository() -> tempfile::TempDir {
    let repo = pgb_testkit::make_shared_dir().expect("shared directory");
    for sub in [".pgb-staging", "wal", "backups", "locks"] {
        let dir = repo.path().join(sub);
        std::fs::create_dir(&dir).expect("create");
        pgb_testkit::share_with_postgres(&dir).expect("share");
    }
    repo
}

/// A child killed when the test ends, also when it fails before stopping it.
#[derive(Debug)]
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The status code and body of `GET path` on `addr`.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the daemon");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}
