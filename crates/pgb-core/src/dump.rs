//! The dumper, restorer and archive-checker contracts (implemented by `pgb-postgres` with
//! pg_dump, pg_restore and psql, and by the testkit's fakes).

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The archive format pg_dump writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ArchiveFormat {
    /// `pg_dump -Fc`: restored with pg_restore (selective, parallel with a file).
    #[default]
    Custom,
    /// `pg_dump -Fp`: SQL text, restored with psql.
    Plain,
    /// `pg_dump -Fd`: a directory of files (a table of contents and one file per table's
    /// data), dumped and restored in parallel; never a single stream.
    Directory,
    /// A physical base backup of a whole cluster (a tar of its data directory), restored
    /// into a data directory, never by pg_restore. A pgb older than physical backups cannot
    /// parse this value, so it lists such a backup as unusable and never restores it as a dump.
    Physical,
}

impl ArchiveFormat {
    /// File-name suffix before compression.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Custom => "dump",
            Self::Plain => "sql",
            Self::Directory => "dir",
            Self::Physical => "tar",
        }
    }
}

impl fmt::Display for ArchiveFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Custom => "custom",
            Self::Plain => "plain",
            Self::Directory => "directory",
            Self::Physical => "physical",
        })
    }
}

/// Why a dump, restore or archive check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DumpErrorKind {
    /// No suitable pg_dump / pg_restore / psql binary.
    ToolNotFound,
    /// The available tools are too old for the server or the archive.
    VersionMismatch,
    /// The server could not be reached.
    Unreachable,
    /// The server refused the credentials.
    AuthFailed,
    /// The database does not exist.
    DatabaseNotFound,
    /// Other connection-time errors (bad URL, TLS, permissions).
    Connection,
    /// The tool exited non-zero or was killed while working.
    Failed,
    /// The dump tool exited successfully but produced no output.
    Empty,
    /// The restore target is not safe to restore into without an explicit flag.
    TargetNotEmpty,
    /// A files restore's target directory is not empty (`--clean` replaces its content).
    DirectoryNotEmpty,
    /// The restore is refused as unsafe (e.g. a plain SQL dump into a non-empty target).
    Refused,
    /// The archive contains CREATE DATABASE (made with `pg_dump --create`) and creating
    /// databases was not allowed.
    CreatesDatabase,
    /// The archive is unreadable (table of contents check failed).
    BadArchive,
    /// I/O with the child process.
    Io,
    /// A selection (a database glob) matches nothing.
    NoMatch,
    /// Too little free space for a spool (checked before anything is written).
    NoSpace,
    /// The server's settings or the role's attributes do not allow the operation (a physical
    /// backup needs `wal_level` replica or logical, `max_wal_senders` above 0, a role with
    /// `REPLICATION`, `archive_mode` on for an archived backup, no tablespaces it cannot
    /// stream); checked before anything runs.
    NotConfigured,
}

/// How a PostgreSQL tool ended: an exit status or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ToolExit {
    /// It exited with this status.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl fmt::Display for ToolExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Code(c) => write!(f, "exited with status {c}"),
            Self::Signal(s) => write!(f, "was killed by signal {s}"),
        }
    }
}

/// The one error type of the [`Dumper`], [`Restorer`] and [`ArchiveChecker`] contracts.
///
/// `Display` is one line stating the cause, with no advice for any particular front end (the
/// binary adds hints by [`DumpErrorKind`]). The typed context says which program failed and how
/// ([`DumpError::program`], [`DumpError::exit`]), the tool's last stderr lines
/// ([`DumpError::stderr_tail`]) and, for version mismatches, both majors
/// ([`DumpError::versions`]). None of it ever contains a password.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DumpError {
    kind: DumpErrorKind,
    message: String,
    program: Option<String>,
    exit: Option<ToolExit>,
    versions: Option<(u32, u32)>,
    stderr_tail: Option<String>,
}

