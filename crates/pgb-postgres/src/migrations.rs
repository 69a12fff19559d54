//! Reading a database's migration heads ([`pgb_core::MigrationHead`]) from the tables the
//! migration frameworks keep, plus a job's own query ([`MigrationProbe::with_query`]).
//!
//! One query finds the candidate tables by name in any schema (not the system's), with their
//! columns; a table is taken as a framework's only when it has that framework's columns (a
//! `migrations` table without `timestamp` and `name` is not TypeORM's, a `schema_migrations`
//! with a `dirty` column is golang-migrate's, without one Rails'). Per framework one table
//! counts: the one on the search path, else the first by schema name. Then one query per table
//! reads its head. Every query runs read-only with a statement and a lock timeout.
//!
//! Reading never fails: a table that cannot be read, a custom query that errors or returns
//! anything but one row of one non-empty column, is a warning in [`MigrationScan::warnings`]
//! and no head. A database without any of these tables has no heads and no warning.

use pgb_core::{DumpError, MigrationFramework, MigrationHead};

use crate::conn::ConnConfig;
use crate::sql::{self, quote_ident};
use crate::tools::Tool;

/// Which heads to read: the frameworks detected by their tables (all by default) and a custom
/// query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationProbe {
    frameworks: Vec<MigrationFramework>,
    query: Option<String>,
}

impl Default for MigrationProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl MigrationProbe {
    /// Every framework pgb detects, no custom query.
    pub fn new() -> Self {
        Self {
            frameworks: MigrationFramework::DETECTED.to_vec(),
            query: None,
        }
    }

    /// Detects only these frameworks (empty: none; a custom query still runs).
    pub fn with_frameworks(mut self, frameworks: Vec<MigrationFramework>) -> Self {
        self.frameworks = frameworks
            .into_iter()
            .filter(|f| *f != MigrationFramework::Custom)
            .collect();
        self
    }

    /// Also runs `sql`, which must return one row of one text column: the head, recorded as
    /// framework `custom`.
    pub fn with_query(mut self, sql: impl Into<String>) -> Self {
        self.query = Some(sql.into()).filter(|q| !q.trim().is_empty());
        self
    }

    /// The frameworks detected.
    pub fn frameworks(&self) -> &[MigrationFramework] {
        &self.frameworks
    }

    /// The custom query.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
}

/// What reading the heads found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationScan {
    /// The heads, in detection order, then the custom query's.
    pub heads: Vec<MigrationHead>,
    /// What could not be read, one line each.
    pub warnings: Vec<String>,
}

/// Session settings of every read: read-only, bounded, UTC timestamps.
const SESSION: &str = "set default_transaction_read_only = on;\n\
     set statement_timeout = '30s';\n\
     set lock_timeout = '10s';\n\
     set timezone = 'UTC';\n";

/// Candidate tables and their columns.
const TABLES: &str = "select n.nspname, c.relname, pg_table_is_visible(c.oid), \
     string_agg(a.attname, ',' order by a.attnum) \
     from pg_class c join pg_namespace n on n.oid = c.relnamespace \
     join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped \
     where c.relkind in ('r', 'p', 'v', 'm', 'f') \
     and c.relname in ('_prisma_migrations', 'alembic_version', 'schema_migrations', \
       'django_migrations', 'flyway_schema_history', 'databasechangelog', 'knex_migrations', \
       'SequelizeMeta', 'migrations') \
     and n.nspname <> 'information_schema' and n.nspname not like 'pg\\_%' \
     group by n.nspname, c.relname, c.oid \
     order by pg_table_is_visible(c.oid) desc, n.nspname collate \"C\", c.relname collate \"C\";";

/// An applied time as RFC 3339 in UTC (the session's zone; a column without a zone is taken
/// as UTC).
fn ts(expr: &str) -> String {
    format!("to_char({expr}, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
}

/// The framework a table belongs to, judged by its name and columns.
fn framework_of(table: &str, columns: &[&str]) -> Option<MigrationFramework> {
    use MigrationFramework as F;
    let has = |cols: &[&str]| cols.iter().all(|c| columns.contains(c));
    let f = match table {
        "_prisma_migrations" => F::Prisma,
        "alembic_version" => F::Alembic,
        "schema_migrations" if has(&["version", "dirty"]) => F::GolangMigrate,
        "schema_migrations" => F::Rails,
        "django_migrations" => F::Django,
        "flyway_schema_history" => F::Flyway,
        "databasechangelog" => F::Liquibase,
        "knex_migrations" => F::Knex,
        "SequelizeMeta" => F::Sequelize,
        "migrations" => F::Typeorm,
        _ => return None,
    };
    has(required_columns(f)).then_some(f)
}

fn required_columns(f: MigrationFramework) -> &'static [&'static str] {
    use MigrationFramework as F;
    match f {
        F::Prisma => &[
            "migration_name",
            "finished_at",
            "rolled_back_at",
            "started_at",
            "logs",
        ],
        F::Alembic => &["version_num"],
        F::Rails => &["version"],
        F::GolangMigrate => &["version", "dirty"],
        F::Django => &["id", "app", "name", "applied"],
        F::Flyway => &[
            "installed_rank",
            "version",
            "description",
            "script",
            "installed_on",
            "success",
        ],
        F::Liquibase => &[
            "id",
            "filename",
            "dateexecuted",
            "orderexecuted",
            "exectype",
        ],
        F::Knex => &["id", "name", "migration_time"],
        F::Sequelize => &["name"],
        F::Typeorm => &["id", "timestamp", "name"],
        _ => &[],
    }
}

