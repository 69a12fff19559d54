//! pg_dump as a [`Dumper`].

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pgb_core::{
    ArchiveFormat, DumpError, DumpErrorKind, DumpSource, DumpStream, Dumper, PreparedDump,
    TableEstimate,
};
use tokio::io::AsyncReadExt;
use tokio::process::ChildStdout;

use crate::conn::ConnConfig;
use crate::process::{self, Pipes, ToolProcess};
use crate::sql;
use crate::tools::{Tool, ToolLocator};

/// One read from pg_dump's pipe takes up to half the pipe's size: large reads, while the 8-deep
/// queue into the encoder holds at most 4 MiB (peak memory stays under 32 MiB, measured at 10 GB).
const READ_CHUNK: usize = process::PIPE_SIZE / 2;
/// Reads are gathered into one chunk until it holds at least this much (or the output ended).
const GATHER: usize = READ_CHUNK / 2;
/// A last chunk smaller than this is copied out of its buffer, so a queued chunk never pins a
/// mostly empty allocation.
const SMALL_READ: usize = READ_CHUNK / 4;

/// pg_dump of one database.
///
/// - `-Fc -Z0` (custom format, uncompressed: pgb compresses once, in its pipeline) or `-Fp`;
/// - `-w`: never prompt; the password goes in the child's environment only;
/// - stderr drained concurrently; the child is killed when the stream is dropped;
/// - [`Dumper::prepare`] reads the server's major version first and picks a pg_dump at least
///   that new, failing before any write when there is none; it also records each table's
///   estimated row count ([`DumpSource::table_estimates`]). The prepared dump it returns owns
///   the chosen pg_dump: `PgDump` itself holds no state between preparing and starting.
#[derive(Debug, Clone)]
pub struct PgDump {
    conn: ConnConfig,
    locator: ToolLocator,
    format: ArchiveFormat,
    options: crate::DumpOptions,
}

impl PgDump {
    /// Dumps the database `conn` names, with tools found by `locator`.
    pub fn new(conn: ConnConfig, locator: ToolLocator) -> Self {
        Self {
            conn,
            locator,
            format: ArchiveFormat::Custom,
            options: crate::DumpOptions::new(),
        }
    }

