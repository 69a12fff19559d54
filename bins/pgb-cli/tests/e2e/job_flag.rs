//! `--job NAME` on the one-off commands: the job of the config file supplies the repository,
//! database, keys, policy, drill and check settings; flags still win. After `pgb restore
//! --job`, the job's `post_restore` hook runs on the restored database (the runbooks'
//! migrations), and inside a drill it runs on the scratch database.

use crate::common;

use std::path::Path;

use common::{Pg, one_line_error, stdout};

/// Writes a config with one job `shop` for `db` into `repo`, plus `extra` lines of the job.
fn shop_config(pg: &Pg, db: &str, repo: &Path, extra: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pgb.toml");
    std::fs::write(
        &path,
        format!(
            "[jobs.shop]\ndatabase = \"{}\"\nrepository = \"{}\"\npassphrase_env = \"SHOP_PASSPHRASE\"\n{extra}\n",
            pg.url(db),
            repo.display()
        ),
    )
    .expect("write config");
    (dir, path.display().to_string())
}

/// Runs `pgb ARGS --job shop --config CONFIG` with the test server's tools and the job's
/// passphrase variable (unless `passphrase` is `None`).
fn pgb_job(pg: &Pg, config: &str, args: &[&str], passphrase: Option<&str>) -> std::process::Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--job", "shop", "--config", config]);
    let mut envs = vec![
        ("PGB_PG_BIN_DIR", pg.bin.to_str().unwrap()),
        ("PGPASSWORD", "hook-sees-this"),
    ];
    if let Some(p) = passphrase {
        envs.push(("SHOP_PASSPHRASE", p));
    }
    common::pgb_env(&all, &envs)
}

/// A `post_restore` hook that records its environment in `log` and creates a table in the
/// database it was given, as a migration would.
fn migration_hook(pg: &Pg, log: &Path) -> String {
    format!(
        "post_restore = [\"/bin/sh\", \"-c\", \"echo \\\"$PGB_EVENT $PGB_BACKUP_ID $DATABASE_URL $PGPASSWORD\\\" >> {log} && {psql} -X -q -v ON_ERROR_STOP=1 -d \\\"$DATABASE_URL\\\" -c 'create table schema_migrations (version int primary key)'\"]",
        log = log.display(),
        psql = pg.bin.join("psql").display()
    )
}

#[test]
fn every_command_reads_repository_database_keys_and_policy_from_the_job() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("jobflag", 300, common::RowText::Md5);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let log = dir.path().join("hook.log");
    let (_c, config) = shop_config(
        &pg,
        &db.name,
        &repo,
        &format!("keep_last = 1\n{}", migration_hook(&pg, &log)),
    );
    for _ in 0..2 {
        let o = pgb_job(&pg, &config, &["backup"], Some("correct horse"));
        assert!(o.status.success(), "{o:?}");
    }
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&stdout(&pgb_job(&pg, &config, &["list", "--json"], None)))
            .expect("list --json");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|b| b["database"] == db.name.as_str()));

    // The passphrase came from the job's variable: without it the backup cannot be read.
    let o = pgb_job(&pg, &config, &["verify"], None);
    assert_eq!(o.status.code(), Some(9), "{o:?}");
    let o = pgb_job(&pg, &config, &["verify"], Some("correct horse"));
    assert!(o.status.success(), "{o:?}");

    // The job's policy (keep_last = 1) applies to prune; a flag would replace it.
    let o = pgb_job(&pg, &config, &["prune", "--dry-run", "--json"], None);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(common::ids(&repo).len(), 2, "a dry run deletes nothing");
    let o = pgb_job(&pg, &config, &["prune"], None);
    assert!(o.status.success(), "{o:?}");
    let ids = common::ids(&repo);
    assert_eq!(ids, [listed[1]["id"].as_str().unwrap()], "the newest kept");

    // A flag wins over the job: another (existing, empty) repository is empty.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let o = pgb_job(
        &pg,
        &config,
        &["list", "--json", "--repo", other.to_str().unwrap()],
        None,
    );
    assert_eq!(stdout(&o).trim(), "[]", "{o:?}");

    // restore latest --job: the job's database's newest backup, then the migration hook on
    // the restored database, with DATABASE_URL (no password) and PGPASSWORD.
    let target = common::unique("jobflag_restored");
    let o = pgb_job(
        &pg,
        &config,
        &["restore", "latest", "--db", &pg.url(&target)],
        Some("correct horse"),
    );
    let restored = scopeguard(&pg, &target);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(pg.fingerprint(&target), pg.fingerprint(&db.name));
    assert_eq!(
        pg.psql(&target, "select count(*) from schema_migrations"),
        "0",
        "the post_restore hook ran on the restored database"
    );
    assert_eq!(
        pg.psql(&db.name, "select to_regclass('schema_migrations') is null"),
        "t",
        "and not on the source"
    );
    let line = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        line.trim(),
        format!("post_restore {} {} hook-sees-this", ids[0], pg.url(&target))
    );
    drop(restored);
}

