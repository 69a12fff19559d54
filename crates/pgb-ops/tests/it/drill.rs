//! Restore drills against a real PostgreSQL server (`scripts/pg.sh start DIR 15`, then source
//! its env file: `PGB_TEST_PG_URL`, `PGB_TEST_PG_BIN`). Without a server these tests skip
//! loudly, or fail under `PGB_TEST_REQUIRE=1`.
//!
//! Every test uses its own uniquely named source database and checks that no scratch
//! database (`pgb_drill_<database>_...`) is left behind.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pgb_core::{AuthKey, BackupOptions, Manifest, NoProgress, Repository};
use pgb_ops::{
    BackupChoice, CheckOptions, CheckStatus, DrillError, DrillHook, DrillOptions, DrillOutcome,
    drill, drill_history, last_drills, verified_ids,
};
use pgb_postgres::{ConnConfig, PgDump, PgDumpDirectory, ToolLocator};
use pgb_storage_local::FsStorage;

#[derive(Debug, Clone)]
struct Pg {
    url: String,
    bin: PathBuf,
}

fn pg() -> Option<Pg> {
    match (
        std::env::var("PGB_TEST_PG_URL"),
        std::env::var("PGB_TEST_PG_BIN"),
    ) {
        (Ok(url), Ok(bin)) if !url.is_empty() && !bin.is_empty() => Some(Pg {
            url,
            bin: PathBuf::from(bin),
        }),
        _ => pgb_testkit::require_or_skip(
            "PostgreSQL 15",
            "PGB_TEST_PG_URL / PGB_TEST_PG_BIN are not set (run scripts/pg.sh start DIR 15 and source its env file)",
        ),
    }
}

