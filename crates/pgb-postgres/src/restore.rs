//! pg_restore and psql as a [`Restorer`].

use std::path::PathBuf;
use std::process::Stdio;

use async_trait::async_trait;
use bytes::Bytes;
use pgb_core::{
    ArchiveFormat, DumpError, DumpErrorKind, RestoreOptions, RestoreReport, RestoreSink, Restorer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};

use crate::conn::ConnConfig;
use crate::psql;
use crate::tools::{StderrTail, Tool, ToolLocator, describe_exit};

/// Restores into the database `target` names (created if missing), with pg_restore for custom
/// archives and `psql -v ON_ERROR_STOP=1 --single-transaction` for plain SQL.
///
/// Single-job restores run in one transaction, fed from the stream; `jobs > 1` spools the
/// verified archive to a 0600 temp file and runs `pg_restore -j N` on it only at `finish`.
#[derive(Debug, Clone)]
pub struct PgRestore {
    target: ConnConfig,
    locator: ToolLocator,
    spool_dir: PathBuf,
}

impl PgRestore {
    /// A restorer into `target`. Parallel restores spool to `spool_dir`.
    pub fn new(target: ConnConfig, locator: ToolLocator, spool_dir: impl Into<PathBuf>) -> Self {
        Self {
            target,
            locator,
            spool_dir: spool_dir.into(),
        }
    }

    fn target_name(&self) -> Result<String, DumpError> {
        self.target.dbname().map(str::to_owned).ok_or_else(|| {
            DumpError::new(
                DumpErrorKind::Connection,
                "the restore target URL names no database: use postgres://host/NEW_DB_NAME",
            )
        })
    }

    async fn tool_for(&self, format: ArchiveFormat, archive_major: u32) -> Result<Tool, DumpError> {
        let what = format!("the backup (made by pg_dump {archive_major})");
        match format {
            ArchiveFormat::Plain => self.locator.pick("psql", archive_major, &what).await,
            _ => self.locator.pick("pg_restore", archive_major, &what).await,
        }
    }
}

/// The maintenance connection on the target's server.
fn maintenance(target: &ConnConfig) -> ConnConfig {
    target.with_dbname("postgres")
}

const COUNT_RELATIONS: &str = "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
     where c.relkind in ('r','p','v','m','S','f') and n.nspname not in ('pg_catalog','information_schema') \
     and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%';";

#[async_trait]
impl Restorer for PgRestore {
    async fn begin(&self, opts: &RestoreOptions) -> Result<Box<dyn RestoreSink>, DumpError> {
        let name = self.target_name()?;
        let tool = self.tool_for(opts.format, opts.archive_major).await?;
        let psql = self.locator.pick("psql", 0, "the client").await?;
        let maint = maintenance(&self.target);
        let what = format!("restore target server {}", maint.redacted());
        let exists = psql::query(
            &psql,
            &maint,
            "select count(*) from pg_database where datname = :'target';",
            &[("target", &name)],
            &what,
        )
        .await?
            == "1";
        let mut created = false;
        if exists {
            let n: u64 = psql::query(
                &psql,
                &self.target,
                COUNT_RELATIONS,
                &[],
                &format!("database {name}"),
            )
            .await?
            .parse()
            .unwrap_or(0);
            if n > 0 && !opts.clean {
                return Err(DumpError::new(
                    DumpErrorKind::TargetNotEmpty,
                    format!(
                        "target database {name} already has {n} tables, views or sequences; restore into a new database, or pass --clean to replace them"
                    ),
                ));
            }
            if n > 0 && opts.format == ArchiveFormat::Plain {
                return Err(DumpError::new(
                    DumpErrorKind::Refused,
                    format!(
                        "target database {name} is not empty and a plain SQL backup cannot be restored with --clean; restore into a new database"
                    ),
                ));
            }
        } else {
            psql::query(
                &psql,
                &maint,
                "create database :\"target\";",
                &[("target", &name)],
                &what,
            )
            .await?;
            created = true;
            tracing::info!(database = %name, "created restore target");
        }
        let cleanup = Cleanup {
            created,
            psql,
            maint,
            name: name.clone(),
        };
        let started = if opts.format == ArchiveFormat::Custom && opts.jobs > 1 {
            Spool::start(self, &tool, opts)
                .await
                .map(|s| Box::new(s) as Box<dyn RestoreSink>)
        } else {
            ChildSink::start(self, &tool, opts).map(|mut s| {
                s.guard = (opts.format == ArchiveFormat::Plain && !opts.allow_create)
                    .then(CreateDbGuard::new);
                Box::new(s) as Box<dyn RestoreSink>
            })
        };
        match started {
            Ok(sink) => Ok(Box::new(Cleaning {
                inner: Some(sink),
                cleanup,
                report: RestoreReport::new(name, created, tool.version),
            })),
            Err(e) => {
                cleanup.run().await;
                Err(e)
            }
        }
    }

