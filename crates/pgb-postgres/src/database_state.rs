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
//! transaction. The owner (with `keep_owner`) is set first, as pg_restore sets it, so that the
//! ACL is granted by it and reads as on the source.
//!
//! The restore itself begins only once that pg_restore has read the table of contents (it
//! heads the archive; the chunks before are held back), so a missing database is created with
//! the archive's own `CREATE DATABASE` (the source's encoding, locale and locale provider);
//! a target server that refuses it (a locale it lacks) gets the database with its defaults
//! and a warning. A database created so is dropped again if the restore fails.

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
        // The restore itself begins once the database entries are read (the table of
        // contents heads the archive), so that a missing database is created with the
        // source's encoding and locale.
        Ok(Box::new(StateSink {
            inner: None,
            start: Some((self.inner.clone(), *archive, opts.clone())),
            pending: Vec::new(),
            pending_len: 0,
            created: None,
            state: Some(Box::new(state)),
            reader: Some(reader),
            text: None,
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

/// Chunks held back before the restore begins: the table of contents of any real archive
/// fits; past this the restore begins without the source's encoding and locale.
const MAX_PENDING: usize = 64 << 20;

/// The restore's sink, teed into the `pg_restore --create` that prints the database entries.
#[derive(Debug)]
struct StateSink {
    /// The restore, once begun.
    inner: Option<Box<dyn RestoreSink>>,
    /// What begins it.
    start: Option<(PgRestore, ArchiveInfo, RestoreOptions)>,
    /// Chunks fed before it began.
    pending: Vec<Bytes>,
    pending_len: usize,
    /// The database this sink created (with the source's encoding and locale): dropped
    /// again unless the restore completes.
    created: Option<Created>,
    state: Option<Box<ChildSink>>,
    reader: Option<tokio::task::JoinHandle<std::io::Result<Vec<u8>>>>,
    /// pg_restore's output, once read.
    text: Option<Vec<u8>>,
    target: ConnConfig,
    locator: ToolLocator,
    keep_owner: bool,
}

/// A database created by [`StateSink`]; dropped (blocking) if the sink is dropped armed.
#[derive(Debug)]
struct Created {
    psql: crate::tools::Tool,
    maint: ConnConfig,
    name: String,
    armed: bool,
}

impl Created {
    async fn drop_now(mut self) {
        self.armed = false;
        if let Err(e) = sql::drop_database(&self.psql, &self.maint, &self.name).await {
            tracing::warn!(database = %self.name, error = %e, "could not drop the target this restore created");
        }
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        if self.armed {
            self.armed = false;
            if let Err(e) = sql::drop_database_blocking(&self.psql, &self.maint, &self.name) {
                tracing::warn!(database = %self.name, error = %e, "could not drop the target this restore created");
            }
        }
    }
}

impl StateSink {
    /// Reads pg_restore's output (its process has ended or is ending).
    async fn read_text(&mut self) -> Result<Vec<u8>, String> {
        if let Some(t) = &self.text {
            return Ok(t.clone());
        }
        let Some(reader) = self.reader.take() else {
            return Ok(Vec::new());
        };
        let text = reader
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("reading pg_restore's output: {e}"))?;
        if text.len() > MAX_STATE {
            return Err("pg_restore printed more than 16 MiB".to_owned());
        }
        self.text = Some(text.clone());
        Ok(text)
    }

    /// Creates the missing target as the source was created (`CREATE DATABASE ... ENCODING
    /// ... LOCALE ...` from the archive); where the target server refuses that (a locale it
    /// lacks), the restore creates it with the server's defaults, with a warning.
    async fn create_like_source(&mut self, text: &[u8]) -> Result<(), DumpError> {
        let text = String::from_utf8_lossy(text);
        let Some(create) = split_statements(&text)
            .into_iter()
            .find(|s| s.to_ascii_uppercase().starts_with("CREATE DATABASE "))
        else {
            return Ok(());
        };
        let psql = self.locator.pick("psql", 0, "the client").await?;
        let maint = self.target.with_dbname("postgres");
        let Some(name) = self.target.dbname().map(str::to_owned) else {
            return Ok(());
        };
        if sql::database_exists(&psql, &maint, &name).await? {
            return Ok(());
        }
        match sql::execute(&psql, &maint, &create, &[]).await {
            Ok(()) => {
                tracing::info!(database = %name, "created restore target with the source's encoding and locale");
                self.created = Some(Created {
                    psql,
                    maint,
                    name,
                    armed: true,
                });
            }
            Err(e) if e.kind() == DumpErrorKind::Failed => {
                tracing::warn!(database = %name, error = %e, "the target server refused the source's encoding or locale; the database gets the server's defaults");
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Begins the restore (creating its database like the source's when the database
    /// entries are known) and feeds it the chunks held back.
    async fn begin_inner(&mut self, text: Option<&[u8]>) -> Result<(), DumpError> {
        let Some((restorer, archive, opts)) = self.start.take() else {
            return Ok(());
        };
        if let Some(text) = text {
            self.create_like_source(text).await?;
        }
        let mut inner = restorer.begin(&archive, &opts).await?;
        for chunk in std::mem::take(&mut self.pending) {
            if let Err(e) = inner.write(chunk).await {
                inner.abort().await;
                return Err(e);
            }
        }
        self.pending_len = 0;
        self.inner = Some(inner);
        Ok(())
    }

    async fn cleanup(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.abort().await;
        }
        if let Some(state) = self.state.take() {
            state.abort().await;
        }
        if let Some(db) = self.created.take() {
            db.drop_now().await;
        }
    }
}

#[async_trait]
impl RestoreSink for StateSink {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError> {
        if let Some(state) = self.state.as_mut() {
            state.write(chunk.clone()).await?;
        }
        if let Some(inner) = self.inner.as_mut() {
            return inner.write(chunk).await;
        }
        self.pending_len += chunk.len();
        self.pending.push(chunk);
        let read = self.reader.as_ref().is_none_or(|r| r.is_finished());
        if read || self.pending_len > MAX_PENDING {
            let text = if read {
                Some(self.read_text().await.unwrap_or_default())
            } else {
                None
            };
            if let Err(e) = self.begin_inner(text.as_deref()).await {
                self.cleanup().await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<RestoreReport, DumpError> {
        let fail = |name: &str, what: String| {
            DumpError::new(
                DumpErrorKind::Failed,
                format!(
                    "database {name} is restored, but its database-level settings, comment and privileges were not: {what}"
                ),
            )
        };
        // All of the archive is in: pg_restore has printed everything.
        let read = match self.state.take() {
            Some(state) => state
                .finish()
                .await
                .map(drop)
                .map_err(|e| format!("reading them from the archive: {e}")),
            None => Ok(()),
        };
        let text = match read {
            Ok(()) => self.read_text().await,
            Err(e) => Err(e),
        };
        if self.inner.is_none()
            && let Err(e) = self.begin_inner(text.as_deref().ok()).await
        {
            self.cleanup().await;
            return Err(e);
        }
        let inner = self.inner.take().expect("begun");
        let mut report = match inner.finish().await {
            Ok(r) => r,
            Err(e) => {
                self.cleanup().await;
                return Err(e);
            }
        };
        if let Some(mut db) = self.created.take() {
            db.armed = false;
            report.created = true;
        }
        let name = report.database.clone();
        let text = text.map_err(|e| fail(&name, e))?;
        let script = state_script(&String::from_utf8_lossy(&text), self.keep_owner);
        if let Some(script) = script {
            let psql = self.locator.pick("psql", 0, "the client").await?;
            sql::execute(&psql, &self.target, &script, &[])
                .await
                .map_err(|e| fail(&name, e.to_string()))?;
            tracing::info!(database = %name, "database-level settings, comment and privileges applied");
        }
        Ok(report)
    }

    async fn abort(mut self: Box<Self>) {
        self.cleanup().await;
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