fn unique(prefix: &str) -> String {
    let mut rnd = [0u8; 4];
    getrandom::fill(&mut rnd).unwrap();
    format!(
        "pgbt_{prefix}_{}",
        rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

impl Pg {
    fn conn(&self, db: &str) -> ConnConfig {
        ConnConfig::parse(&self.url).unwrap().with_dbname(db)
    }

    fn locator(&self) -> ToolLocator {
        ToolLocator::new()
            .with_system_dirs(false)
            .with_bin_dir(&self.bin)
    }

    fn psql(&self, db: &str, sql: &str) -> String {
        let out = std::process::Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-q",
                "-w",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .arg(format!("--dbname={}", self.conn(db).redacted()))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Scratch databases of this source database that still exist.
    fn scratch_left(&self, source: &str) -> Vec<String> {
        let out = self.psql(
            "postgres",
            &format!(
                "select datname from pg_database where datname like 'pgb\\_drill\\_{source}\\_%'"
            ),
        );
        out.lines().map(str::to_owned).collect()
    }
}

/// A source database with rows, dropped (with its scratch databases) at the end.
struct Source {
    pg: Pg,
    name: String,
}

impl Source {
    fn create(pg: &Pg, prefix: &str) -> Self {
        let name = unique(prefix);
        pg.psql("postgres", &format!("create database {name}"));
        pg.psql(
            &name,
            "create schema sales;
             create table public.customers (id int primary key, name text);
             insert into public.customers select g, 'c' || g from generate_series(1, 50) g;
             create table sales.orders (id int primary key, customer int references public.customers);
             insert into sales.orders select g, 1 + g % 50 from generate_series(1, 200) g;
             create table public.audit_log (at timestamptz, what text);",
        );
        Self {
            pg: pg.clone(),
            name,
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        for db in self
            .pg
            .scratch_left(&self.name)
            .into_iter()
            .chain([self.name.clone()])
        {
            let _ = std::process::Command::new(self.pg.bin.join("psql"))
                .args(["-X", "-q", "-w", "-c"])
                .arg(format!("drop database if exists \"{db}\" with (force)"))
                .arg(format!("--dbname={}", self.pg.conn("postgres").redacted()))
                .output();
        }
    }
}

async fn backed_up(pg: &Pg, src: &Source) -> (tempfile::TempDir, Repository, Manifest) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::new(Arc::new(FsStorage::open(dir.path()).unwrap()));
    let m = repo
        .backup(
            &PgDump::new(pg.conn(&src.name), pg.locator()),
            &BackupOptions::default(),
            &NoProgress,
        )
        .await
        .expect("backup");
    (dir, repo, m)
}

fn opts(pg: &Pg, spool: &std::path::Path) -> DrillOptions {
    DrillOptions::new(pg.conn("postgres"), pg.locator(), spool)
}

fn never() -> std::future::Pending<()> {
    std::future::pending()
}

#[tokio::test]
async fn a_passing_drill_is_recorded_listed_and_leaves_no_scratch_database() {
    let Some(pg) = pg() else { return };
    let src = Source::create(&pg, "drillok");
    let (dir, repo, m) = backed_up(&pg, &src).await;
    let key: AuthKey = "5a".repeat(32).parse().unwrap();
    let o = opts(&pg, dir.path())
        .with_from_database(&src.name)
        .with_smoke("customers", "select count(*) = 50 from public.customers")
        .with_smoke(
            "orders",
            "select count(*) = 200, 'second column ignored' from sales.orders",
        )
        .with_max_rto(Duration::from_secs(600))
        .with_max_rpo(Duration::from_secs(3600))
        .with_auth_key(key.clone());
    let report = drill(&repo, &o, None, &NoProgress, never()).await.unwrap();
    assert_eq!(report.outcome, DrillOutcome::Passed, "{report:#?}");
    assert_eq!(report.backup_id, m.id);
    assert!(report.dropped);
    assert!(pg.scratch_left(&src.name).is_empty());
    assert!(
        report
            .scratch_database
            .starts_with(&format!("pgb_drill_{}_", src.name))
    );
    assert_eq!(report.toc_tables, 3);
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "fetch and verify",
            "restore",
            "tables",
            "rows",
            "smoke customers",
            "smoke orders"
        ]
    );
    assert!(report.checks.iter().all(|c| c.passed), "{report:#?}");
    let phases: Vec<&str> = report.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        phases,
        ["fetch_verify", "restore", "hooks", "analyze", "checks"]
    );
    assert!(report.rto_ms >= report.phases.iter().map(|p| p.millis).sum::<u64>());
    assert!(report.rpo_s < 600);

    // The record is in the repository, authenticated, and listed.
    let recorded = report.recorded_as.clone().expect("recorded");
    assert!(
        recorded.starts_with(&format!("drills/{}/", m.id)),
        "{recorded}"
    );
    let history = drill_history(&repo, Some(&key)).await.unwrap();
    assert_eq!(history.len(), 1);
    assert!(history[0].authenticated);
    let mut stored = history[0].report.clone().unwrap();
    stored.recorded_as = report.recorded_as.clone();
    assert_eq!(stored, report);
    assert!(last_drills(&repo, Some(&key)).await.unwrap()[&m.id].passed());
    // A passed drill makes the backup verified, and `check` shows it.
    let listing = repo.list().await.unwrap();
    assert!(
        verified_ids(&repo, &listing, Some(&key))
            .await
            .unwrap()
            .contains(&m.id)
    );
    let c = pgb_ops::check(
        &repo,
        &CheckOptions::new(time::OffsetDateTime::now_utc())
            .with_max_drill_age(Duration::from_secs(3600))
            .with_auth_key(key),
    )
    .await;
    assert_eq!(c.status, CheckStatus::Ok, "{c:#?}");
    assert_eq!(
        c.sets[0].last_drill.as_ref().unwrap().outcome,
        DrillOutcome::Passed
    );
}

