//! A whole server: [`PgCluster`] enumerates its databases for a backup
//! ([`ClusterDumper`]) and applies globals and restores databases on it
//! ([`GlobalsRestorer`], [`ClusterRestorer`]).

use std::path::PathBuf;

use async_trait::async_trait;
use pgb_core::{
    ClusterDumper, ClusterRestorer, DumpError, DumpErrorKind, Dumper, GlobalsReport,
    GlobalsRestorer, PreparedCluster, Restorer, StatementFailure,
};

use crate::conn::ConnConfig;
use crate::database_state::DatabaseStateRestore;
use crate::dump::PgDump;
use crate::dumpall::PgDumpAll;
use crate::restore::{COUNT_RELATIONS, PgRestore};
use crate::sql;
use crate::tools::ToolLocator;

/// The server `conn` connects to (its database, `postgres` when the URL names none, is the
/// maintenance database: globals are read and applied there).
///
/// For a backup it enumerates the connectable non-template databases at run time, keeps those
/// matching an include glob (all without one) and no exclude glob, and prepares
/// `pg_dumpall --globals-only` plus one `pg_dump -Fc` per database. For a restore it applies
/// globals statement by statement and restores each database under its own name.
#[derive(Debug, Clone)]
pub struct PgCluster {
    conn: ConnConfig,
    locator: ToolLocator,
    include: Vec<String>,
    exclude: Vec<String>,
    role_passwords: bool,
    spool_dir: PathBuf,
    options: crate::DumpOptions,
}

impl PgCluster {
    /// The server `conn` connects to, with tools found by `locator`.
    pub fn new(conn: ConnConfig, locator: ToolLocator) -> Self {
        let conn = if conn.dbname().is_some() {
            conn
        } else {
            conn.with_dbname("postgres")
        };
        Self {
            conn,
            locator,
            include: Vec::new(),
            exclude: Vec::new(),
            role_passwords: false,
            spool_dir: PathBuf::from("/tmp"),
            options: crate::DumpOptions::new(),
        }
    }

    /// Selection and pass-through options for every database's pg_dump.
    pub fn with_options(mut self, options: crate::DumpOptions) -> Self {
        self.options = options;
        self
    }

    /// Backs up only databases matching one of these globs (`*`, `?`).
    pub fn with_include(mut self, globs: Vec<String>) -> Self {
        self.include = globs;
        self
    }

    /// Leaves out databases matching one of these globs (exclusion wins over inclusion).
    pub fn with_exclude(mut self, globs: Vec<String>) -> Self {
        self.exclude = globs;
        self
    }

    /// Includes role passwords (hashes) in the globals; needs a superuser.
    pub fn with_role_passwords(mut self, yes: bool) -> Self {
        self.role_passwords = yes;
        self
    }

    /// Where parallel restores spool their archive.
    pub fn with_spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = dir.into();
        self
    }
}

#[async_trait]
impl ClusterDumper for PgCluster {
    async fn prepare(&self) -> Result<PreparedCluster, DumpError> {
        let psql = self.locator.pick("psql", 0, "the client").await?;
        let all = sql::list_databases(&psql, &self.conn).await?;
        let selected =
            pgb_core::select_databases(&all, &self.include, &self.exclude).map_err(|glob| {
                DumpError::new(
                    DumpErrorKind::NoMatch,
                    format!(
                        "no database on {} matches {glob:?} (it has: {})",
                        self.conn.server(),
                        all.join(", ")
                    ),
                )
            })?;
        let globals = PgDumpAll::new(self.conn.clone(), self.locator.clone())
            .with_role_passwords(self.role_passwords)
            .prepare()
            .await?;
        let mut databases = Vec::with_capacity(selected.len());
        for name in selected {
            let dump = PgDump::new(self.conn.with_dbname(&name), self.locator.clone())
                .with_options(self.options.clone())
                .prepare()
                .await
                .map_err(|e| e.context(format_args!("database {name}")))?;
            databases.push((name, dump));
        }
        let owners = sql::query_rows(
            &psql,
            &self.conn,
            "select datname, pg_get_userbyid(datdba) from pg_database where datallowconn and not datistemplate;",
            &[],
        )
        .await?
        .into_iter()
        .filter_map(|r| <[String; 2]>::try_from(r).ok())
        .filter(|[d, _]| databases.iter().any(|(n, _)| n == d))
        .map(|[d, o]| (d, o))
        .collect();
        Ok(PreparedCluster::new(globals, databases, all)
            .with_owners(owners)
            .with_selection(self.include.clone(), self.exclude.clone())
            .with_role_passwords(self.role_passwords))
    }
}

