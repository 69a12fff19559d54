//! The database-level state of a whole-server restore: what `pg_restore --create` would set on
//! the database itself (its comment, `ALTER DATABASE ... SET`, `ALTER ROLE ... IN DATABASE
//! ... SET`, security labels and, when privileges are kept, its ACL: `REVOKE CONNECT ... FROM
//! PUBLIC`, `GRANT CONNECT ... TO app`).
//!
//! pg_dump writes these entries into every custom archive (`DATABASE PROPERTIES`, `COMMENT -
//! DATABASE x`, `ACL - DATABASE x`), and pg_restore emits them only with `--create`, which a
//! restore into an existing (or differently named) database cannot use. [`DatabaseStateRestore`]
//! therefore tees the archive into a second `pg_restore --create --schema-only` that selects a
//! schema no archive holds: it prints only those database entries (read from the table of
//! contents at the head of the archive, after which it stops reading), and once the restore
//! itself completed their statements are applied to the restored database, in one
//! transaction. `CREATE DATABASE` is left out; the owner (with `keep_owner`) is set first, as
//! pg_restore sets it, so that the ACL is granted by it and reads as on the source.

use async_trait::async_trait;
use bytes::Bytes;
use pgb_core::{
    ArchiveFormat, ArchiveInfo, DirectorySink, DumpError, DumpErrorKind, RestoreOptions,
    RestoreReport, RestoreSink, Restorer,
};
use tokio::io::AsyncReadExt;

use crate::cluster::split_statements;
use crate::conn::ConnConfig;
use crate::process::{self, Pipes, ToolProcess};
use crate::restore::{ChildSink, PgRestore, tool_for};
use crate::sql;
use crate::tools::ToolLocator;

/// A schema name no archive holds: `--schema` with it selects no object of the archive, so
/// `pg_restore --create` prints only the database's own entries.
const NO_SCHEMA: &str = "pgb: database entries only";

/// The database-level statements pg_restore prints are small; more is refused.
const MAX_STATE: usize = 16 << 20;

/// A [`PgRestore`] into the database named like the backed-up one that also brings back the
/// database's own state from the archive (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct DatabaseStateRestore {
    inner: PgRestore,
    target: ConnConfig,
    locator: ToolLocator,
}

impl DatabaseStateRestore {
    pub(crate) fn new(inner: PgRestore, target: ConnConfig, locator: ToolLocator) -> Self {
        Self {
            inner,
            target,
            locator,
        }
    }
}

#[async_trait]
impl Restorer for DatabaseStateRestore {
    async fn begin(
        &self,
        archive: &ArchiveInfo,
        opts: &RestoreOptions,
    ) -> Result<Box<dyn RestoreSink>, DumpError> {
        if archive.format != ArchiveFormat::Custom || opts.is_selective() {
            return self.inner.begin(archive, opts).await;
        }
        let tool = tool_for(&self.locator, archive).await?;
        let mut cmd = process::command(&tool, None);
        cmd.args(["--create", "--schema-only"])
            .arg(format!("--schema={NO_SCHEMA}"));
        if !opts.keep_owner {
            cmd.arg("--no-owner");
        }
        if !opts.keep_privileges {
            cmd.arg("--no-privileges");
        }
        cmd.args(["-f", "-"]);
        let mut process = ToolProcess::spawn(cmd, "pg_restore", Pipes::BOTH)?;
        let mut stdout = process.take_stdout().expect("piped");
        let reader = tokio::spawn(async move {
            let mut text = Vec::new();
            let res = (&mut stdout)
                .take(MAX_STATE as u64 + 1)
                .read_to_end(&mut text)
                .await;
            // Never leave the child blocked on a full pipe.
            let _ = tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await;
            res.map(|_| text)
        });
        let state = ChildSink::new(process, None, true);
        let inner = self.inner.begin(archive, opts).await?;
        Ok(Box::new(StateSink {
            inner,
            state: Box::new(state),
            reader,
            target: self.target.clone(),
            locator: self.locator.clone(),
            keep_owner: opts.keep_owner,
        }))
    }

    async fn begin_directory(
        &self,
        archive: &ArchiveInfo,
        opts: &RestoreOptions,
    ) -> Result<Box<dyn DirectorySink>, DumpError> {
        self.inner.begin_directory(archive, opts).await
    }

    fn applies_only_verified(&self, archive: &ArchiveInfo, opts: &RestoreOptions) -> bool {
        self.inner.applies_only_verified(archive, opts)
    }
}

/// The restore's sink, teed into the `pg_restore --create` that prints the database entries.
#[derive(Debug)]
struct StateSink {
    inner: Box<dyn RestoreSink>,
    state: Box<ChildSink>,
    reader: tokio::task::JoinHandle<std::io::Result<Vec<u8>>>,
    target: ConnConfig,
    locator: ToolLocator,
    keep_owner: bool,
}

#[async_trait]
impl RestoreSink for StateSink {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError> {
        self.state.write(chunk.clone()).await?;
        self.inner.write(chunk).await
    }

