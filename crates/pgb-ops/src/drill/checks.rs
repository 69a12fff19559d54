//! The drill's checks of a restored database, and its check results.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use pgb_core::{DumpError, TableEstimate};
use pgb_postgres::{ConnConfig, SqlClient};

use super::{CheckResult, SmokeStatement};
use crate::toc::TocTable;

/// Step 6: the checks on the restored database: its tables against the archive's table of
/// contents (`None`: plain SQL, none), their rows against the manifest's estimates, and the
/// smoke statements.
pub(super) async fn run(
    client: &SqlClient,
    target: &ConnConfig,
    toc: Option<&[TocTable]>,
    estimates: &[TableEstimate],
    smoke_statements: &[SmokeStatement],
) -> Vec<CheckResult> {
    let mut checks = Vec::new();
    match client.query(target, TABLES_SQL, &[]).await {
        Ok(out) => match present_tables(&out) {
            Ok(present) => {
                checks.push(tables_check(&present, toc));
                checks.push(rows_check(&present, estimates));
            }
            Err(e) => checks.push(failed("tables", e)),
        },
        Err(e) => checks.push(failed("tables", cause_of(&e))),
    }
    for s in smoke_statements {
        checks.push(smoke(client, target, s).await);
    }
    checks
}

pub(super) fn passed(name: &str, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        name: name.to_owned(),
        passed: true,
        skipped: false,
        detail: detail.into(),
    }
}

pub(super) fn failed(name: &str, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        name: name.to_owned(),
        passed: false,
        skipped: false,
        detail: detail.into(),
    }
}

pub(super) fn skipped(name: &str, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        name: name.to_owned(),
        passed: true,
        skipped: true,
        detail: detail.into(),
    }
}

/// Every user table of the restored database and whether it holds at least one row (exact:
/// one `LIMIT 1` probe per table, in a single query).
const TABLES_SQL: &str = "select coalesce(json_agg(json_build_array(n.nspname, c.relname, \
     (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from (select 1 from %s %I.%I limit 1) x', \
        case when c.relkind = 'p' then '' else 'only' end, n.nspname, c.relname), false, true, '')))[1]::text::int > 0)), '[]') \
     from pg_class c join pg_namespace n on n.oid = c.relnamespace \
     where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') \
     and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%';";

/// The restored tables and whether each has rows, from [`TABLES_SQL`]'s output.
fn present_tables(out: &str) -> Result<BTreeMap<TocTable, bool>, String> {
    let rows: Vec<(String, String, bool)> =
        serde_json::from_str(out).map_err(|e| format!("unreadable table list: {e}"))?;
    Ok(rows
        .into_iter()
        .map(|(schema, name, has_rows)| (TocTable { schema, name }, has_rows))
        .collect())
}

/// Every user table of the database `target` names and whether it holds a row (one `LIMIT 1`
/// probe each, which reads the table): a physical drill's table check, per database.
pub(super) async fn tables_of(
    client: &SqlClient,
    target: &ConnConfig,
) -> Result<BTreeMap<TocTable, bool>, String> {
    let out = client
        .query(target, TABLES_SQL, &[])
        .await
        .map_err(|e| cause_of(&e))?;
    present_tables(&out)
}

/// Every table of the archive's table of contents exists in the restored database.
fn tables_check(present: &BTreeMap<TocTable, bool>, toc: Option<&[TocTable]>) -> CheckResult {
    const NAME: &str = "tables";
    let Some(toc) = toc else {
        return skipped(
            NAME,
            "a plain SQL backup has no table of contents to compare",
        );
    };
    let missing: Vec<String> = toc
        .iter()
        .filter(|t| !present.contains_key(*t))
        .map(ToString::to_string)
        .collect();
    if missing.is_empty() {
        passed(
            NAME,
            format!("all {} tables of the archive exist", toc.len()),
        )
    } else {
        failed(
            NAME,
            format!(
                "{} of {} tables of the archive are missing: {}",
                missing.len(),
                toc.len(),
                list_some(&missing)
            ),
        )
    }
}

