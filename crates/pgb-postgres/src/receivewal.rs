//! `pgb wal stream`: `pg_receivewal` (version-matched, like every tool) with a physical
//! replication slot into a spool directory, and [`SpoolUploader`] archiving what it writes.
//!
//! [`WalStreamSource::preflight`] asks the server once (typed [`StreamPreflight`]); refusals
//! come before anything is created. [`WalStreamSource::run`] then:
//!
//! 1. locks the spool (`flock` on `pgb-stream.lock`: one stream per spool) and stops a
//!    `pg_receivewal` an earlier run left behind (its pid in `pgb-receivewal.pid`, when the
//!    earlier `pgb` was SIGKILLed and could not stop it);
//! 2. preflight, then creates the slot when asked (`pg_create_physical_replication_slot(name,
//!    true)`: it reserves WAL from now on);
//! 3. archives what the spool still holds (a restart continues without a gap);
//! 4. runs `pg_receivewal -D SPOOL --slot NAME -w -v -d URL` (the password only in its
//!    environment; it reconnects by itself after a network fault or a server restart, and
//!    follows a new timeline), passing over the spool every second (completed segments) and
//!    storing the partial segment every `partial_interval`;
//! 5. on cancellation kills and reaps `pg_receivewal`, then one last pass (bounded).
//!
//! A storage failure during a pass is retried at the next one (the spool keeps the files);
//! anything else (another cluster's WAL, different content under an archived name, the
//! receiver exiting) ends the run with the error.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pgb_core::wal::{SpoolUploader, WalArchive, WalError, WalPushOptions};
use pgb_core::{DumpError, DumpErrorKind};

use crate::conn::ConnConfig;
use crate::process::{self, Pipes, ToolProcess};
use crate::sql;
use crate::tools::{Tool, ToolLocator};

/// A slot retaining more WAL than this is warned about.
const RETAINED_WARN_BYTES: i64 = 1 << 30;
/// How long the last pass after a stop may take.
const LAST_PASS: Duration = Duration::from_secs(30);
/// The lock file in the spool.
const LOCK_FILE: &str = "pgb-stream.lock";
/// The receiver's pid, in the spool.
const PID_FILE: &str = "pgb-receivewal.pid";

/// What preflight asks, in one query.
const SETTINGS: &str = "select current_setting('server_version_num')::int / 10000, \
     current_setting('server_version'), \
     coalesce(host(inet_server_addr()), 'local') || ':' || current_setting('port'), \
     current_setting('wal_level'), current_setting('max_wal_senders'), \
     (select count(*) from pg_stat_activity where backend_type = 'walsender'), \
     coalesce((select setting from pg_settings where name = 'max_slot_wal_keep_size'), ''), \
     (select rolreplication or rolsuper from pg_roles where rolname = current_user), \
     current_user;";

/// Every replication slot with what it retains.
const SLOTS: &str = "select slot_name, slot_type, active, coalesce(active_pid::text, ''), \
     coalesce(plugin, ''), coalesce(database::text, ''), \
     coalesce(pg_wal_lsn_diff(case when pg_is_in_recovery() then pg_last_wal_replay_lsn() \
       else pg_current_wal_lsn() end, restart_lsn)::bigint, 0), \
     coalesce((select application_name from pg_stat_activity a where a.pid = s.active_pid), '') \
     from pg_replication_slots s order by slot_name;";