    async fn finish(self: Box<Self>) -> Result<RestoreReport, DumpError> {
        let Self {
            inner,
            state,
            reader,
            target,
            locator,
            keep_owner,
        } = *self;
        let report = match inner.finish().await {
            Ok(r) => r,
            Err(e) => {
                state.abort().await;
                return Err(e);
            }
        };
        let name = report.database.clone();
        let fail = |what: String| {
            DumpError::new(
                DumpErrorKind::Failed,
                format!(
                    "database {name} is restored, but its database-level settings, comment and privileges were not: {what}"
                ),
            )
        };
        state
            .finish()
            .await
            .map_err(|e| fail(format!("reading them from the archive: {e}")))?;
        let text = reader
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(format!("reading pg_restore's output: {e}")))?;
        if text.len() > MAX_STATE {
            return Err(fail("pg_restore printed more than 16 MiB".to_owned()));
        }
        let script = state_script(&String::from_utf8_lossy(&text), keep_owner);
        if let Some(script) = script {
            let psql = locator.pick("psql", 0, "the client").await?;
            sql::execute(&psql, &target, &script, &[])
                .await
                .map_err(|e| fail(e.to_string()))?;
            tracing::info!(database = %name, "database-level settings, comment and privileges applied");
        }
        Ok(report)
    }

    async fn abort(self: Box<Self>) {
        self.state.abort().await;
        self.inner.abort().await;
    }
}

/// The statements of `pg_restore --create` output that set the database's own state, as one
/// transaction; `None` when there are none. `CREATE DATABASE`, psql's meta-commands
/// (`\connect`, `\restrict`) and, unless `owner`, the owner are left out; the session
/// settings pg_restore starts with are kept. The owner comes first, as pg_restore sets it, so
/// the ACL that follows is granted by it and reads as on the source.
pub(crate) fn state_script(output: &str, owner: bool) -> Option<String> {
    let mut prelude = String::new();
    let mut body = String::new();
    for stmt in split_statements(output) {
        let upper = stmt.to_ascii_uppercase();
        if upper.starts_with("SET ") || upper.starts_with("SELECT PG_CATALOG.SET_CONFIG(") {
            if body.is_empty() {
                prelude.push_str(&stmt);
                prelude.push('\n');
            }
            continue;
        }
        let state = upper.starts_with("COMMENT ON DATABASE ")
            || upper.starts_with("SECURITY LABEL ")
            || (upper.starts_with("ALTER DATABASE ") && (owner || !is_owner_change(&upper)))
            || (upper.starts_with("ALTER ROLE ") && upper.contains(" IN DATABASE "))
            || ((upper.starts_with("GRANT ") || upper.starts_with("REVOKE "))
                && upper.contains(" ON DATABASE "));
        if state {
            body.push_str(&stmt);
            body.push('\n');
        }
    }
    (!body.is_empty()).then(|| format!("{prelude}BEGIN;\n{body}COMMIT;\n"))
}

/// `ALTER DATABASE x OWNER TO y`: the words outside quoted names and literals.
fn is_owner_change(upper: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut outside = String::with_capacity(upper.len());
    for c in upper.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None => outside.push(c),
        }
    }
    outside.contains(" OWNER TO ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pg_restore --create --schema-only --schema=x -f -` (PostgreSQL 15.18).
    const OUTPUT: &str = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\
        SET statement_timeout = 0;\nSET client_encoding = 'UTF8';\n\
        SELECT pg_catalog.set_config('search_path', '', false);\n\
        CREATE DATABASE exp1 WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8';\n\
        ALTER DATABASE exp1 OWNER TO postgres;\n\\unrestrict abc\n\\connect exp1\n\\restrict abc\n\
        SET statement_timeout = 0;\n\
        COMMENT ON DATABASE exp1 IS 'the db; owner to x';\n\
        ALTER DATABASE exp1 SET work_mem TO '7MB';\n\
        ALTER DATABASE exp1 SET application_name TO ' owner to x';\n\
        ALTER ROLE exp_app IN DATABASE exp1 SET search_path TO 'a,b';\n\
        ALTER DATABASE \"owner to \"\" x\" SET work_mem TO '1MB';\n\
        REVOKE CONNECT,TEMPORARY ON DATABASE exp1 FROM PUBLIC;\n\
        GRANT CONNECT ON DATABASE exp1 TO exp_app;\n\\unrestrict abc\n";

    #[test]
    fn only_the_database_state_is_applied_in_one_transaction() {
        let script = state_script(OUTPUT, false).unwrap();
        assert_eq!(
            script,
            "SET statement_timeout = 0;\nSET client_encoding = 'UTF8';\n\
             SELECT pg_catalog.set_config('search_path', '', false);\nSET statement_timeout = 0;\n\
             BEGIN;\nCOMMENT ON DATABASE exp1 IS 'the db; owner to x';\n\
             ALTER DATABASE exp1 SET work_mem TO '7MB';\n\
             ALTER DATABASE exp1 SET application_name TO ' owner to x';\n\
             ALTER ROLE exp_app IN DATABASE exp1 SET search_path TO 'a,b';\n\
             ALTER DATABASE \"owner to \"\" x\" SET work_mem TO '1MB';\n\
             REVOKE CONNECT,TEMPORARY ON DATABASE exp1 FROM PUBLIC;\n\
             GRANT CONNECT ON DATABASE exp1 TO exp_app;\nCOMMIT;\n"
        );
        let owner = "CREATE DATABASE x;\nALTER DATABASE x OWNER TO y;\n";
        assert_eq!(state_script(owner, false), None);
        assert_eq!(
            state_script(owner, true).unwrap(),
            "BEGIN;\nALTER DATABASE x OWNER TO y;\nCOMMIT;\n"
        );
    }
}
