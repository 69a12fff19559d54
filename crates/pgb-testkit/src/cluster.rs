//! [`TempCluster`]: a throwaway PostgreSQL server of its own, for tests that need more than a
//! database on the shared test server: WAL archiving, base backups, point-in-time recovery,
//! promotion.
//!
//! The server listens on 127.0.0.1 on a free port, with its Unix socket, its log and (for
//! [`TempCluster::init`]) its data directory in a temporary directory removed on drop. As root
//! (CI, these machines) `initdb`, `pg_ctl` and `postgres` refuse to run, so they run as the OS
//! user `postgres` (`runuser -u postgres --`, as `scripts/pg.sh` does; the user exists once
//! `pg.sh` ran) and every directory the server writes is owned by `postgres`. `psql` runs as
//! the caller.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Whether this process runs as root, so the server must run as the OS user `postgres`.
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The OS user the server runs as when the caller is root.
const PG_OS_USER: &str = "postgres";

fn fail(what: impl Into<String>) -> io::Error {
    io::Error::other(what.into())
}

/// `chown -R postgres:postgres path` when root; nothing otherwise.
fn give_to_postgres(path: &Path) -> io::Result<()> {
    if !is_root() {
        return Ok(());
    }
    let out = Command::new("chown")
        .arg("-R")
        .arg(format!("{PG_OS_USER}:{PG_OS_USER}"))
        .arg(path)
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(format!(
            "chown -R {PG_OS_USER} {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A temporary directory the OS user `postgres` can write (owned by it when the caller is
/// root, mode 0777 either way), for what a server's `archive_command` or `restore_command`
/// writes: a WAL archive directory, a pgb repository. The caller (root) can still read and
/// write it. Removed on drop.
///
/// Files or directories the test itself creates in it later belong to the test's user; call
/// [`share_with_postgres`] on them before the server needs to write there.
pub fn make_shared_dir() -> io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("pgb-shared-").tempdir()?;
    share_with_postgres(dir.path())?;
    Ok(dir)
}

/// Makes `path` (recursively) writable by the OS user `postgres`: `chown -R postgres` when
/// root, and mode 0777 on `path` itself.
pub fn share_with_postgres(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    give_to_postgres(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))
}

/// A free TCP port on 127.0.0.1 (free when asked; [`TempCluster::init`] retries with another
/// when the server then fails to bind it).
fn free_port() -> io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A `postgresql.conf` line setting `key` to `value`, quoted (single quotes doubled).
fn conf_line(key: &str, value: &str) -> String {
    format!("{key} = '{}'\n", value.replace('\'', "''"))
}

fn append(path: &Path, text: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(text.as_bytes())
}

/// A throwaway PostgreSQL server: see this module's documentation for where it runs and as whom.
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// let bin = std::env::var("PGB_TEST_PG15_BIN").unwrap();
/// let archive = pgb_testkit::make_shared_dir()?;
/// let cmd = format!("cp %p {}/%f", archive.path().display());
/// let pg = pgb_testkit::TempCluster::init(
///     bin.as_ref(),
///     &[("archive_mode", "on"), ("archive_command", &cmd)],
/// )?;
/// pg.psql("create table t(i int); insert into t values (1)")?;
/// pg.switch_wal()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TempCluster {
    bin_dir: PathBuf,
    /// Holds the socket directory, the log and, for `init`, the data directory.
    dir: tempfile::TempDir,
    data_dir: PathBuf,
    port: u16,
    log_path: PathBuf,
    /// Whether we started the server and have not seen it stop.
    started: bool,
}