#[async_trait]
impl GlobalsRestorer for PgCluster {
    async fn apply_globals(&self, script: &str) -> Result<GlobalsReport, DumpError> {
        let psql = self.locator.pick("psql", 0, "the client").await?;
        let me = sql::query_scalar(&psql, &self.conn, "select current_user;", &[])
            .await?
            .unwrap_or_default();
        let mut report = GlobalsReport::default();
        // Session settings of the script (client_encoding, standard_conforming_strings...)
        // precede every statement, since each runs in its own session.
        let mut prelude = String::new();
        for stmt in split_statements(script) {
            let upper = stmt.to_ascii_uppercase();
            if upper.starts_with("SET ") {
                prelude.push_str(&stmt);
                prelude.push('\n');
                continue;
            }
            if drops_role(&upper, &me) || alters_role(&upper, &me) {
                tracing::info!(role = %me, statement = %first_line(&stmt), "leaving the connected role as it is");
                report.skipped += 1;
                continue;
            }
            let creates = upper.starts_with("CREATE ");
            let sql = format!("{prelude}{stmt}\n");
            match sql::execute(&psql, &self.conn, &sql, &[("VERBOSITY", "verbose")]).await {
                Ok(()) if creates => report.created += 1,
                Ok(()) => report.applied += 1,
                Err(e) => {
                    let tail = e.stderr_tail().unwrap_or_default().to_owned();
                    // 42710 duplicate_object: "role ... already exists".
                    if creates && tail.contains("42710") {
                        report.existed += 1;
                    } else if e.kind() == DumpErrorKind::Failed {
                        report.failures.push(StatementFailure::new(
                            first_line(&stmt),
                            error_line(&tail).unwrap_or_else(|| e.to_string()),
                        ));
                    } else {
                        // Not an SQL error: the connection went away, psql vanished.
                        return Err(e);
                    }
                }
            }
        }
        Ok(report)
    }
}

