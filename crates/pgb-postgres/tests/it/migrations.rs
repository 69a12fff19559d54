//! Migration heads read from real PostgreSQL (15 and 17): fixture tables of every framework,
//! built by SQL written here (no framework installed), read by `SqlClient::migration_heads`
//! and recorded by `PgDump::prepare`; a custom query; what cannot be read is a warning.

use crate::common;

use common::*;
use pgb_core::{Dumper, MigrationFramework as F, MigrationHead};
use pgb_postgres::{MigrationProbe, PgDump, SqlClient};

/// Every framework's table in one database, each with a head worth checking: Prisma with a
/// failed migration (its logs), golang-migrate dirty (in schema `gm`, off the search path,
/// since Rails' `schema_migrations` is in `public`), Flyway with a failed row, Django with two
/// apps, a Laravel-style `laravel.migrations` that must not be taken for TypeORM's.
const ALL_FRAMEWORKS: &str = r#"
create table _prisma_migrations (id varchar(36) primary key, checksum varchar(64) not null,
  finished_at timestamptz, migration_name varchar(255) not null, logs text,
  rolled_back_at timestamptz, started_at timestamptz not null default now(),
  applied_steps_count integer not null default 0);
insert into _prisma_migrations (id, checksum, finished_at, migration_name, logs, started_at) values
  ('1', 'c', '2024-01-01 10:00:00+00', '20240101100000_init', null, '2024-01-01 10:00:00+00'),
  ('2', 'c', '2024-02-01 10:00:00+00', '20240201100000_orders', null, '2024-02-01 10:00:00+00'),
  ('3', 'c', null, '20240301100000_refunds', 'Migration failed: ERROR: column "total" does not exist', '2024-03-01 10:00:00+00');
create table alembic_version (version_num varchar(32) primary key);
insert into alembic_version values ('ae1027a6acf');
create table schema_migrations (version varchar primary key);
insert into schema_migrations values ('20230105120000'), ('20231201090000'), ('9');
create schema gm;
create table gm.schema_migrations (version bigint primary key, dirty boolean not null);
insert into gm.schema_migrations values (3, true);
create table django_migrations (id serial primary key, app varchar(255), name varchar(255), applied timestamptz);
insert into django_migrations (app, name, applied) values
  ('auth', '0001_initial', '2024-01-01 00:00:00+00'),
  ('shop', '0001_initial', '2024-01-02 00:00:00+00'),
  ('shop', '0002_orders', '2024-01-03 00:00:00+00'),
  ('auth', '0002_alter', '2024-01-04 00:00:00+00');
create table flyway_schema_history (installed_rank int primary key, version varchar(50),
  description varchar(200), type varchar(20), script varchar(1000), checksum int,
  installed_by varchar(100), installed_on timestamp default now(), execution_time int, success boolean);
insert into flyway_schema_history values
  (1, '1', 'init', 'SQL', 'V1__init.sql', 1, 'app', '2024-01-01 00:00:00', 5, true),
  (2, '1.1', 'orders', 'SQL', 'V1_1__orders.sql', 1, 'app', '2024-01-02 00:00:00', 5, true),
  (3, '2', 'add index', 'SQL', 'V2__add_index.sql', 1, 'app', '2024-01-03 00:00:00', 5, false);
create table databasechangelog (id varchar(255), author varchar(255), filename varchar(255),
  dateexecuted timestamp, orderexecuted int, exectype varchar(10), md5sum varchar(35), description varchar(255));
insert into databasechangelog values
  ('create-users', 'ann', 'db.xml', '2024-01-01 00:00:00', 1, 'EXECUTED', null, null),
  ('add-email', 'ann', 'db.xml', '2024-01-02 00:00:00', 2, 'EXECUTED', null, null);
create table knex_migrations (id serial primary key, name varchar(255), batch int, migration_time timestamptz);
insert into knex_migrations (name, batch, migration_time) values
  ('20240101_users.js', 1, '2024-01-01 00:00:00+00'), ('20240102_orders.js', 1, '2024-01-02 00:00:00+00');
create table "SequelizeMeta" (name varchar(255) primary key);
insert into "SequelizeMeta" values ('20240101000000-users.js'), ('20240102000000-orders.js');
create table migrations (id serial primary key, "timestamp" bigint not null, name varchar not null);
insert into migrations ("timestamp", name) values (1700000000000, 'Users1700000000000'), (1710000000000, 'Orders1710000000000');
create schema laravel;
create table laravel.migrations (id serial primary key, migration varchar, batch int);
insert into laravel.migrations (migration, batch) values ('2014_10_12_000000_create_users_table', 1);
"#;

fn head(heads: &[MigrationHead], f: F) -> &MigrationHead {
    heads
        .iter()
        .find(|h| h.framework == f)
        .unwrap_or_else(|| panic!("no {f} head in {heads:#?}"))
}

