//! pg_restore and psql as a [`Restorer`].

use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;
use pgb_core::cleanup::spawn_cleanup;
use pgb_core::{
    ArchiveFormat, ArchiveInfo, DirectorySink, DumpError, DumpErrorKind, RestoreOptions,
    RestoreReport, RestoreSink, Restorer,
};
use tokio::io::AsyncWriteExt;
use tokio::process::{ChildStdin, Command};

use crate::conn::ConnConfig;
use crate::offsets::DataOffsets;
use crate::process::{self, Pipes, ToolProcess};
use crate::sql;
use crate::tools::{Tool, ToolLocator};

/// Restores into the database `target` names (created if missing), with pg_restore for custom
/// archives and `psql -v ON_ERROR_STOP=1 --single-transaction` for plain SQL.
///
/// Single-job restores run in one transaction, fed from the stream; `jobs > 1` spools the
/// verified archive to a 0600 temp file and runs `pg_restore -j N` on it only at `finish`.
///
/// A target database the restore created is dropped again when the restore fails, is
/// aborted, or its sink (or the `begin` future, once the database exists) is dropped: in
/// that last case the drop is spawned on the current runtime and registered for
/// [`settle_cleanups`](crate::settle_cleanups), which whoever awaited the restore awaits
/// next (the binary does before it exits), so a restore future dropped on SIGINT/SIGTERM
/// leaves no half-restored database and no runtime thread blocks; without a runtime, a
/// blocking `psql` drops it.
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

    /// The database restored into.
    pub fn target(&self) -> &ConnConfig {
        &self.target
    }

    /// Checks the target database `name` (refused if it has tables and `clean` is off, or,
    /// for plain SQL, at all) or creates it; a created database is returned armed: it is
    /// dropped again unless the restore completes. With `defer`, a missing database is not
    /// created yet but returned unarmed, to be created once the spooled archive is verified.
    async fn prepare_target(
        &self,
        name: &str,
        format: ArchiveFormat,
        opts: &RestoreOptions,
        defer: bool,
    ) -> Result<Option<CreatedDatabase>, DumpError> {
        let name = name.to_owned();
        let psql = self.locator.pick("psql", 0, "the client").await?;
        let maint = maintenance(&self.target);
        let mut created = None;
        if sql::database_exists(&psql, &maint, &name).await? {
            let n: u64 = sql::query_scalar(&psql, &self.target, COUNT_RELATIONS, &[])
                .await?
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if n > 0 && !opts.clean {
                return Err(DumpError::new(
                    DumpErrorKind::TargetNotEmpty,
                    format!("target database {name} already has {n} tables, views or sequences"),
                ));
            }
            if n > 0 && format == ArchiveFormat::Plain {
                return Err(DumpError::new(
                    DumpErrorKind::Refused,
                    format!(
                        "target database {name} is not empty and a plain SQL backup cannot replace its objects"
                    ),
                ));
            }
        } else if defer {
            created = Some(CreatedDatabase {
                psql,
                maint,
                name,
                armed: false,
            });
        } else {
            sql::create_database(&psql, &maint, &name).await?;
            // From here on, every way out (error, abort, drop) drops the database again.
            created = Some(CreatedDatabase {
                psql,
                maint,
                name: name.clone(),
                armed: true,
            });
            tracing::info!(database = %name, "created restore target");
        }
        Ok(created)
    }

    fn target_name(&self) -> Result<String, DumpError> {
        self.target.dbname().map(str::to_owned).ok_or_else(|| {
            DumpError::new(
                DumpErrorKind::Connection,
                "the restore target URL names no database",
            )
        })
    }
}

/// The tool that restores (or lists) `archive`: psql for plain SQL, pg_restore otherwise, at
/// least as new as the pg_dump that wrote it.
pub(crate) async fn tool_for(
    locator: &ToolLocator,
    archive: &ArchiveInfo,
) -> Result<Tool, DumpError> {
    let what = format!("the backup (made by pg_dump {})", archive.tool_major);
    match archive.format {
        ArchiveFormat::Plain => locator.pick("psql", archive.tool_major, &what).await,
        _ => locator.pick("pg_restore", archive.tool_major, &what).await,
    }
}

/// Whether a restore of `archive` goes through a spool file (parallel, or a selection, which
/// needs the archive listed first) rather than a stream into the tool.
fn spools(archive: &ArchiveInfo, opts: &RestoreOptions) -> bool {
    archive.format == ArchiveFormat::Custom && (opts.jobs > 1 || opts.is_selective())
}

