//! `pg_basebackup` as a [`PhysicalDumper`]: a base backup of the whole cluster as one tar on
//! stdout, with PostgreSQL's `backup_manifest` inside.
//!
//! `pg_basebackup -D - -Ft -X none|fetch -c fast --manifest-checksums=SHA256 -d <conninfo>`:
//! writing the tar to stdout is what lets the pipeline compress, hash, encrypt and upload it
//! like a dump, and pg_basebackup then injects `backup_manifest` into the tar itself (checked
//! with pg_basebackup 15 and 17). Stdout cannot take more than one tablespace nor streamed
//! WAL (`-X stream`), so a server with tablespaces besides `pg_default`/`pg_global` is
//! refused at preflight, and the WAL is either left to the archive (`-X none`: the server
//! waits until the backup's last segment is archived) or fetched into the tar at the end
//! (`-X fetch`). pg_basebackup rather than the replication protocol spoken directly: the
//! tool is PostgreSQL's own reference implementation of the protocol across versions, and is
//! chosen version-matched exactly like pg_dump.

use async_trait::async_trait;
use pgb_core::physical::{
    IncrementalParent, PhysicalDumper, PhysicalSource, PreparedPhysical, WalMode,
};
use pgb_core::{ArchiveFormat, DumpError, DumpErrorKind, DumpSource, DumpStream, PreparedDump};

use crate::conn::ConnConfig;
use crate::dump::PgDumpStream;
use crate::process::{self, Pipes, ToolProcess};
use crate::sql;
use crate::tools::{Tool, ToolLocator, classify_connect_error};

/// The oldest server a physical backup supports: `backup_manifest` came with PostgreSQL 13.
const MIN_MAJOR: u32 = 13;

/// What preflight asks the server, in one query.
const SETTINGS: &str = "select current_setting('server_version_num')::int / 10000, \
     current_setting('server_version'), \
     coalesce(host(inet_server_addr()), 'local') || ':' || current_setting('port'), \
     current_setting('wal_level'), current_setting('max_wal_senders'), \
     current_setting('archive_mode'), \
     (select setting from pg_settings where name = 'wal_segment_size'), \
     (select rolreplication or rolsuper from pg_roles where rolname = current_user), \
     current_user, \
     coalesce((select string_agg(spcname, ', ' order by spcname) from pg_tablespace \
               where spcname not in ('pg_default', 'pg_global')), ''), \
     (select sum(pg_database_size(oid)) from pg_database \
      where has_database_privilege(oid, 'CONNECT'));";

/// A physical base backup of the cluster `conn` reaches, with `pg_basebackup` found by
/// `locator` (at least the server's major version).
#[derive(Debug, Clone)]
pub struct PgBaseBackup {
    conn: ConnConfig,
    locator: ToolLocator,
    wal: WalMode,
    incremental: bool,
}

impl PgBaseBackup {
    /// A backup of the cluster `conn` reaches, its WAL in the archive.
    pub fn new(conn: ConnConfig, locator: ToolLocator) -> Self {
        Self {
            conn,
            locator,
            wal: WalMode::Archive,
            incremental: false,
        }
    }

    /// Asks for an incremental backup (PostgreSQL 17+) on top of the repository's newest
    /// usable base backup of the cluster (a full one when there is none).
    pub fn with_incremental(mut self, yes: bool) -> Self {
        self.incremental = yes;
        self
    }

    /// Sets where the backup's WAL goes.
    pub fn with_wal(mut self, wal: WalMode) -> Self {
        self.wal = wal;
        self
    }
}

fn not_configured(what: impl Into<String>) -> DumpError {
    DumpError::new(DumpErrorKind::NotConfigured, what)
}

/// The server's answers to [`SETTINGS`].
struct Settings {
    major: u32,
    version: String,
    addr: String,
    wal_level: String,
    max_wal_senders: u32,
    archive_mode: String,
    segment_size: u64,
    replication: bool,
    user: String,
    tablespaces: String,
    size: Option<u64>,
}

