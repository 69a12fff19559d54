//! [`ScratchServer`]: a temporary PostgreSQL server on a restored data directory, for a
//! point-in-time recovery drill: version-matched `pg_ctl`, a free loopback port, its Unix
//! socket in a private directory, archiving off, stopped (awaited) by [`ScratchServer::stop`]
//! and, should its owner be dropped first, by `Drop` (handed to the runtime, never blocking).
//!
//! As root, PostgreSQL refuses to run; the server then runs as an OS user (`postgres` by
//! default, as `scripts/pg.sh` and the test kit's `TempCluster` do: `runuser -u USER --`),
//! and the directories it writes are given to that user (`chown -R`). The caller's `psql`
//! connects through the socket (trust for local connections only, in a directory only the
//! server's user and root can enter); TCP on 127.0.0.1 is refused by the server's own
//! `pg_hba.conf`. The server gets only the variables of its `pg_ctl`'s
//! [`InheritedEnv`](crate::InheritedEnv) (libpq's, the locale, `PATH`, `HOME`, `TMPDIR`; never
//! `PGPASSWORD`, webhook URLs, passphrases, cloud credentials or `DATABASE_URL`), as every
//! PostgreSQL child of pgb: its `restore_command` must need nothing else (a drill's copies
//! from a spool it verified beforehand).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};

use pgb_core::{DumpError, DumpErrorKind};
use tokio::process::Command;

use crate::conn::ConnConfig;
use crate::process::{InheritedEnv, std_command};
use crate::tools::{Tool, ToolLocator};

/// How a [`ScratchServer`] is started.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ScratchServerOptions {
    /// The restored data directory (with its `recovery.signal` and recovery settings).
    pub data_dir: PathBuf,
    /// A private directory for the socket, the server's `pg_hba.conf` and its log.
    pub run_dir: PathBuf,
    /// The OS user the server runs as when this process is root (PostgreSQL refuses root).
    pub os_user: String,
    /// Extra `postgresql.auto.conf` settings, appended last.
    pub settings: Vec<(String, String)>,
}

impl ScratchServerOptions {
    /// A server on `data_dir`, its socket and log in `run_dir`, run as `postgres` when root.
    pub fn new(data_dir: impl Into<PathBuf>, run_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            run_dir: run_dir.into(),
            os_user: "postgres".to_owned(),
            settings: Vec::new(),
        }
    }

    /// The OS user the server runs as when root.
    pub fn with_os_user(mut self, user: impl Into<String>) -> Self {
        self.os_user = user.into();
        self
    }

    /// Adds a setting.
    pub fn with_setting(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((key.into(), value.into()));
        self
    }
}

/// A temporary server on a restored data directory.
#[derive(Debug)]
pub struct ScratchServer {
    pg_ctl: PathBuf,
    data_dir: PathBuf,
    run_dir: PathBuf,
    port: u16,
    /// `Some(user)` when the server runs as another OS user (this process is root).
    run_as: Option<String>,
    /// All the server and `pg_ctl` get of this process's environment.
    env: InheritedEnv,
    /// Started and not seen stopped.
    running: AtomicBool,
}

fn io_err(what: impl std::fmt::Display) -> DumpError {
    DumpError::new(DumpErrorKind::Io, what.to_string())
}

/// A `postgresql.conf` line, quoted.
fn conf_line(key: &str, value: &str) -> String {
    format!(
        "{key} = '{}'\n",
        value.replace('\\', "\\\\").replace('\'', "''")
    )
}

impl ScratchServer {
    /// The `pg_ctl` of exactly major version `major` (a server's data directory runs only on
    /// its own major).
    ///
    /// # Errors
    /// `ToolNotFound` when no `pg_ctl` of that major is installed.
    pub async fn locate(locator: &ToolLocator, major: u32) -> Result<Tool, DumpError> {
        let all = locator.find_all("pg_ctl").await;
        let found: Vec<u32> = all.iter().map(|t| t.major).collect();
        all.into_iter()
            .find(|t| t.major == major)
            .ok_or_else(|| {
                DumpError::new(
                    DumpErrorKind::ToolNotFound,
                    format!(
                        "no pg_ctl of PostgreSQL {major} (the backup's major version) in the configured directories, /usr/lib/postgresql/*/bin or PATH{}",
                        if found.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " (found {})",
                                found
                                    .iter()
                                    .map(u32::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }
                    ),
                )
                .with_program("pg_ctl")
            })
    }

    /// A server on `opts.data_dir` run by `pg_ctl` (from [`ScratchServer::locate`]), not
    /// started yet. Keep it where [`ScratchServer::stop`] is awaited on every way out, then
    /// [`ScratchServer::start`] it: a start interrupted half-way is stopped by that `stop`.
    pub fn new(pg_ctl: &Tool, opts: &ScratchServerOptions) -> Self {
        Self {
            pg_ctl: pg_ctl.path.clone(),
            data_dir: opts.data_dir.clone(),
            run_dir: opts.run_dir.clone(),
            port: 0,
            run_as: rustix::process::geteuid()
                .is_root()
                .then(|| opts.os_user.clone()),
            env: pg_ctl.inherited_env().clone(),
            running: AtomicBool::new(false),
        }
    }