/// The maintenance connection on the target's server.
fn maintenance(target: &ConnConfig) -> ConnConfig {
    target.with_dbname("postgres")
}

pub(crate) const COUNT_RELATIONS: &str = "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
     where c.relkind in ('r','p','v','m','S','f') and n.nspname not in ('pg_catalog','information_schema') \
     and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%';";

#[async_trait]
impl Restorer for PgRestore {
    async fn begin(
        &self,
        archive: &ArchiveInfo,
        opts: &RestoreOptions,
    ) -> Result<Box<dyn RestoreSink>, DumpError> {
        let name = self.target_name()?;
        if archive.format == ArchiveFormat::Plain && opts.is_selective() {
            return Err(DumpError::new(
                DumpErrorKind::Refused,
                "a plain SQL backup cannot be restored table by table",
            ));
        }
        if archive.format == ArchiveFormat::Directory {
            return Err(DumpError::new(
                DumpErrorKind::Refused,
                "a directory-format archive is restored from a spool directory, not a stream",
            ));
        }
        let tool = tool_for(&self.locator, archive).await?;
        // A spooled restore touches the target only once the whole archive is verified: its
        // database is created then, at `finish`.
        let spooled = spools(archive, opts);
        let (created, pending) = match self
            .prepare_target(&name, archive.format, opts, spooled)
            .await?
        {
            Some(db) if db.armed => (Some(db), None),
            deferred => (None, deferred),
        };
        let started = if spooled {
            Spool::start(self, &tool, opts)
                .await
                .map(|s| Box::new(s) as Box<dyn RestoreSink>)
        } else {
            ChildSink::restore(&self.target, &tool, archive.format, opts).map(|mut s| {
                s.guard = (archive.format == ArchiveFormat::Plain && !opts.allow_create)
                    .then(CreateDbGuard::new);
                Box::new(s) as Box<dyn RestoreSink>
            })
        };
        let report = RestoreReport::new(name, created.is_some() || pending.is_some(), tool.version);
        match started {
            Ok(sink) => Ok(Box::new(Cleaning {
                inner: Some(sink),
                created,
                pending,
                report,
            })),
            Err(e) => {
                if let Some(db) = created {
                    db.drop_now().await;
                }
                Err(e)
            }
        }
    }

    async fn begin_directory(
        &self,
        archive: &ArchiveInfo,
        opts: &RestoreOptions,
    ) -> Result<Box<dyn DirectorySink>, DumpError> {
        let name = self.target_name()?;
        let tool = tool_for(
            &self.locator,
            &ArchiveInfo::new(ArchiveFormat::Custom, archive.tool_major),
        )
        .await?;
        let parent = private_dir(&self.spool_dir, "pgb-restore")?;
        let mut spool = SpoolDir {
            dir: parent.join("dump"),
            parent,
            target: self.target.clone(),
            tool,
            opts: opts.clone(),
            created: None,
            name: name.clone(),
        };
        std::fs::create_dir(&spool.dir).map_err(|e| {
            DumpError::new(
                DumpErrorKind::Io,
                format!("cannot create {}: {e}", spool.dir.display()),
            )
        })?;
        // The spool is removed (by its drop) if the target is refused.
        spool.created = self
            .prepare_target(&name, ArchiveFormat::Directory, opts, false)
            .await?;
        Ok(Box::new(spool))
    }

    fn applies_only_verified(&self, archive: &ArchiveInfo, opts: &RestoreOptions) -> bool {
        spools(archive, opts)
    }
}

