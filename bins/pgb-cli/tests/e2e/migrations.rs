//! Migration-aware backups against real PostgreSQL (15, and 17 where a test says so): fixture
//! schemas of Prisma, Alembic, golang-migrate and Flyway built by SQL written here (no
//! framework installed). A backup records each database's migration head (never failing for
//! it); `pgb list` shows it (text and JSON) and `--migration` finds the backups taken at or
//! before a migration; `pgb restore` and `pgb drill` read the head before and after the
//! job's `post_restore` hook and, with an expected head, fail with exit 13 when the database
//! is behind, dirty or has a failed migration row (quoted), or refuse a backup that does not
//! fit before anything is written.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_json::Value;

/// Prisma migrations, oldest first.
const M1: &str = "20240101100000_init";
const M2: &str = "20240201100000_orders";
const M3: &str = "20240301100000_refunds";

/// The exit code of a failed migration check.
const MIGRATION: i32 = 13;

const PRISMA_TABLE: &str = "create table _prisma_migrations (id varchar(36) primary key, \
     checksum varchar(64) not null, finished_at timestamptz, migration_name varchar(255) not null, \
     logs text, rolled_back_at timestamptz, started_at timestamptz not null default now(), \
     applied_steps_count integer not null default 0);";

/// An applied Prisma migration `name`.
fn prisma_applied(name: &str) -> String {
    format!(
        "insert into _prisma_migrations (id, checksum, finished_at, migration_name, applied_steps_count) \
         values ('{name}', 'c', now(), '{name}', 1);"
    )
}

const FLYWAY_TABLE: &str = "create table flyway_schema_history (installed_rank int primary key, \
     version varchar(50), description varchar(200), type varchar(20), script varchar(1000), \
     checksum int, installed_by varchar(100), installed_on timestamp not null default now(), \
     execution_time int, success boolean not null);";

/// A Flyway row: `rank`, `version`, `description`, `script`, whether it succeeded.
fn flyway_row(rank: u32, version: &str, description: &str, script: &str, ok: bool) -> String {
    format!(
        "insert into flyway_schema_history values ({rank}, '{version}', '{description}', 'SQL', \
         '{script}', 1, 'app', now(), 5, {ok});"
    )
}

/// The PostgreSQL 17 test server, or `None` (after a loud skip notice).
fn pg17() -> Option<Pg> {
    match (env("PGB_TEST_PG17_URL"), env("PGB_TEST_PG17_BIN")) {
        (Some(url), Some(bin)) => Some(Pg {
            base: url.trim_end_matches("/postgres").to_owned(),
            bin: bin.into(),
        }),
        _ => pgb_testkit::require_or_skip(
            "PostgreSQL 17 (PGB_TEST_PG17_URL, PGB_TEST_PG17_BIN)",
            "run scripts/test.sh",
        ),
    }
}

/// Runs `pgb` with the test server's tools.
fn run(pg: &Pg, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut all = vec![("PGB_PG_BIN_DIR", pg.bin.to_str().unwrap())];
    all.extend_from_slice(envs);
    pgb_env(args, &all)
}

/// `pgb backup` of `db` into `repo` with `extra` arguments.
fn backup_db(pg: &Pg, repo: &Path, db: &str, extra: &[&str]) -> Output {
    let args = backup_args(pg, repo, db, extra);
    run(
        pg,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    )
}