/// Why a stream cannot start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The slot exists for another tool (logical, or in use): nothing was created.
    #[error("{0}")]
    SlotInUse(String),
    /// Another `pgb wal stream` uses the spool.
    #[error("{0}")]
    SpoolLocked(String),
    /// The server or role cannot stream, the server cannot be reached, the tool is missing,
    /// or `pg_receivewal` exited.
    #[error(transparent)]
    Server(#[from] DumpError),
    /// Archiving failed for another reason than the store (another cluster, a conflict).
    #[error(transparent)]
    Wal(#[from] WalError),
}

/// What the server said before streaming started.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct StreamPreflight {
    /// `host:port`.
    pub server: String,
    /// The server's version (`17.2`).
    pub version: String,
    /// Its major version.
    pub major: u32,
    /// The cluster's system identifier (`IDENTIFY_SYSTEM`).
    pub system_identifier: u64,
    /// The server's timeline now.
    pub timeline: u32,
    /// `max_wal_senders`, and how many senders run now.
    pub max_wal_senders: u32,
    /// WAL senders in use before this stream.
    pub wal_senders_in_use: u32,
    /// The slot's name.
    pub slot: String,
    /// Whether the slot exists already (else `run` creates it, when asked).
    pub slot_exists: bool,
    /// WAL the slot retains, in bytes, when it exists.
    pub slot_retained_bytes: Option<i64>,
    /// The `pg_receivewal` chosen, and its version line.
    pub receiver: String,
    /// What deserves attention but does not stop the stream.
    pub warnings: Vec<String>,
}

/// What a stream did until it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct StreamReport {
    /// Whether this run created the slot.
    pub slot_created: bool,
    /// Completed segments and history files archived (or found archived).
    pub archived: u64,
    /// The last of them.
    pub last_archived: Option<String>,
    /// Partial segment uploads.
    pub partial_uploads: u64,
    /// The last partial stored.
    pub last_partial: Option<String>,
    /// Passes that failed on the store and were retried.
    pub storage_retries: u64,
    /// Whether an earlier run's `pg_receivewal` was found running and stopped.
    pub stopped_stale_receiver: bool,
}

/// How the stream stores what it receives.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StreamOptions {
    /// The spool directory (created 0700 when missing).
    pub spool: PathBuf,
    /// How often the partial segment is stored.
    pub partial_interval: Duration,
    /// Compression, encryption and authentication, as `wal push`.
    pub push: WalPushOptions,
}

impl StreamOptions {
    /// Options for `spool`, storing the partial every `partial_interval`.
    pub fn new(
        spool: impl Into<PathBuf>,
        partial_interval: Duration,
        push: WalPushOptions,
    ) -> Self {
        Self {
            spool: spool.into(),
            partial_interval,
            push,
        }
    }
}

/// A server whose WAL `pgb wal stream` receives, through slot `slot`.
#[derive(Debug, Clone)]
pub struct WalStreamSource {
    conn: ConnConfig,
    locator: ToolLocator,
    slot: String,
    create_slot: bool,
}

fn not_configured(what: impl Into<String>) -> DumpError {
    DumpError::new(DumpErrorKind::NotConfigured, what)
}

impl WalStreamSource {
    /// The server `conn` reaches, through slot `slot` (created by [`run`](Self::run) when
    /// missing and `create_slot`).
    pub fn new(conn: ConnConfig, locator: ToolLocator, slot: &str, create_slot: bool) -> Self {
        Self {
            conn,
            locator,
            slot: slot.to_owned(),
            create_slot,
        }
    }

    /// Asks the server whether it can stream to this client, and picks `pg_receivewal`.
    ///
    /// Refused (nothing created): `wal_level = minimal`, no free WAL sender, a role without
    /// `REPLICATION` (nor superuser), no `replication` line in `pg_hba.conf`, a missing slot
    /// without `create_slot` ([`StreamError::Server`], `NotConfigured`); a slot that is
    /// logical or active ([`StreamError::SlotInUse`]). Warned: `max_slot_wal_keep_size = -1`,
    /// any slot retaining more than 1 GiB.
    ///
    /// # Errors
    /// As above; connection errors, classified.
    pub async fn preflight(&self) -> Result<StreamPreflight, StreamError> {
        Ok(self.check().await?.0)
    }