/// The query reading framework `f`'s head from table `t` (quoted): one row of head, applied
/// at, applied count, dirty, failed row, Django's per-app heads.
fn head_query(f: MigrationFramework, t: &str) -> String {
    use MigrationFramework as F;
    match f {
        F::Prisma => {
            let ok = "finished_at is not null and rolled_back_at is null";
            format!(
                "select (select migration_name from {t} where {ok} order by migration_name desc limit 1), \
                 (select {} from {t} where {ok}), (select count(*) from {t} where {ok}), false, \
                 (select migration_name || ': ' || coalesce(nullif(logs, ''), 'no log') from {t} \
                  where finished_at is null and rolled_back_at is null order by started_at desc limit 1), null;",
                ts("max(finished_at)")
            )
        }
        F::Alembic => format!(
            "select string_agg(version_num, ',' order by version_num), null, null, false, null, null from {t};"
        ),
        F::Rails => format!(
            "select (select version from {t} order by length(version::text) desc, version::text desc limit 1), \
             null, (select count(*) from {t}), false, null, null;"
        ),
        F::GolangMigrate => {
            format!("select version::text, null, null, dirty, null, null from {t} limit 1;")
        }
        F::Django => format!(
            "select (select app || ':' || name from {t} order by applied desc, id desc limit 1), \
             (select {} from {t}), (select count(*) from {t}), false, null, \
             (select string_agg(app || ':' || name, E'\\n' order by app) from \
              (select distinct on (app) app, name from {t} order by app, name desc) x);",
            ts("max(applied)")
        ),
        F::Flyway => {
            let ok = "success and version is not null";
            format!(
                "select (select version from {t} where {ok} order by installed_rank desc limit 1), \
                 (select {} from {t} where {ok} order by installed_rank desc limit 1), \
                 (select count(*) from {t} where {ok}), false, \
                 (select coalesce(version || ' ', '') || description || ' (' || script || ')' from {t} \
                  where not success order by installed_rank desc limit 1), null;",
                ts("installed_on")
            )
        }
        F::Liquibase => {
            let ok = "exectype is distinct from 'FAILED'";
            format!(
                "select (select id from {t} where {ok} order by orderexecuted desc limit 1), \
                 (select {} from {t} where {ok} order by orderexecuted desc limit 1), \
                 (select count(*) from {t} where {ok}), false, \
                 (select id || ' (' || filename || ')' from {t} where exectype = 'FAILED' \
                  order by orderexecuted desc limit 1), null;",
                ts("dateexecuted")
            )
        }
        F::Knex => format!(
            "select (select name from {t} order by id desc limit 1), (select {} from {t}), \
             (select count(*) from {t}), false, null, null;",
            ts("max(migration_time)")
        ),
        F::Sequelize => format!(
            "select (select name from {t} order by name desc limit 1), null, (select count(*) from {t}), \
             false, null, null;"
        ),
        _ => format!(
            "select (select name from {t} order by \"timestamp\" desc, id desc limit 1), null, \
             (select count(*) from {t}), false, null, null;"
        ),
    }
}