/// `pgb list --json` of `repo` with `extra` arguments.
fn list(pg: &Pg, repo: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["list", "--repo", repo.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let o = run(pg, &args, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("list --json")
}

fn ids_of(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The one head `entry` recorded for `db`: (framework, head).
fn head_of(entry: &Value, db: &str) -> (String, String) {
    let heads = entry["migrations"][db].as_array().expect("heads of db");
    assert_eq!(heads.len(), 1, "{entry}");
    (
        heads[0]["framework"].as_str().unwrap().to_owned(),
        heads[0]["head"].as_str().unwrap().to_owned(),
    )
}

/// A job `shop` of database `db` backing up into `repo`, with `extra` keys, and a drill on the
/// test server.
fn job_config(dir: &Path, pg: &Pg, db: &str, repo: &Path, extra: &str) -> String {
    let path = dir.join("pgb.toml");
    std::fs::write(
        &path,
        format!(
            "[jobs.shop]\ndatabase = \"{}\"\nrepository = \"{}\"\n{extra}\n\n[jobs.shop.drill]\ntarget = \"{}\"\n",
            pg.url(db),
            repo.display(),
            pg.url("postgres")
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// `pgb ARGS --job shop --config CONFIG`.
fn job(pg: &Pg, config: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--job", "shop", "--config", config]);
    run(pg, &all, &[])
}

/// A `post_restore` hook: a script running `sql` on `$DATABASE_URL` with psql, then exiting
/// `code` (as a migration tool that wrote its row and failed would).
fn hook(dir: &Path, pg: &Pg, name: &str, sql: &str, code: i32) -> PathBuf {
    let file = dir.join(format!("{name}.sql"));
    std::fs::write(&file, sql).unwrap();
    let script = dir.join(format!("{name}.sh"));
    write_script(
        &script,
        &format!(
            "#!/bin/sh\n'{}' -X -q -v ON_ERROR_STOP=1 -d \"$DATABASE_URL\" -f '{}' || exit 3\necho migrated\nexit {code}\n",
            pg.bin.join("psql").display(),
            file.display()
        ),
    );
    script
}

/// A database with Prisma's table and `applied` migrations.
fn prisma_db<'a>(pg: &'a Pg, prefix: &str, applied: &[&str]) -> DbGuard<'a> {
    let db = pg.sample_db(prefix, 20, RowText::Plain);
    let rows: String = applied.iter().map(|m| prisma_applied(m)).collect();
    pg.psql(&db.name, &format!("{PRISMA_TABLE}{rows}"));
    db
}

fn heads_of_two_frameworks_are_recorded_listed_and_found(pg: &Pg) {
    let shop = prisma_db(pg, "mig_shop", &[M1, M2]);
    let billing = pg.sample_db("mig_billing", 20, RowText::Plain);
    pg.psql(
        &billing.name,
        &format!(
            "{FLYWAY_TABLE}{}{}",
            flyway_row(1, "1", "init", "V1__init.sql", true),
            flyway_row(2, "1.1", "invoices", "V1_1__invoices.sql", true)
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    for db in [&shop.name, &billing.name] {
        let o = backup_db(pg, &repo, db, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // The application deploys M3; the next backup records it.
    pg.psql(&shop.name, &prisma_applied(M3));
    let o = backup_db(pg, &repo, &shop.name, &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let manifest: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        manifest["migrations"][&shop.name][0]["head"], M3,
        "backup --json prints the manifest with its heads: {manifest}"
    );

    let all = list(pg, &repo, &[]);
    let ids = ids_of(&all);
    assert_eq!(ids.len(), 3);
    assert_eq!(head_of(&all[0], &shop.name), ("prisma".into(), M2.into()));
    assert_eq!(
        head_of(&all[1], &billing.name),
        ("flyway".into(), "1.1".into())
    );
    assert_eq!(head_of(&all[2], &shop.name), ("prisma".into(), M3.into()));
    let prisma = &all[0]["migrations"][&shop.name][0];
    assert_eq!(prisma["applied"], 2, "{prisma}");
    assert_eq!(prisma["table"], "public._prisma_migrations", "{prisma}");
    assert!(prisma["applied_at"].is_string(), "{prisma}");

    // Text: a MIGRATION column.
    let o = run(pg, &["list", "--repo", repo.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let header = text.lines().find(|l| l.starts_with("ID ")).unwrap();
    assert!(header.contains("MIGRATION"), "{text}");
    for (id, head) in ids.iter().zip([
        format!("prisma:{M2}"),
        "flyway:1.1".into(),
        format!("prisma:{M3}"),
    ]) {
        let row = text.lines().find(|l| l.starts_with(id.as_str())).unwrap();
        assert!(row.contains(&head), "{head} in {row}");
    }

    // A whole-server backup records each database's heads.
    let o = backup_db(
        pg,
        &repo,
        "postgres",
        &[
            "--all-databases",
            "--include",
            &shop.name,
            "--include",
            &billing.name,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let server = list(pg, &repo, &[]).pop().unwrap();
    assert_eq!(server["database"], "*", "{server}");
    assert_eq!(head_of(&server, &shop.name), ("prisma".into(), M3.into()));
    assert_eq!(
        head_of(&server, &billing.name),
        ("flyway".into(), "1.1".into())
    );
    let text = stdout(&run(pg, &["list", "--repo", repo.to_str().unwrap()], &[]));
    println!("{text}");
    let row = text.lines().last().unwrap();
    assert!(
        row.contains(&format!(
            "{}=flyway:1.1 {}=prisma:{M3}",
            billing.name, shop.name
        )),
        "{row}"
    );

    // --migration: the backups taken at or before a migration.
    let found = |m: &str, extra: &[&str]| {
        let mut args = vec!["--migration", m];
        args.extend_from_slice(extra);
        ids_of(&list(pg, &repo, &args))
    };
    assert_eq!(found(&format!("prisma:{M2}"), &[]), [ids[0].clone()]);
    let server_id = ids_of(&list(pg, &repo, &[])).pop().unwrap();
    assert_eq!(
        found(M3, &["--database", &shop.name]),
        [ids[0].clone(), ids[2].clone(), server_id.clone()],
        "the whole-server backup holds shop at M3 too"
    );
    assert!(
        found(&format!("prisma:{M1}"), &[]).is_empty(),
        "none that early"
    );
    assert_eq!(
        found("flyway:1.1", &[]),
        [ids[1].clone(), server_id.clone()]
    );
    assert_eq!(
        found("flyway:2", &[]),
        [ids[1].clone(), server_id],
        "1.1 is before 2"
    );
    assert!(found("flyway:1", &[]).is_empty(), "1.1 is after 1");
    assert!(found("alembic:ae1027a6acf", &[]).is_empty());
    let o = run(
        pg,
        &[
            "list",
            "--repo",
            repo.to_str().unwrap(),
            "--migration",
            "prisma:",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    one_line_error(&o);
}

#[test]
fn heads_of_two_frameworks_are_recorded_listed_and_found_on_postgresql_15() {
    let Some(pg) = pg() else { return };
    heads_of_two_frameworks_are_recorded_listed_and_found(&pg);
}

#[test]
fn heads_of_two_frameworks_are_recorded_listed_and_found_on_postgresql_17() {
    let Some(pg) = pg17() else { return };
    heads_of_two_frameworks_are_recorded_listed_and_found(&pg);
}

#[test]
fn alembic_and_a_dirty_golang_migrate_head_reach_the_webhook_and_fail_a_restore() {
    let Some(pg) = pg() else { return };
    let alembic = pg.sample_db("mig_alembic", 20, RowText::Plain);
    pg.psql(
        &alembic.name,
        "create table alembic_version (version_num varchar(32) primary key); \
         insert into alembic_version values ('ae1027a6acf');",
    );
    let gm = pg.sample_db("mig_gm", 20, RowText::Plain);
    pg.psql(
        &gm.name,
        "create table schema_migrations (version bigint primary key, dirty boolean not null); \
         insert into schema_migrations values (3, true);",
    );
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let (url, got) = receiver();
    let args = backup_args(&pg, &repo, &alembic.name, &[]);
    let o = run(
        &pg,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[("PGB_NOTIFY_URL", &url)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let request = got
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("a webhook");
    let payload: Value = serde_json::from_str(request.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(payload["event"], "backup_succeeded", "{payload}");
    assert_eq!(
        payload["migrations"][&alembic.name], "alembic:ae1027a6acf",
        "{payload}"
    );

    let o = backup_db(&pg, &repo, &gm.name, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let all = list(&pg, &repo, &[]);
    let h = &all[1]["migrations"][&gm.name][0];
    assert_eq!(
        (&h["framework"], &h["head"], &h["dirty"]),
        (&"golang-migrate".into(), &"3".into(), &true.into()),
        "{h}"
    );
    let text = stdout(&run(&pg, &["list", "--repo", repo.to_str().unwrap()], &[]));
    assert!(text.contains("golang-migrate:3 (dirty)"), "{text}");

    // The backup is at the expected version, so it restores; but the database is dirty.
    let target = unique("mig_gm_restored");
    let o = run(
        &pg,
        &[
            "restore",
            "latest",
            "--repo",
            repo.to_str().unwrap(),
            "--from-database",
            &gm.name,
            "--db",
            &pg.url(&target),
            "--expect-migration",
            "3",
        ],
        &[],
    );
    let _restored = DbGuard {
        pg: &pg,
        name: target.clone(),
    };
    assert_eq!(o.status.code(), Some(MIGRATION), "{o:?}");
    let err = one_line_error(&o);
    assert!(
        err.contains("data is restored") && err.contains("golang-migrate version 3 is dirty"),
        "{err}"
    );
    assert_eq!(pg.fingerprint(&target), pg.fingerprint(&gm.name));
}

#[test]
fn a_bad_migrations_query_warns_and_the_backup_succeeds_without_a_head() {
    let Some(pg) = pg() else { return };
    let db = pg.sample_db("mig_query", 20, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let o = backup_db(
        &pg,
        &repo,
        &db.name,
        &["--migrations-query", "select version from app_version"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("migrations_query failed") && err.contains("app_version"),
        "one warning naming the cause: {err}"
    );
    let all = list(&pg, &repo, &[]);
    assert_eq!(all.len(), 1);
    assert!(all[0].get("migrations").is_none(), "no head: {}", all[0]);

    // A query returning two rows: a warning, no head; one row of one column: the head.
    let o = backup_db(
        &pg,
        &repo,
        &db.name,
        &["--migrations-query", "select 1 union all select 2"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("returned 2 rows"), "{}", stderr(&o));
    pg.psql(
        &db.name,
        "create table app_version (version text); insert into app_version values ('v7');",
    );
    let o = backup_db(
        &pg,
        &repo,
        &db.name,
        &["--migrations-query", "select version from app_version"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let all = list(&pg, &repo, &[]);
    assert!(all[1].get("migrations").is_none());
    assert_eq!(head_of(&all[2], &db.name), ("custom".into(), "v7".into()));

    // Unknown framework names: one clear line, no backup.
    let o = backup_db(&pg, &repo, &db.name, &["--migrations", "prisma,flyaway"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = one_line_error(&o);
    assert!(
        err.contains("--migrations") && err.contains("\"flyaway\""),
        "{err}"
    );
    let config = job_config(
        dir.path(),
        &pg,
        &db.name,
        &repo,
        "migrations = [\"flyaway\"]",
    );
    let o = job(&pg, &config, &["backup"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = one_line_error(&o);
    assert!(
        err.contains("pgb.toml:") && err.contains("\"migrations\"") && err.contains("flyaway"),
        "{err}"
    );
    let config = job_config(
        dir.path(),
        &pg,
        &db.name,
        &repo,
        "expected_migrations = \"3\"",
    );
    let o = job(
        &pg,
        &config,
        &["restore", "latest", "--db", &pg.url("nope")],
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(one_line_error(&o).contains("expected_migrations"), "{o:?}");
    assert_eq!(list(&pg, &repo, &[]).len(), 3, "no backup was added");
}

#[test]
fn a_post_restore_hook_that_applies_the_pending_migration_passes_expect_migration() {
    let Some(pg) = pg() else { return };
    let db = prisma_db(&pg, "mig_apply", &[M1, M2]);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let script = hook(dir.path(), &pg, "deploy", &prisma_applied(M3), 0);
    let config = job_config(
        dir.path(),
        &pg,
        &db.name,
        &repo,
        &format!(
            "post_restore = [\"{}\"]\nexpected_migration = \"prisma:{M3}\"",
            script.display()
        ),
    );
    let o = job(&pg, &config, &["backup"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Restore: the head before the hook is the backup's, after it the expected one.
    let target = unique("mig_apply_restored");
    let o = job(
        &pg,
        &config,
        &["restore", "latest", "--db", &pg.url(&target), "--json"],
    );
    let _restored = DbGuard {
        pg: &pg,
        name: target.clone(),
    };
    assert!(o.status.success(), "{o:?}");
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = &out["migrations"];
    assert_eq!(m["expected"], format!("prisma:{M3}"), "{out}");
    assert_eq!(m["backup"][0]["head"], M2, "{out}");
    assert_eq!(m["before"][0]["head"], M2, "{out}");
    assert_eq!(m["after"][0]["head"], M3, "{out}");
    assert_eq!(m["passed"], true, "{out}");
    assert_eq!(
        pg.psql(&target, "select count(*) from _prisma_migrations"),
        "3"
    );

    // Drill: the same, recorded beside its RTO.
    let o = job(&pg, &config, &["drill", "--json"]);
    assert!(o.status.success(), "{o:?}");
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["outcome"], "passed", "{report}");
    assert_eq!(report["migrations"]["before"][0]["head"], M2, "{report}");
    assert_eq!(report["migrations"]["after"][0]["head"], M3, "{report}");
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "migrations")
        .expect("a migrations check");
    assert_eq!(check["passed"], true, "{check}");
    let history = job(&pg, &config, &["drill", "--history", "--json"]);
    let history: Value = serde_json::from_slice(&history.stdout).unwrap();
    let record = &history.as_array().unwrap().last().unwrap()["report"];
    assert_eq!(
        record["migrations"]["after"][0]["head"], M3,
        "recorded: {record}"
    );
    assert!(record["rto_ms"].is_u64(), "beside its RTO: {record}");
    println!("{}", serde_json::to_string_pretty(record).unwrap());

    // The expected head printed by the application's own command: reached, or behind.
    let config = job_config(
        dir.path(),
        &pg,
        &db.name,
        &repo,
        &format!(
            "post_restore = [\"{}\"]\nexpected_migration_command = [\"/bin/echo\", \"prisma:{M3}\"]",
            script.display()
        ),
    );
    let o = job(&pg, &config, &["drill"]);
    assert!(o.status.success(), "{o:?}");
    let later = "20240401100000_audit";
    let config = job_config(
        dir.path(),
        &pg,
        &db.name,
        &repo,
        &format!(
            "post_restore = [\"{}\"]\nexpected_migration_command = [\"/bin/echo\", \"{later}\"]",
            script.display()
        ),
    );
    let o = job(&pg, &config, &["drill"]);
    assert_eq!(o.status.code(), Some(MIGRATION), "{o:?}");
    let err = one_line_error(&o);
    assert!(
        err.contains("behind") && err.contains(M3) && err.contains(later),
        "{err}"
    );
}

#[test]
fn a_failing_migration_leaves_the_drill_failed_quoting_the_frameworks_row() {
    let Some(pg) = pg() else { return };
    let db = prisma_db(&pg, "mig_fail", &[M1, M2]);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    // As `prisma migrate deploy` leaves it: the failed migration's row, its logs, exit 1.
    let failed_row = format!(
        "insert into _prisma_migrations (id, checksum, migration_name, logs, started_at) values \
         ('{M3}', 'c', '{M3}', 'Database error code: 42P07. ERROR: relation \"refunds\" already exists', now());"
    );
    let script = hook(dir.path(), &pg, "deploy", &failed_row, 1);
    let config = job_config(
        dir.path(),
        &pg,
        &db.name,
        &repo,
        &format!(
            "post_restore = [\"{}\"]\nexpected_migration = \"prisma:{M3}\"",
            script.display()
        ),
    );
    // A job's run (`pgb run`, as the daemon runs it) records the head too.
    let o = run(&pg, &["run", "shop", "--config", &config, "--json"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ran: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        ran["backup"]["migrations"][&db.name][0]["head"], M2,
        "{ran}"
    );

    let o = job(&pg, &config, &["drill", "--json"]);
    assert_eq!(o.status.code(), Some(MIGRATION), "{o:?}");
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["outcome"], "migration_failed", "{report}");
    let cause = report["cause"].as_str().unwrap();
    assert!(
        cause.starts_with("migrations: prisma recorded a failed migration")
            && cause.contains(M3)
            && cause.contains("ERROR: relation \"refunds\" already exists"),
        "{cause}"
    );
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["post_restore hooks", "migrations"], "{report}");
    assert_eq!(report["migrations"]["before"][0]["head"], M2, "{report}");
    assert!(
        report["migrations"]["after"][0]["failed"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{report}"
    );
    assert!(report["recorded_as"].is_string(), "recorded: {report}");
    assert!(
        one_line_error(&o).contains("relation \"refunds\" already exists"),
        "{o:?}"
    );
    let listed = list(&pg, &repo, &[]);
    assert_eq!(listed[0]["last_drill"]["outcome"], "migration_failed");
    let history = job(&pg, &config, &["drill", "--history", "--json"]);
    let history: Value = serde_json::from_slice(&history.stdout).unwrap();
    let record = &history.as_array().unwrap().last().unwrap()["report"];
    assert_eq!(record["outcome"], "migration_failed", "{record}");
    println!("{}", serde_json::to_string_pretty(record).unwrap());

    // `pgb report` shows the backup's head and the drill's heads, whose failure is its cause,
    // in JSON, Markdown and HTML.
    let report_of = |format: &str| {
        let o = job(&pg, &config, &["report", "--format", format]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let json: Value = serde_json::from_str(&report_of("json")).unwrap();
    let set = &json["sets"][0];
    assert_eq!(
        set["backups"][0]["migrations"][&db.name][0]["head"], M2,
        "{set:#}"
    );
    let drilled = &set["drills"][0];
    assert_eq!(drilled["outcome"], "migration_failed", "{drilled:#}");
    assert_eq!(drilled["migrations"]["passed"], false, "{drilled:#}");
    assert_eq!(drilled["migrations"]["expected"], format!("prisma:{M3}"));
    assert!(
        drilled["cause"]
            .as_str()
            .unwrap()
            .starts_with("migrations: prisma recorded a failed migration"),
        "{drilled:#}"
    );
    let verdict =
        format!("migrations: prisma:{M2} → prisma:{M2} (failed), expected prisma:{M3}, FAILED");
    let md = report_of("md");
    assert!(md.contains("| Migration |"), "{md}");
    assert!(md.contains(&format!("| `prisma:{M2}` |")), "{md}");
    assert!(md.contains(&verdict), "{md}");
    let html = report_of("html");
    assert!(html.contains("<th scope=\"col\">Migration</th>"), "{html}");
    assert!(
        html.contains(&format!(
            "data-migration=\"prisma:{M2}\"><code>prisma:{M2}</code>"
        )),
        "{html}"
    );
    assert!(html.contains(&verdict), "{html}");

    // Flyway: a restore whose hook leaves a failed row fails quoting its description.
    let fly = pg.sample_db("mig_fail_flyway", 20, RowText::Plain);
    pg.psql(
        &fly.name,
        &format!(
            "{FLYWAY_TABLE}{}",
            flyway_row(1, "1", "init", "V1__init.sql", true)
        ),
    );
    let script = hook(
        dir.path(),
        &pg,
        "flyway",
        &flyway_row(2, "2", "add index", "V2__add_index.sql", false),
        1,
    );
    let repo2 = dir.path().join("repo2");
    let config = job_config(
        dir.path(),
        &pg,
        &fly.name,
        &repo2,
        &format!(
            "post_restore = [\"{}\"]\nexpected_migration = \"flyway:2\"",
            script.display()
        ),
    );
    let o = job(&pg, &config, &["backup"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let target = unique("mig_fail_flyway_restored");
    let o = job(
        &pg,
        &config,
        &["restore", "latest", "--db", &pg.url(&target)],
    );
    let _restored = DbGuard {
        pg: &pg,
        name: target.clone(),
    };
    assert_eq!(o.status.code(), Some(MIGRATION), "{o:?}");
    let err = one_line_error(&o);
    assert!(
        err.contains("data is restored")
            && err.contains("flyway recorded a failed migration: 2 add index (V2__add_index.sql)"),
        "{err}"
    );
    assert!(
        stdout(&o).contains("after post_restore:  flyway:1 (failed)"),
        "{o:?}"
    );
}

#[test]
fn a_backup_that_does_not_fit_the_expected_head_is_refused_before_anything_is_written() {
    let Some(pg) = pg() else { return };
    let db = prisma_db(&pg, "mig_refuse", &[M1, M2]);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let o = backup_db(&pg, &repo, &db.name, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let target = unique("mig_refuse_restored");
    let restore = |expect: &str, extra: &[&str]| {
        let mut args = vec![
            "restore",
            "latest",
            "--repo",
            repo.to_str().unwrap(),
            "--db",
        ];
        let url = pg.url(&target);
        args.push(&url);
        args.extend(["--expect-migration", expect]);
        args.extend_from_slice(extra);
        run(&pg, &args, &[])
    };
    // Newer than the application expects (its code was rolled back, the schema was not).
    let o = restore(&format!("prisma:{M1}"), &[]);
    assert_eq!(o.status.code(), Some(MIGRATION), "{o:?}");
    let err = one_line_error(&o);
    assert!(
        err.contains(&format!(
            "holds prisma:{M2}, newer than the expected prisma:{M1}"
        )) && err.contains("nothing was restored")
            && err.contains("--allow-migration-mismatch"),
        "{err}"
    );
    assert!(!pg.db_exists(&target), "nothing was written");
    // Older, and no post_restore hook would migrate it.
    let o = restore(M3, &[]);
    assert_eq!(o.status.code(), Some(MIGRATION), "{o:?}");
    assert!(
        one_line_error(&o).contains("older than the expected"),
        "{o:?}"
    );
    assert!(!pg.db_exists(&target));
    // With --allow-migration-mismatch it restores (ahead of the expected head passes).
    let o = restore(
        &format!("prisma:{M1}"),
        &["--allow-migration-mismatch", "--json"],
    );
    let _restored = DbGuard {
        pg: &pg,
        name: target.clone(),
    };
    assert!(o.status.success(), "{o:?}");
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["migrations"]["before"][0]["head"], M2, "{out}");
    assert_eq!(out["migrations"]["passed"], true, "{out}");
    assert_eq!(pg.fingerprint(&target), pg.fingerprint(&db.name));

    // A drill refuses the same way, before fetching anything, and records it.
    let o = run(
        &pg,
        &[
            "drill",
            "--repo",
            repo.to_str().unwrap(),
            "--target",
            &pg.url("postgres"),
            "--expect-migration",
            &format!("prisma:{M1}"),
            "--json",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(MIGRATION), "{o:?}");
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["outcome"], "migration_failed", "{report}");
    assert!(
        report["cause"]
            .as_str()
            .unwrap()
            .contains("nothing was restored"),
        "{report}"
    );
    assert_eq!(report["checks"].as_array().unwrap().len(), 1, "{report}");
    assert!(report["recorded_as"].is_string(), "{report}");
}