impl TempCluster {
    /// A new cluster from `bin_dir` (the directory of `initdb`, `pg_ctl`, `postgres`, `psql`),
    /// started and accepting connections.
    ///
    /// `initdb -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8`, then `postgresql.conf`
    /// gets `listen_addresses = '127.0.0.1'`, a free `port`, `unix_socket_directories` in the
    /// temporary directory, `wal_level = replica`, `max_wal_senders = 4`, `fsync = off`, and
    /// then `settings` in order (later lines win), each value quoted for you: pass
    /// `("archive_command", "cp %p /dir/%f")`, not `"'cp %p /dir/%f'"`.
    pub fn init(bin_dir: &Path, settings: &[(&str, &str)]) -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("pgb-pg-").tempdir()?;
        let data_dir = dir.path().join("data");
        std::fs::create_dir(dir.path().join("sock"))?;
        share_with_postgres(dir.path())?;
        let mut cluster = Self::new(bin_dir, dir, data_dir);
        let out = cluster.run_as_pg(
            Command::new(bin_dir.join("initdb"))
                .arg("-D")
                .arg(&cluster.data_dir)
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
                .arg("--locale=C.UTF-8"),
        )?;
        if !out.status.success() {
            return Err(fail(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let mut conf = String::new();
        conf.push_str("\n# pgb_testkit::TempCluster\n");
        conf.push_str(&conf_line("listen_addresses", "127.0.0.1"));
        conf.push_str(&conf_line(
            "unix_socket_directories",
            &cluster.socket_dir().to_string_lossy(),
        ));
        conf.push_str(&conf_line("wal_level", "replica"));
        conf.push_str(&conf_line("max_wal_senders", "4"));
        conf.push_str(&conf_line("fsync", "off"));
        for (k, v) in settings {
            conf.push_str(&conf_line(k, v));
        }
        append(&cluster.data_dir.join("postgresql.conf"), &conf)?;
        cluster.start_on_free_port(Path::new("postgresql.conf"), true)?;
        Ok(cluster)
    }

    /// Starts a server on a data directory someone else wrote (a restored base backup, with
    /// its `recovery.signal` and recovery settings), without waiting for it to accept
    /// connections: a server recovering to a target may refuse them until it promotes, and
    /// one whose recovery fails stops on its own. Follow with [`wait_until_ready`],
    /// [`wait_until_promoted`] or [`wait_until_stopped`].
    ///
    /// `data_dir` is made the `postgres` user's (`chown -R` when root) and mode 0700; the port,
    /// `listen_addresses`, the socket directory and then `settings` (quoted as in [`init`])
    /// are appended to its `postgresql.auto.conf`, which PostgreSQL reads after
    /// `postgresql.conf`, so they override the source server's. The data directory stays the
    /// caller's: drop stops the server but does not remove it.
    ///
    /// [`init`]: Self::init
    /// [`wait_until_ready`]: Self::wait_until_ready
    /// [`wait_until_promoted`]: Self::wait_until_promoted
    /// [`wait_until_stopped`]: Self::wait_until_stopped
    pub fn adopt(bin_dir: &Path, data_dir: &Path, settings: &[(&str, &str)]) -> io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix("pgb-pg-").tempdir()?;
        std::fs::create_dir(dir.path().join("sock"))?;
        share_with_postgres(dir.path())?;
        give_to_postgres(data_dir)?;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
        let mut cluster = Self::new(bin_dir, dir, data_dir.to_path_buf());
        let mut conf = String::new();
        conf.push_str("\n# pgb_testkit::TempCluster::adopt\n");
        conf.push_str(&conf_line("listen_addresses", "127.0.0.1"));
        conf.push_str(&conf_line(
            "unix_socket_directories",
            &cluster.socket_dir().to_string_lossy(),
        ));
        for (k, v) in settings {
            conf.push_str(&conf_line(k, v));
        }
        let auto = cluster.data_dir.join("postgresql.auto.conf");
        if !auto.exists() {
            std::fs::write(&auto, "")?;
            give_to_postgres(&auto)?;
        }
        append(&auto, &conf)?;
        cluster.start_on_free_port(Path::new("postgresql.auto.conf"), false)?;
        Ok(cluster)
    }

    fn new(bin_dir: &Path, dir: tempfile::TempDir, data_dir: PathBuf) -> Self {
        let log_path = dir.path().join("server.log");
        Self {
            bin_dir: bin_dir.to_path_buf(),
            dir,
            data_dir,
            port: 0,
            log_path,
            started: false,
        }
    }

    /// Picks a free port, appends it to `conf` (relative to the data directory) and starts;
    /// retries with another port when the server could not bind the one picked.
    fn start_on_free_port(&mut self, conf: &Path, wait: bool) -> io::Result<()> {
        let mut last = None;
        for _ in 0..3 {
            self.port = free_port()?;
            append(
                &self.data_dir.join(conf),
                &conf_line("port", &self.port.to_string()),
            )?;
            let before = self.log().len();
            match self.start_inner(wait) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let log = self.log();
                    let tail = log.get(before..).unwrap_or("");
                    if tail.contains("could not bind") || tail.contains("already in use") {
                        last = Some(e);
                        continue;
                    }
                    return Err(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| fail("no free port")))
    }

    /// Starts the stopped server (`pg_ctl -w -t 60 start -l <log>`) and waits until it
    /// accepts connections.
    pub fn start(&mut self) -> io::Result<()> {
        self.start_inner(true)
    }

    /// Starts the stopped server (`pg_ctl -W start`) without waiting for anything.
    pub fn start_no_wait(&mut self) -> io::Result<()> {
        self.start_inner(false)
    }

    fn start_inner(&mut self, wait: bool) -> io::Result<()> {
        let mut cmd = self.pg_ctl();
        cmd.arg("-l").arg(&self.log_path);
        if wait {
            cmd.args(["-w", "-t", "60"]);
        } else {
            cmd.arg("-W");
        }
        cmd.arg("start");
        let log_before = self.log().len();
        let out = self.run_as_pg(&mut cmd)?;
        if !out.status.success() {
            return Err(fail(format!(
                "pg_ctl start failed: {}{}\nserver log:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log()
            )));
        }
        self.started = true;
        if !wait {
            // `pg_ctl -W` returns before the postmaster wrote its pid file, and `pg_ctl
            // status` before that says "not running": wait for a sign of life (the pid file,
            // or anything in the log, such as a failure) so `wait_until_stopped` does not
            // mistake a server still starting for one that stopped.
            let deadline = Instant::now() + Duration::from_secs(30);
            while !self.data_dir.join("postmaster.pid").exists()
                && self.log().len() == log_before
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    /// Stops the server, fast mode (`pg_ctl -m fast -w stop`: a shutdown checkpoint).
    pub fn stop(&mut self) -> io::Result<()> {
        self.stop_mode("fast")
    }

    /// Stops the server immediately (`pg_ctl -m immediate stop`: no checkpoint, as a crash).
    pub fn kill(&mut self) -> io::Result<()> {
        self.stop_mode("immediate")
    }

    fn stop_mode(&mut self, mode: &str) -> io::Result<()> {
        let out = self.run_as_pg(self.pg_ctl().args(["-m", mode, "-w", "-t", "60", "stop"]))?;
        if out.status.success() || !self.is_running()? {
            self.started = false;
            Ok(())
        } else {
            Err(fail(format!(
                "pg_ctl -m {mode} stop failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Whether a postmaster runs on the data directory (`pg_ctl status`).
    pub fn is_running(&self) -> io::Result<bool> {
        let out = self.run_as_pg(self.pg_ctl().arg("status"))?;
        match out.status.code() {
            Some(0) => Ok(true),
            // 3: not running; 4: no accessible data directory.
            Some(3 | 4) => Ok(false),
            _ => Err(fail(format!(
                "pg_ctl status: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
        }
    }

    /// Polls until the server accepts connections (`select 1`), or fails when it stopped or
    /// `timeout` passed (the error holds the server log).
    pub fn wait_until_ready(&self, timeout: Duration) -> io::Result<()> {
        self.poll(timeout, "accept connections", |c| {
            Ok(c.psql("select 1").is_ok())
        })
    }

    /// Polls until the server is out of recovery (`select pg_is_in_recovery()` says `f`): a
    /// restored copy reached its target and promoted. Fails when the server stopped (a
    /// recovery that failed: see [`log`](Self::log)) or `timeout` passed.
    pub fn wait_until_promoted(&self, timeout: Duration) -> io::Result<()> {
        self.poll(timeout, "finish recovery and promote", |c| {
            Ok(c.psql("select pg_is_in_recovery()").is_ok_and(|s| s == "f"))
        })
    }

    /// Polls until the server is no longer running (one that shuts down on its own, such as a
    /// recovery that cannot reach its target); `Ok(false)` when it still runs after `timeout`.
    pub fn wait_until_stopped(&mut self, timeout: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.is_running()? {
                self.started = false;
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn poll(
        &self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&Self) -> io::Result<bool>,
    ) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if done(self)? {
                return Ok(());
            }
            if !self.is_running()? {
                return Err(fail(format!(
                    "the server stopped instead of being able to {what}; server log:\n{}",
                    self.log()
                )));
            }
            if Instant::now() >= deadline {
                return Err(fail(format!(
                    "the server did not {what} within {timeout:?}; server log:\n{}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `sql` with `psql -X -At -v ON_ERROR_STOP=1 -c` and returns its output without the
    /// final newline (several statements: the last one's rows). Errors carry psql's stderr.
    pub fn psql(&self, sql: &str) -> io::Result<String> {
        let out = Command::new(self.bin_dir.join("psql"))
            .args(["-X", "-At", "-w", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url())
            .arg("-c")
            .arg(sql)
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(fail(format!(
                "psql -c {sql:?} on port {}: {}",
                self.port,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
        if s.ends_with('\n') {
            s.pop();
        }
        Ok(s)
    }

    /// `select pg_switch_wal()`: closes the current segment (the archiver then hands it
    /// over) and returns the LSN the switch record ends at, as PostgreSQL prints it.
    pub fn switch_wal(&self) -> io::Result<String> {
        self.psql("select pg_switch_wal()")
    }

    /// Switches to a new WAL segment and waits until the archiver reports the one just closed
    /// archived (`pg_stat_archiver.last_archived_wal`); returns that segment's file name.
    /// Fails when `timeout` passes first (the error holds the archiver's last failure and the
    /// server log). With nothing written since the last switch, PostgreSQL switches nothing
    /// and this names the segment before the current position, archived already.
    pub fn switch_wal_and_wait_archived(&self, timeout: Duration) -> io::Result<String> {
        let name = self.psql("select pg_walfile_name(pg_switch_wal())")?;
        let sql = "select coalesce(last_archived_wal, ''), coalesce(last_failed_wal, '') \
                   from pg_stat_archiver";
        let deadline = Instant::now() + timeout;
        loop {
            let row = self.psql(sql)?;
            let (archived, failed) = row.split_once('|').unwrap_or((&row, ""));
            // Same timeline: names order as positions (history files sort apart: skip them).
            if archived.len() == 24 && archived >= name.as_str() {
                return Ok(name);
            }
            if Instant::now() >= deadline {
                return Err(fail(format!(
                    "{name} was not archived within {timeout:?} (last archived {archived:?}, \
                     last failed {failed:?}); server log:\n{}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The cluster's system identifier (`pg_control_system()`).
    pub fn system_identifier(&self) -> io::Result<u64> {
        let s = self.psql("select system_identifier from pg_control_system()")?;
        s.parse()
            .map_err(|_| fail(format!("system_identifier {s:?} is not a number")))
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres` (trust authentication).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory of the PostgreSQL programs.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// The server log so far (empty before the first start); tests assert on its `FATAL`
    /// lines.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The path of the server log.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    fn pg_ctl(&self) -> Command {
        let mut c = Command::new(self.bin_dir.join("pg_ctl"));
        c.arg("-D").arg(&self.data_dir);
        c
    }

    /// Runs `cmd` as the OS user `postgres` when root (from `/`: `postgres` may not be
    /// allowed into the caller's working directory), else as is.
    fn run_as_pg(&self, cmd: &mut Command) -> io::Result<Output> {
        cmd.current_dir("/").stdin(Stdio::null());
        if !is_root() {
            return cmd.output();
        }
        let mut wrapped = Command::new("runuser");
        wrapped
            .args(["-u", PG_OS_USER, "--"])
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .current_dir("/")
            .stdin(Stdio::null());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        wrapped.output()
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        if self.started {
            let _ = self.run_as_pg(self.pg_ctl().args(["-m", "immediate", "-w", "stop"]));
        }
    }
}
