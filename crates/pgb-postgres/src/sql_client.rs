//! [`SqlClient`]: psql found once, with the [`crate::sql`] helpers as methods, for tools built
//! on pgb (restore drills): run a query, create and drop a database.
//!
//! SQL goes on stdin and values travel as psql variables (`:'var'`, `:"var"`), never spliced
//! into SQL text. Passwords reach psql through its environment only.

use pgb_core::{DumpError, DumpErrorKind};

use crate::conn::ConnConfig;
use crate::sql;
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
        let rows = sql::query_rows(&self.psql, conn, sql, vars).await?;
        Ok(rows
            .iter()
            .map(|row| row.join("|"))
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_owned())
    }

    /// The migration heads of the database `conn` names, as `probe` asks for them (a
    /// restored database before and after its `post_restore` hook). Never fails: what cannot
    /// be read is a warning in the scan.
    pub async fn migration_heads(
        &self,
        conn: &ConnConfig,
        probe: &crate::MigrationProbe,
    ) -> crate::MigrationScan {
        crate::migrations::scan(&self.psql, conn, probe).await
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
        sql::database_exists(&self.psql, &server.with_dbname("postgres"), name).await
    }

    /// Creates database `name` on the server `server` points at (through its `postgres`
    /// maintenance database).
    ///
    /// # Errors
    /// As [`SqlClient::query`]; `Failed` when it already exists.
    pub async fn create_database(&self, server: &ConnConfig, name: &str) -> Result<(), DumpError> {
        sql::create_database(&self.psql, &server.with_dbname("postgres"), name).await
    }

    /// Drops database `name` if it exists, terminating its sessions first.
    ///
    /// # Errors
    /// As [`SqlClient::query`].
    pub async fn drop_database(&self, server: &ConnConfig, name: &str) -> Result<(), DumpError> {
        sql::drop_database(&self.psql, &server.with_dbname("postgres"), name).await
    }
}

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
