//! Physical base backups (`backup --physical`) and their restore into a data directory
//! (`restore --pgdata`) against real PostgreSQL 15 and 17, each on a throwaway server of its
//! own (`pgb_testkit::TempCluster`): restored, started and checked; listed, verified and
//! pruned like any backup; refused when damaged, into a non-empty directory, or from a server
//! or role that cannot make one; and killed mid-stream without leaving a backup behind.

use crate::common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::pitr::{bin_dir, s};
use common::{PGB, one_line_error, pgb, stderr, stdout};
use pgb_testkit::{TempCluster, make_shared_dir};

/// `pgb backup --physical` of `url` into `repo`, with `extra` flags.
fn physical_backup(bin: &Path, url: &str, repo: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "backup",
        "--physical",
        "--repo",
        repo.to_str().unwrap(),
        "--db",
        url,
        "--pg-bin-dir",
        bin.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    pgb(&args)
}

/// `pgb restore ID --pgdata DIR` from `repo`, with `extra` flags.
fn restore(repo: &Path, id: &str, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "restore",
        id,
        "--repo",
        repo.to_str().unwrap(),
        "--pgdata",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    pgb(&args)
}

fn list_json(repo: &Path) -> Vec<serde_json::Value> {
    let o = pgb(&["list", "--repo", repo.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "list: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("list JSON")
}

/// Every file under `dir`, relative.
fn tree(dir: &Path) -> Vec<String> {
    common::files(dir)
}

/// A server with a table `marker` holding `rows` rows.
fn server_with_data(bin: &Path, settings: &[(&str, &str)], rows: u32) -> TempCluster {
    let pg = TempCluster::init(bin, settings).expect("start PostgreSQL");
    pg.psql(&format!(
        "create table marker(i int primary key, note text); \
         insert into marker select g, 'row ' || g from generate_series(1, {rows}) g"
    ))
    .unwrap();
    pg
}

/// A `--wal included` backup restored with `--pgdata` into a new directory, started and
/// checked; listed with its cluster, verified against backup_manifest, pruned as a set.
fn included_round_trip(major: u32) {
    let Some(bin) = bin_dir(major) else { return };
    let pg = server_with_data(&bin, &[], 5000);
    let sysid = pg.system_identifier().unwrap();
    let repo = make_shared_dir().unwrap();
    let o = physical_backup(
        &bin,
        &pg.url(),
        repo.path(),
        &["--wal", "included", "--verify"],
    );
    assert!(o.status.success(), "backup: {}", stderr(&o));
    assert!(stdout(&o).contains("physical backup"), "{}", stdout(&o));

    let listed = list_json(repo.path());
    assert_eq!(listed.len(), 1);
    let b = &listed[0];
    assert_eq!(b["format"], "physical");
    assert_eq!(b["set"], sysid.to_string());
    let p = &b["physical"];
    assert_eq!(p["system_identifier"], sysid.to_string());
    assert_eq!(p["wal"], "included");
    assert_eq!(p["timeline"], 1);
    assert_eq!(p["server_major"], major);
    assert!(p["files"].as_u64().unwrap() > 100, "{p}");
    let id = b["id"].as_str().unwrap().to_owned();
    let o = pgb(&["list", "--repo", &s(repo.path())]);
    assert!(stdout(&o).contains("physical"), "{}", stdout(&o));
    // Verify: the stored digests, then every file against PostgreSQL's backup_manifest.
    let o = pgb(&["verify", &id, "--repo", &s(repo.path()), "--json"]);
    assert!(o.status.success(), "verify: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["toc_entries"].as_u64().unwrap() > 100, "{v}");

    // A change after the backup is not in it.
    pg.psql("insert into marker values (999999, 'after the backup')")
        .unwrap();

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("restored");
    let o = restore(repo.path(), "latest", &dir, &["--preview", "--json"]);
    assert!(o.status.success(), "preview: {}", stderr(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["backup"], id.as_str());
    assert_eq!(plan["dir"]["state"], "missing");
    assert!(!dir.exists(), "--preview wrote the data directory");

    let o = restore(repo.path(), "latest", &dir, &[]);
    assert!(o.status.success(), "restore: {}", stderr(&o));
    assert!(dir.join("recovery.signal").is_file());
    let auto = std::fs::read_to_string(dir.join("postgresql.auto.conf")).unwrap();
    assert!(auto.contains("archive_mode = 'off'"), "{auto}");
    assert!(
        auto.contains(&format!(
            "wal fetch %f %p --repo {} --system-id {sysid}",
            s(repo.path())
        )),
        "{auto}"
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    let restored = TempCluster::adopt(&bin, &dir, &[]).expect("start the restored server");
    restored
        .wait_until_promoted(Duration::from_secs(120))
        .unwrap();
    assert_eq!(
        restored
            .psql("select count(*), max(i) from marker")
            .unwrap(),
        "5000|5000"
    );
    assert_eq!(restored.system_identifier().unwrap(), sysid);
    drop(restored);

    // A second backup; prune keeps one per cluster, whatever address reached it.
    let o = physical_backup(&bin, &pg.url(), repo.path(), &["--wal", "included"]);
    assert!(o.status.success(), "second backup: {}", stderr(&o));
    // Verified too: prune never deletes the newest verified backup, which was the first.
    let o = pgb(&["verify", "latest", "--repo", &s(repo.path())]);
    assert!(o.status.success(), "verify: {}", stderr(&o));
    let o = pgb(&[
        "prune",
        "--repo",
        &s(repo.path()),
        "--keep-last",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "prune: {}", stderr(&o));
    let left = list_json(repo.path());
    assert_eq!(left.len(), 1);
    assert_ne!(left[0]["id"], id.as_str(), "prune kept the older backup");
}

#[test]
fn a_backup_with_its_wal_included_restores_and_starts_on_postgres_15() {
    included_round_trip(15);
}

#[test]
fn a_backup_with_its_wal_included_restores_and_starts_on_postgres_17() {
    included_round_trip(17);
}

/// A `--wal archive` backup with archive_command = `pgb wal push`: committed once its WAL
/// is archived; restored with no target (the end of the archive), later changes included.
fn archived_round_trip(major: u32) {
    let Some(bin) = bin_dir(major) else { return };
    let repo = common::shared_repository();
    let command = format!("{PGB} wal push %p --repo {}", s(repo.path()));
    let pg = server_with_data(
        &bin,
        &[("archive_mode", "on"), ("archive_command", &command)],
        1000,
    );
    let o = physical_backup(&bin, &pg.url(), repo.path(), &[]);
    assert!(o.status.success(), "backup: {}", stderr(&o));
    let listed = list_json(repo.path());
    let p = &listed[0]["physical"];
    assert_eq!(p["wal"], "archive");
    let sysid = pg.system_identifier().unwrap();
    let stop = p["stop_wal_file"].as_str().unwrap();
    assert!(
        repo.path()
            .join(format!("wal/{sysid}/00000001/{stop}"))
            .is_file(),
        "committed before its last segment was archived"
    );

    pg.psql("insert into marker values (424242, 'after the backup')")
        .unwrap();
    pg.switch_wal_and_wait_archived(Duration::from_secs(60))
        .unwrap();

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("restored");
    let o = restore(repo.path(), "latest", &dir, &[]);
    assert!(o.status.success(), "restore: {}", stderr(&o));
    let restored = TempCluster::adopt(&bin, &dir, &[]).expect("start the restored server");
    restored
        .wait_until_promoted(Duration::from_secs(120))
        .unwrap();
    assert_eq!(
        restored
            .psql("select count(*), max(i) from marker")
            .unwrap(),
        "1001|424242"
    );
    // The restored server does not archive into the source's repository.
    assert_eq!(restored.psql("show archive_mode").unwrap(), "off");
}

#[test]
fn an_archived_backup_restores_to_the_end_of_the_archive_on_postgres_15() {
    archived_round_trip(15);
}

#[test]
fn an_archived_backup_restores_to_the_end_of_the_archive_on_postgres_17() {
    archived_round_trip(17);
}

#[test]
fn a_backup_whose_wal_never_reaches_the_archive_is_not_committed() {
    let Some(bin) = bin_dir(17) else { return };
    let pg = server_with_data(
        &bin,
        &[("archive_mode", "on"), ("archive_command", "/bin/false")],
        10,
    );
    let repo = make_shared_dir().unwrap();
    let o = physical_backup(&bin, &pg.url(), repo.path(), &["--wal-wait", "3s"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let line = one_line_error(&o);
    assert!(
        line.contains("is not in the repository's WAL archive"),
        "{line}"
    );
    assert!(line.contains("archive_command"), "{line}");
    assert!(line.contains("00000001"), "names the segment: {line}");
    assert!(list_json(repo.path()).is_empty());
    assert!(
        !tree(repo.path())
            .iter()
            .any(|f| f.ends_with("manifest.json")),
        "{:?}",
        tree(repo.path())
    );
}

#[test]
fn a_corrupt_base_backup_is_refused_before_anything_reaches_the_data_directory() {
    let Some(bin) = bin_dir(17) else { return };
    let pg = server_with_data(&bin, &[], 2000);
    let repo = make_shared_dir().unwrap();
    let o = physical_backup(&bin, &pg.url(), repo.path(), &["--wal", "included"]);
    assert!(o.status.success(), "backup: {}", stderr(&o));
    let id = list_json(repo.path())[0]["id"].as_str().unwrap().to_owned();
    let tar = repo.path().join(format!("backups/{id}/base.tar.zst"));
    let mut bytes = std::fs::read(&tar).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&tar, &bytes).unwrap();

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("restored");
    let o = restore(repo.path(), &id, &dir, &[]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(
        one_line_error(&o).contains("checksum mismatch"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.exists(), "the data directory was created");

    // Without the first read, the damage is found while extracting: everything goes again.
    let empty = out.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = restore(repo.path(), &id, &empty, &["--no-verify-first"]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(tree(&empty).is_empty(), "left behind: {:?}", tree(&empty));

    let o = pgb(&["verify", &id, "--repo", &s(repo.path())]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
}

#[test]
fn a_non_empty_data_directory_is_refused_without_clean() {
    let Some(bin) = bin_dir(15) else { return };
    let pg = server_with_data(&bin, &[], 10);
    let repo = make_shared_dir().unwrap();
    let o = physical_backup(&bin, &pg.url(), repo.path(), &["--wal", "included"]);
    assert!(o.status.success(), "backup: {}", stderr(&o));
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("busy");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("precious.txt"), "keep me").unwrap();
    let o = restore(repo.path(), "latest", &dir, &[]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    let line = one_line_error(&o);
    assert!(
        line.contains("is not empty") && line.contains("--clean"),
        "{line}"
    );
    assert_eq!(tree(&dir), vec!["precious.txt".to_owned()]);

    // The repository itself is never a data directory, --clean or not.
    let o = restore(repo.path(), "latest", repo.path(), &["--clean"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        one_line_error(&o).contains("the repository"),
        "{}",
        stderr(&o)
    );

    let o = restore(repo.path(), "latest", &dir, &["--clean"]);
    assert!(o.status.success(), "restore --clean: {}", stderr(&o));
    assert!(!dir.join("precious.txt").exists());
    assert!(dir.join("PG_VERSION").is_file());
}

#[test]
fn preflight_refuses_a_server_or_role_that_cannot_make_a_physical_backup() {
    let Some(bin) = bin_dir(17) else { return };
    let repo = make_shared_dir().unwrap();
    let refused = |o: &Output, what: &str| {
        assert_eq!(o.status.code(), Some(4), "{what}: {}", stderr(o));
        let line = one_line_error(o);
        assert!(line.contains(what), "{line}");
        assert!(list_json(repo.path()).is_empty());
        assert!(
            !tree(repo.path()).iter().any(|f| f.starts_with("backups/")),
            "{:?}",
            tree(repo.path())
        );
    };
    let minimal = TempCluster::init(&bin, &[("wal_level", "minimal"), ("max_wal_senders", "0")])
        .expect("start PostgreSQL");
    let o = physical_backup(&bin, &minimal.url(), repo.path(), &["--wal", "included"]);
    refused(&o, "wal_level = minimal");
    drop(minimal);

    let no_senders =
        TempCluster::init(&bin, &[("max_wal_senders", "0")]).expect("start PostgreSQL");
    let o = physical_backup(&bin, &no_senders.url(), repo.path(), &["--wal", "included"]);
    refused(&o, "max_wal_senders = 0");
    drop(no_senders);

    let pg = TempCluster::init(&bin, &[]).expect("start PostgreSQL");
    pg.psql("create role plain login").unwrap();
    let url = pg.url().replace("postgres@", "plain@");
    let o = physical_backup(&bin, &url, repo.path(), &["--wal", "included"]);
    refused(&o, "neither REPLICATION nor SUPERUSER");
    // Archive mode off, and the WAL meant for the archive (the default).
    let o = physical_backup(&bin, &pg.url(), repo.path(), &[]);
    refused(&o, "archive_mode = off");
}

#[test]
fn a_target_before_the_first_backup_and_an_unreadable_time_are_refused() {
    // Usage errors need no server: refused before the repository is opened.
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("restored");
    let nowhere = out.path().join("no-repo");
    for (flag, value) in [
        ("--to-time", "2026-05-01 12:00:00"),
        ("--to-time", "yesterday"),
        ("--to-lsn", "12345"),
    ] {
        let o = restore(&nowhere, "latest", &dir, &[flag, value]);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {}", stderr(&o));
        let line = one_line_error(&o);
        assert!(line.contains(flag), "{line}");
    }
    assert!(!dir.exists());

    let Some(bin) = bin_dir(15) else { return };
    let pg = server_with_data(&bin, &[], 10);
    let repo = make_shared_dir().unwrap();
    let o = physical_backup(&bin, &pg.url(), repo.path(), &["--wal", "included"]);
    assert!(o.status.success(), "backup: {}", stderr(&o));
    let o = restore(
        repo.path(),
        "latest",
        &dir,
        &["--to-time", "2001-01-01T00:00:00Z", "--preview"],
    );
    assert_eq!(o.status.code(), Some(12), "{}", stderr(&o));
    let line = one_line_error(&o);
    assert!(
        line.contains("before the end of the earliest physical backup"),
        "{line}"
    );
    let o = restore(
        repo.path(),
        "latest",
        &dir,
        &["--to-lsn", "0/10", "--preview"],
    );
    assert_eq!(o.status.code(), Some(12), "{}", stderr(&o));
    assert!(!dir.exists());
    // A dump restore of a physical backup says how to restore it instead.
    let o = pgb(&[
        "restore",
        "latest",
        "--repo",
        &s(repo.path()),
        "--db",
        "postgres://nobody@127.0.0.1:1/x",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(one_line_error(&o).contains("--pgdata"), "{}", stderr(&o));
}

#[test]
fn sigkill_during_a_base_backup_leaves_nothing_that_looks_like_a_backup() {
    let Some(bin) = bin_dir(17) else { return };
    let pg = server_with_data(&bin, &[], 20_000);
    let repo = make_shared_dir().unwrap();
    // pg_basebackup throttled so the stream is still running when pgb is killed.
    let shims = tempfile::tempdir().unwrap();
    common::write_script(
        &shims.path().join("pg_basebackup"),
        &format!(
            "#!/bin/sh\n[ \"$1\" = --version ] && exec '{b}/pg_basebackup' --version\nexec '{b}/pg_basebackup' --max-rate=64k \"$@\"\n",
            b = s(&bin)
        ),
    );
    std::os::unix::fs::symlink(bin.join("psql"), shims.path().join("psql")).unwrap();
    let mut child = common::pgb_cmd(&[
        "backup",
        "--physical",
        "--wal",
        "included",
        "--repo",
        &s(repo.path()),
        "--db",
        &pg.url(),
        "--pg-bin-dir",
        &s(shims.path()),
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    // Once the lease exists and the stream has begun, kill pgb outright.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !tree(repo.path()).iter().any(|f| f.starts_with("locks/"))
        || !pg
            .psql("select count(*) from pg_stat_progress_basebackup")
            .is_ok_and(|n| n == "1")
    {
        assert!(Instant::now() < deadline, "the backup never started");
        assert!(child.try_wait().unwrap().is_none(), "pgb ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    common::kill(child.id(), libc::SIGKILL);
    let _ = child.wait();
    // pg_basebackup dies on its closed pipe; the server's backup ends with it.
    let deadline = Instant::now() + Duration::from_secs(120);
    while pg
        .psql("select count(*) from pg_stat_progress_basebackup")
        .unwrap()
        != "0"
    {
        assert!(Instant::now() < deadline, "the base backup kept running");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(list_json(repo.path()).is_empty());
    // At most an unfinished object in the store's staging area, which is never listed.
    let files = tree(repo.path());
    assert!(
        !files.iter().any(|f| f.starts_with("backups/")),
        "{files:?}"
    );
}

#[test]
fn a_configured_job_takes_physical_backups_with_pgb_run_and_backup_job() {
    let Some(bin) = bin_dir(17) else { return };
    let pg = server_with_data(&bin, &[], 10);
    let repo = make_shared_dir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pgb.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.cluster]\ndatabase = \"{}\"\nrepository = \"{}\"\nformat = \"physical\"\nwal = \"included\"\nverify_after_backup = true\nkeep_last = 1\n",
            pg.url(),
            s(repo.path())
        ),
    )
    .unwrap();
    let env = [("PGB_PG_BIN_DIR", bin.to_str().unwrap())];
    let o = common::pgb_env(&["run", "cluster", "--config", &s(&config)], &env);
    assert!(o.status.success(), "run: {}", stderr(&o));
    let o = common::pgb_env(
        &["backup", "--job", "cluster", "--config", &s(&config)],
        &env,
    );
    assert!(o.status.success(), "backup --job: {}", stderr(&o));
    assert!(list_json(repo.path())[1]["physical"].is_object());
    let o = common::pgb_env(&["run", "cluster", "--config", &s(&config)], &env);
    assert!(o.status.success(), "second run: {}", stderr(&o));
    let listed = list_json(repo.path());
    assert_eq!(listed.len(), 1, "keep_last = 1 pruned the cluster's set");
    assert_eq!(listed[0]["physical"]["wal"], "included");
    // `prune --job` of a physical job: its set is the cluster's system identifier, which its
    // URL does not tell, so it is refused with how to name the set (it used to select a
    // host:port/database set no base backup carries and silently keep everything).
    let o = common::pgb_env(
        &["backup", "--job", "cluster", "--config", &s(&config)],
        &env,
    );
    assert!(o.status.success(), "third backup: {}", stderr(&o));
    let prune = ["prune", "--job", "cluster", "--config", &s(&config)];
    let o = common::pgb_env(&prune, &env);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        one_line_error(&o).contains("--set SYSTEM_ID"),
        "{}",
        stderr(&o)
    );
    assert_eq!(list_json(repo.path()).len(), 2, "nothing pruned");
    let set = list_json(repo.path())[0]["set"]
        .as_str()
        .unwrap()
        .to_owned();
    let o = common::pgb_env(&[&prune[..], &["--set", &set]].concat(), &env);
    assert!(o.status.success(), "prune --set: {}", stderr(&o));
    assert_eq!(list_json(repo.path()).len(), 1, "the job's keep_last = 1");
    // A key that does not apply to a physical backup is one line naming it.
    std::fs::write(
        &config,
        format!(
            "[jobs.cluster]\ndatabase = \"{}\"\nrepository = \"{}\"\nformat = \"physical\"\ntables = [\"t\"]\n",
            pg.url(),
            s(repo.path())
        ),
    )
    .unwrap();
    let o = common::pgb_env(&["run", "cluster", "--config", &s(&config)], &env);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(one_line_error(&o).contains("tables"), "{}", stderr(&o));
}

/// A repository with a dump and a newer base backup of the same server: `restore latest --db`
/// restores the dump (a base backup restores into a data directory, never into a database).
#[test]
fn restore_latest_into_a_database_takes_the_newest_dump_not_a_newer_base_backup() {
    let Some(bin) = bin_dir(17) else { return };
    let pg = server_with_data(&bin, &[], 100);
    let repo = make_shared_dir().unwrap();
    let r = s(repo.path());
    let o = pgb(&[
        "backup",
        "--repo",
        &r,
        "--db",
        &pg.url(),
        "--pg-bin-dir",
        &s(&bin),
    ]);
    assert!(o.status.success(), "dump: {}", stderr(&o));
    let o = physical_backup(&bin, &pg.url(), repo.path(), &["--wal", "included"]);
    assert!(o.status.success(), "base backup: {}", stderr(&o));
    let target = format!("postgres://postgres@127.0.0.1:{}/restored", pg.port());
    let o = pgb(&[
        "restore",
        "latest",
        "--repo",
        &r,
        "--db",
        &target,
        "--pg-bin-dir",
        &s(&bin),
    ]);
    assert!(o.status.success(), "restore: {}", stderr(&o));
    let out = std::process::Command::new(bin.join("psql"))
        .args([
            "-X",
            "-At",
            "-d",
            &target,
            "-c",
            "select count(*) from marker",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "100");
}
