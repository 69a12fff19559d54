//! Incremental base backups (`backup --physical --incremental`, PostgreSQL 17+) on throwaway
//! servers of their own: a chain full + incremental + incremental restored to the end of the
//! archive (pg_combinebackup) and started; refused on PostgreSQL 15 and without
//! `summarize_wal`; prune keeping the chain's parents; a deleted parent failing verify and
//! restore with one clear line.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{PGB, one_line_error, pgb, stderr, stdout};
use pgb_testkit::{TempCluster, make_shared_dir};

fn bin_dir(major: u32) -> Option<PathBuf> {
    match common::env(&format!("PGB_TEST_PG{major}_BIN")) {
        Some(b) => Some(PathBuf::from(b)),
        None => pgb_testkit::require_or_skip(
            &format!("PostgreSQL {major}"),
            &format!("PGB_TEST_PG{major}_BIN is not set (scripts/pg.sh start)"),
        ),
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `pgb backup --physical` of `pg` into `repo`, with `extra` flags.
fn backup(bin: &Path, pg: &TempCluster, repo: &Path, extra: &[&str]) -> Output {
    let url = pg.url();
    let mut args = vec![
        "backup",
        "--physical",
        "--repo",
        repo.to_str().unwrap(),
        "--db",
        &url,
        "--pg-bin-dir",
        bin.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    pgb(&args)
}

/// The manifest of a backup as `backup --json` printed it.
fn backed_up(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "backup: {}", stderr(o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("backup JSON");
    v.get("manifest").cloned().unwrap_or(v)
}

fn restore(bin: &Path, repo: &Path, id: &str, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "restore",
        id,
        "--repo",
        repo.to_str().unwrap(),
        "--pgdata",
        dir.to_str().unwrap(),
        "--pg-bin-dir",
        bin.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    pgb(&args)
}

/// A PostgreSQL 17 server archiving into `repo` with WAL summaries on, and a `marker` table.
fn summarizing_server(bin: &Path, repo: &Path) -> TempCluster {
    let command = format!("{PGB} wal push %p --repo {}", s(repo));
    let pg = TempCluster::init(
        bin,
        &[
            ("archive_mode", "on"),
            ("archive_command", &command),
            ("summarize_wal", "on"),
        ],
    )
    .expect("start PostgreSQL 17");
    pg.psql(
        "create table marker(note text); insert into marker values ('full'); \
         create table bulk(i int primary key, pad text); \
         insert into bulk select g, repeat('x', 200) from generate_series(1, 50000) g",
    )
    .unwrap();
    pg
}

fn id_of(m: &serde_json::Value) -> String {
    m["id"].as_str().expect("id").to_owned()
}

#[test]
fn an_incremental_chain_restores_to_the_end_of_the_archive_on_postgres_17() {
    let Some(bin) = bin_dir(17) else { return };
    let repo = common::shared_repository();
    let pg = summarizing_server(&bin, repo.path());

    // Nothing to build on: the first --incremental is full.
    let full = backed_up(&backup(&bin, &pg, repo.path(), &["--incremental"]));
    assert!(full["physical"].get("incremental").is_none(), "{full}");
    let full_id = id_of(&full);

    pg.psql(
        "update marker set note = 'first incremental'; update bulk set pad = 'y' where i % 100 = 0",
    )
    .unwrap();
    let inc1 = backed_up(&backup(&bin, &pg, repo.path(), &["--incremental"]));
    let inc1_id = id_of(&inc1);
    assert_eq!(inc1["physical"]["incremental"]["parent"], full_id.as_str());
    assert_eq!(
        inc1["physical"]["incremental"]["chain"],
        serde_json::json!([full_id])
    );
    let (full_size, inc_size) = (
        full["artifacts"][0]["stored_size"].as_u64().unwrap(),
        inc1["artifacts"][0]["stored_size"].as_u64().unwrap(),
    );
    assert!(
        inc_size * 2 < full_size,
        "an incremental of 1% changed rows is {inc_size} bytes, the full one {full_size}"
    );

    pg.psql("update marker set note = 'second incremental'; insert into bulk select g, 'z' from generate_series(50001, 51000) g")
        .unwrap();
    let inc2 = backed_up(&backup(&bin, &pg, repo.path(), &["--incremental"]));
    let inc2_id = id_of(&inc2);
    assert_eq!(inc2["physical"]["incremental"]["parent"], inc1_id.as_str());
    assert_eq!(
        inc2["physical"]["incremental"]["chain"],
        serde_json::json!([full_id, inc1_id])
    );

    // A moment after the last backup, for a drill; then a change only in the archive.
    pg.psql("select pg_sleep(1)").unwrap();
    let moment = pg.psql("select now()").unwrap();
    pg.psql("select pg_sleep(1)").unwrap();
    pg.psql("update marker set note = 'after the last backup'; delete from bulk where i <= 10")
        .unwrap();
    pg.switch_wal_and_wait_archived(Duration::from_secs(60))
        .unwrap();

    // Listed with their parents; verified with their chain.
    let o = pgb(&["list", "--repo", &s(repo.path())]);
    assert!(o.status.success(), "list: {}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("incremental on {inc1_id}")),
        "{}",
        stdout(&o)
    );
    let o = pgb(&["verify", &inc2_id, "--repo", &s(repo.path())]);
    assert!(o.status.success(), "verify: {}", stderr(&o));

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("restored");
    let o = restore(&bin, repo.path(), "latest", &dir, &["--preview", "--json"]);
    assert!(o.status.success(), "preview: {}", stderr(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let plan = plan.get("plan").unwrap_or(&plan);
    assert_eq!(plan["backup"], inc2_id.as_str());
    assert_eq!(plan["chain"], serde_json::json!([full_id, inc1_id]));
    assert!(!dir.exists(), "--preview wrote the data directory");

    let o = restore(&bin, repo.path(), "latest", &dir, &[]);
    assert!(o.status.success(), "restore: {}", stderr(&o));
    // The scratch directories of the chain are gone; only the data directory is left.
    let beside: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(beside, vec!["restored".to_owned()]);
    assert!(dir.join("recovery.signal").is_file());
    assert!(
        !common::files(&dir)
            .iter()
            .any(|f| f.contains("INCREMENTAL."))
    );

    let restored = TempCluster::adopt(&bin, &dir, &[]).expect("start the restored server");
    restored
        .wait_until_promoted(Duration::from_secs(120))
        .unwrap();
    assert_eq!(
        restored.psql("select note from marker").unwrap(),
        "after the last backup"
    );
    assert_eq!(
        restored
            .psql("select count(*), count(*) filter (where pad = 'y'), max(i) from bulk")
            .unwrap(),
        "50990|500|51000"
    );
    assert_eq!(restored.psql("show archive_mode").unwrap(), "off");
    drop(restored);

    // A PITR drill to a moment after the last incremental combines the chain too.
    let scratch = tempfile::tempdir().unwrap();
    let o = common::pgb_env(
        &[
            "drill",
            "--physical",
            "--repo",
            &s(repo.path()),
            "--pg-bin-dir",
            bin.to_str().unwrap(),
            "--to-time",
            &moment,
        ],
        &[("TMPDIR", scratch.path().to_str().unwrap())],
    );
    assert!(o.status.success(), "drill: {}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(&inc2_id), "{}", stdout(&o));
}

#[test]
fn postgres_15_refuses_incremental_with_exit_4_and_writes_nothing() {
    let Some(bin) = bin_dir(15) else { return };
    let pg = TempCluster::init(&bin, &[]).expect("start PostgreSQL 15");
    let repo = make_shared_dir().unwrap();
    let o = backup(
        &bin,
        &pg,
        repo.path(),
        &["--wal", "included", "--incremental"],
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let line = one_line_error(&o);
    assert!(line.contains("PostgreSQL 17 or newer"), "{line}");
    assert!(
        common::files(repo.path()).is_empty(),
        "{:?}",
        common::files(repo.path())
    );
}

#[test]
fn incremental_backups_need_summarize_wal_and_summaries_since_the_parent() {
    let Some(bin) = bin_dir(17) else { return };
    let pg = TempCluster::init(&bin, &[]).expect("start PostgreSQL 17");
    pg.psql("create table t(i int); insert into t select generate_series(1, 1000)")
        .unwrap();
    let repo = make_shared_dir().unwrap();
    let o = backup(
        &bin,
        &pg,
        repo.path(),
        &["--wal", "included", "--incremental"],
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        one_line_error(&o).contains("summarize_wal = off"),
        "{}",
        stderr(&o)
    );
    assert!(common::files(repo.path()).is_empty());

    // A full backup while summaries are off; they start later: nothing covers its start.
    backed_up(&backup(&bin, &pg, repo.path(), &["--wal", "included"]));
    pg.psql("insert into t select generate_series(1, 1000); checkpoint")
        .unwrap();
    pg.psql("alter system set summarize_wal = on").unwrap();
    pg.psql("select pg_reload_conf()").unwrap();
    pg.psql("insert into t select generate_series(1, 1000); select pg_switch_wal(); checkpoint")
        .unwrap();
    let o = backup(
        &bin,
        &pg,
        repo.path(),
        &["--wal", "included", "--incremental"],
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let line = one_line_error(&o);
    assert!(line.contains("no WAL summary"), "{line}");
    assert!(line.contains("take a full backup"), "{line}");
    assert_eq!(common::list_json(repo.path()).len(), 1);
}

#[test]
fn prune_keeps_the_parents_of_a_kept_incremental_and_a_deleted_parent_fails_verify_and_restore() {
    let Some(bin) = bin_dir(17) else { return };
    let repo = make_shared_dir().unwrap();
    let pg = TempCluster::init(&bin, &[("summarize_wal", "on")]).expect("start PostgreSQL 17");
    pg.psql("create table t(i int); insert into t select generate_series(1, 1000)")
        .unwrap();
    let inc = ["--wal", "included", "--incremental"];
    let full = id_of(&backed_up(&backup(&bin, &pg, repo.path(), &inc)));
    pg.psql("insert into t select generate_series(1, 100)")
        .unwrap();
    let inc1 = id_of(&backed_up(&backup(&bin, &pg, repo.path(), &inc)));
    pg.psql("insert into t select generate_series(1, 100)")
        .unwrap();
    let inc2 = id_of(&backed_up(&backup(&bin, &pg, repo.path(), &inc)));

    // keep-last 1 keeps the newest, and with it the chain it is built on.
    let prune = |extra: &[&str]| {
        let mut args = vec![
            "prune",
            "--repo",
            repo.path().to_str().unwrap(),
            "--keep-last",
            "1",
        ];
        args.extend_from_slice(extra);
        pgb(&args)
    };
    let o = prune(&["--dry-run"]);
    assert!(o.status.success(), "prune: {}", stderr(&o));
    let text = stdout(&o);
    for parent in [&full, &inc1] {
        assert!(
            text.lines().any(|l| l.starts_with(parent.as_str())
                && l.contains(&format!("parent of kept incremental {inc2}"))),
            "{text}"
        );
    }
    let o = prune(&["--json"]);
    assert!(o.status.success(), "prune: {}", stderr(&o));
    let ids = common::ids(repo.path());
    assert_eq!(ids.len(), 3, "prune broke the chain: {ids:?}");
    // gc removes only folders without a manifest, never a parent.
    let o = pgb(&["gc", "--repo", &s(repo.path()), "--older-than", "1h"]);
    assert!(o.status.success(), "gc: {}", stderr(&o));
    assert_eq!(common::ids(repo.path()), ids);

    // A full backup starts a new chain: then the old one may go.
    backed_up(&backup(&bin, &pg, repo.path(), &["--wal", "included"]));
    let o = prune(&[]);
    assert!(o.status.success(), "prune: {}", stderr(&o));
    assert_eq!(common::ids(repo.path()).len(), 1);

    // A chain whose parent is gone: verify and restore name it.
    pg.psql("insert into t select generate_series(1, 100)")
        .unwrap();
    let next = id_of(&backed_up(&backup(&bin, &pg, repo.path(), &inc)));
    let parent = common::ids(repo.path())
        .into_iter()
        .find(|i| *i != next)
        .unwrap();
    std::fs::remove_dir_all(repo.path().join("backups").join(&parent)).unwrap();
    let o = pgb(&["verify", &next, "--repo", &s(repo.path())]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let line = one_line_error(&o);
    assert!(line.contains(&format!("{parent} is missing")), "{line}");
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("restored");
    let o = restore(&bin, repo.path(), &next, &dir, &[]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(
        one_line_error(&o).contains("parent chain is broken"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.exists());
}

#[test]
fn a_job_with_incremental_true_builds_each_backup_on_the_last_and_a_logical_job_refuses_the_key() {
    let Some(bin) = bin_dir(17) else { return };
    let repo = make_shared_dir().unwrap();
    let pg = TempCluster::init(&bin, &[("summarize_wal", "on")]).expect("start PostgreSQL 17");
    pg.psql("create table t(i int); insert into t select generate_series(1, 1000)")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pgb.toml");
    let write = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "[jobs.pitr]\ndatabase = \"{}\"\nrepository = \"{}\"\n{extra}",
                pg.url(),
                s(repo.path())
            ),
        )
        .unwrap();
    };
    let run = || {
        pgb(&[
            "backup",
            "--job",
            "pitr",
            "--config",
            config.to_str().unwrap(),
            "--pg-bin-dir",
            bin.to_str().unwrap(),
            "--json",
        ])
    };
    write("format = \"physical\"\nwal = \"included\"\nincremental = true\n");
    let first = backed_up(&run());
    assert!(first["physical"].get("incremental").is_none(), "{first}");
    pg.psql("insert into t select generate_series(1, 10)")
        .unwrap();
    let second = backed_up(&run());
    assert_eq!(
        second["physical"]["incremental"]["parent"],
        id_of(&first).as_str()
    );

    write("incremental = true\n");
    let o = run();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let line = one_line_error(&o);
    assert!(line.contains("incremental"), "{line}");
    assert!(line.contains("physical"), "{line}");
    assert_eq!(common::list_json(repo.path()).len(), 2);
}

#[test]
fn an_encrypted_parent_is_read_back_with_the_identity_of_pgb_identity_file() {
    let Some(bin) = bin_dir(17) else { return };
    let repo = make_shared_dir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let identity = keys.path().join("id.txt");
    let o = pgb(&["key", "generate", "--output", identity.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let recipient = stdout(&o).trim().to_owned();
    let pg = TempCluster::init(&bin, &[("summarize_wal", "on")]).expect("start PostgreSQL 17");
    pg.psql("create table t(i int); insert into t select generate_series(1, 1000)")
        .unwrap();
    let args = [
        "--wal",
        "included",
        "--incremental",
        "--recipient",
        recipient.as_str(),
    ];
    let full = backed_up(&backup(&bin, &pg, repo.path(), &args));
    pg.psql("insert into t select generate_series(1, 10)")
        .unwrap();
    // Without the identity the parent cannot be read: a key problem, nothing committed.
    let o = backup(&bin, &pg, repo.path(), &args);
    assert_eq!(o.status.code(), Some(9), "{}", stderr(&o));
    assert_eq!(common::list_json(repo.path()).len(), 1);
    let url = pg.url();
    let mut with_id = vec![
        "backup",
        "--physical",
        "--repo",
        repo.path().to_str().unwrap(),
        "--db",
        &url,
        "--pg-bin-dir",
        bin.to_str().unwrap(),
        "--json",
    ];
    with_id.extend_from_slice(&args);
    let o = common::pgb_env(
        &with_id,
        &[("PGB_IDENTITY_FILE", identity.to_str().unwrap())],
    );
    let inc = backed_up(&o);
    assert_eq!(
        inc["physical"]["incremental"]["parent"],
        id_of(&full).as_str()
    );
    assert!(inc["encryption"].is_object(), "{inc}");
}