/// The head a [`head_query`] row describes; `None` when nothing is applied and nothing failed.
fn head_of(f: MigrationFramework, table: String, row: Vec<String>) -> Option<MigrationHead> {
    let [head, at, n, dirty, failed, apps] = <[String; 6]>::try_from(row).ok()?;
    let failed = Some(failed).filter(|s| !s.trim().is_empty());
    if head.is_empty() && failed.is_none() {
        return None;
    }
    Some(
        MigrationHead::new(f, head)
            .with_table(table)
            .with_applied_at(Some(at))
            .with_applied(n.trim().parse().ok())
            .with_dirty(dirty == "t")
            .with_failed(failed)
            .with_apps(
                apps.lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
    )
}

/// The most telling line of a failed read.
fn cause(e: &DumpError) -> String {
    let tail = e.stderr_tail().unwrap_or_default();
    tail.lines()
        .find(|l| l.contains("ERROR:"))
        .map(|l| {
            l.split_once("ERROR:")
                .map_or(l, |(_, m)| m)
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|| e.to_string())
}

/// Reads the heads `probe` asks for from the database `conn` names. Never fails (see the
/// module documentation).
pub(crate) async fn scan(psql: &Tool, conn: &ConnConfig, probe: &MigrationProbe) -> MigrationScan {
    let mut scan = MigrationScan::default();
    if !probe.frameworks.is_empty() {
        detect(psql, conn, probe, &mut scan).await;
    }
    if let Some(q) = &probe.query {
        custom(psql, conn, q, &mut scan).await;
    }
    for w in &scan.warnings {
        tracing::warn!(database = %conn.redacted(), "{w}");
    }
    scan
}

async fn detect(psql: &Tool, conn: &ConnConfig, probe: &MigrationProbe, scan: &mut MigrationScan) {
    let rows = match sql::query_rows(psql, conn, &format!("{SESSION}{TABLES}"), &[]).await {
        Ok(rows) => rows,
        Err(e) => {
            scan.warnings.push(format!(
                "cannot look for migration tables, no migration head recorded: {}",
                cause(&e)
            ));
            return;
        }
    };
    let mut seen = Vec::new();
    for row in rows {
        let Ok([schema, table, _visible, columns]) = <[String; 4]>::try_from(row) else {
            continue;
        };
        let cols: Vec<&str> = columns.split(',').collect();
        let Some(f) = framework_of(&table, &cols) else {
            continue;
        };
        if !probe.frameworks.contains(&f) || seen.contains(&f) {
            continue;
        }
        seen.push(f);
        let qualified = format!("{}.{}", quote_ident(&schema), quote_ident(&table));
        let sql = format!("{SESSION}{}", head_query(f, &qualified));
        match sql::query_rows(psql, conn, &sql, &[]).await {
            Ok(rows) => {
                let name = format!("{schema}.{table}");
                if let Some(h) = rows.into_iter().next().and_then(|r| head_of(f, name, r)) {
                    scan.heads.push(h);
                }
            }
            Err(e) => scan.warnings.push(format!(
                "cannot read the {f} head from {schema}.{table}, none recorded: {}",
                cause(&e)
            )),
        }
    }
}

async fn custom(psql: &Tool, conn: &ConnConfig, query: &str, scan: &mut MigrationScan) {
    let q = query.trim().trim_end_matches(';');
    let rows = match sql::query_rows(psql, conn, &format!("{SESSION}{q};\n"), &[]).await {
        Ok(rows) => rows,
        Err(e) => {
            scan.warnings.push(format!(
                "migrations_query failed, no custom head recorded: {}",
                cause(&e)
            ));
            return;
        }
    };
    let shape = match rows.as_slice() {
        [row] if row.len() == 1 && !row[0].trim().is_empty() => {
            scan.heads.push(MigrationHead::new(
                MigrationFramework::Custom,
                row[0].trim(),
            ));
            return;
        }
        [] => "no row".to_owned(),
        [row] if row.len() == 1 => "an empty value".to_owned(),
        [row] => format!("{} columns", row.len()),
        more => format!("{} rows", more.len()),
    };
    scan.warnings.push(format!(
        "migrations_query returned {shape}, not one row of one column: no custom head recorded"
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_recognised_by_name_and_columns() {
        use MigrationFramework as F;
        let f = |t: &str, c: &str| framework_of(t, &c.split(',').collect::<Vec<_>>());
        assert_eq!(f("schema_migrations", "version"), Some(F::Rails));
        assert_eq!(
            f("schema_migrations", "version,dirty"),
            Some(F::GolangMigrate)
        );
        assert_eq!(f("migrations", "id,timestamp,name"), Some(F::Typeorm));
        assert_eq!(
            f("migrations", "id,migration,batch"),
            None,
            "Laravel's is not TypeORM's"
        );
        assert_eq!(f("alembic_version", "version_num"), Some(F::Alembic));
        assert_eq!(f("_prisma_migrations", "id,checksum"), None);
    }

    #[test]
    fn a_row_with_nothing_applied_and_nothing_failed_is_no_head() {
        let row = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let f = MigrationFramework::Prisma;
        assert!(head_of(f, "t".into(), row(&["", "", "0", "f", "", ""])).is_none());
        let h = head_of(f, "t".into(), row(&["", "", "0", "f", "2024_a: boom", ""])).unwrap();
        assert_eq!(h.failed.as_deref(), Some("2024_a: boom"));
        let h = head_of(
            MigrationFramework::Django,
            "public.django_migrations".into(),
            row(&[
                "shop:0002_b",
                "2024-05-01T10:00:00Z",
                "3",
                "f",
                "",
                "auth:0001_initial\nshop:0002_b",
            ]),
        )
        .unwrap();
        assert_eq!(h.apps, ["auth:0001_initial", "shop:0002_b"]);
        assert_eq!(h.applied, Some(3));
        assert_eq!(h.applied_at.as_deref(), Some("2024-05-01T10:00:00Z"));
    }
}