async fn settings(psql: &Tool, conn: &ConnConfig) -> Result<Settings, DumpError> {
    let row = sql::query_rows(psql, conn, SETTINGS, &[])
        .await?
        .into_iter()
        .next()
        .unwrap_or_default();
    let unexpected = || {
        DumpError::new(
            DumpErrorKind::Connection,
            format!(
                "server {}: unexpected reply to the settings query: {row:?}",
                conn.redacted()
            ),
        )
    };
    let [
        major,
        version,
        addr,
        wal_level,
        senders,
        archive_mode,
        segment,
        replication,
        user,
        tablespaces,
        size,
    ] = <[String; 11]>::try_from(row.clone()).map_err(|_| unexpected())?;
    Ok(Settings {
        major: major.trim().parse().map_err(|_| unexpected())?,
        version: version
            .split_whitespace()
            .next()
            .unwrap_or(&version)
            .to_owned(),
        addr,
        wal_level,
        max_wal_senders: senders.trim().parse().map_err(|_| unexpected())?,
        archive_mode,
        segment_size: segment.trim().parse().map_err(|_| unexpected())?,
        replication: replication == "t",
        user,
        tablespaces,
        size: size.trim().parse().ok(),
    })
}

/// `IDENTIFY_SYSTEM` over a replication connection: the system identifier and timeline, and
/// the proof that the role may open a replication connection from here (`pg_hba.conf`).
pub(crate) async fn identify(
    psql: &Tool,
    conn: &ConnConfig,
    server: &str,
) -> Result<(u64, u32), DumpError> {
    let repl = conn.replication();
    let rows = match sql::query_rows(psql, &repl, "IDENTIFY_SYSTEM;", &[]).await {
        Ok(rows) => rows,
        Err(e) => {
            let tail = e.stderr_tail().unwrap_or_default().to_owned();
            if tail.contains("pg_hba.conf") {
                return Err(not_configured(format!(
                    "server {server} refuses replication connections from this client: pg_hba.conf has no `replication` line for it"
                ))
                .with_stderr(tail));
            }
            if tail.contains("number of requested standby connections exceeds") {
                return Err(not_configured(format!(
                    "server {server} has no free WAL sender (all max_wal_senders are in use)"
                ))
                .with_stderr(tail));
            }
            if e.exit() == Some(pgb_core::ToolExit::Code(2)) || e.kind() != DumpErrorKind::Failed {
                return Err(classify_connect_error(
                    &tail,
                    &format!("server {server} (replication)"),
                ));
            }
            return Err(e);
        }
    };
    let row = rows.into_iter().next().unwrap_or_default();
    let bad = || {
        DumpError::new(
            DumpErrorKind::Connection,
            format!("server {server}: unexpected reply to IDENTIFY_SYSTEM: {row:?}"),
        )
    };
    let sysid = row
        .first()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(bad)?;
    let tli = row
        .get(1)
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(bad)?;
    Ok((sysid, tli))
}

#[async_trait]
impl PhysicalDumper for PgBaseBackup {
    fn wal(&self) -> WalMode {
        self.wal
    }

    fn incremental(&self) -> bool {
        self.incremental
    }