    /// Starts the server without waiting for recovery: appends the port,
    /// `listen_addresses = '127.0.0.1'`, the socket directory, its own `hba_file` (local
    /// trust only), `archive_mode = off` and `opts.settings` to `postgresql.auto.conf` (an
    /// empty `postgresql.conf` is written when the backup holds none, as on Debian, where it
    /// lives in /etc). A port another process took meanwhile is retried with another.
    ///
    /// # Errors
    /// `Io` when the directories cannot be prepared, `Failed` with the log's tail when
    /// `pg_ctl` cannot start the server.
    pub async fn start(&mut self, opts: &ScratchServerOptions) -> Result<(), DumpError> {
        let data = &opts.data_dir;
        let run = &opts.run_dir;
        let sock = run.join("sock");
        tokio::fs::create_dir_all(&sock)
            .await
            .map_err(|e| io_err(format!("creating {}: {e}", sock.display())))?;
        for name in ["postgresql.conf", "postgresql.auto.conf"] {
            let p = data.join(name);
            if !p.exists() {
                tokio::fs::write(&p, "")
                    .await
                    .map_err(|e| io_err(format!("writing {}: {e}", p.display())))?;
            }
        }
        let hba = run.join("pg_hba.conf");
        tokio::fs::write(&hba, "local all all trust\n")
            .await
            .map_err(|e| io_err(format!("writing {}: {e}", hba.display())))?;
        let mut last = None;
        for _ in 0..3 {
            self.port = free_port()?;
            let mut conf = String::from("\n# pgb drill: the scratch server\n");
            conf.push_str(&conf_line("port", &self.port.to_string()));
            conf.push_str(&conf_line("listen_addresses", "127.0.0.1"));
            conf.push_str(&conf_line(
                "unix_socket_directories",
                &sock.display().to_string(),
            ));
            conf.push_str(&conf_line("unix_socket_permissions", "0700"));
            conf.push_str(&conf_line("hba_file", &hba.display().to_string()));
            conf.push_str(&conf_line("archive_mode", "off"));
            conf.push_str(&conf_line("log_destination", "stderr"));
            conf.push_str(&conf_line("logging_collector", "off"));
            for (k, v) in &opts.settings {
                conf.push_str(&conf_line(k, v));
            }
            append(&data.join("postgresql.auto.conf"), &conf).await?;
            self.give_away().await?;
            let before = self.log().len();
            match self.pg_ctl_start().await {
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
        Err(last.unwrap_or_else(|| io_err("no free port on 127.0.0.1")))
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A connection to `database` as `user` through the server's socket.
    pub fn conn(&self, user: &str, database: &str) -> ConnConfig {
        let sock: String = self
            .run_dir
            .join("sock")
            .display()
            .to_string()
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let user: String = user
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let db = database.replace('%', "%25").replace('/', "%2F");
        ConnConfig::parse(&format!(
            "postgres://{user}@/{db}?host={sock}&port={}",
            self.port
        ))
        .expect("a socket URL parses")
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.run_dir.join("server.log")
    }

    /// Whether a postmaster runs on the data directory (`pg_ctl status`).
    ///
    /// # Errors
    /// `Io` when `pg_ctl` cannot be run.
    pub async fn is_running(&self) -> Result<bool, DumpError> {
        let out = self
            .pg_ctl_cmd(&["status"])
            .output()
            .await
            .map_err(|e| io_err(format!("pg_ctl status: {e}")))?;
        // 0: running; 3: not running; 4: no accessible data directory. 1: the pid file is
        // there but not written yet (a server starting): running.
        Ok(!matches!(out.status.code(), Some(3 | 4)))
    }

    /// Stops the server: `pg_ctl -m fast stop`, then `-m immediate` when that fails; waits
    /// until it is gone. Whether it is stopped.
    pub async fn stop(&self) -> bool {
        if !self.running.swap(false, Ordering::SeqCst) {
            return true;
        }
        stop_server(self.stop_args()).await
    }

    fn stop_args(&self) -> StopArgs {
        StopArgs {
            pg_ctl: self.pg_ctl.clone(),
            data_dir: self.data_dir.clone(),
            run_as: self.run_as.clone(),
            env: self.env.clone(),
        }
    }

    async fn pg_ctl_start(&self) -> Result<(), DumpError> {
        let log = self.log_path().display().to_string();
        self.running.store(true, Ordering::SeqCst);
        let out = self
            .pg_ctl_cmd(&["-l", &log, "-W", "start"])
            .output()
            .await
            .map_err(|e| io_err(format!("pg_ctl start: {e}")))?;
        if out.status.success() {
            // `pg_ctl -W` returns before the postmaster wrote its pid file, and `pg_ctl
            // status` before then says "not running": wait for a sign of life (the pid file,
            // or anything in the log, such as a failure).
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while !self.data_dir.join("postmaster.pid").exists()
                && self.log().is_empty()
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            return Ok(());
        }
        self.running.store(false, Ordering::SeqCst);
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        Err(DumpError::new(
            DumpErrorKind::Failed,
            format!(
                "pg_ctl start on {}: {}{}",
                self.data_dir.display(),
                String::from_utf8_lossy(&out.stderr).trim(),
                tail.into_iter()
                    .rev()
                    .map(|l| format!("\n  {l}"))
                    .collect::<String>()
            ),
        )
        .with_program("pg_ctl"))
    }

    fn pg_ctl_cmd(&self, args: &[&str]) -> Command {
        pg_ctl_command(&self.stop_args(), args)
    }

    /// Gives the data and run directories to the server's OS user (as root), mode 0700.
    async fn give_away(&self) -> Result<(), DumpError> {
        use std::os::unix::fs::PermissionsExt as _;
        for dir in [&self.data_dir, &self.run_dir] {
            if let Some(user) = &self.run_as {
                let out = Command::new("chown")
                    .arg("-R")
                    .arg(format!("{user}:"))
                    .arg(dir)
                    .stdin(Stdio::null())
                    .output()
                    .await
                    .map_err(|e| io_err(format!("chown: {e}")))?;
                if !out.status.success() {
                    return Err(io_err(format!(
                        "chown -R {user} {}: {}",
                        dir.display(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    )));
                }
            }
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| io_err(format!("chmod {}: {e}", dir.display())))?;
        }
        Ok(())
    }
}

impl Drop for ScratchServer {
    fn drop(&mut self) {
        if !self.running.swap(false, Ordering::SeqCst) {
            return;
        }
        // Dropped while running (its owner's future was dropped): stop it on the runtime.
        let args = self.stop_args();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(stop_server(args));
            }
            Err(_) => {
                tracing::error!(data_dir = %self.data_dir.display(), "no runtime to stop the drill's scratch server; stop it by hand (pg_ctl stop)");
            }
        }
    }
}

struct StopArgs {
    pg_ctl: PathBuf,
    data_dir: PathBuf,
    run_as: Option<String>,
    env: InheritedEnv,
}

/// Stops the server on `a.data_dir`; a postmaster that `pg_ctl start` forked an instant
/// before (its pid file not written yet) is waited for and stopped too.
async fn stop_server(a: StopArgs) -> bool {
    let mut stopped = stop_once(&a).await;
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if !a.data_dir.join("postmaster.pid").exists() {
            return stopped;
        }
        stopped = stop_once(&a).await;
    }
    stopped
}

