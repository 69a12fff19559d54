//! pg_dump as a [`Dumper`].

use std::process::Stdio;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pgb_core::{ArchiveFormat, DumpError, DumpErrorKind, DumpSource, DumpStream, Dumper};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdout, Command};

use crate::conn::ConnConfig;
use crate::psql;
use crate::tools::{StderrTail, Tool, ToolLocator, describe_exit};

const READ_CHUNK: usize = 256 * 1024;

/// pg_dump of one database.
///
/// - `-Fc -Z0` (custom format, uncompressed: pgb compresses once, in its pipeline) or `-Fp`;
/// - `-w`: never prompt; the password goes in the child's environment only;
/// - stderr drained concurrently; the child is killed when the stream is dropped;
/// - [`Dumper::prepare`] reads the server's major version first and picks a pg_dump at least
///   that new, failing before any write when there is none.
#[derive(Debug)]
pub struct PgDump {
    conn: ConnConfig,
    locator: ToolLocator,
    format: ArchiveFormat,
    chosen: Mutex<Option<Tool>>,
}

impl PgDump {
    /// Dumps the database `conn` names, with tools found by `locator`.
    pub fn new(conn: ConnConfig, locator: ToolLocator) -> Self {
        Self {
            conn,
            locator,
            format: ArchiveFormat::Custom,
            chosen: Mutex::new(None),
        }
    }

    /// Sets the archive format.
    pub fn with_format(mut self, format: ArchiveFormat) -> Self {
        self.format = format;
        self
    }
}

/// Asks the server for its major version, full version, database name and address.
pub(crate) async fn server_info(
    locator: &ToolLocator,
    conn: &ConnConfig,
    what: &str,
) -> Result<(u32, String, String, String), DumpError> {
    let psql = locator.pick("psql", 0, "the client").await?;
    let out = psql::query(
        &psql,
        conn,
        "select current_setting('server_version_num')::int / 10000, current_setting('server_version'), \
         coalesce(host(inet_server_addr()), 'local') || ':' || current_setting('port'), current_database();",
        &[],
        what,
    )
    .await?;
    let mut parts = out.splitn(4, '|');
    let (Some(major), Some(version), Some(addr), Some(db)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DumpError::new(
            DumpErrorKind::Connection,
            format!("{what}: unexpected reply {out:?}"),
        ));
    };
    let major = major.trim().parse().map_err(|_| {
        DumpError::new(
            DumpErrorKind::Connection,
            format!("{what}: unexpected server version {major:?}"),
        )
    })?;
    let version = version
        .split_whitespace()
        .next()
        .unwrap_or(version)
        .to_owned();
    Ok((major, version, db.trim().to_owned(), addr.trim().to_owned()))
}

#[async_trait]
impl Dumper for PgDump {
    async fn prepare(&self) -> Result<DumpSource, DumpError> {
        let what = format!("database {}", self.conn.redacted());
        let (server_major, server_version, database, addr) =
            server_info(&self.locator, &self.conn, &what).await?;
        // Name the server as the URL does; without a host in the URL (PG* variables, socket)
        // use the address the server reports, so the backup set is still identified.
        let server = if self.conn.has_host() {
            self.conn.server()
        } else {
            addr
        };
        let tool = self
            .locator
            .pick(
                "pg_dump",
                server_major,
                &format!("the server ({server_version})"),
            )
            .await?;
        tracing::info!(pg_dump = %tool.path.display(), version = %tool.version, server = %server_version, "pg_dump chosen");
        let source = DumpSource::new(
            database,
            server,
            server_version,
            tool.version.clone(),
            tool.major,
            self.format,
        );
        *self.chosen.lock().unwrap_or_else(PoisonError::into_inner) = Some(tool);
        Ok(source)
    }

    async fn start(&self, source: &DumpSource) -> Result<Box<dyn DumpStream>, DumpError> {
        let tool = self
            .chosen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let tool = match tool {
            Some(t) => t,
            None => {
                self.locator
                    .pick("pg_dump", source.tool_major, "the server")
                    .await?
            }
        };
        let mut cmd = Command::new(&tool.path);
        cmd.arg("-w");
        match source.format {
            ArchiveFormat::Plain => cmd.arg("-Fp"),
            _ => cmd.args(["-Fc", "-Z0"]),
        };
        cmd.arg(format!("--dbname={}", self.conn.redacted()));
        cmd.envs(self.conn.child_env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            DumpError::new(
                DumpErrorKind::ToolNotFound,
                format!("cannot run {}: {e}", tool.path.display()),
            )
        })?;
        let stdout = child.stdout.take().expect("piped");
        let (tail, drained) = StderrTail::drain(child.stderr.take().expect("piped"), "pg_dump");
        tracing::debug!(pid = child.id(), "pg_dump started");
        Ok(Box::new(PgDumpStream {
            child,
            stdout: Some(stdout),
            tail,
            drained: Some(drained),
        }))
    }
}

#[derive(Debug)]
struct PgDumpStream {
    child: Child,
    stdout: Option<ChildStdout>,
    tail: StderrTail,
    drained: Option<tokio::task::JoinHandle<()>>,
}

#[async_trait]
impl DumpStream for PgDumpStream {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, DumpError> {
        if let Some(stdout) = self.stdout.as_mut() {
            let mut buf = BytesMut::with_capacity(READ_CHUNK);
            let n = stdout.read_buf(&mut buf).await.map_err(|e| {
                DumpError::new(DumpErrorKind::Io, format!("reading pg_dump output: {e}"))
            })?;
            if n > 0 {
                return Ok(Some(buf.freeze()));
            }
            self.stdout = None;
        }
        // End of output: only a clean exit makes it the end of a dump.
        let status =
            self.child.wait().await.map_err(|e| {
                DumpError::new(DumpErrorKind::Io, format!("waiting for pg_dump: {e}"))
            })?;
        if let Some(h) = self.drained.take() {
            let _ = h.await;
        }
        if status.success() {
            return Ok(None);
        }
        let tail = self.tail.text();
        let last = crate::tools::cause_line(&tail);
        Err(DumpError::new(
            DumpErrorKind::Failed,
            format!("pg_dump {}: {last}", describe_exit(status)),
        )
        .with_stderr(tail))
    }

    async fn abort(mut self: Box<Self>) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        tracing::debug!("pg_dump killed and reaped");
    }
}