#[tokio::test]
async fn failing_smoke_checks_fail_the_drill_and_still_drop_the_scratch_database() {
    let Some(pg) = pg() else { return };
    let src = Source::create(&pg, "drillsmoke");
    let (dir, repo, m) = backed_up(&pg, &src).await;
    let o = opts(&pg, dir.path())
        .with_backup(BackupChoice::Id(m.id.clone()))
        .with_smoke("false", "select count(*) = 51 from public.customers")
        .with_smoke("error", "select * from no_such_table")
        .with_smoke("two rows", "select true from generate_series(1, 2)");
    let report = drill(&repo, &o, None, &NoProgress, never()).await.unwrap();
    assert_eq!(report.outcome, DrillOutcome::CheckFailed);
    assert!(pg.scratch_left(&src.name).is_empty());
    let failed: Vec<(&str, &str)> = report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| (c.name.as_str(), c.detail.as_str()))
        .collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert_eq!(failed[0], ("smoke false", "returned \"f\", expected true"));
    assert!(failed[1].1.contains("no_such_table"), "{failed:?}");
    assert_eq!(failed[2].1, "returned 2 rows, expected one");
    assert_eq!(
        report.cause.as_deref(),
        Some("smoke false: returned \"f\", expected true")
    );
    // The failure is evidence too, and `check` turns critical on it.
    assert_eq!(drill_history(&repo, None).await.unwrap().len(), 1);
    let c = pgb_ops::check(&repo, &CheckOptions::new(time::OffsetDateTime::now_utc())).await;
    assert_eq!(c.status, CheckStatus::Critical);
    assert!(
        pgb_ops::nagios(&c).contains("last drill"),
        "{}",
        pgb_ops::nagios(&c)
    );
    // A failed drill does not make the backup verified.
    let listing = repo.list().await.unwrap();
    assert!(
        verified_ids(&repo, &listing, None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_drill_over_max_rpo_fails_on_the_limit() {
    let Some(pg) = pg() else { return };
    let src = Source::create(&pg, "drillrpo");
    let (dir, repo, _m) = backed_up(&pg, &src).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let o = opts(&pg, dir.path()).with_max_rpo(Duration::from_secs(1));
    let report = drill(&repo, &o, None, &NoProgress, never()).await.unwrap();
    assert_eq!(report.outcome, DrillOutcome::LimitExceeded, "{report:#?}");
    assert!(report.checks.iter().all(|c| c.passed));
    assert!(report.rpo_s >= 2);
    let cause = report.cause.unwrap();
    assert!(
        cause.starts_with("RPO ") && cause.ends_with("exceeds the limit of 1s"),
        "{cause}"
    );
    assert!(pg.scratch_left(&src.name).is_empty());
}

#[tokio::test]
async fn a_drill_refuses_the_source_database_and_an_unreachable_target() {
    let Some(pg) = pg() else { return };
    let src = Source::create(&pg, "drillsame");
    let (dir, repo, _m) = backed_up(&pg, &src).await;
    let mut o = opts(&pg, dir.path());
    o.target = pg.conn(&src.name);
    let err = drill(&repo, &o, None, &NoProgress, never())
        .await
        .unwrap_err();
    assert!(matches!(err, DrillError::SameAsSource { .. }), "{err}");
    assert!(
        err.to_string().contains("the backup's source database"),
        "{err}"
    );

    o.target = ConnConfig::parse("postgres://postgres@127.0.0.1:1/postgres").unwrap();
    let err = drill(&repo, &o, None, &NoProgress, never())
        .await
        .unwrap_err();
    assert!(matches!(err, DrillError::Target(_)), "{err}");
    assert!(!err.is_repository());
    assert!(pg.scratch_left(&src.name).is_empty());
    // Nothing is recorded for drills that could not run.
    assert!(drill_history(&repo, None).await.unwrap().is_empty());
}

/// Signals when it starts, then takes long: the drill is cancelled while it runs.
#[derive(Debug)]
struct SlowHook {
    started: Arc<tokio::sync::Notify>,
    finished: Arc<AtomicBool>,
}

#[async_trait]
impl DrillHook for SlowHook {
    async fn post_restore(&self, _db: &ConnConfig) -> Result<(), pgb_ops::DrillHookError> {
        self.started.notify_one();
        tokio::time::sleep(Duration::from_secs(60)).await;
        self.finished.store(true, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn a_cancelled_drill_drops_its_scratch_database() {
    let Some(pg) = pg() else { return };
    let src = Source::create(&pg, "drillcancel");
    let (dir, repo, _m) = backed_up(&pg, &src).await;
    let hook = SlowHook {
        started: Arc::new(tokio::sync::Notify::new()),
        finished: Arc::new(AtomicBool::new(false)),
    };
    let started = Arc::clone(&hook.started);
    let pg2 = pg.clone();
    let name = src.name.clone();
    let cancel = async move {
        started.notified().await;
        // The restore is done and the scratch database exists when hooks run.
        assert_eq!(pg2.scratch_left(&name).len(), 1);
    };
    let o = opts(&pg, dir.path());
    let err = drill(&repo, &o, Some(&hook), &NoProgress, cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, DrillError::Cancelled), "{err}");
    assert!(!hook.finished.load(Ordering::SeqCst));
    assert!(pg.scratch_left(&src.name).is_empty());
    assert!(drill_history(&repo, None).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_drill_future_dropped_mid_drill_still_drops_its_scratch_database() {
    let Some(pg) = pg() else { return };
    let src = Source::create(&pg, "drilldropped");
    let (dir, repo, _m) = backed_up(&pg, &src).await;
    let hook = SlowHook {
        started: Arc::new(tokio::sync::Notify::new()),
        finished: Arc::new(AtomicBool::new(false)),
    };
    let o = opts(&pg, dir.path());
    // The caller gives up on the drill (drops its future) while the hook runs: no cancel
    // future resolves, so the drop of the scratch database is handed to the runtime.
    tokio::select! {
        _ = drill(&repo, &o, Some(&hook), &NoProgress, never()) => panic!("the drill ended"),
        () = hook.started.notified() => {}
    }
    assert!(!hook.finished.load(Ordering::SeqCst));
    // The caller awaits the drops the dropped future handed over, as the binary does.
    pgb_postgres::settle_cleanups().await;
    assert!(
        pg.scratch_left(&src.name).is_empty(),
        "the scratch database was not dropped"
    );
    assert!(drill_history(&repo, None).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failing_hook_fails_the_drill_and_keep_keeps_the_database() {
    #[derive(Debug)]
    struct Migrate;
    #[async_trait]
    impl DrillHook for Migrate {
        async fn post_restore(&self, _db: &ConnConfig) -> Result<(), pgb_ops::DrillHookError> {
            Err("migration 0042 failed: column already exists".into())
        }
    }
    let Some(pg) = pg() else { return };
    let src = Source::create(&pg, "drillhook");
    let (dir, repo, _m) = backed_up(&pg, &src).await;
    let o = opts(&pg, dir.path()).with_keep(true).with_record(false);
    let report = drill(&repo, &o, Some(&Migrate), &NoProgress, never())
        .await
        .unwrap();
    assert_eq!(report.outcome, DrillOutcome::CheckFailed);
    assert_eq!(
        report.cause.as_deref(),
        Some("post_restore hooks: migration 0042 failed: column already exists")
    );
    assert!(report.kept && !report.dropped);
    assert_eq!(
        pg.scratch_left(&src.name),
        vec![report.scratch_database.clone()]
    );
    assert_eq!(
        pg.psql(
            &report.scratch_database,
            "select count(*) from sales.orders"
        ),
        "200"
    );
    assert!(report.recorded_as.is_none());
    assert!(drill_history(&repo, None).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_directory_format_drill_checks_the_tables_of_its_table_of_contents() {
    let Some(pg) = pg() else { return };
    let src = Source::create(&pg, "drilldir");
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::new(Arc::new(FsStorage::open(dir.path()).unwrap()));
    let spool = tempfile::tempdir().unwrap();
    let dumper =
        PgDumpDirectory::new(pg.conn(&src.name), pg.locator()).with_spool_dir(spool.path());
    repo.backup_directory_until(&dumper, 2, &BackupOptions::default(), &NoProgress, never())
        .await
        .expect("directory backup");
    let o = opts(&pg, spool.path()).with_record(false);
    let report = drill(&repo, &o, None, &NoProgress, never()).await.unwrap();
    assert_eq!(report.outcome, DrillOutcome::Passed, "{report:#?}");
    assert_eq!(report.toc_tables, 3);
    let tables = report.checks.iter().find(|c| c.name == "tables").unwrap();
    assert!(tables.passed && !tables.skipped, "{tables:?}");
    assert_eq!(tables.detail, "all 3 tables of the archive exist");
    assert!(pg.scratch_left(&src.name).is_empty());
}

#[tokio::test]
async fn a_corrupt_backup_fails_the_drill_before_any_database_is_created() {
    let Some(pg) = pg() else { return };
    let src = Source::create(&pg, "drillcorrupt");
    let (dir, repo, m) = backed_up(&pg, &src).await;
    let data = dir.path().join(&m.dump().expect("dump").key);
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let report = drill(&repo, &opts(&pg, dir.path()), None, &NoProgress, never())
        .await
        .unwrap();
    assert_eq!(report.outcome, DrillOutcome::CheckFailed);
    assert_eq!(report.checks.len(), 1);
    assert_eq!(report.checks[0].name, "fetch and verify");
    assert!(
        report.checks[0].detail.contains("checksum mismatch"),
        "{report:#?}"
    );
    assert!(pg.scratch_left(&src.name).is_empty());
}

#[tokio::test]
async fn tables_that_held_rows_at_backup_time_must_not_be_empty() {
    let Some(pg) = pg() else { return };
    let src = Source::create(&pg, "drillrows");
    let (dir, repo, m) = backed_up(&pg, &src).await;
    // Per-table estimates as the backup records them (`table_estimates` in the manifest): the
    // empty audit_log claims rows, as if its data had gone missing from the archive.
    let path = dir.path().join(format!("backups/{}/manifest.json", m.id));
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["table_estimates"] = serde_json::json!([
        {"schema": "public", "name": "customers", "rows": 50},
        {"schema": "sales", "name": "orders", "rows": 200},
        {"schema": "public", "name": "audit_log", "rows": 7}
    ]);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let report = drill(&repo, &opts(&pg, dir.path()), None, &NoProgress, never())
        .await
        .unwrap();
    assert_eq!(report.outcome, DrillOutcome::CheckFailed, "{report:#?}");
    let rows = report.checks.iter().find(|c| c.name == "rows").unwrap();
    assert!(!rows.passed && !rows.skipped);
    assert_eq!(
        rows.detail,
        "1 tables held rows at backup time but are empty: public.audit_log"
    );

    // With honest estimates (audit_log was empty) the check passes and is not skipped.
    v["table_estimates"] = serde_json::json!([
        {"schema": "public", "name": "customers", "rows": 50},
        {"schema": "sales", "name": "orders", "rows": 200},
        {"schema": "public", "name": "audit_log", "rows": 0}
    ]);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let report = drill(&repo, &opts(&pg, dir.path()), None, &NoProgress, never())
        .await
        .unwrap();
    assert_eq!(report.outcome, DrillOutcome::Passed, "{report:#?}");
    let rows = report.checks.iter().find(|c| c.name == "rows").unwrap();
    assert!(rows.passed && !rows.skipped);
    assert_eq!(
        rows.detail,
        "all 2 tables that held rows at backup time have rows"
    );
    assert!(pg.scratch_left(&src.name).is_empty());
}

#[tokio::test]
async fn a_never_analyzed_table_that_held_rows_must_not_restore_empty() {
    /// Empties the restored `public.fresh`, as a bad migration (or a dump that lost its data)
    /// would: the drill's rows check must catch it.
    #[derive(Debug)]
    struct EmptyFresh(Pg);
    #[async_trait]
    impl DrillHook for EmptyFresh {
        async fn post_restore(&self, db: &ConnConfig) -> Result<(), pgb_ops::DrillHookError> {
            self.0.psql(db.dbname().unwrap(), "truncate public.fresh");
            Ok(())
        }
    }
    let Some(pg) = pg() else { return };
    let src = Source::create(&pg, "drillfresh");
    // Filled and never analyzed (autovacuum off for it): PostgreSQL has no estimate
    // (reltuples = -1), so the backup probes whether it holds rows.
    pg.psql(
        &src.name,
        "create table public.fresh (id int) with (autovacuum_enabled = false);
         insert into public.fresh select generate_series(1, 10);",
    );
    assert_eq!(
        pg.psql(
            &src.name,
            "select reltuples from pg_class where oid = 'public.fresh'::regclass"
        ),
        "-1"
    );
    let (dir, repo, m) = backed_up(&pg, &src).await;
    let fresh = m
        .table_estimates
        .iter()
        .find(|t| t.schema == "public" && t.name == "fresh")
        .expect("recorded");
    assert_eq!(fresh.rows, None);
    assert_eq!(fresh.has_rows, Some(true));

    let o = opts(&pg, dir.path()).with_record(false);
    let report = drill(&repo, &o, None, &NoProgress, never()).await.unwrap();
    assert_eq!(report.outcome, DrillOutcome::Passed, "{report:#?}");
    let rows = report.checks.iter().find(|c| c.name == "rows").unwrap();
    assert!(rows.passed && !rows.skipped);
    assert!(
        rows.detail.starts_with("all ") && rows.detail.ends_with(" have rows"),
        "{}",
        rows.detail
    );

    let hook = EmptyFresh(pg.clone());
    let report = drill(&repo, &o, Some(&hook), &NoProgress, never())
        .await
        .unwrap();
    assert_eq!(report.outcome, DrillOutcome::CheckFailed, "{report:#?}");
    let rows = report.checks.iter().find(|c| c.name == "rows").unwrap();
    assert!(!rows.passed && !rows.skipped);
    assert_eq!(
        rows.detail,
        "1 tables held rows at backup time but are empty: public.fresh"
    );
    assert!(pg.scratch_left(&src.name).is_empty());
}