pub(crate) fn restore_args(cmd: &mut Command, target: &ConnConfig, opts: &RestoreOptions) {
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

/// A database this restore created: dropped again unless the restore completes. Dropping the
/// guard while armed (a future dropped by a signal runs no async clean-up of its own) spawns
/// the async drop on the current runtime ([`crate::spawn_cleanup`], awaited by
/// [`crate::settle_cleanups`]); with no runtime it drops the database with a blocking psql.
#[derive(Debug)]
struct CreatedDatabase {
    psql: Tool,
    maint: ConnConfig,
    name: String,
    armed: bool,
}

impl CreatedDatabase {
    /// The restore completed: keep the database.
    fn keep(mut self) {
        self.armed = false;
    }

    /// Drops the database now (async), logging the outcome.
    async fn drop_now(mut self) {
        self.armed = false;
        let res = sql::drop_database(&self.psql, &self.maint, &self.name).await;
        self.log(res);
    }

    fn log(&self, res: Result<(), DumpError>) {
        match res {
            Ok(()) => {
                tracing::info!(database = %self.name, "dropped the target this restore created");
            }
            Err(e) => {
                tracing::warn!(database = %self.name, error = %e, "could not drop the target this restore created");
            }
        }
    }
}

impl Drop for CreatedDatabase {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.armed = false;
        let db = Self {
            psql: self.psql.clone(),
            maint: self.maint.clone(),
            name: self.name.clone(),
            armed: false,
        };
        let task = async move {
            let res = sql::drop_database(&db.psql, &db.maint, &db.name).await;
            db.log(res);
        };
        if spawn_cleanup(task).is_err() {
            let res = sql::drop_database_blocking(&self.psql, &self.maint, &self.name);
            self.log(res);
        }
    }
}

/// Wraps a sink: reports, and drops a created target on failure, abort or drop.
#[derive(Debug)]
struct Cleaning {
    // Field order matters for `Drop`: the tool is killed before the database is dropped.
    inner: Option<Box<dyn RestoreSink>>,
    created: Option<CreatedDatabase>,
    /// A database to create at `finish`, once the spooled archive is verified (unarmed).
    pending: Option<CreatedDatabase>,
    report: RestoreReport,
}

#[async_trait]
impl RestoreSink for Cleaning {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError> {
        self.inner.as_mut().expect("live sink").write(chunk).await
    }

    async fn finish(mut self: Box<Self>) -> Result<RestoreReport, DumpError> {
        if let Some(mut db) = self.pending.take() {
            if let Err(e) = sql::create_database(&db.psql, &db.maint, &db.name).await {
                if let Some(inner) = self.inner.take() {
                    inner.abort().await;
                }
                return Err(e);
            }
            tracing::info!(database = %db.name, "created restore target");
            db.armed = true;
            self.created = Some(db);
        }
        match self.inner.take().expect("live sink").finish().await {
            Ok(r) => {
                if let Some(db) = self.created.take() {
                    db.keep();
                }
                let mut report = self.report.clone();
                report.toc_entries = r.toc_entries;
                Ok(report)
            }
            Err(e) => {
                if let Some(db) = self.created.take() {
                    db.drop_now().await;
                }
                Err(e)
            }
        }
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(inner) = self.inner.take() {
            inner.abort().await;
        }
        if let Some(db) = self.created.take() {
            db.drop_now().await;
        }
    }
}

/// Feeds a child's stdin: pg_restore, psql or `pg_restore --list`.
#[derive(Debug)]
pub(crate) struct ChildSink {
    process: ToolProcess,
    stdin: Option<ChildStdin>,
    guard: Option<CreateDbGuard>,
    counter: Option<tokio::task::JoinHandle<u64>>,
    /// `pg_restore --list` stops reading after the table of contents; a clean exit before
    /// the end of input is success for it (the stored checksum covers the rest).
    early_exit_ok: bool,
    exited_ok: bool,
}

impl ChildSink {
    /// pg_restore or psql into `target`, in one transaction.
    fn restore(
        target: &ConnConfig,
        tool: &Tool,
        format: ArchiveFormat,
        opts: &RestoreOptions,
    ) -> Result<Self, DumpError> {
        let mut cmd = process::command(tool, Some(target));
        let program = match format {
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
                .arg(format!("--dbname={}", target.redacted()));
                "psql"
            }
            _ => {
                restore_args(&mut cmd, target, opts);
                cmd.args(["--single-transaction", "--exit-on-error"]);
                "pg_restore"
            }
        };
        let mut process = ToolProcess::spawn(cmd, program, Pipes::BOTH)?;
        let mut stdout = process.take_stdout().expect("piped");
        // Nothing useful on stdout; drain it so the child can never block on it.
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await;
        });
        Ok(Self::new(process, None, false))
    }

    /// Wraps a process whose stdin takes the archive; `counter` is its stdout's reader.
    pub(crate) fn new(
        mut process: ToolProcess,
        counter: Option<tokio::task::JoinHandle<u64>>,
        early_exit_ok: bool,
    ) -> Self {
        Self {
            stdin: process.take_stdin(),
            process,
            guard: None,
            counter,
            early_exit_ok,
            exited_ok: false,
        }
    }

    /// The tool stopped reading: its exit says why.
    async fn failure(&mut self) -> DumpError {
        self.stdin = None;
        match self.process.wait().await {
            Err(e) => e,
            Ok(()) => DumpError::new(
                DumpErrorKind::Failed,
                format!("{} stopped reading its input", self.process.program()),
            )
            .with_program(self.process.program()),
        }
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
                if self.process.wait().await.is_ok() {
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
        if !self.exited_ok {
            self.process.wait().await?;
        }
        let mut report = RestoreReport::default();
        if let Some(counter) = self.counter.take() {
            report = report.with_toc_entries(counter.await.unwrap_or(0));
        }
        Ok(report)
    }

    async fn abort(mut self: Box<Self>) {
        self.stdin = None;
        self.process.kill().await;
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
                DumpErrorKind::CreatesDatabase,
                "the backup contains CREATE DATABASE (made with pg_dump --create)",
            ));
        }
        Ok(())
    }
}