    async fn check_archive(
        &self,
        format: ArchiveFormat,
        archive_major: u32,
    ) -> Result<Box<dyn RestoreSink>, DumpError> {
        match format {
            ArchiveFormat::Plain => Ok(Box::new(PlainCheck::default())),
            _ => {
                let tool = self.tool_for(format, archive_major).await?;
                let mut cmd = Command::new(&tool.path);
                cmd.arg("--list");
                let mut child = spawn(cmd, &tool, None)?;
                let mut stdout = child.stdout.take().expect("piped");
                let counter = tokio::spawn(async move {
                    let mut text = Vec::new();
                    let _ = stdout.read_to_end(&mut text).await;
                    String::from_utf8_lossy(&text)
                        .lines()
                        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
                        .count() as u64
                });
                let stdin = child.stdin.take();
                let (tail, drained) =
                    StderrTail::drain(child.stderr.take().expect("piped"), "pg_restore");
                Ok(Box::new(ChildSink {
                    child,
                    stdin,
                    tail,
                    drained: Some(drained),
                    tool: "pg_restore --list",
                    guard: None,
                    counter: Some(counter),
                    early_exit_ok: true,
                    exited_ok: false,
                }))
            }
        }
    }
}

fn spawn(mut cmd: Command, tool: &Tool, conn: Option<&ConnConfig>) -> Result<Child, DumpError> {
    if let Some(conn) = conn {
        cmd.envs(conn.child_env());
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd.spawn().map_err(|e| {
        DumpError::new(
            DumpErrorKind::ToolNotFound,
            format!("cannot run {}: {e}", tool.path.display()),
        )
    })
}

fn restore_args(cmd: &mut Command, target: &ConnConfig, opts: &RestoreOptions) {
    cmd.arg("-w").arg(format!("--dbname={}", target.redacted()));
    if !opts.keep_owner {
        cmd.arg("--no-owner");
    }
    if !opts.keep_privileges {
        cmd.arg("--no-privileges");
    }
    if opts.clean {
        cmd.args(["--clean", "--if-exists"]);
    }
}

/// Drops a database the restore created, when the restore does not complete.
#[derive(Debug)]
struct Cleanup {
    created: bool,
    psql: Tool,
    maint: ConnConfig,
    name: String,
}

impl Cleanup {
    async fn run(&self) {
        if !self.created {
            return;
        }
        let res = psql::query(
            &self.psql,
            &self.maint,
            "drop database if exists :\"target\";",
            &[("target", &self.name)],
            "dropping the half-restored target",
        )
        .await;
        match res {
            Ok(_) => {
                tracing::info!(database = %self.name, "dropped the target this restore created")
            }
            Err(e) => {
                tracing::warn!(database = %self.name, error = %e, "could not drop the target this restore created")
            }
        }
    }
}

/// Wraps a sink: reports, and drops a created target on failure or abort.
#[derive(Debug)]
struct Cleaning {
    inner: Option<Box<dyn RestoreSink>>,
    cleanup: Cleanup,
    report: RestoreReport,
}

#[async_trait]
impl RestoreSink for Cleaning {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError> {
        self.inner.as_mut().expect("live sink").write(chunk).await
    }

    async fn finish(mut self: Box<Self>) -> Result<RestoreReport, DumpError> {
        match self.inner.take().expect("live sink").finish().await {
            Ok(r) => {
                let mut report = self.report.clone();
                report.toc_entries = r.toc_entries;
                Ok(report)
            }
            Err(e) => {
                self.cleanup.run().await;
                Err(e)
            }
        }
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(inner) = self.inner.take() {
            inner.abort().await;
        }
        self.cleanup.run().await;
    }
}

/// Feeds a child's stdin: pg_restore, psql or `pg_restore --list`.
#[derive(Debug)]
struct ChildSink {
    child: Child,
    stdin: Option<ChildStdin>,
    tail: StderrTail,
    drained: Option<tokio::task::JoinHandle<()>>,
    tool: &'static str,
    guard: Option<CreateDbGuard>,
    counter: Option<tokio::task::JoinHandle<u64>>,
    /// `pg_restore --list` stops reading after the table of contents; a clean exit before
    /// the end of input is success for it (the stored checksum covers the rest).
    early_exit_ok: bool,
    exited_ok: bool,
}

impl ChildSink {
    fn start(r: &PgRestore, tool: &Tool, opts: &RestoreOptions) -> Result<Self, DumpError> {
        let mut cmd = Command::new(&tool.path);
        let name = match opts.format {
            ArchiveFormat::Plain => {
                cmd.args([
                    "-X",
                    "-q",
                    "-w",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "--single-transaction",
                    "-f",
                    "-",
                ])
                .arg(format!("--dbname={}", r.target.redacted()));
                "psql"
            }
            _ => {
                restore_args(&mut cmd, &r.target, opts);
                cmd.args(["--single-transaction", "--exit-on-error"]);
                "pg_restore"
            }
        };
        let mut child = spawn(cmd, tool, Some(&r.target))?;
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().expect("piped");
        // Nothing useful on stdout; drain it so the child can never block on it.
        tokio::spawn(async move {
            let mut sink = tokio::io::sink();
            let _ = tokio::io::copy(&mut stdout, &mut sink).await;
        });
        let (tail, drained) = StderrTail::drain(child.stderr.take().expect("piped"), name);
        Ok(Self {
            child,
            stdin,
            tail,
            drained: Some(drained),
            tool: name,
            guard: None,
            counter: None,
            early_exit_ok: false,
            exited_ok: false,
        })
    }

    async fn failure(&mut self) -> DumpError {
        self.stdin = None;
        let status = self.child.wait().await;
        if let Some(h) = self.drained.take() {
            let _ = h.await;
        }
        let tail = self.tail.text();
        let last = crate::tools::cause_line(&tail);
        let how = status.map_or_else(|e| e.to_string(), describe_exit);
        DumpError::new(
            DumpErrorKind::Failed,
            format!("{} {how}: {last}", self.tool),
        )
        .with_stderr(tail)
    }
}

#[async_trait]
impl RestoreSink for ChildSink {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError> {
        if let Some(guard) = self.guard.as_mut() {
            guard.check(&chunk)?;
        }
        if self.exited_ok {
            return Ok(());
        }
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self.failure().await);
        };
        if stdin.write_all(&chunk).await.is_err() {
            if self.early_exit_ok {
                self.stdin = None;
                if self.child.wait().await.is_ok_and(|s| s.success()) {
                    self.exited_ok = true;
                    return Ok(());
                }
            }
            return Err(self.failure().await);
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<RestoreReport, DumpError> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.shutdown().await;
        }
        let status = self.child.wait().await.map_err(|e| {
            DumpError::new(DumpErrorKind::Io, format!("waiting for {}: {e}", self.tool))
        })?;
        if let Some(h) = self.drained.take() {
            let _ = h.await;
        }
        if !status.success() {
            let tail = self.tail.text();
            let last = crate::tools::cause_line(&tail);
            return Err(DumpError::new(
                DumpErrorKind::Failed,
                format!("{} {}: {last}", self.tool, describe_exit(status)),
            )
            .with_stderr(tail));
        }
        let mut report = RestoreReport::default();
        if let Some(counter) = self.counter.take() {
            report = report.with_toc_entries(counter.await.unwrap_or(0));
        }
        Ok(report)
    }

    async fn abort(mut self: Box<Self>) {
        self.stdin = None;
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Refuses a plain SQL archive containing `CREATE DATABASE` (made with `pg_dump --create`),
/// which would create or connect to another database than the target.
#[derive(Debug)]
struct CreateDbGuard {
    carry: Vec<u8>,
}

const CREATE_DB: &[u8] = b"\nCREATE DATABASE ";

impl CreateDbGuard {
    fn new() -> Self {
        Self {
            carry: b"\n".to_vec(),
        }
    }

    fn check(&mut self, chunk: &[u8]) -> Result<(), DumpError> {
        // The carried tail plus this chunk: a match may span any number of small chunks.
        let mut window = std::mem::take(&mut self.carry);
        window.extend_from_slice(chunk);
        let hit = window.windows(CREATE_DB.len()).any(|w| w == CREATE_DB);
        self.carry = window[window.len().saturating_sub(CREATE_DB.len() - 1)..].to_vec();
        if hit {
            return Err(DumpError::new(
                DumpErrorKind::Refused,
                "the backup contains CREATE DATABASE (made with pg_dump --create); pass --allow-create to restore it anyway",
            ));
        }
        Ok(())
    }
}

/// Checks a plain SQL archive: it must end with pg_dump's completion trailer.
#[derive(Debug, Default)]
struct PlainCheck {
    last: Vec<u8>,
}

#[async_trait]
impl RestoreSink for PlainCheck {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError> {
        self.last.extend_from_slice(&chunk);
        let excess = self.last.len().saturating_sub(4096);
        self.last.drain(..excess);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<RestoreReport, DumpError> {
        let text = String::from_utf8_lossy(&self.last);
        if text.contains("-- PostgreSQL database dump complete") {
            Ok(RestoreReport::default())
        } else {
            Err(DumpError::new(
                DumpErrorKind::BadArchive,
                "the SQL dump lacks pg_dump's completion trailer (truncated dump)",
            ))
        }
    }

    async fn abort(self: Box<Self>) {}
}

/// `jobs > 1`: spool to a private temp file, run `pg_restore -j N` on it at `finish`.
#[derive(Debug)]
struct Spool {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    cmd_target: ConnConfig,
    tool: Tool,
    opts: RestoreOptions,
}

impl Spool {
    async fn start(r: &PgRestore, tool: &Tool, opts: &RestoreOptions) -> Result<Self, DumpError> {
        let mut rnd = [0u8; 8];
        let _ = getrandom::fill(&mut rnd);
        let name: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let path = r.spool_dir.join(format!("pgb-restore-{name}.dump"));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .await
            .map_err(|e| {
                DumpError::new(
                    DumpErrorKind::Io,
                    format!("cannot create spool file in {}: {e}", r.spool_dir.display()),
                )
            })?;
        Ok(Self {
            path,
            file: Some(file),
            cmd_target: r.target.clone(),
            tool: tool.clone(),
            opts: opts.clone(),
        })
    }
}

#[async_trait]
impl RestoreSink for Spool {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError> {
        let file = self.file.as_mut().expect("open spool");
        file.write_all(&chunk).await.map_err(|e| {
            DumpError::new(
                DumpErrorKind::Io,
                format!("writing spool file {}: {e}", self.path.display()),
            )
        })
    }

    async fn finish(mut self: Box<Self>) -> Result<RestoreReport, DumpError> {
        if let Some(mut f) = self.file.take() {
            let _ = f.flush().await;
        }
        let mut cmd = Command::new(&self.tool.path);
        restore_args(&mut cmd, &self.cmd_target, &self.opts);
        cmd.arg(format!("--jobs={}", self.opts.jobs))
            .arg("--exit-on-error")
            .arg(&self.path);
        cmd.envs(self.cmd_target.child_env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let res = async {
            let mut child = cmd.spawn().map_err(|e| {
                DumpError::new(
                    DumpErrorKind::ToolNotFound,
                    format!("cannot run {}: {e}", self.tool.path.display()),
                )
            })?;
            let (tail, drained) =
                StderrTail::drain(child.stderr.take().expect("piped"), "pg_restore");
            let status = child.wait().await.map_err(|e| {
                DumpError::new(DumpErrorKind::Io, format!("waiting for pg_restore: {e}"))
            })?;
            let _ = drained.await;
            if status.success() {
                Ok(RestoreReport::default())
            } else {
                let tail = tail.text();
                let last = crate::tools::cause_line(&tail);
                Err(DumpError::new(
                    DumpErrorKind::Failed,
                    format!("pg_restore {}: {last}", describe_exit(status)),
                )
                .with_stderr(tail))
            }
        }
        .await;
        let _ = tokio::fs::remove_file(&self.path).await;
        res
    }

    async fn abort(mut self: Box<Self>) {
        self.file = None;
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        // Never leave a plaintext copy of a dump behind.
        let _ = std::fs::remove_file(&self.path);
    }
}