impl DumpError {
    /// Builds an error whose one-line `message` states the cause.
    pub fn new(kind: DumpErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            program: None,
            exit: None,
            versions: None,
            stderr_tail: None,
        }
    }

    /// A tool that ended unsuccessfully: `Failed`, with the message
    /// `"{program} {exit}: {cause}"` where the cause is the most telling line of `stderr`.
    pub fn tool_failed(
        program: impl Into<String>,
        exit: ToolExit,
        stderr: impl Into<String>,
    ) -> Self {
        let program = program.into();
        let stderr = stderr.into();
        let cause = cause_line(&stderr);
        Self::new(DumpErrorKind::Failed, format!("{program} {exit}: {cause}"))
            .with_program(program)
            .with_exit(exit)
            .with_stderr(stderr)
    }

    /// Names the program that failed (`pg_dump`, `pg_restore`, `psql`).
    pub fn with_program(mut self, program: impl Into<String>) -> Self {
        self.program = Some(program.into());
        self
    }

    /// Records how the program ended.
    pub fn with_exit(mut self, exit: ToolExit) -> Self {
        self.exit = Some(exit);
        self
    }

    /// Records a version mismatch: the major version `required` and the newest `available`.
    pub fn with_versions(mut self, required: u32, available: u32) -> Self {
        self.versions = Some((required, available));
        self
    }

    /// Attaches the tool's last stderr lines.
    pub fn with_stderr(mut self, tail: impl Into<String>) -> Self {
        let tail = tail.into();
        self.stderr_tail = (!tail.trim().is_empty()).then_some(tail);
        self
    }

    /// Prefixes the message with what was being done (`"backup 2024-...: archive check"`).
    #[must_use]
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// The same error as another kind (e.g. a failed `pg_restore --list` is a `BadArchive`).
    #[must_use]
    pub fn with_kind(mut self, kind: DumpErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// The kind, for decisions and exit codes.
    pub fn kind(&self) -> DumpErrorKind {
        self.kind
    }

    /// The program that failed, where one did.
    pub fn program(&self) -> Option<&str> {
        self.program.as_deref()
    }

    /// How the program ended, where it ran and ended unsuccessfully.
    pub fn exit(&self) -> Option<ToolExit> {
        self.exit
    }

    /// For `VersionMismatch`: the major version required and the newest one available.
    pub fn versions(&self) -> Option<(u32, u32)> {
        self.versions
    }

    /// The tool's last stderr lines, if any.
    pub fn stderr_tail(&self) -> Option<&str> {
        self.stderr_tail.as_deref()
    }
}

/// The line of a tool's stderr that best states the cause: the last `error:`/`FATAL:` line
/// (pg_dump ends with `detail: Command was: ...`, which says what, not why), else the last line.
fn cause_line(tail: &str) -> &str {
    tail.lines()
        .rev()
        .find(|l| l.contains("error:") || l.contains("FATAL:") || l.contains("ERROR:"))
        .or_else(|| tail.lines().rev().find(|l| !l.trim().is_empty()))
        .map_or("no message", str::trim)
}

/// A database table and its estimated row count when the backup was taken (`pg_class.reltuples`),
/// so that a restore drill can tell a table that held rows from one that was empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TableEstimate {
    /// The table's schema.
    pub schema: String,
    /// The table's name.
    pub name: String,
    /// The planner's estimate of its rows; `None` when the table was never vacuumed or
    /// analyzed (PostgreSQL does not know).
    pub rows: Option<u64>,
    /// Whether the table held at least one row, probed when [`rows`](Self::rows) is unknown
    /// (a never-analyzed table); `None` when not probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_rows: Option<bool>,
}

impl TableEstimate {
    /// Builds an estimate.
    pub fn new(schema: impl Into<String>, name: impl Into<String>, rows: Option<u64>) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
            rows,
            has_rows: None,
        }
    }

    /// Records whether the table held at least one row (probed).
    pub fn with_has_rows(mut self, has_rows: bool) -> Self {
        self.has_rows = Some(has_rows);
        self
    }

    /// Whether the table held rows at backup time: the probe when made, else the estimate
    /// (`None` when neither is known).
    pub fn held_rows(&self) -> Option<bool> {
        self.has_rows.or(self.rows.map(|n| n > 0))
    }
}

/// What [`Dumper::prepare`] found out before any byte is written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DumpSource {
    /// The database being dumped.
    pub database: String,
    /// The server, redacted (`host:port`, no credentials).
    pub server: String,
    /// The server's version, e.g. `15.18`.
    pub server_version: String,
    /// The dump tool's version line, e.g. `pg_dump (PostgreSQL) 17.11`.
    pub tool_version: String,
    /// The dump tool's major version (also the archive's).
    pub tool_major: u32,
    /// The archive format that will be produced.
    pub format: ArchiveFormat,
    /// Each ordinary or partitioned table of the database and its estimated row count at
    /// preflight, sorted by schema and name (empty when the dumper does not know).
    pub table_estimates: Vec<TableEstimate>,
    /// An upper bound of the plaintext dump's size when the dumper knows one (the database's
    /// size on disk): the storage writer's size hint, so multipart uploads pick a part size
    /// that fits.
    pub size_estimate: Option<u64>,
    /// The dump tool's selection and pass-through options (`--schema=app`,
    /// `--exclude-table-data=audit`), recorded in the manifest.
    pub options: Vec<String>,
    /// The database's migration heads, read at preflight (empty: none found); recorded in
    /// the manifest.
    pub migrations: Vec<crate::migration::MigrationHead>,
    /// The server's system identifier (`pg_control_system()`, fixed at `initdb`) when the
    /// dumper could read it: recorded in the manifest, so logical and physical backups of one
    /// server are listed together whatever address reached it.
    pub system_identifier: Option<u64>,
}