/// `jobs > 1`: spool to a private temp file, run `pg_restore -j N` on it at `finish`.
#[derive(Debug)]
struct Spool {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    target: ConnConfig,
    tool: Tool,
    opts: RestoreOptions,
    /// Where the archive's data offsets belong, written into the spool before pg_restore
    /// reads it (see [`crate::offsets`]).
    offsets: DataOffsets,
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
            target: r.target.clone(),
            tool: tool.clone(),
            opts: opts.clone(),
            offsets: DataOffsets::new(),
        })
    }

    /// Sets the data offsets that pg_dump could not write to its pipe, so each
    /// `pg_restore -j` worker seeks straight to its table instead of scanning the file.
    async fn set_data_offsets(&mut self) -> Result<(), DumpError> {
        let patches = std::mem::take(&mut self.offsets).finish();
        if patches.is_empty() {
            tracing::debug!("spool: data offsets left unset (archive layout not followed)");
            return Ok(());
        }
        let path = self.path.clone();
        let n = patches.len();
        tokio::task::spawn_blocking(move || patches.apply(&path))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r)
            .map_err(|e| {
                DumpError::new(
                    DumpErrorKind::Io,
                    format!(
                        "writing data offsets into spool file {}: {e}",
                        self.path.display()
                    ),
                )
            })?;
        tracing::debug!(entries = n, "spool: data offsets set");
        Ok(())
    }
}

#[async_trait]
impl RestoreSink for Spool {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError> {
        self.offsets.feed(&chunk);
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
        if let Err(e) = self.set_data_offsets().await {
            let _ = tokio::fs::remove_file(&self.path).await;
            return Err(e);
        }
        let list_file = self.path.with_extension("list");
        if self.opts.is_selective() {
            let checked = match crate::selection::list(&self.tool, &self.path).await {
                Ok(text) => crate::selection::select(&crate::toc::Toc::parse(&text), &self.opts),
                Err(e) => Err(e),
            };
            let written = match checked {
                Ok(sel) => crate::selection::write_list(&list_file, &sel.list).await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                let _ = tokio::fs::remove_file(&self.path).await;
                return Err(e);
            }
        }
        let mut cmd = process::command(&self.tool, Some(&self.target));
        restore_args(&mut cmd, &self.target, &self.opts);
        if self.opts.is_selective() {
            cmd.arg("--use-list").arg(&list_file);
        }
        cmd.arg(format!("--jobs={}", self.opts.jobs))
            .arg("--exit-on-error");
        if self.opts.jobs <= 1 {
            cmd.arg("--single-transaction");
        }
        cmd.arg(&self.path);
        let res = match ToolProcess::spawn(cmd, "pg_restore", Pipes::NONE) {
            Ok(mut p) => p.wait().await,
            Err(e) => Err(e),
        };
        let _ = tokio::fs::remove_file(&self.path).await;
        let _ = tokio::fs::remove_file(&list_file).await;
        res.map(|()| RestoreReport::default())
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

/// A new private (0700) directory `<prefix>-<random>` under `dir`.
pub(crate) fn private_dir(dir: &std::path::Path, prefix: &str) -> Result<PathBuf, DumpError> {
    use std::os::unix::fs::DirBuilderExt;
    let mut rnd = [0u8; 8];
    let _ = getrandom::fill(&mut rnd);
    let name: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("{prefix}-{name}"));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&path)
        .map_err(|e| {
            DumpError::new(
                DumpErrorKind::Io,
                format!("cannot create a spool directory in {}: {e}", dir.display()),
            )
        })?;
    Ok(path)
}