async fn stop_once(a: &StopArgs) -> bool {
    for mode in ["fast", "immediate"] {
        let out = pg_ctl_command(a, &["-m", mode, "-w", "-t", "60", "stop"])
            .output()
            .await;
        match out {
            Ok(o) if o.status.success() => return true,
            Ok(o) => {
                // Not running at all (it stopped on its own): done.
                let status = pg_ctl_command(a, &["status"]).output().await;
                if status.is_ok_and(|s| matches!(s.status.code(), Some(3 | 4))) {
                    return true;
                }
                tracing::warn!(mode, stderr = %String::from_utf8_lossy(&o.stderr).trim(), "pg_ctl stop failed");
            }
            Err(e) => tracing::warn!(mode, error = %e, "pg_ctl stop could not run"),
        }
    }
    tracing::error!(data_dir = %a.data_dir.display(), "could not stop the drill's scratch server; stop it by hand (pg_ctl stop)");
    false
}

/// `pg_ctl -D DIR ARGS`, through `runuser -u USER --` when `a.run_as`, from `/`, with only
/// `a.env` of this process's environment (through [`std_command`], as every PostgreSQL tool):
/// the server and its `restore_command` inherit nothing else.
fn pg_ctl_command(a: &StopArgs, args: &[&str]) -> Command {
    let mut cmd = match &a.run_as {
        Some(user) => {
            let mut c = std_command(Path::new("runuser"), &a.env, None);
            c.args(["-u", user, "--"]).arg(&a.pg_ctl);
            c
        }
        None => std_command(&a.pg_ctl, &a.env, None),
    };
    cmd.arg("-D")
        .arg(&a.data_dir)
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Command::from(cmd)
}

async fn append(path: &Path, text: &str) -> Result<(), DumpError> {
    use tokio::io::AsyncWriteExt as _;
    let mut f = tokio::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .await
        .map_err(|e| io_err(format!("appending to {}: {e}", path.display())))?;
    f.write_all(text.as_bytes())
        .await
        .map_err(|e| io_err(format!("appending to {}: {e}", path.display())))
}

/// A free TCP port on 127.0.0.1 (free when asked; [`ScratchServer::start`] retries when the
/// server then cannot bind it).
fn free_port() -> Result<u16, DumpError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| io_err(format!("finding a free port on 127.0.0.1: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| io_err(format!("finding a free port on 127.0.0.1: {e}")))
}
