//! `pg_dumpall --globals-only` as a [`Dumper`]: roles, memberships, role settings and
//! tablespaces of a whole server, as SQL.

use async_trait::async_trait;
use pgb_core::{
    ArchiveFormat, DumpError, DumpErrorKind, DumpSource, DumpStream, Dumper, PreparedDump,
};

use crate::conn::ConnConfig;
use crate::dump::{PgDumpStream, preflight};
use crate::process::{self, Pipes, ToolProcess};
use crate::sql;
use crate::tools::{Tool, ToolLocator};

/// The globals of the server `conn` connects to (any database on it; `postgres` is usual):
/// `pg_dumpall --globals-only`, plain SQL.
///
/// Role passwords are left out (`--no-role-passwords`) unless
/// [`with_role_passwords`](Self::with_role_passwords) asks for them; reading them needs a
/// superuser, which [`Dumper::prepare`] checks before anything runs. The prepared dump's
/// [`DumpSource::database`] is the database it connected to.
#[derive(Debug, Clone)]
pub struct PgDumpAll {
    conn: ConnConfig,
    locator: ToolLocator,
    role_passwords: bool,
}

impl PgDumpAll {
    /// Dumps the globals of `conn`'s server with tools found by `locator`.
    pub fn new(conn: ConnConfig, locator: ToolLocator) -> Self {
        Self {
            conn,
            locator,
            role_passwords: false,
        }
    }

    /// Includes role passwords (hashes) in the dump. Whoever can read the dump can then log in
    /// as those roles wherever the hashes are accepted: encrypt such backups.
    pub fn with_role_passwords(mut self, yes: bool) -> Self {
        self.role_passwords = yes;
        self
    }
}

#[async_trait]
impl Dumper for PgDumpAll {
    async fn prepare(&self) -> Result<Box<dyn PreparedDump>, DumpError> {
        let p = preflight(
            &self.locator,
            &self.conn,
            "pg_dumpall",
            ArchiveFormat::Plain,
        )
        .await?;
        if self.role_passwords {
            let can = sql::query_scalar(
                &p.psql,
                &self.conn,
                "select has_table_privilege('pg_catalog.pg_authid', 'select');",
                &[],
            )
            .await?;
            if can.as_deref() != Some("t") {
                return Err(DumpError::new(
                    DumpErrorKind::Connection,
                    format!(
                        "database {}: reading role passwords needs a superuser, and the connected role is not one",
                        self.conn.redacted()
                    ),
                ));
            }
        }
        Ok(Box::new(PreparedDumpAll {
            source: p.source,
            tool: p.tool,
            conn: self.conn.clone(),
            role_passwords: self.role_passwords,
        }))
    }
}

#[derive(Debug)]
struct PreparedDumpAll {
    source: DumpSource,
    tool: Tool,
    conn: ConnConfig,
    role_passwords: bool,
}

#[async_trait]
impl PreparedDump for PreparedDumpAll {
    fn source(&self) -> &DumpSource {
        &self.source
    }

    async fn start(self: Box<Self>) -> Result<Box<dyn DumpStream>, DumpError> {
        let mut cmd = process::command(&self.tool, Some(&self.conn));
        cmd.args(["-w", "--globals-only"]);
        if !self.role_passwords {
            cmd.arg("--no-role-passwords");
        }
        cmd.arg(format!("--dbname={}", self.conn.redacted()));
        let process = ToolProcess::spawn(cmd, "pg_dumpall", Pipes::STDOUT)?;
        Ok(Box::new(PgDumpStream::new(process)))
    }
}