/// A directory-format restore: files are received into a private spool directory, then
/// `pg_restore -j N` runs on it (one job: in one transaction). The spool is removed in every
/// case, and a target database the restore created is dropped unless it completed.
#[derive(Debug)]
struct SpoolDir {
    parent: PathBuf,
    dir: PathBuf,
    target: ConnConfig,
    tool: Tool,
    opts: RestoreOptions,
    created: Option<CreatedDatabase>,
    name: String,
}

/// Whether `name` is a plain file name pg_dump writes (`toc.dat`, `3345.dat`): no path.
fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
}

#[async_trait]
impl DirectorySink for SpoolDir {
    async fn file(&self, name: &str) -> Result<Box<dyn RestoreSink>, DumpError> {
        if !plain_file_name(name) {
            return Err(DumpError::new(
                DumpErrorKind::Refused,
                format!("refusing archive file name {name:?}: not a plain file name"),
            ));
        }
        let path = self.dir.join(name);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .await
            .map_err(|e| {
                DumpError::new(
                    DumpErrorKind::Io,
                    format!("cannot create spool file {}: {e}", path.display()),
                )
            })?;
        Ok(Box::new(FileSink { path, file }))
    }

    async fn needed(&self) -> Result<Option<Vec<String>>, DumpError> {
        if !self.opts.is_selective() {
            return Ok(None);
        }
        let text = crate::selection::list(&self.tool, &self.dir).await?;
        let sel = crate::selection::select(&crate::toc::Toc::parse(&text), &self.opts)?;
        crate::selection::write_list(&self.parent.join("restore.list"), &sel.list).await?;
        Ok(Some(
            sel.data_ids.iter().map(|id| format!("{id}.dat")).collect(),
        ))
    }

    async fn finish(mut self: Box<Self>) -> Result<RestoreReport, DumpError> {
        let mut cmd = process::command(&self.tool, Some(&self.target));
        restore_args(&mut cmd, &self.target, &self.opts);
        cmd.arg("--exit-on-error");
        if self.opts.is_selective() {
            cmd.arg("--use-list").arg(self.parent.join("restore.list"));
        }
        if self.opts.jobs > 1 {
            cmd.arg(format!("--jobs={}", self.opts.jobs));
        } else {
            cmd.arg("--single-transaction");
        }
        cmd.arg(&self.dir);
        let res = match ToolProcess::spawn(cmd, "pg_restore", Pipes::NONE) {
            Ok(mut p) => p.wait().await,
            Err(e) => Err(e),
        };
        let _ = tokio::fs::remove_dir_all(&self.parent).await;
        let created = self.created.take();
        match res {
            Ok(()) => {
                let was_created = created.is_some();
                if let Some(db) = created {
                    db.keep();
                }
                Ok(RestoreReport::new(
                    self.name.clone(),
                    was_created,
                    self.tool.version.clone(),
                ))
            }
            Err(e) => {
                if let Some(db) = created {
                    db.drop_now().await;
                }
                Err(e)
            }
        }
    }

    async fn abort(mut self: Box<Self>) {
        let _ = tokio::fs::remove_dir_all(&self.parent).await;
        if let Some(db) = self.created.take() {
            db.drop_now().await;
        }
    }
}

impl Drop for SpoolDir {
    fn drop(&mut self) {
        // Never leave a plaintext copy of a dump behind (the created database drops itself).
        let _ = std::fs::remove_dir_all(&self.parent);
    }
}

/// One file of a directory archive being received.
#[derive(Debug)]
struct FileSink {
    path: PathBuf,
    file: tokio::fs::File,
}

#[async_trait]
impl RestoreSink for FileSink {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError> {
        self.file.write_all(&chunk).await.map_err(|e| {
            DumpError::new(
                DumpErrorKind::Io,
                format!("writing spool file {}: {e}", self.path.display()),
            )
        })
    }

    async fn finish(mut self: Box<Self>) -> Result<RestoreReport, DumpError> {
        self.file.flush().await.map_err(|e| {
            DumpError::new(
                DumpErrorKind::Io,
                format!("writing spool file {}: {e}", self.path.display()),
            )
        })?;
        Ok(RestoreReport::default())
    }

    async fn abort(self: Box<Self>) {
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}