    /// Sets the selection and pass-through options.
    pub fn with_options(mut self, options: crate::DumpOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the archive format: custom or plain (a directory-format dump is not a stream: see
    /// [`PgDumpDirectory`](crate::PgDumpDirectory)).
    pub fn with_format(mut self, format: ArchiveFormat) -> Self {
        self.format = format;
        self
    }

    /// The database it dumps: what a whole-server, directory-format or base backup of the
    /// same command line connects to.
    pub fn conn(&self) -> &ConnConfig {
        &self.conn
    }

    /// Its selection and pass-through options.
    pub fn options(&self) -> &crate::DumpOptions {
        &self.options
    }
}

/// What the server says about itself and the connected database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerInfo {
    /// `server_version_num / 10000`.
    pub(crate) major: u32,
    /// `15.4`.
    pub(crate) version: String,
    /// `current_database()`.
    pub(crate) database: String,
    /// `host:port` as the server reports it (`local:5432` over a socket).
    pub(crate) addr: String,
    /// `pg_database_size(current_database())`: an upper bound of the dump's size, for the
    /// storage writer's size hint (multipart part sizes).
    pub(crate) size: Option<u64>,
}

/// Asks the server for its major version, full version, database name and address.
pub(crate) async fn server_info(psql: &Tool, conn: &ConnConfig) -> Result<ServerInfo, DumpError> {
    let row = sql::query_rows(
        psql,
        conn,
        "select current_setting('server_version_num')::int / 10000, current_setting('server_version'), \
         current_database(), coalesce(host(inet_server_addr()), 'local') || ':' || current_setting('port'), \
         pg_database_size(current_database());",
        &[],
    )
    .await?
    .into_iter()
    .next()
    .unwrap_or_default();
    let unexpected = || {
        DumpError::new(
            DumpErrorKind::Connection,
            format!(
                "database {}: unexpected reply to the version query: {row:?}",
                conn.redacted()
            ),
        )
    };
    let [major, version, database, addr, size] =
        <[String; 5]>::try_from(row.clone()).map_err(|_| unexpected())?;
    let major = major.trim().parse().map_err(|_| unexpected())?;
    let version = version
        .split_whitespace()
        .next()
        .unwrap_or(&version)
        .to_owned();
    Ok(ServerInfo {
        major,
        version,
        database,
        addr,
        size: size.trim().parse().ok(),
    })
}

/// The server's system identifier (`pg_control_system()`, PostgreSQL 9.6+), recorded in the
/// manifest so a server's logical and physical backups are listed together. `None` (logged)
/// where the role may not call it: the backup goes on without it.
pub(crate) async fn system_identifier(psql: &Tool, conn: &ConnConfig) -> Option<u64> {
    let rows = sql::query_rows(
        psql,
        conn,
        "select system_identifier::text from pg_control_system();",
        &[],
    )
    .await;
    match rows {
        Ok(rows) => rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .and_then(|v| v.trim().parse().ok()),
        Err(e) => {
            tracing::info!(error = %e, "the server's system identifier cannot be read; the backup is listed under its address only");
            None
        }
    }
}

/// Ordinary and partitioned tables of the connected database (not the system's, not an
/// extension's, not temporary), with `reltuples` (-1: never vacuumed or analyzed).
const TABLE_ESTIMATES: &str = "select n.nspname, c.relname, c.reltuples::bigint \
     from pg_class c join pg_namespace n on n.oid = c.relnamespace \
     where c.relkind in ('r', 'p') and c.relpersistence <> 't' \
     and n.nspname <> 'information_schema' and n.nspname not like 'pg\\_%' \
     and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass \
                     and d.objid = c.oid and d.deptype = 'e') \
     order by n.nspname collate \"C\", c.relname collate \"C\";";

/// Never-analyzed tables (`reltuples` < 0) whose rows are probed at most: beyond this the
/// rest stay unknown, so a database of many thousands of fresh tables is not scanned.
const MAX_ROW_PROBES: usize = 1000;

/// Whether each never-analyzed table (`reltuples` < 0, the first [`MAX_ROW_PROBES`] by name)
/// holds a row: one `LIMIT 1` probe per table (`ONLY` for ordinary tables, the whole tree for a
/// partitioned one), all in one query bounded by a statement timeout.
const ROW_PROBES: &str = "set statement_timeout = '60s';\n\
     select n.nspname, c.relname, \
     (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from (select 1 from %s %I.%I limit 1) x', \
        case when c.relkind = 'p' then '' else 'only' end, n.nspname, c.relname), false, true, '')))[1]::text::int > 0 \
     from pg_class c join pg_namespace n on n.oid = c.relnamespace \
     where c.relkind in ('r', 'p') and c.relpersistence <> 't' and c.reltuples < 0 \
     and n.nspname <> 'information_schema' and n.nspname not like 'pg\\_%' \
     and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass \
                     and d.objid = c.oid and d.deptype = 'e') \
     order by n.nspname collate \"C\", c.relname collate \"C\" limit :probes;";

/// Each table's estimated row count; for never-analyzed tables also whether they hold a row
/// (probed; a failed or timed-out probe leaves them unknown and is logged, never failing the
/// backup).
pub(crate) async fn table_estimates(
    psql: &Tool,
    conn: &ConnConfig,
) -> Result<Vec<TableEstimate>, DumpError> {
    let rows = sql::query_rows(psql, conn, TABLE_ESTIMATES, &[]).await?;
    let mut estimates = rows
        .into_iter()
        .map(|row| match <[String; 3]>::try_from(row) {
            Ok([schema, name, rows]) => {
                let rows: i64 = rows.trim().parse().map_err(|_| {
                    DumpError::new(
                        DumpErrorKind::Connection,
                        format!("unexpected row estimate {rows:?} for table {schema}.{name}"),
                    )
                })?;
                Ok(TableEstimate::new(schema, name, u64::try_from(rows).ok()))
            }
            Err(row) => Err(DumpError::new(
                DumpErrorKind::Connection,
                format!("unexpected reply to the table query: {row:?}"),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if estimates.iter().any(|t| t.rows.is_none()) {
        probe_rows(psql, conn, &mut estimates).await;
    }
    Ok(estimates)
}

/// Fills [`TableEstimate::has_rows`] of never-analyzed tables.
async fn probe_rows(psql: &Tool, conn: &ConnConfig, estimates: &mut [TableEstimate]) {
    let limit = MAX_ROW_PROBES.to_string();
    let rows = match sql::query_rows(psql, conn, ROW_PROBES, &[("probes", &limit)]).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "cannot probe never-analyzed tables for rows; a drill will not check them");
            return;
        }
    };
    let mut probed = 0usize;
    for row in rows {
        let Ok([schema, name, has]) = <[String; 3]>::try_from(row) else {
            continue;
        };
        if let Some(t) = estimates
            .iter_mut()
            .find(|t| t.schema == schema && t.name == name && t.rows.is_none())
        {
            t.has_rows = Some(has == "t");
            probed += 1;
        }
    }
    let unknown = estimates.iter().filter(|t| t.held_rows().is_none()).count();
    if unknown > 0 {
        tracing::info!(
            probed,
            unknown,
            "never-analyzed tables left unprobed; a drill will not check them for rows"
        );
    }
}

/// What every dump's preflight finds: the server, the database, and a dump `program` at least
/// as new as the server.
#[derive(Debug)]
pub(crate) struct Preflight {
    pub(crate) psql: Tool,
    pub(crate) tool: Tool,
    pub(crate) source: DumpSource,
}

/// Connects, reads the server's version and picks `program` (pg_dump, pg_dumpall) for it.
pub(crate) async fn preflight(
    locator: &ToolLocator,
    conn: &ConnConfig,
    program: &str,
    format: ArchiveFormat,
) -> Result<Preflight, DumpError> {
    let psql = locator.pick("psql", 0, "the client").await?;
    let info = server_info(&psql, conn).await?;
    // Name the server as the URL does; without a host in the URL (PG* variables, socket)
    // use the address the server reports, so the backup set is still identified.
    let server = if conn.has_host() {
        conn.server()
    } else {
        info.addr.clone()
    };
    let tool = locator
        .pick(
            program,
            info.major,
            &format!("the server ({})", info.version),
        )
        .await?;
    tracing::info!(program, path = %tool.path.display(), version = %tool.version, server = %info.version, "dump tool chosen");
    let source = DumpSource::new(
        info.database,
        server,
        info.version,
        tool.version.clone(),
        tool.major,
        format,
    )
    .with_size_estimate(info.size)
    .with_system_identifier(system_identifier(&psql, conn).await);
    Ok(Preflight { psql, tool, source })
}

#[async_trait]
impl Dumper for PgDump {
    async fn prepare(&self) -> Result<Box<dyn PreparedDump>, DumpError> {
        if !matches!(self.format, ArchiveFormat::Custom | ArchiveFormat::Plain) {
            return Err(DumpError::new(
                DumpErrorKind::Refused,
                format!("the {} format cannot be dumped as a stream", self.format),
            ));
        }
        let p = preflight(&self.locator, &self.conn, "pg_dump", self.format).await?;
        let estimates = table_estimates(&p.psql, &self.conn).await?;
        // Last of the preflight, so the heads are read moments before pg_dump starts.
        let heads = crate::migrations::scan(&p.psql, &self.conn, self.options.migrations()).await;
        Ok(Box::new(PreparedPgDump {
            source: p
                .source
                .with_table_estimates(estimates)
                .with_options(self.options.args().to_vec())
                .with_migrations(heads.heads),
            tool: p.tool,
            conn: self.conn.clone(),
        }))
    }
}

/// A pg_dump that passed preflight: it owns the tool chosen for the server.
#[derive(Debug)]
struct PreparedPgDump {
    source: DumpSource,
    tool: Tool,
    conn: ConnConfig,
}

#[async_trait]
impl PreparedDump for PreparedPgDump {
    fn source(&self) -> &DumpSource {
        &self.source
    }

    async fn start(self: Box<Self>) -> Result<Box<dyn DumpStream>, DumpError> {
        let mut cmd = process::command(&self.tool, Some(&self.conn));
        cmd.arg("-w");
        match self.source.format {
            ArchiveFormat::Plain => cmd.arg("-Fp"),
            // `prepare` accepts only custom and plain.
            _ => cmd.args(["-Fc", "-Z0"]),
        };
        cmd.args(&self.source.options);
        cmd.arg(format!("--dbname={}", self.conn.redacted()));
        let process = ToolProcess::spawn(cmd, "pg_dump", Pipes::STDOUT)?;
        Ok(Box::new(PgDumpStream::new(process)))
    }
}

/// A dump tool's stdout as a [`DumpStream`]: ends only when the tool exited 0.
#[derive(Debug)]
pub(crate) struct PgDumpStream {
    process: ToolProcess,
    stdout: Option<ChildStdout>,
}

impl PgDumpStream {
    /// Streams `process`'s stdout (spawned with [`Pipes::STDOUT`]).
    pub(crate) fn new(mut process: ToolProcess) -> Self {
        let stdout = process.take_stdout_wide();
        Self { process, stdout }
    }
}

#[async_trait]
impl DumpStream for PgDumpStream {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, DumpError> {
        if let Some(stdout) = self.stdout.as_mut() {
            // pg_dump writes a few KiB at a time, so one read returns about 12 KiB on average:
            // reads are gathered up to GATHER, so the pipeline's stages hand over tens of
            // chunks per 10 MB instead of a thousand (each a wake-up of two threads).
            let mut buf = BytesMut::with_capacity(READ_CHUNK);
            let mut ended = false;
            while buf.len() < GATHER {
                let n = stdout.read_buf(&mut buf).await.map_err(|e| {
                    let program = self.process.program();
                    DumpError::new(DumpErrorKind::Io, format!("reading {program} output: {e}"))
                        .with_program(program)
                })?;
                if n == 0 {
                    ended = true;
                    break;
                }
            }
            if ended {
                self.stdout = None;
            }
            if buf.len() >= SMALL_READ {
                return Ok(Some(buf.freeze()));
            }
            if !buf.is_empty() {
                return Ok(Some(Bytes::copy_from_slice(&buf)));
            }
        }
        // End of output: only a clean exit makes it the end of a dump.
        self.process.wait().await.map(|()| None)
    }

    async fn abort(mut self: Box<Self>) {
        self.stdout = None;
        self.process.kill().await;
    }
}
