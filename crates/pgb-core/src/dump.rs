//! The dumper and restorer contracts (implemented by `pgb-postgres` with pg_dump, pg_restore
//! and psql, and by the testkit's fakes).

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
}

impl ArchiveFormat {
    /// File-name suffix before compression.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Custom => "dump",
            Self::Plain => "sql",
        }
    }
}

impl fmt::Display for ArchiveFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Custom => "custom",
            Self::Plain => "plain",
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
    /// The archive would do something not allowed without a flag (e.g. CREATE DATABASE).
    Refused,
    /// The archive is unreadable (table of contents check failed).
    BadArchive,
    /// I/O with the child process.
    Io,
}

/// The one error type of the [`Dumper`] and [`Restorer`] contracts.
///
/// `Display` is one line; `stderr_tail` keeps the tool's last stderr lines for the operator.
/// Neither ever contains a password.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DumpError {
    kind: DumpErrorKind,
    message: String,
    stderr_tail: Option<String>,
}

impl DumpError {
    /// Builds an error.
    pub fn new(kind: DumpErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            stderr_tail: None,
        }
    }

    /// Attaches the tool's last stderr lines.
    pub fn with_stderr(mut self, tail: impl Into<String>) -> Self {
        let tail = tail.into();
        self.stderr_tail = (!tail.trim().is_empty()).then_some(tail);
        self
    }

    /// The kind, for decisions and exit codes.
    pub fn kind(&self) -> DumpErrorKind {
        self.kind
    }

    /// The tool's last stderr lines, if any.
    pub fn stderr_tail(&self) -> Option<&str> {
        self.stderr_tail.as_deref()
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
        }
    }
}

/// Produces a logical dump as a stream.
///
/// # Contract
///
/// - [`Dumper::prepare`] checks everything it can (tool present and new enough, server
///   reachable, credentials, database exists) and starts nothing that writes.
/// - [`Dumper::start`] spawns the dump; the returned stream yields `Ok(None)` **only** after the
///   tool exited successfully; any failure (non-zero exit, signal, I/O) is an `Err`.
/// - Secrets never appear in argv, `Debug`, errors or logs.
///
/// # Cancellation
///
/// Dropping a [`DumpStream`] kills the child process.
#[async_trait]
pub trait Dumper: fmt::Debug + Send + Sync + 'static {
    /// Preflight: connect, check the database and choose a tool.
    ///
    /// # Errors
    /// `ToolNotFound`, `VersionMismatch`, `Unreachable`, `AuthFailed`, `DatabaseNotFound`,
    /// `Connection`.
    async fn prepare(&self) -> Result<DumpSource, DumpError>;

    /// Starts the dump described by `source` (from [`Dumper::prepare`]).
    ///
    /// # Errors
    /// `ToolNotFound` or `Io` if the process cannot be spawned.
    async fn start(&self, source: &DumpSource) -> Result<Box<dyn DumpStream>, DumpError>;
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

/// What a restore should do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// The archive's format.
    pub format: ArchiveFormat,
    /// The major version of the pg_dump that wrote the archive.
    pub archive_major: u32,
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
}

impl RestoreOptions {
    /// Defaults: single job, no clean, no owner, no privileges.
    pub fn new(format: ArchiveFormat, archive_major: u32) -> Self {
        Self {
            format,
            archive_major,
            clean: false,
            jobs: 1,
            keep_owner: false,
            keep_privileges: false,
            allow_create: false,
            verify_first: true,
        }
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
        }
    }

    /// Sets the table-of-contents count.
    pub fn with_toc_entries(mut self, n: u64) -> Self {
        self.toc_entries = Some(n);
        self
    }
}

/// Restores archives into a database, and checks archives.
///
/// # Contract
///
/// - [`Restorer::begin`] does every check that needs no archive bytes (tool version against
///   `archive_major`, target reachable, created if missing, refused if it has tables and
///   `clean` is off) before returning a sink.
/// - The caller writes the plaintext archive into the sink and calls
///   [`RestoreSink::finish`] **only after** it verified the stored checksum; until `finish`,
///   nothing is committed in the target (single transaction, or a spooled file for `jobs > 1`).
/// - [`RestoreSink::abort`] rolls everything back: kills the tool, removes spooled files and
///   drops a database that `begin` created.
#[async_trait]
pub trait Restorer: fmt::Debug + Send + Sync + 'static {
    /// Prepares the target and starts the restore.
    ///
    /// # Errors
    /// `ToolNotFound`, `VersionMismatch`, `Unreachable`, `AuthFailed`, `Connection`,
    /// `TargetNotEmpty`.
    async fn begin(&self, opts: &RestoreOptions) -> Result<Box<dyn RestoreSink>, DumpError>;

    /// Starts a table-of-contents check of an archive (`pg_restore --list`); touches no
    /// database.
    ///
    /// # Errors
    /// `ToolNotFound`, `VersionMismatch`.
    async fn check_archive(
        &self,
        format: ArchiveFormat,
        archive_major: u32,
    ) -> Result<Box<dyn RestoreSink>, DumpError>;
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