impl DumpSource {
    /// Builds a source description.
    pub fn new(
        database: impl Into<String>,
        server: impl Into<String>,
        server_version: impl Into<String>,
        tool_version: impl Into<String>,
        tool_major: u32,
        format: ArchiveFormat,
    ) -> Self {
        Self {
            database: database.into(),
            server: server.into(),
            server_version: server_version.into(),
            tool_version: tool_version.into(),
            tool_major,
            format,
            table_estimates: Vec::new(),
            size_estimate: None,
            options: Vec::new(),
            migrations: Vec::new(),
            system_identifier: None,
        }
    }

    /// Records the server's system identifier.
    pub fn with_system_identifier(mut self, id: Option<u64>) -> Self {
        self.system_identifier = id;
        self
    }

    /// Records the database's migration heads.
    pub fn with_migrations(mut self, heads: Vec<crate::migration::MigrationHead>) -> Self {
        self.migrations = heads;
        self
    }

    /// Records the dump tool's selection and pass-through options.
    pub fn with_options(mut self, options: Vec<String>) -> Self {
        self.options = options;
        self
    }

    /// Sets the size estimate.
    pub fn with_size_estimate(mut self, bytes: Option<u64>) -> Self {
        self.size_estimate = bytes;
        self
    }

    /// Sets the table estimates.
    pub fn with_table_estimates(mut self, estimates: Vec<TableEstimate>) -> Self {
        self.table_estimates = estimates;
        self
    }

    /// The archive this dump produces, as restorers and checkers need to know it.
    pub fn archive(&self) -> ArchiveInfo {
        ArchiveInfo::new(self.format, self.tool_major)
    }
}

/// Produces a logical dump as a stream.
///
/// # Contract
///
/// - [`Dumper::prepare`] checks everything it can (tool present and new enough, server
///   reachable, credentials, database exists) and starts nothing that writes. It returns a
///   [`PreparedDump`] that owns what it chose (the tool, the source description): the dumper
///   itself keeps no state between preparing and starting, so one dumper can prepare any
///   number of dumps, concurrently.
/// - [`PreparedDump::start`] consumes the prepared dump and spawns it; the returned stream
///   yields `Ok(None)` **only** after the tool exited successfully; any failure (non-zero exit,
///   signal, I/O) is an `Err`.
/// - Secrets never appear in argv, `Debug`, errors or logs.
///
/// # Cancellation
///
/// Dropping a [`DumpStream`] kills the child process; dropping a [`PreparedDump`] starts
/// nothing.
#[async_trait]
pub trait Dumper: fmt::Debug + Send + Sync + 'static {
    /// Preflight: connect, check the database and choose a tool.
    ///
    /// # Errors
    /// `ToolNotFound`, `VersionMismatch`, `Unreachable`, `AuthFailed`, `DatabaseNotFound`,
    /// `Connection`.
    async fn prepare(&self) -> Result<Box<dyn PreparedDump>, DumpError>;
}

/// A dump that passed preflight and is ready to start (see [`Dumper`]).
#[async_trait]
pub trait PreparedDump: fmt::Debug + Send + Sync {
    /// What will be dumped, with which tool.
    fn source(&self) -> &DumpSource;

    /// Starts the dump.
    ///
    /// # Errors
    /// `ToolNotFound` or `Io` if the process cannot be spawned.
    async fn start(self: Box<Self>) -> Result<Box<dyn DumpStream>, DumpError>;
}

/// A running dump.
#[async_trait]
pub trait DumpStream: fmt::Debug + Send {
    /// The next chunk of output; `Ok(None)` at the end, and only if the tool succeeded.
    ///
    /// # Errors
    /// `Failed` (non-zero exit or signal, with the stderr tail), `Io`.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, DumpError>;