#[test]
fn a_failing_post_restore_hook_exits_1_and_says_the_data_is_restored() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("jobflag_hookfail", 50, common::RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let (_c, config) = shop_config(
        &pg,
        &db.name,
        &repo,
        "post_restore = [\"/bin/sh\", \"-c\", \"echo migration 42 failed >&2; exit 4\"]",
    );
    let o = pgb_job(&pg, &config, &["backup"], Some("pw"));
    assert!(o.status.success(), "{o:?}");
    let target = common::unique("jobflag_hookfail_restored");
    let o = pgb_job(
        &pg,
        &config,
        &["restore", "latest", "--db", &pg.url(&target)],
        Some("pw"),
    );
    let restored = scopeguard(&pg, &target);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = one_line_error(&o);
    assert!(
        err.contains("data is restored") && err.contains("post_restore") && err.contains("4"),
        "{err}"
    );
    assert!(common::stderr(&o).contains("migration 42 failed"), "{o:?}");
    assert_eq!(pg.fingerprint(&target), pg.fingerprint(&db.name));
    drop(restored);
}

#[test]
fn a_job_whose_passphrase_variable_is_missing_never_backs_up_unencrypted() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("jobflag_nokey", 10, common::RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let (_c, config) = shop_config(&pg, &db.name, &repo, "");
    let o = pgb_job(&pg, &config, &["backup"], None);
    assert_eq!(o.status.code(), Some(9), "{o:?}");
    let err = one_line_error(&o);
    assert!(
        err.contains("SHOP_PASSPHRASE") && err.contains("passphrase_env"),
        "{err}"
    );
    assert!(
        !repo.exists() || common::files(&repo).is_empty(),
        "nothing written"
    );
}

#[test]
fn an_unknown_job_is_a_usage_error_listing_the_jobs() {
    let Some(pg) = common::pg() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_c, config) = shop_config(&pg, "x", &dir.path().join("repo"), "");
    let o = common::pgb(&["list", "--job", "shpo", "--config", &config]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = one_line_error(&o);
    assert!(err.contains("shpo") && err.contains("shop"), "{err}");
}

#[test]
fn check_and_drill_take_their_limits_and_target_from_the_job() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("jobflag_drill", 100, common::RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let log = dir.path().join("hook.log");
    let (_c, config) = shop_config(
        &pg,
        &db.name,
        &repo,
        &format!(
            "{}\n[jobs.shop.drill]\ntarget = \"{}\"\n[jobs.shop.check]\nmax_age = \"1s\"\n",
            migration_hook(&pg, &log),
            pg.url("postgres")
        ),
    );
    let o = pgb_job(&pg, &config, &["backup"], Some("pw"));
    assert!(o.status.success(), "{o:?}");

    // The drill restores on the job's target and runs the migration hook on the scratch
    // database, which is dropped afterwards.
    let o = pgb_job(&pg, &config, &["drill", "--json"], Some("pw"));
    assert!(o.status.success(), "{o:?}");
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("drill --json");
    assert_eq!(report["job"], "shop", "{report}");
    let scratch = report["scratch_database"]
        .as_str()
        .expect("scratch_database");
    let hook_ran = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(hook_ran.starts_with("post_restore "), "{hook_ran}");
    assert!(
        hook_ran.contains("/pgb_drill_"),
        "the hook ran on the scratch database: {hook_ran}"
    );
    assert!(
        hook_ran.contains(&format!("/{scratch} ")),
        "the hook ran on {scratch}: {hook_ran}"
    );
    assert!(!pg.db_exists(scratch), "scratch database {scratch} dropped");

    // check: the job's max_age (1s) makes the backup stale; a flag wins over it.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let o = pgb_job(&pg, &config, &["check"], None);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = pgb_job(&pg, &config, &["check", "--max-age", "1h"], None);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

/// Drops database `name` when dropped.
fn scopeguard<'a>(pg: &'a Pg, name: &str) -> common::DbGuard<'a> {
    common::DbGuard {
        pg,
        name: name.to_owned(),
    }
}
