//! Small SQL queries through psql (server version, database existence, CREATE/DROP DATABASE).
//!
//! SQL goes on stdin so psql interpolates `:'var'` / `:"var"` safely; values are never
//! spliced into SQL text.

use std::process::Stdio;

use pgb_core::{DumpError, DumpErrorKind};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::conn::ConnConfig;
use crate::tools::{StderrTail, Tool, classify_connect_error, describe_exit};

/// Runs `sql` with psql variables `vars` and returns the unaligned, tuples-only output.
pub(crate) async fn query(
    psql: &Tool,
    conn: &ConnConfig,
    sql: &str,
    vars: &[(&str, &str)],
    what: &str,
) -> Result<String, DumpError> {
    let mut cmd = Command::new(&psql.path);
    cmd.args(["-X", "-A", "-t", "-q", "-w", "-v", "ON_ERROR_STOP=1"]);
    for (k, v) in vars {
        cmd.arg("-v").arg(format!("{k}={v}"));
    }
    cmd.arg(format!("--dbname={}", conn.redacted()));
    cmd.envs(conn.child_env());
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        DumpError::new(
            DumpErrorKind::ToolNotFound,
            format!("cannot run {}: {e}", psql.path.display()),
        )
    })?;
    let (tail, drained) = StderrTail::drain(child.stderr.take().expect("piped"), "psql");
    let mut stdin = child.stdin.take().expect("piped");
    let sql = sql.to_owned();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(sql.as_bytes()).await;
    });
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| DumpError::new(DumpErrorKind::Io, format!("psql: {e}")))?;
    let _ = writer.await;
    let _ = drained.await;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    let stderr = tail.text();
    // psql exits 2 when the connection failed, 3 when the script failed.
    if out.status.code() == Some(2) {
        return Err(classify_connect_error(&stderr, what));
    }
    Err(DumpError::new(
        DumpErrorKind::Failed,
        format!("{what}: psql {}", describe_exit(out.status)),
    )
    .with_stderr(stderr))
}