    /// Kills the tool and waits for it, so no child is left behind.
    async fn abort(self: Box<Self>);
}

/// What a restorer or checker must know about an archive: its format and the major version of
/// the pg_dump that wrote it. The repository derives it from the backup's manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveInfo {
    /// The archive's format.
    pub format: ArchiveFormat,
    /// The major version of the pg_dump that wrote it (restore tools must be at least as new).
    pub tool_major: u32,
}

impl ArchiveInfo {
    /// Describes an archive.
    pub fn new(format: ArchiveFormat, tool_major: u32) -> Self {
        Self { format, tool_major }
    }
}

/// The user's choices for a restore. What the archive is (format, pg_dump version) is not an
/// option: the repository takes it from the backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// Drop existing objects first (`--clean --if-exists`); required for a target with tables.
    pub clean: bool,
    /// Parallel jobs; above 1 the archive is spooled to a verified temp file first.
    pub jobs: u32,
    /// Keep ownership from the dump (default off: `--no-owner`).
    pub keep_owner: bool,
    /// Keep privileges from the dump (default off: `--no-privileges`).
    pub keep_privileges: bool,
    /// Allow an archive that contains CREATE DATABASE.
    pub allow_create: bool,
    /// Read and check the stored object's sha256 before touching any database (one extra
    /// read of the object; the stream is checked again while restoring either way).
    pub verify_first: bool,
    /// Restore only these tables (`schema.table` or `table`), as pg_restore's `-n`/`-t`
    /// select them; each must be in the archive. Empty: no table selection.
    pub tables: Vec<String>,
    /// Restore only objects of these schemas (pg_restore's `-n`); each must be in the archive.
    pub schemas: Vec<String>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl RestoreOptions {
    /// Defaults: single job, no clean, no owner, no privileges, verify first.
    pub fn new() -> Self {
        Self {
            clean: false,
            jobs: 1,
            keep_owner: false,
            keep_privileges: false,
            allow_create: false,
            verify_first: true,
            tables: Vec::new(),
            schemas: Vec::new(),
        }
    }

    /// Restores only these tables (`schema.table` or `table`).
    pub fn with_tables(mut self, tables: Vec<String>) -> Self {
        self.tables = tables;
        self
    }

    /// Restores only objects of these schemas.
    pub fn with_schemas(mut self, schemas: Vec<String>) -> Self {
        self.schemas = schemas;
        self
    }

    /// Whether only part of the archive is restored.
    pub fn is_selective(&self) -> bool {
        !self.tables.is_empty() || !self.schemas.is_empty()
    }

    /// Sets `clean`.
    pub fn with_clean(mut self, clean: bool) -> Self {
        self.clean = clean;
        self
    }

    /// Sets the number of parallel jobs (at least 1).
    pub fn with_jobs(mut self, jobs: u32) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Sets `verify_first`.
    pub fn with_verify_first(mut self, yes: bool) -> Self {
        self.verify_first = yes;
        self
    }

    /// Sets `allow_create`.
    pub fn with_allow_create(mut self, allow: bool) -> Self {
        self.allow_create = allow;
        self
    }

    /// Sets `keep_owner`.
    pub fn with_keep_owner(mut self, keep: bool) -> Self {
        self.keep_owner = keep;
        self
    }

    /// Sets `keep_privileges`.
    pub fn with_keep_privileges(mut self, keep: bool) -> Self {
        self.keep_privileges = keep;
        self
    }
}

/// What a finished restore or archive check reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RestoreReport {
    /// The target database (empty for an archive check).
    pub database: String,
    /// Whether the target database was created by this restore.
    pub created: bool,
    /// Entries in the archive's table of contents, where known.
    pub toc_entries: Option<u64>,
    /// The restore tool's version line.
    pub tool_version: String,
    /// What the network did while the backup was read (filled in by the repository).
    pub storage: crate::storage::StorageStats,
    /// Stored objects downloaded, where the restore fetched only some of them (a table-level
    /// restore from a directory-format backup fetches its table of contents and the data files
    /// it needs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects_read: Option<u64>,
}

impl RestoreReport {
    /// Builds a report.
    pub fn new(
        database: impl Into<String>,
        created: bool,
        tool_version: impl Into<String>,
    ) -> Self {
        Self {
            database: database.into(),
            created,
            toc_entries: None,
            tool_version: tool_version.into(),
            storage: crate::storage::StorageStats::default(),
            objects_read: None,
        }
    }