/// Every table that held rows at backup time (the manifest's estimates) has rows. A manifest
/// without estimates (written before pgb recorded them: the field is absent and reads as
/// empty) skips the check.
fn rows_check(present: &BTreeMap<TocTable, bool>, estimates: &[TableEstimate]) -> CheckResult {
    const NAME: &str = "rows";
    if estimates.is_empty() {
        return skipped(
            NAME,
            "the manifest carries no per-table row estimates (backup made before pgb recorded them); empty tables not checked",
        );
    }
    let should_have_rows: BTreeSet<TocTable> = estimates
        .iter()
        .filter(|e| e.held_rows() == Some(true))
        .map(|e| TocTable {
            schema: e.schema.clone(),
            name: e.name.clone(),
        })
        .collect();
    let empty: Vec<String> = should_have_rows
        .iter()
        .filter(|t| present.get(*t) == Some(&false))
        .map(ToString::to_string)
        .collect();
    if empty.is_empty() {
        passed(
            NAME,
            format!(
                "all {} tables that held rows at backup time have rows",
                should_have_rows.len()
            ),
        )
    } else {
        failed(
            NAME,
            format!(
                "{} tables held rows at backup time but are empty: {}",
                empty.len(),
                list_some(&empty)
            ),
        )
    }
}

fn list_some(items: &[String]) -> String {
    let mut s = items.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 5 {
        let _ = write!(s, " and {} more", items.len() - 5);
    }
    s
}

pub(super) async fn smoke(
    client: &SqlClient,
    target: &ConnConfig,
    s: &SmokeStatement,
) -> CheckResult {
    let name = format!("smoke {}", s.name);
    match client.query(target, &s.sql, &[]).await {
        Err(e) => failed(&name, cause_of(&e)),
        Ok(out) => {
            let rows: Vec<&str> = out.lines().collect();
            if rows.len() != 1 {
                return failed(&name, format!("returned {} rows, expected one", rows.len()));
            }
            let first = rows[0].split('|').next().unwrap_or("");
            if first == "t" {
                passed(&name, "returned true")
            } else {
                failed(&name, format!("returned {first:?}, expected true"))
            }
        }
    }
}

/// The cause of a failed step, with the tool's last error line.
pub(super) fn cause_of(e: &DumpError) -> String {
    let tail = e
        .stderr_tail()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| l.contains("ERROR") || l.contains("error:") || l.contains("FATAL"))
                .or_else(|| t.lines().last())
        })
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default();
    format!("{e}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgb_core::Manifest;

    fn table(name: &str) -> TocTable {
        TocTable {
            schema: "public".into(),
            name: name.into(),
        }
    }

    #[test]
    fn rows_are_expected_where_the_manifest_says_a_table_held_rows() {
        let present: BTreeMap<TocTable, bool> = [
            (table("full"), true),
            (table("emptied"), false),
            (table("fresh"), false),
            (table("unknown"), false),
            (table("empty"), false),
        ]
        .into_iter()
        .collect();
        // As a manifest stores them: estimates, and a never-analyzed table's probe.
        let estimates: Vec<TableEstimate> = serde_json::from_value(serde_json::json!([
            {"schema": "public", "name": "full", "rows": 5},
            {"schema": "public", "name": "emptied", "rows": 7},
            {"schema": "public", "name": "fresh", "rows": null, "has_rows": true},
            {"schema": "public", "name": "unknown", "rows": null},
            {"schema": "public", "name": "empty", "rows": 0}
        ]))
        .unwrap();
        let check = rows_check(&present, &estimates);
        assert!(!check.passed && !check.skipped);
        assert_eq!(
            check.detail,
            "2 tables held rows at backup time but are empty: public.emptied, public.fresh"
        );
        let check = rows_check(&present, &estimates[..1]);
        assert!(check.passed && !check.skipped, "{check:?}");
    }

    #[test]
    fn a_manifest_from_before_table_estimates_skips_the_rows_check() {
        // Written by pgb 0.1.0 before it recorded `table_estimates`: the typed manifest reads
        // the absent field as empty.
        let m = Manifest::from_json(include_bytes!(
            "../../../pgb-core/tests/fixtures/manifest-v1/backups/20261130T031854Z-48660f/manifest.json"
        ))
        .unwrap();
        assert!(m.table_estimates.is_empty());
        let check = rows_check(&BTreeMap::new(), &m.table_estimates);
        assert!(check.passed && check.skipped, "{check:?}");
    }
}