    async fn check(&self) -> Result<(StreamPreflight, Tool), StreamError> {
        let psql = self.locator.pick("psql", 0, "the client").await?;
        let row = sql::query_rows(&psql, &self.conn, SETTINGS, &[])
            .await?
            .into_iter()
            .next()
            .unwrap_or_default();
        let unexpected = || {
            DumpError::new(
                DumpErrorKind::Connection,
                format!(
                    "server {}: unexpected reply to the settings query: {row:?}",
                    self.conn.redacted()
                ),
            )
        };
        let [
            major,
            version,
            addr,
            wal_level,
            senders,
            in_use,
            keep,
            replication,
            user,
        ] = <[String; 9]>::try_from(row.clone()).map_err(|_| unexpected())?;
        let major: u32 = major.trim().parse().map_err(|_| unexpected())?;
        let max_wal_senders: u32 = senders.trim().parse().map_err(|_| unexpected())?;
        let in_use: u32 = in_use.trim().parse().map_err(|_| unexpected())?;
        let version = version
            .split_whitespace()
            .next()
            .unwrap_or(&version)
            .to_owned();
        let server = if self.conn.has_host() {
            self.conn.server()
        } else {
            addr
        };
        if wal_level == "minimal" {
            return Err(not_configured(format!(
                "server {server} has wal_level = minimal: streaming WAL needs wal_level = replica (or logical); set it and restart PostgreSQL"
            )).into());
        }
        if in_use >= max_wal_senders {
            return Err(not_configured(format!(
                "server {server} has no free WAL sender ({in_use} of max_wal_senders = {max_wal_senders} in use): raise max_wal_senders and restart PostgreSQL"
            )).into());
        }
        if replication != "t" {
            return Err(not_configured(format!(
                "role {user} on server {server} has neither REPLICATION nor SUPERUSER: streaming WAL needs `ALTER ROLE {} REPLICATION`",
                sql::quote_ident(&user)
            )).into());
        }
        let mut warnings = Vec::new();
        if keep.trim() == "-1" {
            warnings.push(format!(
                "server {server} has max_slot_wal_keep_size = -1: while this stream is down its slot keeps every WAL file until pg_wal fills the disk; set a limit (e.g. 50GB) and watch the stream"
            ));
        }
        let mut slot_exists = false;
        let mut slot_retained_bytes = None;
        for s in sql::query_rows(&psql, &self.conn, SLOTS, &[]).await? {
            let [name, kind, active, pid, plugin, database, retained, app] =
                <[String; 8]>::try_from(s).map_err(|_| unexpected())?;
            let retained: i64 = retained.trim().parse().unwrap_or(0);
            if name == self.slot {
                slot_exists = true;
                slot_retained_bytes = Some(retained);
                if kind != "physical" {
                    return Err(StreamError::SlotInUse(format!(
                        "replication slot {name} on server {server} is a {kind} slot (plugin {plugin}, database {database}) of another tool: give pgb a slot of its own with --slot NAME --create-slot; nothing was created"
                    )));
                }
                if active == "t" {
                    let app = if app.is_empty() {
                        "no application_name".to_owned()
                    } else {
                        format!("application_name {app}")
                    };
                    return Err(StreamError::SlotInUse(format!(
                        "replication slot {name} on server {server} is in use by another client (walsender PID {pid}, {app}): stop that client or give pgb a slot of its own with --slot NAME --create-slot; nothing was created"
                    )));
                }
            }
            if retained > RETAINED_WARN_BYTES {
                warnings.push(format!(
                    "replication slot {name} on server {server} retains {} MiB of WAL: a consumer that stopped keeps pg_wal growing; drop the slot if nobody uses it",
                    retained >> 20
                ));
            }
        }
        if !slot_exists && !self.create_slot {
            return Err(not_configured(format!(
                "replication slot {} does not exist on server {server}: pass --create-slot to create it (or create it with pg_create_physical_replication_slot)",
                self.slot
            ))
            .into());
        }
        let (system_identifier, timeline) = self.identify(&psql, &server).await?;
        let tool = self
            .locator
            .pick("pg_receivewal", major, &format!("the server ({version})"))
            .await?;
        Ok((
            StreamPreflight {
                server,
                version,
                major,
                system_identifier,
                timeline,
                max_wal_senders,
                wal_senders_in_use: in_use,
                slot: self.slot.clone(),
                slot_exists,
                slot_retained_bytes,
                receiver: format!("{} ({})", tool.path.display(), tool.version),
                warnings,
            },
            tool,
        ))
    }

