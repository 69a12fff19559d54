//! A job's `post_restore` hook run by a restore drill against a real PostgreSQL server
//! (`scripts/pg.sh start DIR 15`, then source its env file): the hook sees the scratch database
//! as `DATABASE_URL` without the password and the password as `PGPASSWORD`, its changes are
//! what the drill checks, and its time is the drill's `hooks` phase.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use pgb_config::Hook;
use pgb_core::{BackupOptions, NoProgress, Repository};
use pgb_jobs::PostRestoreHook;
use pgb_ops::{DrillOptions, DrillOutcome, drill};
use pgb_postgres::{ConnConfig, PgDump, ToolLocator};
use pgb_storage_local::FsStorage;

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

impl Pg {
    fn conn(&self, db: &str) -> ConnConfig {
        ConnConfig::parse(&self.url).unwrap().with_dbname(db)
    }

    fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
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
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// Drops a database (the source, the kept scratch database) at the end.
struct Db<'a>(&'a Pg, String);

impl Drop for Db<'_> {
    fn drop(&mut self) {
        let _ = Command::new(self.0.bin.join("psql"))
            .args(["-X", "-q", "-w", "-c"])
            .arg(format!(
                "drop database if exists \"{}\" with (force)",
                self.1
            ))
            .arg(format!("--dbname={}", self.0.conn("postgres").redacted()))
            .output();
    }
}

#[tokio::test]
async fn a_drill_runs_the_jobs_post_restore_hook_with_the_scratch_database_and_times_it() {
    let Some(pg) = pg() else { return };
    let mut rnd = [0u8; 4];
    getrandom::fill(&mut rnd).unwrap();
    let name = format!(
        "pgbt_jobhook_{}",
        rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    pg.psql("postgres", &format!("create database {name}"));
    let _db = Db(&pg, name.clone());
    pg.psql(
        &name,
        "create table items (id int primary key); insert into items select generate_series(1, 20);",
    );
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::new(Arc::new(
        FsStorage::open_or_create(dir.path().join("repo")).unwrap(),
    ));
    let locator = ToolLocator::new()
        .with_system_dirs(false)
        .with_bin_dir(&pg.bin);
    repo.backup(
        &PgDump::new(pg.conn(&name), locator.clone()),
        &BackupOptions::default(),
        &NoProgress,
    )
    .await
    .expect("backup");

    // A migration: records what it was given, takes a moment, adds a column.
    let seen = dir.path().join("hook-env");
    let script = format!(
        "echo \"$PGB_EVENT|$DATABASE_URL|$PGPASSWORD\" > {seen}; sleep 0.3; \
         {psql} \"$DATABASE_URL\" -X -q -w -v ON_ERROR_STOP=1 -c 'alter table items add column migrated bool default true'",
        seen = seen.display(),
        psql = pg.bin.join("psql").display()
    );
    let hook = PostRestoreHook::new(
        "nightly",
        Hook {
            argv: vec!["/bin/sh".into(), "-c".into(), script],
            program: PathBuf::from("/bin/sh"),
        },
        BTreeMap::new(),
        Duration::from_secs(60),
    );
    // The target's password (ignored by the test server's trust authentication) reaches the
    // hook only as PGPASSWORD.
    let target = pg.conn("postgres").with_password("hook-s3cret");
    let opts = DrillOptions::new(target, locator, dir.path())
        .with_record(false)
        .with_keep(true)
        .with_smoke(
            "migrated",
            "select bool_and(migrated) from items having count(*) = 20",
        );
    let report = drill(
        &repo,
        &opts,
        Some(&hook),
        &NoProgress,
        std::future::pending(),
    )
    .await
    .unwrap();
    let scratch = report.scratch_database.clone();
    let _scratch = Db(&pg, scratch.clone());
    assert_eq!(report.outcome, DrillOutcome::Passed, "{report:#?}");
    let check = report
        .checks
        .iter()
        .find(|c| c.name == "post_restore hooks")
        .expect("the hook check");
    assert!(check.passed, "{check:?}");

    let env = std::fs::read_to_string(&seen).unwrap();
    let parts: Vec<&str> = env.trim().split('|').collect();
    let [event, url, password] = <[&str; 3]>::try_from(parts).unwrap();
    assert_eq!(event, "post_restore");
    assert!(url.ends_with(&format!("/{scratch}")), "{url}");
    assert!(!url.contains("hook-s3cret"), "{url}");
    assert_eq!(password, "hook-s3cret");

    // The hook's time is the drill's `hooks` phase; its report is kept, without the password.
    let hooks = report
        .phases
        .iter()
        .find(|p| p.name == "hooks")
        .expect("a hooks phase");
    let r = hook.report().expect("the hook ran");
    assert_eq!(r.exit_code, Some(0));
    assert!(r.duration_ms >= 300, "{r:?}");
    assert!(hooks.millis >= r.duration_ms, "{hooks:?} {r:?}");
    assert!(!format!("{r:?}").contains("hook-s3cret"));
}
