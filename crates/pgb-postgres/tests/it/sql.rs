//! The `sql` helpers and the table estimates `PgDump::prepare` records, against real
//! PostgreSQL 15.

use crate::common;

use common::*;
use pgb_core::{DumpErrorKind, Dumper, TableEstimate};
use pgb_postgres::{PgDump, sql};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_rows_keeps_awkward_values_apart() {
    let Some(pg) = pg15() else { return };
    let psql = pg.locator().pick("psql", 0, "test").await.expect("psql");
    let conn = pg.conn("postgres");
    let rows = sql::query_rows(
        &psql,
        &conn,
        "select * from (values (1, 'a|b', 'two\nlines'), (2, '', null)) v order by 1;",
        &[],
    )
    .await
    .expect("query");
    assert_eq!(
        rows,
        vec![
            vec!["1".to_owned(), "a|b".to_owned(), "two\nlines".to_owned()],
            vec!["2".to_owned(), String::new(), String::new()],
        ]
    );
    assert!(
        sql::query_rows(&psql, &conn, "select 1 where false;", &[])
            .await
            .unwrap()
            .is_empty()
    );
    // One row with one empty value is not "no rows".
    assert_eq!(
        sql::query_scalar(&psql, &conn, "select '';", &[])
            .await
            .unwrap(),
        Some(String::new())
    );
    // Variables interpolate as literals: no injection through a value.
    assert_eq!(
        sql::query_scalar(
            &psql,
            &conn,
            "select :'v' = 'x''); drop table nope; --';",
            &[("v", "x'); drop table nope; --")]
        )
        .await
        .unwrap()
        .as_deref(),
        Some("t")
    );
    let err = sql::query_scalar(&psql, &conn, "select * from no_such_table;", &[])
        .await
        .expect_err("an SQL error");
    assert_eq!(err.kind(), DumpErrorKind::Failed);
    assert_eq!(err.program(), Some("psql"));
    assert!(
        err.to_string().contains("no_such_table"),
        "the cause is stated: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_drop_a_database_with_an_awkward_name_even_while_connected() {
    let Some(pg) = pg15() else { return };
    let psql = pg.locator().pick("psql", 0, "test").await.expect("psql");
    let maint = pg.conn("postgres");
    let name = format!("{} it's \"quoted\"", unique("sql"));
    let _guard = pg.adopt_db(&name.replace('"', "\"\""));
    assert!(!sql::database_exists(&psql, &maint, &name).await.unwrap());
    sql::create_database(&psql, &maint, &name)
        .await
        .expect("create");
    assert!(sql::database_exists(&psql, &maint, &name).await.unwrap());
    // A session that stays connected (as a killed pg_restore's backend may) does not block
    // the drop.
    let mut holder = tokio::process::Command::new(psql.path.clone())
        .args(["-X", "-q", "-c", "select pg_sleep(60);"])
        .arg(format!("--dbname={}", pg.conn(&name).redacted()))
        .kill_on_drop(true)
        .spawn()
        .expect("psql holding a session");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while sql::query_scalar(
        &psql,
        &maint,
        "select count(*) from pg_stat_activity where datname = :'name';",
        &[("name", &name)],
    )
    .await
    .unwrap()
    .as_deref()
        == Some("0")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the session never connected"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    sql::drop_database(&psql, &maint, &name)
        .await
        .expect("drop while connected");
    assert!(!sql::database_exists(&psql, &maint, &name).await.unwrap());
    let _ = holder.kill().await;
    // Dropping a database that does not exist is not an error.
    sql::drop_database(&psql, &maint, &name)
        .await
        .expect("drop again");
    // quote_ident makes any name usable in SQL text.
    let quoted = sql::quote_ident(&name);
    sql::execute(&psql, &maint, &format!("create database {quoted};"), &[])
        .await
        .expect("create through quote_ident");
    assert!(sql::database_exists(&psql, &maint, &name).await.unwrap());
    sql::drop_database(&psql, &maint, &name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_records_each_tables_estimated_rows() {
    let Some(pg) = pg15() else { return };
    let db = pg.create_db("estimates").await;
    pg.psql(
        &db.name,
        "create schema \"odd|schema\";
         create table \"odd|schema\".\"big table\" (id int);
         insert into \"odd|schema\".\"big table\" select generate_series(1, 1000);
         create table public.empty_one (id int);
         create table public.never_analyzed (id int) with (autovacuum_enabled = false);
         insert into public.never_analyzed values (1);
         create table public.never_analyzed_empty (id int) with (autovacuum_enabled = false);
         create table public.parts (id int) partition by range (id);
         create table public.parts_low partition of public.parts for values from (0) to (100);
         insert into public.parts select generate_series(0, 99);
         create view public.a_view as select 1 as x;
         create materialized view public.a_matview as select 1 as x;
         analyze \"odd|schema\".\"big table\", public.empty_one, public.parts_low;",
    )
    .await;
    let prepared = PgDump::new(pg.conn(&db.name), pg.locator())
        .prepare()
        .await
        .expect("prepare");
    let estimates = &prepared.source().table_estimates;
    let find = |schema: &str, name: &str| -> &TableEstimate {
        estimates
            .iter()
            .find(|t| t.schema == schema && t.name == name)
            .unwrap_or_else(|| panic!("{schema}.{name} missing from {estimates:?}"))
    };
    assert_eq!(find("odd|schema", "big table").rows, Some(1000));
    assert_eq!(find("public", "empty_one").rows, Some(0));
    // A never-analyzed table has no estimate (reltuples = -1), so whether it held rows is
    // probed: a drill can still tell that its restore must not be empty.
    assert_eq!(find("public", "never_analyzed").rows, None);
    assert_eq!(find("public", "never_analyzed").has_rows, Some(true));
    assert_eq!(find("public", "never_analyzed").held_rows(), Some(true));
    assert_eq!(find("public", "never_analyzed_empty").has_rows, Some(false));
    assert_eq!(
        find("public", "never_analyzed_empty").held_rows(),
        Some(false)
    );
    // Analyzed tables are not probed: their estimate says it.
    assert_eq!(find("odd|schema", "big table").has_rows, None);
    assert_eq!(find("public", "empty_one").held_rows(), Some(false));
    assert_eq!(find("public", "parts_low").rows, Some(100));
    // A partitioned table is probed through its partitions.
    assert_eq!(find("public", "parts").held_rows(), Some(true));
    assert_eq!(
        estimates.len(),
        6,
        "tables only (no views, no system tables): {estimates:?}"
    );
    let mut sorted = estimates.clone();
    sorted.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    assert_eq!(&sorted, estimates, "sorted by schema and name");
    // The database's size bounds the dump from above: it becomes the storage writer's size
    // hint (multipart part sizes).
    let size = prepared
        .source()
        .size_estimate
        .expect("the database size is known");
    assert!(size > 1_000_000, "a real database is megabytes: {size}");
}
