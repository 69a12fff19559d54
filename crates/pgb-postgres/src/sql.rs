//! A small public SQL client over psql, for tools built on pgb (restore drills): run a query,
//! create and drop a database, list an archive's table of contents.
//!
//! SQL goes on stdin and values travel as psql variables (`:'var'`, `:"var"`), never spliced
//! into SQL text. Passwords reach psql through its environment only.

use std::process::Stdio;

use pgb_core::{DumpError, DumpErrorKind};

use crate::conn::ConnConfig;
use crate::psql;
use crate::tools::{Tool, ToolLocator};

/// psql, found once, for running statements against any server.
#[derive(Debug, Clone)]
pub struct SqlClient {
    psql: Tool,
}

impl SqlClient {
    /// Finds psql (any version) with `locator`.
    ///
    /// # Errors
    /// `ToolNotFound` when no psql is found.
    pub async fn locate(locator: &ToolLocator) -> Result<Self, DumpError> {
        Ok(Self {
            psql: locator.pick("psql", 0, "the SQL client").await?,
        })
    }

    /// The psql used.
    pub fn tool(&self) -> &Tool {
        &self.psql
    }

    /// Runs `sql` (one or more statements) on `conn` with psql variables `vars`; returns the
    /// unaligned, tuples-only output (fields separated by `|`, one row per line), trimmed.
    /// The script stops at the first error (`ON_ERROR_STOP`).
    ///
    /// # Errors
    /// Connection errors classified like the drivers' (`Unreachable`, `AuthFailed`,
    /// `DatabaseNotFound`, ...), or `Failed` with psql's stderr tail for an SQL error.
    pub async fn query(
        &self,
        conn: &ConnConfig,
        sql: &str,
        vars: &[(&str, &str)],
    ) -> Result<String, DumpError> {
        let what = format!("database {}", conn.redacted());
        psql::query(&self.psql, conn, sql, vars, &what).await
    }

    /// Whether database `name` exists on the server `server` points at.
    ///
    /// # Errors
    /// As [`SqlClient::query`].
    pub async fn database_exists(
        &self,
        server: &ConnConfig,
        name: &str,
    ) -> Result<bool, DumpError> {
        let out = self
            .query(
                &server.with_dbname("postgres"),
                "select count(*) from pg_database where datname = :'name';",
                &[("name", name)],
            )
            .await?;
        Ok(out == "1")
    }

    /// Creates database `name` on the server `server` points at (through its `postgres`
    /// maintenance database).
    ///
    /// # Errors
    /// As [`SqlClient::query`]; `Failed` when it already exists.
    pub async fn create_database(&self, server: &ConnConfig, name: &str) -> Result<(), DumpError> {
        self.query(
            &server.with_dbname("postgres"),
            "create database :\"name\";",
            &[("name", name)],
        )
        .await
        .map(drop)
    }

    /// Drops database `name` if it exists, terminating its sessions first.
    ///
    /// # Errors
    /// As [`SqlClient::query`].
    pub async fn drop_database(&self, server: &ConnConfig, name: &str) -> Result<(), DumpError> {
        self.query(&server.with_dbname("postgres"), DROP_SQL, &[("name", name)])
            .await
            .map(drop)
    }

    /// [`SqlClient::drop_database`] without a runtime: blocks the calling thread until psql
    /// exits. For clean-up in `Drop` (a cancelled drill), where nothing can be awaited.
    ///
    /// # Errors
    /// A one-line description of the failure.
    pub fn drop_database_blocking(&self, server: &ConnConfig, name: &str) -> Result<(), String> {
        use std::io::Write;
        let maint = server.with_dbname("postgres");
        let mut child = std::process::Command::new(&self.psql.path)
            .args(["-X", "-A", "-t", "-q", "-w", "-v", "ON_ERROR_STOP=1"])
            .arg("-v")
            .arg(format!("name={name}"))
            .arg(format!("--dbname={}", maint.redacted()))
            .envs(maint.child_env())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.psql.path.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(DROP_SQL.as_bytes());
        }
        let out = child.wait_with_output().map_err(|e| format!("psql: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "dropping database {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

/// Sessions are terminated first so a drill's leftover connection cannot keep the database.
const DROP_SQL: &str = "select count(pg_terminate_backend(pid)) from pg_stat_activity \
     where datname = :'name' and pid <> pg_backend_pid();\n\
     drop database if exists :\"name\";\n";

/// Checks that a psql-quoted identifier variable can carry `name`: psql variables cannot hold
/// a NUL, and names longer than 63 bytes are truncated by the server (which would drop a
/// different database than the one named).
///
/// # Errors
/// `Refused` with the reason.
pub fn check_database_name(name: &str) -> Result<(), DumpError> {
    if name.is_empty() || name.len() > 63 || name.contains('\0') {
        return Err(DumpError::new(
            DumpErrorKind::Refused,
            format!("invalid database name {name:?}: 1 to 63 bytes, no NUL"),
        ));
    }
    Ok(())
}