    /// `IDENTIFY_SYSTEM` over a replication connection (which also proves `pg_hba.conf`),
    /// as base backups ask it.
    async fn identify(&self, psql: &Tool, server: &str) -> Result<(u64, u32), DumpError> {
        crate::basebackup::identify(psql, &self.conn, server).await
    }

    /// Streams into `archive` until `cancel` completes (see the module's documentation).
    /// `started` is called once with the preflight, when the receiver runs.
    ///
    /// # Errors
    /// [`StreamError`]: preflight refusals, the spool locked or unusable, the receiver
    /// exiting, an archiving failure that retrying cannot fix.
    pub async fn run(
        &self,
        archive: WalArchive,
        opts: StreamOptions,
        started: impl FnOnce(&StreamPreflight) + Send,
        cancel: impl Future<Output = ()> + Send,
    ) -> Result<StreamReport, StreamError> {
        let mut report = StreamReport::default();
        let spool = opts.spool.clone();
        let _lock = lock_spool(&spool)?;
        tokio::pin!(cancel);
        report.stopped_stale_receiver = stop_stale_receiver(&spool).await;
        // A signal before the receiver runs stops here too (nothing to kill yet).
        let (pre, tool) = tokio::select! {
            () = &mut cancel => return Ok(report),
            r = self.check() => r?,
        };
        if !pre.slot_exists {
            let psql = self.locator.pick("psql", 0, "the client").await?;
            sql::execute(
                &psql,
                &self.conn,
                "select pg_create_physical_replication_slot(:'slot', true);",
                &[("slot", &self.slot)],
            )
            .await?;
            report.slot_created = true;
            tracing::info!(slot = %self.slot, "replication slot created");
        }
        let push = opts
            .push
            .clone()
            .with_system_identifier(Some(pre.system_identifier));
        let mut up = SpoolUploader::new(archive, &spool, push);
        // What an earlier run left in the spool goes first.
        tokio::select! {
            () = &mut cancel => return Ok(report),
            r = pass(&mut up, &mut report, true) => r?,
        }

        let mut cmd = process::command(&tool, Some(&self.conn));
        cmd.arg("-D")
            .arg(&spool)
            .arg(format!("--slot={}", self.slot))
            // No --no-loop: pg_receivewal reconnects by itself (every 5 seconds) after a
            // network fault or a server restart.
            .args(["-w", "-v"])
            .arg(format!("--dbname={}", self.conn.redacted()));
        let mut child = ToolProcess::spawn(cmd, "pg_receivewal", Pipes::NONE)?;
        if let Some(pid) = child.id() {
            let _ = tokio::fs::write(spool.join(PID_FILE), pid.to_string()).await;
        }
        tracing::info!(slot = %self.slot, spool = %spool.display(), "pg_receivewal started");
        started(&pre);
        let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
        let mut waiter = tokio::spawn(async move {
            tokio::select! {
                r = child.wait() => r,
                _ = kill_rx => {
                    child.kill().await;
                    Ok(())
                }
            }
        });
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_partial = Instant::now();
        let outcome: Result<(), StreamError> = loop {
            tokio::select! {
                () = &mut cancel => break Ok(()),
                r = &mut waiter => {
                    let e = match r {
                        Ok(Ok(())) => DumpError::new(DumpErrorKind::Failed, "pg_receivewal exited"),
                        Ok(Err(e)) => e,
                        Err(e) => DumpError::new(DumpErrorKind::Io, format!("pg_receivewal: {e}")),
                    };
                    let _ = tokio::time::timeout(LAST_PASS, pass(&mut up, &mut report, true)).await;
                    let _ = tokio::fs::remove_file(spool.join(PID_FILE)).await;
                    return Err(e.into());
                }
                _ = tick.tick() => {
                    let partial = last_partial.elapsed() >= opts.partial_interval;
                    if partial {
                        last_partial = Instant::now();
                    }
                    tokio::select! {
                        () = &mut cancel => break Ok(()),
                        r = pass(&mut up, &mut report, partial) => {
                            if let Err(e) = r {
                                break Err(e);
                            }
                        }
                    }
                }
            }
        };
        let _ = kill_tx.send(());
        let _ = waiter.await;
        let _ = tokio::fs::remove_file(spool.join(PID_FILE)).await;
        tracing::info!("pg_receivewal stopped");
        outcome?;
        match tokio::time::timeout(LAST_PASS, pass(&mut up, &mut report, true)).await {
            Ok(r) => r?,
            Err(_) => tracing::warn!(
                "the last pass over the spool did not finish; the spool keeps what is not archived"
            ),
        }
        Ok(report)
    }
}

