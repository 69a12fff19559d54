//! A restore that is cancelled (its future dropped, as the binary does on SIGINT/SIGTERM, or
//! through `Repository::restore_until`) rolls back and drops the target database it created,
//! and never drops a target that existed before. Against real PostgreSQL 15.
//!
//! The source database has a CHECK constraint whose function sleeps unless the session sets
//! `pgb.fast`: loading it takes seconds on any machine, so a test can reliably cancel the
//! restore while pg_restore is busy.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use pgb_core::{
    BackupOptions, Error, Manifest, MemoryStorage, NoProgress, Repository, RestoreOptions,
};
use pgb_postgres::{PgDump, PgRestore};

/// Rows in the slow table; each one costs the restore 2 ms.
const SLOW_ROWS: u32 = 3000;

/// A database whose restore takes about `SLOW_ROWS` × 2 ms, backed up into a fresh
/// in-memory repository.
async fn slow_backup(pg: &Pg) -> (TempDb, Repository, Manifest) {
    let db = pg.create_db("slow_src").await;
    pg.psql(
        &db.name,
        &format!(
            "create function public.slow_ok(i int) returns boolean language plpgsql as $$
             begin
               if coalesce(current_setting('pgb.fast', true), '') <> 'on' then
                 perform pg_sleep(0.002);
               end if;
               return true;
             end $$;
             create table public.slow (id int primary key check (public.slow_ok(id)), pad text);
             set pgb.fast = on;
             insert into public.slow select g, repeat('x', 100) from generate_series(1, {SLOW_ROWS}) g;"
        ),
    )
    .await;
    let repo = Repository::new(Arc::new(MemoryStorage::new()));
    let m = Box::pin(repo.backup(
        &PgDump::new(pg.conn(&db.name), pg.locator()),
        &BackupOptions::default(),
        &NoProgress,
    ))
    .await
    .expect("backup of the slow database");
    (db, repo, m)
}

/// Waits until a session on `db` is busy (pg_restore loading data), up to a minute.
async fn wait_until_restoring(pg: &Pg, db: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let busy = pg
            .psql(
                "postgres",
                &format!(
                    "select count(*) from pg_stat_activity where datname = '{db}' and state = 'active';"
                ),
            )
            .await;
        if busy != "0" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the restore into {db} never got busy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_until_cancelled_mid_way_drops_the_database_it_created() {
    let Some(pg) = pg15() else { return };
    let (_src, repo, m) = slow_backup(&pg).await;
    let spool = tempfile::tempdir().expect("spool");
    let target = pg.adopt_db(&unique("cancel_until"));
    let restorer = PgRestore::new(pg.conn(&target.name), pg.locator(), spool.path());
    let res = Box::pin(repo.restore_until(
        &m,
        &restorer,
        &RestoreOptions::new(),
        &NoProgress,
        wait_until_restoring(&pg, &target.name),
    ))
    .await;
    assert!(matches!(res, Err(Error::Cancelled)), "{res:?}");
    assert!(
        !pg.db_exists(&target.name).await,
        "the cancelled restore left the database it created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_restore_mid_way_drops_the_database_it_created_before_returning() {
    let Some(pg) = pg15() else { return };
    let (_src, repo, m) = slow_backup(&pg).await;
    let spool = tempfile::tempdir().expect("spool");
    // Streamed in one transaction (1 job), and spooled to pg_restore -j (2 jobs).
    for jobs in [1, 2] {
        let target = pg.adopt_db(&unique("cancel_drop"));
        let restorer = PgRestore::new(pg.conn(&target.name), pg.locator(), spool.path());
        let opts = RestoreOptions::new().with_jobs(jobs);
        tokio::select! {
            res = Box::pin(repo.restore(&m, &restorer, &opts, &NoProgress)) => {
                panic!("jobs {jobs}: the restore ended before it was cancelled: {res:?}")
            }
            () = wait_until_restoring(&pg, &target.name) => {}
        }
        // The restore future is gone: its guard spawned the drop, which the caller awaits
        // (as the binary does) without any runtime thread blocking on psql.
        pgb_postgres::settle_cleanups().await;
        assert_eq!(pgb_postgres::pending_cleanups(), 0);
        assert!(
            !pg.db_exists(&target.name).await,
            "jobs {jobs}: the dropped restore left the database it created"
        );
        assert_eq!(
            std::fs::read_dir(spool.path()).unwrap().count(),
            0,
            "jobs {jobs}: spool file left behind"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_restore_into_an_existing_database_keeps_it_unchanged() {
    let Some(pg) = pg15() else { return };
    let (_src, repo, m) = slow_backup(&pg).await;
    let spool = tempfile::tempdir().expect("spool");
    let target = pg.create_db("cancel_existing").await;
    pg.psql(
        &target.name,
        "create table keep_me (id int); insert into keep_me values (1), (2);",
    )
    .await;
    let restorer = PgRestore::new(pg.conn(&target.name), pg.locator(), spool.path());
    let res = Box::pin(repo.restore_until(
        &m,
        &restorer,
        &RestoreOptions::new().with_clean(true),
        &NoProgress,
        wait_until_restoring(&pg, &target.name),
    ))
    .await;
    assert!(matches!(res, Err(Error::Cancelled)), "{res:?}");
    assert!(
        pg.db_exists(&target.name).await,
        "an existing target was dropped"
    );
    assert_eq!(
        pg.psql(
            &target.name,
            "select string_agg(relname, ',' order by relname) from pg_class \
             where relnamespace = 'public'::regnamespace and relkind = 'r';"
        )
        .await,
        "keep_me",
        "the cancelled restore changed the existing target"
    );
    assert_eq!(
        pg.psql(&target.name, "select count(*) from keep_me;").await,
        "2"
    );
}