    /// Sets the table-of-contents count.
    pub fn with_toc_entries(mut self, n: u64) -> Self {
        self.toc_entries = Some(n);
        self
    }
}

/// Restores archives into a database.
///
/// # Contract
///
/// - [`Restorer::begin`] does every check that needs no archive bytes (tool version against
///   the archive's, target reachable, created if missing, refused if it has tables and
///   `clean` is off) before returning a sink.
/// - The caller writes the plaintext archive into the sink and calls
///   [`RestoreSink::finish`] **only after** it verified the stored checksum; until `finish`,
///   nothing is committed in the target (single transaction, or a spooled file for `jobs > 1`).
/// - [`RestoreSink::abort`] rolls everything back: kills the tool, removes spooled files and
///   drops a database that `begin` created.
///
/// # Cancellation
///
/// Dropping the sink, or the `begin` future after it created the target, has the effect of
/// [`RestoreSink::abort`]: the tool is killed and a database the restore created is dropped
/// before the drop returns (blocking briefly), so a restore cancelled by a signal leaves no
/// half-restored database behind.
#[async_trait]
pub trait Restorer: fmt::Debug + Send + Sync + 'static {
    /// Prepares the target and starts the restore of an `archive`.
    ///
    /// # Errors
    /// `ToolNotFound`, `VersionMismatch`, `Unreachable`, `AuthFailed`, `Connection`,
    /// `TargetNotEmpty`, `Refused`.
    async fn begin(
        &self,
        archive: &ArchiveInfo,
        opts: &RestoreOptions,
    ) -> Result<Box<dyn RestoreSink>, DumpError>;

    /// Prepares the target like [`Restorer::begin`] and starts the restore of a
    /// directory-format `archive`, whose files arrive one by one (see
    /// [`DirectorySink`](crate::DirectorySink)). The default refuses.
    ///
    /// # Errors
    /// As [`Restorer::begin`]; `Refused` when directory archives are not supported.
    async fn begin_directory(
        &self,
        archive: &ArchiveInfo,
        opts: &RestoreOptions,
    ) -> Result<Box<dyn crate::DirectorySink>, DumpError> {
        let _ = (archive, opts);
        Err(DumpError::new(
            DumpErrorKind::Refused,
            "this restorer cannot restore a directory-format archive",
        ))
    }

    /// Whether this restore applies nothing to the target until the whole stream was fed and
    /// its checksum matched (a spool that is restored at `finish`): then the repository skips
    /// the separate verify-first read, and download, decryption, decompression and
    /// verification overlap with writing the spool.
    fn applies_only_verified(&self, archive: &ArchiveInfo, opts: &RestoreOptions) -> bool {
        let _ = (archive, opts);
        false
    }
}

/// Checks that an archive is readable (its table of contents, for pg_dump's custom format),
/// without any database connection.
///
/// The sink is fed the plaintext archive like a restore; [`RestoreSink::finish`] reports the
/// number of table-of-contents entries where known, or `BadArchive`.
#[async_trait]
pub trait ArchiveChecker: fmt::Debug + Send + Sync + 'static {
    /// Starts a check of an `archive`.
    ///
    /// # Errors
    /// `ToolNotFound`, `VersionMismatch`.
    async fn check(&self, archive: &ArchiveInfo) -> Result<Box<dyn RestoreSink>, DumpError>;

    /// Starts a check of a directory-format `archive` whose files are `files`: the sink is fed
    /// its table of contents (`toc.dat`) and checks that it reads and that every data entry
    /// has its file among `files`. The default checks nothing.
    ///
    /// # Errors
    /// `ToolNotFound`, `VersionMismatch`.
    async fn check_directory(
        &self,
        archive: &ArchiveInfo,
        files: &[String],
    ) -> Result<Option<Box<dyn RestoreSink>>, DumpError> {
        let _ = (archive, files);
        Ok(None)
    }
}

/// Receives a plaintext archive.
#[async_trait]
pub trait RestoreSink: fmt::Debug + Send {
    /// Feeds a chunk.
    ///
    /// # Errors
    /// `Failed` if the tool died, `Refused` if the archive does something not allowed.
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError>;

    /// Completes: closes the input and waits for the tool.
    ///
    /// # Errors
    /// `Failed` / `BadArchive` with the tool's stderr tail.
    async fn finish(self: Box<Self>) -> Result<RestoreReport, DumpError>;

    /// Rolls back and cleans up.
    async fn abort(self: Box<Self>);
}