/// One pass over the spool: completed files, and the partial when `partial`. A storage
/// failure is counted and left for the next pass.
async fn pass(
    up: &mut SpoolUploader,
    report: &mut StreamReport,
    partial: bool,
) -> Result<(), StreamError> {
    let retry = |e: WalError, report: &mut StreamReport| match e {
        WalError::Storage(s) => {
            tracing::warn!(error = %s, "storing streamed WAL failed; retrying at the next pass");
            report.storage_retries += 1;
            Ok(())
        }
        e => Err(StreamError::Wal(e)),
    };
    match up.upload_completed().await {
        Ok(p) => {
            report.archived += p.archived.len() as u64;
            if let Some(last) = p.archived.last() {
                report.last_archived = Some(last.file.clone());
            }
            report.partial_uploads += p.partials.len() as u64;
            if let Some(last) = p.partials.last() {
                report.last_partial = Some(last.file.clone());
            }
        }
        Err(e) => return retry(e, report),
    }
    if partial {
        match up.upload_partial().await {
            Ok(Some(p)) => {
                report.partial_uploads += 1;
                report.last_partial = Some(p.file);
            }
            Ok(None) => {}
            Err(e) => return retry(e, report),
        }
    }
    Ok(())
}

/// The spool, created (0700) when missing, and locked for this process.
fn lock_spool(spool: &Path) -> Result<std::fs::File, StreamError> {
    use std::os::unix::fs::DirBuilderExt;
    let io = |e: std::io::Error| {
        StreamError::Wal(WalError::Io {
            path: spool.to_owned(),
            source: e,
        })
    };
    if !spool.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(spool)
            .map_err(io)?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(spool.join(LOCK_FILE))
        .map_err(io)?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(f),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(StreamError::SpoolLocked(format!(
            "another pgb wal stream uses the spool {}: stop it, or give this one its own --spool",
            spool.display()
        ))),
        Err(e) => Err(io(e.into())),
    }
}

/// Stops the `pg_receivewal` an earlier run left (its pid file names it, and it still runs
/// on this spool): that run was killed without stopping it, and it holds the slot. Whether
/// one was stopped.
async fn stop_stale_receiver(spool: &Path) -> bool {
    let pid_file = spool.join(PID_FILE);
    let Ok(text) = tokio::fs::read_to_string(&pid_file).await else {
        return false;
    };
    let _ = tokio::fs::remove_file(&pid_file).await;
    let Some(pid) = text
        .trim()
        .parse::<i32>()
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    let running = |pid: rustix::process::Pid| {
        let proc = PathBuf::from(format!("/proc/{}", pid.as_raw_nonzero()));
        let cmdline = std::fs::read(proc.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie = std::fs::read_to_string(proc.join("stat"))
            .ok()
            .and_then(|s| {
                s.rsplit(')')
                    .next()
                    .map(|r| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        !zombie && cmdline.contains("pg_receivewal") && cmdline.contains(&*spool.to_string_lossy())
    };
    if !running(pid) {
        return false;
    }
    tracing::warn!(
        pid = pid.as_raw_nonzero(),
        "stopping the pg_receivewal an earlier pgb wal stream left running"
    );
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    for i in 0..100 {
        if !running(pid) {
            return true;
        }
        if i == 50 {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}
