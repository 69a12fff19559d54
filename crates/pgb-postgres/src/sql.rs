//! SQL through psql, for the drivers (server version, database existence, CREATE/DROP
//! DATABASE) and for callers such as restore drills (smoke queries, scratch databases).
//!
//! SQL goes to psql on stdin, so psql variables given in `vars` interpolate safely as
//! `:'name'` (a literal) or `:"name"` (an identifier): values are never spliced into SQL text.
//! Where SQL must be built as text, [`quote_ident`] and [`quote_literal`] quote safely.
//!
//! Every function takes the psql [`Tool`] to run (from [`ToolLocator::pick`]) and the
//! [`ConnConfig`] to connect with; a connection failure is classified (`Unreachable`,
//! `AuthFailed`, `DatabaseNotFound`, `Connection`), an SQL error is `Failed` with psql's stderr.
//!
//! [`ToolLocator::pick`]: crate::ToolLocator::pick

use std::io::Write as _;
use std::process::Stdio;

use pgb_core::{DumpError, DumpErrorKind, ToolExit};
use tokio::io::AsyncWriteExt;

use crate::conn::ConnConfig;
use crate::process::{self, Pipes, ToolProcess};
use crate::tools::{Tool, classify_connect_error};

/// Separates fields in psql's unaligned output (ASCII unit separator: never in names).
const FIELD_SEP: char = '\u{1f}';
/// Separates rows (ASCII record separator).
const RECORD_SEP: char = '\u{1e}';

/// psql's options for scripted use: no psqlrc, never prompt, stop at the first error.
const PSQL_ARGS: [&str; 5] = ["-X", "-q", "-w", "-v", "ON_ERROR_STOP=1"];

/// Runs `sql` (one statement) and returns its rows, each a vector of columns as text (SQL
/// `NULL` reads as an empty string).
///
/// # Errors
/// Connection errors (classified), `Failed` for an SQL error, `ToolNotFound` if psql cannot
/// run.
pub async fn query_rows(
    psql: &Tool,
    conn: &ConnConfig,
    sql: &str,
    vars: &[(&str, &str)],
) -> Result<Vec<Vec<String>>, DumpError> {
    let out = run(psql, conn, sql, vars, true).await?;
    if out.is_empty() {
        return Ok(Vec::new());
    }
    let out = out.strip_suffix('\n').unwrap_or(&out);
    Ok(out
        .split(RECORD_SEP)
        .map(|row| row.split(FIELD_SEP).map(str::to_owned).collect())
        .collect())
}

/// Runs `sql` (one statement) and returns the first column of its first row, `None` when it
/// returned no row.
///
/// # Errors
/// As [`query_rows`].
pub async fn query_scalar(
    psql: &Tool,
    conn: &ConnConfig,
    sql: &str,
    vars: &[(&str, &str)],
) -> Result<Option<String>, DumpError> {
    let rows = query_rows(psql, conn, sql, vars).await?;
    Ok(rows.into_iter().next().and_then(|r| r.into_iter().next()))
}

/// Runs a script of any number of statements, discarding their output.
///
/// # Errors
/// As [`query_rows`]; the first failing statement stops the script.
pub async fn execute(
    psql: &Tool,
    conn: &ConnConfig,
    sql: &str,
    vars: &[(&str, &str)],
) -> Result<(), DumpError> {
    run(psql, conn, sql, vars, false).await.map(drop)
}

/// Whether database `name` exists on the server `maint` connects to.
///
/// # Errors
/// As [`query_rows`].
pub async fn database_exists(
    psql: &Tool,
    maint: &ConnConfig,
    name: &str,
) -> Result<bool, DumpError> {
    let n = query_scalar(
        psql,
        maint,
        "select count(*) from pg_database where datname = :'name';",
        &[("name", name)],
    )
    .await?;
    Ok(n.as_deref() == Some("1"))
}

/// The databases a backup of the whole server covers: every database that accepts
/// connections and is not a template, sorted by name (byte order).
///
/// # Errors
/// As [`query_rows`].
pub async fn list_databases(psql: &Tool, conn: &ConnConfig) -> Result<Vec<String>, DumpError> {
    let rows = query_rows(
        psql,
        conn,
        "select datname from pg_database where datallowconn and not datistemplate \
         order by datname collate \"C\";",
        &[],
    )
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect())
}