async fn every_framework_is_read(pg: Pg) {
    let db = pg.create_db("migrations_all").await;
    pg.psql(&db.name, ALL_FRAMEWORKS).await;
    let client = SqlClient::locate(&pg.locator()).await.expect("psql");
    let scan = client
        .migration_heads(&pg.conn(&db.name), &MigrationProbe::new())
        .await;
    assert!(scan.warnings.is_empty(), "{:?}", scan.warnings);
    let heads = &scan.heads;
    assert_eq!(heads.len(), 10, "{heads:#?}");

    let p = head(heads, F::Prisma);
    assert_eq!(p.head, "20240201100000_orders");
    assert_eq!(p.applied, Some(2));
    assert_eq!(p.applied_at.as_deref(), Some("2024-02-01T10:00:00Z"));
    assert_eq!(p.table, "public._prisma_migrations");
    assert_eq!(
        p.failed.as_deref(),
        Some("20240301100000_refunds: Migration failed: ERROR: column \"total\" does not exist")
    );
    assert_eq!(head(heads, F::Alembic).head, "ae1027a6acf");
    let rails = head(heads, F::Rails);
    assert_eq!(
        (rails.head.as_str(), rails.applied),
        ("20231201090000", Some(3))
    );
    let gm = head(heads, F::GolangMigrate);
    assert_eq!((gm.head.as_str(), gm.dirty), ("3", true));
    assert_eq!(gm.table, "gm.schema_migrations");
    let dj = head(heads, F::Django);
    assert_eq!(dj.head, "auth:0002_alter");
    assert_eq!(dj.apps, ["auth:0002_alter", "shop:0002_orders"]);
    let fw = head(heads, F::Flyway);
    assert_eq!(fw.head, "1.1");
    assert_eq!(fw.applied_at.as_deref(), Some("2024-01-02T00:00:00Z"));
    assert_eq!(
        fw.failed.as_deref(),
        Some("2 add index (V2__add_index.sql)")
    );
    assert_eq!(head(heads, F::Liquibase).head, "add-email");
    assert_eq!(head(heads, F::Knex).head, "20240102_orders.js");
    assert_eq!(head(heads, F::Sequelize).head, "20240102000000-orders.js");
    let typeorm = head(heads, F::Typeorm);
    assert_eq!(typeorm.head, "Orders1710000000000");
    assert_eq!(typeorm.table, "public.migrations", "not laravel.migrations");

    // The preflight records the same heads, the ones a probe asks for.
    let only = MigrationProbe::new().with_frameworks(vec![F::Flyway, F::Prisma]);
    let prepared = PgDump::new(pg.conn(&db.name), pg.locator())
        .with_options(pgb_postgres::DumpOptions::new().with_migrations(only))
        .prepare()
        .await
        .expect("prepare");
    let recorded: Vec<F> = prepared
        .source()
        .migrations
        .iter()
        .map(|h| h.framework)
        .collect();
    assert_eq!(recorded, [F::Prisma, F::Flyway]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_framework_is_read_on_postgresql_15() {
    let Some(pg) = pg15() else { return };
    every_framework_is_read(pg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_framework_is_read_on_postgresql_17() {
    let Some(pg) = pg17() else { return };
    every_framework_is_read(pg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_query_gives_one_head_and_anything_else_is_a_warning() {
    let Some(pg) = pg15() else { return };
    let db = pg.create_db("migrations_custom").await;
    pg.psql(
        &db.name,
        "create table app_version (v text); insert into app_version values ('v42');",
    )
    .await;
    let client = SqlClient::locate(&pg.locator()).await.expect("psql");
    let conn = pg.conn(&db.name);
    let probe = |q: &str| MigrationProbe::new().with_query(q);
    let scan = client
        .migration_heads(&conn, &probe("select v from app_version;"))
        .await;
    assert!(scan.warnings.is_empty(), "{:?}", scan.warnings);
    assert_eq!(scan.heads.len(), 1, "no framework table, one custom head");
    assert_eq!(
        (scan.heads[0].framework, scan.heads[0].head.as_str()),
        (F::Custom, "v42")
    );
    for (q, says) in [
        ("select v from no_such_table", "no_such_table"),
        ("select v from app_version where false", "no row"),
        ("select v, v from app_version", "2 columns"),
        ("select v from app_version union all select 'x'", "2 rows"),
        ("select ''", "an empty value"),
        // Read-only: a query that writes fails and writes nothing.
        (
            "insert into app_version values ('w') returning v",
            "read-only",
        ),
    ] {
        let scan = client.migration_heads(&conn, &probe(q)).await;
        assert!(scan.heads.is_empty(), "{q}: {:?}", scan.heads);
        assert_eq!(scan.warnings.len(), 1, "{q}: {:?}", scan.warnings);
        assert!(
            scan.warnings[0].contains("migrations_query") && scan.warnings[0].contains(says),
            "{q}: {}",
            scan.warnings[0]
        );
    }
    assert_eq!(
        pg.psql(&db.name, "select count(*) from app_version").await,
        "1"
    );

    // A table the role may not read: a warning, no head.
    pg.psql(
        &db.name,
        "create table alembic_version (version_num varchar(32)); insert into alembic_version values ('abc');",
    )
    .await;
    let role = TempRole::create(&pg, "migrations_reader", "pw").await;
    pg.psql(
        &db.name,
        &format!("revoke all on alembic_version from public; grant connect on database \"{}\" to \"{}\";", db.name, role.name),
    )
    .await;
    let scan = client
        .migration_heads(
            &pg.conn_as(&role.name, &db.name).with_password("pw"),
            &MigrationProbe::new(),
        )
        .await;
    assert!(scan.heads.is_empty(), "{:?}", scan.heads);
    assert!(
        scan.warnings.len() == 1 && scan.warnings[0].contains("permission denied"),
        "{:?}",
        scan.warnings
    );
    drop(db);
}