    async fn prepare(&self) -> Result<Box<dyn PreparedPhysical>, DumpError> {
        let psql = self.locator.pick("psql", 0, "the client").await?;
        let s = settings(&psql, &self.conn).await?;
        let server = if self.conn.has_host() {
            self.conn.server()
        } else {
            s.addr.clone()
        };
        if s.major < MIN_MAJOR {
            return Err(not_configured(format!(
                "server {server} is PostgreSQL {}: physical backups need PostgreSQL {MIN_MAJOR} or newer (backup_manifest)",
                s.version
            )));
        }
        if s.wal_level == "minimal" {
            return Err(not_configured(format!(
                "server {server} has wal_level = minimal: a physical backup needs wal_level = replica (or logical); set it and restart PostgreSQL"
            )));
        }
        if s.max_wal_senders == 0 {
            return Err(not_configured(format!(
                "server {server} has max_wal_senders = 0: a physical backup needs a WAL sender; set max_wal_senders = 10 and restart PostgreSQL"
            )));
        }
        if !s.replication {
            return Err(not_configured(format!(
                "role {} on server {server} has neither REPLICATION nor SUPERUSER: a physical backup needs `ALTER ROLE {} REPLICATION`",
                s.user,
                sql::quote_ident(&s.user)
            )));
        }
        if self.wal == WalMode::Archive && s.archive_mode == "off" {
            return Err(not_configured(format!(
                "server {server} has archive_mode = off: a backup whose WAL goes to the archive needs archive_mode = on and an archive_command (or include the WAL in the backup)"
            )));
        }
        if !s.tablespaces.is_empty() {
            return Err(not_configured(format!(
                "server {server} has tablespaces besides pg_default and pg_global ({}): pgb's physical backups stream one tablespace only",
                s.tablespaces
            )));
        }
        let (system_identifier, timeline) = identify(&psql, &self.conn, &server).await?;
        let tool = self
            .locator
            .pick(
                "pg_basebackup",
                s.major,
                &format!("the server ({})", s.version),
            )
            .await?;
        tracing::info!(path = %tool.path.display(), version = %tool.version, server = %s.version, system_identifier, timeline, "base backup tool chosen");
        let dump = DumpSource::new(
            "*",
            server,
            s.version,
            tool.version.clone(),
            tool.major,
            ArchiveFormat::Physical,
        )
        .with_size_estimate(s.size);
        Ok(Box::new(PreparedBaseBackup {
            source: PhysicalSource::new(
                dump,
                system_identifier,
                timeline,
                s.segment_size,
                s.major,
                self.wal,
            ),
            tool,
            conn: self.conn.clone(),
            psql,
            parent_manifest: None,
        }))
    }
}

/// A base backup that passed preflight: it owns the pg_basebackup chosen for the server.
#[derive(Debug)]
struct PreparedBaseBackup {
    source: PhysicalSource,
    tool: Tool,
    conn: ConnConfig,
    psql: Tool,
    /// The parent's `backup_manifest`, for an incremental backup.
    parent_manifest: Option<bytes::Bytes>,
}

#[async_trait]
impl PreparedPhysical for PreparedBaseBackup {
    fn physical(&self) -> &PhysicalSource {
        &self.source
    }

    async fn incremental(
        mut self: Box<Self>,
        parent: Option<IncrementalParent>,
    ) -> Result<Box<dyn PreparedPhysical>, DumpError> {
        crate::incremental::check(
            &self.psql,
            &self.conn,
            &self.source.dump.server,
            self.source.server_major,
            parent.as_ref(),
        )
        .await?;
        self.parent_manifest = parent.map(|p| p.backup_manifest);
        Ok(self)
    }
}

#[async_trait]
impl PreparedDump for PreparedBaseBackup {
    fn source(&self) -> &DumpSource {
        &self.source.dump
    }

    async fn start(self: Box<Self>) -> Result<Box<dyn DumpStream>, DumpError> {
        let mut cmd = process::command(&self.tool, Some(&self.conn));
        cmd.args(["-D", "-", "-Ft", "-c", "fast", "-w"])
            .arg("--manifest-checksums=SHA256")
            .arg(match self.source.wal {
                WalMode::Included => "-Xfetch",
                _ => "-Xnone",
            })
            .arg(format!("--label=pgb {}", self.source.system_identifier))
            .arg(format!("--dbname={}", self.conn.redacted()));
        let Some(parent) = self.parent_manifest else {
            let process = ToolProcess::spawn(cmd, "pg_basebackup", Pipes::STDOUT)?;
            return Ok(Box::new(PgDumpStream::new(process)));
        };
        // The parent's backup_manifest through stdin: pg_basebackup reads it whole and
        // uploads it (UPLOAD_MANIFEST) before the backup starts.
        cmd.arg("--incremental=/dev/stdin");
        let mut process = ToolProcess::spawn(cmd, "pg_basebackup", Pipes::BOTH)?;
        if let Some(mut stdin) = process.take_stdin() {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt as _;
                if let Err(e) = stdin.write_all(&parent).await {
                    tracing::warn!(error = %e, "writing the parent's backup_manifest to pg_basebackup");
                }
            });
        }
        Ok(Box::new(PgDumpStream::new(process)))
    }
}