/// Creates database `name` (empty, owned by the connected role) on the server `maint`
/// connects to.
///
/// # Errors
/// As [`query_rows`]; `Failed` if it exists already.
pub async fn create_database(psql: &Tool, maint: &ConnConfig, name: &str) -> Result<(), DumpError> {
    execute(psql, maint, "create database :\"name\";", &[("name", name)]).await
}

/// Drops database `name` if it exists, first ending every other session connected to it (so a
/// killed pg_restore's lingering backend does not block it).
///
/// # Errors
/// As [`query_rows`].
pub async fn drop_database(psql: &Tool, maint: &ConnConfig, name: &str) -> Result<(), DumpError> {
    execute(psql, maint, DROP_DATABASE, &[("name", name)]).await
}

/// Ends the other sessions on `:name` (a killed client's backend may still run its last
/// statement), then drops it; DROP DATABASE itself waits a few seconds for ended sessions to go.
const DROP_DATABASE: &str = "set statement_timeout = '60s';\n\
     select count(pg_terminate_backend(pid)) from pg_stat_activity \
     where datname = :'name' and pid <> pg_backend_pid();\n\
     drop database if exists :\"name\";\n";

/// [`drop_database`] without an async runtime, blocking the calling thread: for `Drop`
/// implementations, which run when a restore's future is dropped by a signal handler.
///
/// # Errors
/// `ToolNotFound` if psql cannot run, `Failed` with psql's stderr.
pub fn drop_database_blocking(
    psql: &Tool,
    maint: &ConnConfig,
    name: &str,
) -> Result<(), DumpError> {
    let mut cmd = process::std_command(&psql.path, psql.inherited_env(), Some(maint));
    cmd.args(PSQL_ARGS)
        .arg("-v")
        .arg(format!("name={name}"))
        .arg(format!("--dbname={}", maint.redacted()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        DumpError::new(
            DumpErrorKind::ToolNotFound,
            format!("cannot run {}: {e}", psql.path.display()),
        )
        .with_program("psql")
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A psql that died at once closes the pipe; its exit status tells why.
        let _ = stdin.write_all(DROP_DATABASE.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| {
        DumpError::new(DumpErrorKind::Io, format!("waiting for psql: {e}")).with_program("psql")
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(DumpError::tool_failed(
        "psql",
        process::tool_exit(out.status),
        String::from_utf8_lossy(&out.stderr),
    ))
}

/// Quotes an SQL identifier: `my "db"` → `"my ""db"""`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal (standard-conforming strings): `it's` → `'it''s'`.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Runs `sql` on stdin; with `rows`, unaligned tuples-only output with unambiguous separators.
async fn run(
    psql: &Tool,
    conn: &ConnConfig,
    sql: &str,
    vars: &[(&str, &str)],
    rows: bool,
) -> Result<String, DumpError> {
    let mut cmd = process::command(psql, Some(conn));
    cmd.args(PSQL_ARGS);
    if rows {
        cmd.args(["-A", "-t"])
            .arg(format!("--field-separator={FIELD_SEP}"))
            .arg(format!("--record-separator={RECORD_SEP}"));
    }
    for (k, v) in vars {
        cmd.arg("-v").arg(format!("{k}={v}"));
    }
    cmd.arg(format!("--dbname={}", conn.redacted()));
    let mut child = ToolProcess::spawn(cmd, "psql", Pipes::BOTH)?;
    let mut stdin = child.take_stdin().expect("piped");
    let mut stdout = child.take_stdout().expect("piped");
    let sql = sql.to_owned();
    let writer = async move {
        let _ = stdin.write_all(sql.as_bytes()).await;
        // Dropping stdin closes it: psql runs to the end of the script.
    };
    let reader = async move {
        let mut out = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut out).await;
        out
    };
    let ((), out) = tokio::join!(writer, reader);
    match child.wait().await {
        Ok(()) => Ok(String::from_utf8_lossy(&out).into_owned()),
        // psql exits 2 when the connection failed (3 when the script failed).
        Err(e) if e.exit() == Some(ToolExit::Code(2)) => Err(classify_connect_error(
            e.stderr_tail().unwrap_or_default(),
            &format!("database {}", conn.redacted()),
        )),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_the_quote_character() {
        assert_eq!(quote_ident("plain"), "\"plain\"");
        assert_eq!(quote_ident("my \"db\""), "\"my \"\"db\"\"\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