#[async_trait]
impl ClusterRestorer for PgCluster {
    async fn check_targets(&self, databases: &[String], clean: bool) -> Result<(), DumpError> {
        if clean {
            return Ok(());
        }
        let psql = self.locator.pick("psql", 0, "the client").await?;
        for name in databases {
            if !sql::database_exists(&psql, &self.conn, name).await? {
                continue;
            }
            let n: u64 =
                sql::query_scalar(&psql, &self.conn.with_dbname(name), COUNT_RELATIONS, &[])
                    .await?
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
            if n > 0 {
                return Err(DumpError::new(
                    DumpErrorKind::TargetNotEmpty,
                    format!(
                        "target database {name} already has {n} tables, views or sequences; nothing was restored"
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn set_owner(&self, name: &str, owner: &str) -> Result<(), DumpError> {
        let psql = self.locator.pick("psql", 0, "the client").await?;
        sql::execute(
            &psql,
            &self.conn,
            "alter database :\"name\" owner to :\"owner\";",
            &[("name", name), ("owner", owner)],
        )
        .await
    }

    /// The database restored under its own name, with its database-level state (comment,
    /// settings, per-role settings, and its ACL when privileges are kept) read from its
    /// archive (the `database_state` module).
    fn restorer(&self, name: &str) -> Box<dyn Restorer> {
        let target = self.conn.with_dbname(name);
        Box::new(DatabaseStateRestore::new(
            PgRestore::new(target.clone(), self.locator.clone(), self.spool_dir.clone()),
            target,
            self.locator.clone(),
        ))
    }
}

/// Whether an upper-cased statement drops the role `me`.
fn drops_role(upper: &str, me: &str) -> bool {
    let Some(rest) = upper.strip_prefix("DROP ROLE ") else {
        return false;
    };
    let rest = rest.strip_prefix("IF EXISTS ").unwrap_or(rest);
    let name = rest.trim_end_matches(';').trim();
    name == me.to_ascii_uppercase() || name == sql::quote_ident(me).to_ascii_uppercase()
}

/// Whether an upper-cased statement alters the role `me` (its attributes, password or
/// settings): the connected role is left as it is, so a backup from another server cannot
/// demote or lock out the role doing the restore.
fn alters_role(upper: &str, me: &str) -> bool {
    let Some(rest) = upper.strip_prefix("ALTER ROLE ") else {
        return false;
    };
    let me_upper = me.to_ascii_uppercase();
    let quoted = sql::quote_ident(me).to_ascii_uppercase();
    [me_upper, quoted]
        .iter()
        .any(|n| rest.starts_with(&format!("{n} ")) || rest.starts_with(&format!("{n};")))
}

fn first_line(stmt: &str) -> String {
    let line = stmt.lines().next().unwrap_or_default();
    let line = line.split(" PASSWORD ").next().unwrap_or(line);
    line.chars().take(200).collect()
}

/// The server's `ERROR:` line (without the SQLSTATE of verbose mode).
fn error_line(tail: &str) -> Option<String> {
    let line = tail.lines().find(|l| l.contains("ERROR:"))?;
    let msg = line.split_once("ERROR:").map_or(line, |(_, m)| m).trim();
    // "42704: role \"x\" does not exist" → keep the code: it is what the docs list.
    Some(msg.to_owned())
}

/// Splits a psql script into SQL statements (each ending with its `;`), leaving out comments,
/// blank lines and psql meta-commands (`\restrict`, `\connect`). Quotes (`'...'`, `"..."`)
/// are honoured, so a `;` inside a role comment or a name does not split.
pub(crate) fn split_statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = script.chars().peekable();
    let mut quote: Option<char> = None;
    let mut line_start = true;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            cur.push(c);
            if c == q {
                quote = None;
            }
            line_start = c == '\n';
            continue;
        }
        match c {
            '\\' if line_start && cur.trim().is_empty() => {
                // A meta-command: the rest of the line.
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                line_start = true;
                continue;
            }
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                cur.push('\n');
                line_start = true;
                continue;
            }
            '\'' | '"' => {
                quote = Some(c);
                cur.push(c);
            }
            ';' => {
                cur.push(';');
                let stmt = cur.trim().to_owned();
                if stmt != ";" {
                    out.push(stmt);
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
        line_start = c == '\n';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_globals_script_splits_into_its_statements() {
        let script = "--\n-- PostgreSQL database cluster dump\n--\n\n\\restrict abc\n\n\
            SET default_transaction_read_only = off;\n\nCREATE ROLE \"we;ird\";\n\
            ALTER ROLE \"we;ird\" WITH LOGIN PASSWORD 'x;y''z';\n\
            COMMENT ON ROLE app IS 'a -- b; c';\n\\unrestrict abc\n-- done\n";
        assert_eq!(
            split_statements(script),
            [
                "SET default_transaction_read_only = off;",
                "CREATE ROLE \"we;ird\";",
                "ALTER ROLE \"we;ird\" WITH LOGIN PASSWORD 'x;y''z';",
                "COMMENT ON ROLE app IS 'a -- b; c';",
            ]
        );
    }

    #[test]
    fn only_dropping_the_connected_role_is_recognised() {
        assert!(drops_role("DROP ROLE POSTGRES;", "postgres"));
        assert!(drops_role("DROP ROLE IF EXISTS \"ADMIN\";", "admin"));
        assert!(!drops_role("DROP ROLE APP;", "postgres"));
        assert!(!drops_role("CREATE ROLE POSTGRES;", "postgres"));
        assert!(alters_role(
            "ALTER ROLE POSTGRES WITH NOSUPERUSER;",
            "postgres"
        ));
        assert!(alters_role(
            "ALTER ROLE \"POSTGRES\" SET SEARCH_PATH TO X;",
            "postgres"
        ));
        assert!(!alters_role("ALTER ROLE POSTGRES2 WITH LOGIN;", "postgres"));
    }

    #[test]
    fn failures_never_show_a_password() {
        assert_eq!(
            first_line("ALTER ROLE a WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:xyz';"),
            "ALTER ROLE a WITH LOGIN"
        );
    }
}
