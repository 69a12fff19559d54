//! End-to-end tests of the `pgb` binary against a real PostgreSQL (PGB_TEST_PG_URL) and local
//! storage: the exit-code contract, signals, restore safety, standard-tool restores, prune.

use crate::common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn backup_list_verify_restore_round_trip_and_json_fields() {
    let Some(pg) = pg() else { return };
    let src = pg.sample_db("pgbcli", 5000, RowText::Plain);
    let repo = tempfile::tempdir().unwrap();
    let out = backup(&pg, repo.path(), &src.name, &["--label", "nightly"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let entries = list_json(repo.path());
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    for field in [
        "id",
        "database",
        "started_at",
        "finished_at",
        "stored_size",
        "sha256",
        "format",
        "compression",
    ] {
        assert!(e.get(field).is_some(), "list --json lacks {field}: {e}");
    }
    assert_eq!(e["database"], src.name.as_str());
    assert_eq!(e["format"], "custom");
    assert_eq!(e["compression"], "zstd:3");
    assert_eq!(e["labels"][0], "nightly");

    let v = pgb(&["verify", "--repo", repo.path().to_str().unwrap(), "latest"]);
    assert!(v.status.success(), "{}", stderr(&v));
    assert!(stdout(&v).starts_with("ok "), "{}", stdout(&v));

    let target = unique("pgbcli_restored");
    let r = pgb(&[
        "restore",
        "latest",
        "--repo",
        repo.path().to_str().unwrap(),
        "--db",
        &pg.url(&target),
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(pg.fingerprint(&target), pg.fingerprint(&src.name));
    drop_db(&pg, &target);
}

#[test]
fn password_on_the_command_line_is_refused_with_exit_2_and_no_side_effects() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let out = pgb(&[
        "backup",
        "--repo",
        repo.to_str().unwrap(),
        "--db",
        "postgres://u:hunter2@127.0.0.1:1/db",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let line = first_error_line(&out);
    assert!(line.contains("PGPASSWORD"), "{line}");
    assert!(
        !stderr(&out).contains("hunter2"),
        "the secret is never echoed"
    );
    assert!(!repo.exists(), "nothing created");
}

#[test]
fn unknown_repository_scheme_is_a_usage_error() {
    let out = pgb(&["list", "--repo", "ftp://example/backups"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(first_error_line(&out).contains("unknown scheme"));
}

#[test]
fn unusable_repository_exits_3() {
    let out = pgb(&["list", "--repo", "/proc/pgb-cannot-create-this"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    first_error_line(&out);
}

#[test]
fn missing_database_exits_4_and_writes_nothing() {
    let Some(pg) = pg() else { return };
    let repo = tempfile::tempdir().unwrap();
    let out = backup(&pg, repo.path(), "pgb_no_such_database", &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        first_error_line(&out).contains("does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(
        files(repo.path()).is_empty(),
        "no objects: {:?}",
        files(repo.path())
    );
}

#[test]
fn unknown_backup_id_and_empty_repository_exit_7() {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path().to_str().unwrap();
    let out = pgb(&["verify", "--repo", r, "20260101T000000Z-abcdef"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let out = pgb(&[
        "restore",
        "latest",
        "--repo",
        r,
        "--db",
        "postgres://127.0.0.1:1/x",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(first_error_line(&out).contains("no complete backup"));
}

#[test]
fn corrupted_backup_exits_5_on_verify_and_restore_leaves_target_unchanged() {
    let Some(pg) = pg() else { return };
    let src = pg.sample_db("pgbcli", 3000, RowText::Plain);
    let repo = tempfile::tempdir().unwrap();
    assert!(backup(&pg, repo.path(), &src.name, &[]).status.success());
    let data = files(repo.path())
        .into_iter()
        .find(|f| f.contains("data.dump"))
        .expect("data object");
    let path = repo.path().join(&data);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let out = pgb(&["verify", "--repo", repo.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        first_error_line(&out).contains("checksum mismatch"),
        "{}",
        stderr(&out)
    );

    // An existing target, restored with --clean: the corruption is found and nothing changes.
    let target = pg.sample_db("pgbcli", 10, RowText::Plain);
    let before = pg.fingerprint(&target.name);
    let out = pgb(&[
        "restore",
        "latest",
        "--clean",
        "--repo",
        repo.path().to_str().unwrap(),
        "--db",
        &pg.url(&target.name),
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(pg.fingerprint(&target.name), before, "target unchanged");

    // A new target: created, then dropped again when the corruption is found.
    let fresh = unique("pgbcli_never");
    let out = pgb(&[
        "restore",
        "latest",
        "--repo",
        repo.path().to_str().unwrap(),
        "--db",
        &pg.url(&fresh),
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(!pg.db_exists(&fresh), "the half-created target was dropped");

    // A parallel restore skips the separate verify read (its spool is checked as it is
    // written): the corruption is still found before pg_restore or the target see anything.
    let spool = tempfile::tempdir().unwrap();
    for (db, clean) in [(target.name.clone(), true), (fresh.clone(), false)] {
        let mut args = vec![
            "restore",
            "latest",
            "--jobs",
            "2",
            "--spool-dir",
            spool.path().to_str().unwrap(),
            "--repo",
            repo.path().to_str().unwrap(),
        ];
        if clean {
            args.push("--clean");
        }
        let url = pg.url(&db);
        args.extend(["--db", &url]);
        let out = pgb(&args);
        assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
        assert!(files(spool.path()).is_empty(), "no spool file left behind");
    }
    assert_eq!(pg.fingerprint(&target.name), before, "target unchanged");
    assert!(!pg.db_exists(&fresh), "no target created");
}

#[test]
fn restore_into_a_target_with_tables_needs_clean() {
    let Some(pg) = pg() else { return };
    let src = pg.sample_db("pgbcli", 2000, RowText::Plain);
    let repo = tempfile::tempdir().unwrap();
    assert!(backup(&pg, repo.path(), &src.name, &[]).status.success());
    let target = pg.sample_db("pgbcli", 7, RowText::Plain);
    let before = pg.fingerprint(&target.name);
    let r = repo.path().to_str().unwrap();
    let out = pgb(&[
        "restore",
        "latest",
        "--repo",
        r,
        "--db",
        &pg.url(&target.name),
    ]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(first_error_line(&out).contains("--clean"));
    assert_eq!(
        pg.fingerprint(&target.name),
        before,
        "refused restore changed nothing"
    );

    let out = pgb(&[
        "restore",
        "latest",
        "--clean",
        "--repo",
        r,
        "--db",
        &pg.url(&target.name),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(pg.fingerprint(&target.name), pg.fingerprint(&src.name));
}

#[test]
fn parallel_restore_round_trips() {
    let Some(pg) = pg() else { return };
    let src = pg.sample_db("pgbcli", 4000, RowText::Plain);
    let repo = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    assert!(
        backup(&pg, repo.path(), &src.name, &["--compression", "gzip"])
            .status
            .success()
    );
    let target = unique("pgbcli_par");
    let out = pgb(&[
        "restore",
        "latest",
        "--jobs",
        "2",
        "--spool-dir",
        spool.path().to_str().unwrap(),
        "--repo",
        repo.path().to_str().unwrap(),
        "--db",
        &pg.url(&target),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(pg.fingerprint(&target), pg.fingerprint(&src.name));
    assert!(
        files(spool.path()).is_empty(),
        "no plaintext spool file left behind"
    );
    drop_db(&pg, &target);
}

#[test]
fn stored_backup_restores_with_standard_tools() {
    let Some(pg) = pg() else { return };
    let src = pg.sample_db("pgbcli", 3000, RowText::Plain);
    for (format, compression, decompress) in [
        ("custom", "zstd", "zstd -d -c"),
        ("custom", "gzip", "gunzip -c"),
        ("plain", "zstd", "zstd -d -c"),
        ("plain", "gzip", "gunzip -c"),
    ] {
        let repo = tempfile::tempdir().unwrap();
        let out = backup(
            &pg,
            repo.path(),
            &src.name,
            &["--format", format, "--compression", compression],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let data = files(repo.path())
            .into_iter()
            .find(|f| f.contains("/data."))
            .unwrap();
        let target = unique("pgbcli_byhand");
        pg.psql("postgres", &format!("create database {target}"));
        let tool = if format == "custom" {
            format!(
                "{}/pg_restore --no-owner --no-privileges --single-transaction -d '{}'",
                pg.bin.display(),
                pg.url(&target)
            )
        } else {
            format!(
                "{}/psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d '{}' -f -",
                pg.bin.display(),
                pg.url(&target)
            )
        };
        let script = format!(
            "set -o pipefail; {decompress} '{}' | {tool}",
            repo.path().join(&data).display()
        );
        let out = Command::new("bash").args(["-c", &script]).output().unwrap();
        assert!(
            out.status.success(),
            "{format}/{compression}: {}",
            stderr(&out)
        );
        assert_eq!(
            pg.fingerprint(&target),
            pg.fingerprint(&src.name),
            "{format}/{compression}"
        );
        drop_db(&pg, &target);
    }
}

/// A pg_dump stand-in that streams forever (slowly), for signal tests. It answers `--version`
/// as the real 15 does so the version check passes.
fn endless_pg_dump(dir: &Path) -> PathBuf {
    shim(
        dir,
        "bin",
        "exec python3 -c 'import sys,time\nwhile True:\n sys.stdout.buffer.write(b\"PGDMP\" * 20000); sys.stdout.flush(); time.sleep(0.02)'",
    )
}

fn signal_aborts_cleanly(sig: i32, expected_code: i32) {
    let Some(pg) = pg() else { return };
    let src = pg.sample_db("pgbcli", 10, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let bin = endless_pg_dump(dir.path());
    let repo = dir.path().join("repo");
    let child = pgb_cmd(&[
        "backup",
        "--repo",
        repo.to_str().unwrap(),
        "--db",
        &pg.url(&src.name),
        "--pg-bin-dir",
        bin.to_str().unwrap(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Wait until data flows into the staging area.
    let deadline = Instant::now() + Duration::from_secs(20);
    while files(&repo).iter().all(|f| !f.starts_with(".pgb-staging/")) {
        assert!(Instant::now() < deadline, "backup never started streaming");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    // Whether the signal was delivered shows in the exit code checked below.
    let _ = send_signal(child.id(), sig);
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "aborted promptly"
    );
    assert_eq!(out.status.code(), Some(expected_code), "{}", stderr(&out));
    assert!(
        files(&repo)
            .iter()
            .all(|f| f.starts_with(".pgb-probe") || !f.contains("manifest")),
        "no manifest: {:?}",
        files(&repo)
    );
    assert!(
        files(&repo).is_empty(),
        "no partial object, no staging file: {:?}",
        files(&repo)
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        processes_mentioning(&[bin.to_str().unwrap()]).is_empty(),
        "no pg_dump left: {:?}",
        processes_mentioning(&[bin.to_str().unwrap()])
    );
    assert!(list_json(&repo).is_empty());
}

#[test]
fn sigint_mid_backup_exits_130_with_nothing_left() {
    signal_aborts_cleanly(libc::SIGINT, 130);
}

#[test]
fn sigterm_mid_backup_exits_143_with_nothing_left() {
    signal_aborts_cleanly(libc::SIGTERM, 143);
}

#[test]
fn prune_dry_run_explains_and_prune_keeps_the_newest() {
    let Some(pg) = pg() else { return };
    let src = pg.sample_db("pgbcli", 100, RowText::Plain);
    let repo = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        let out = backup(&pg, repo.path(), &src.name, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let ids: Vec<String> = list_json(repo.path())
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let r = repo.path().to_str().unwrap();
    let out = pgb(&["prune", "--repo", r, "--keep-last", "1", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("keep") && text.contains("last #1"), "{text}");
    assert_eq!(text.matches("remove  ").count(), 2, "{text}");
    assert_eq!(list_json(repo.path()).len(), 3, "dry run deletes nothing");

    let out = pgb(&["prune", "--repo", r, "--keep-last", "1", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let left = list_json(repo.path());
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0]["id"].as_str().unwrap(),
        ids.last().unwrap(),
        "the newest backup survives"
    );
    assert!(
        files(repo.path())
            .iter()
            .all(|f| f.contains(ids.last().unwrap()) || f.starts_with(".pgb-staging")),
        "{:?}",
        files(repo.path())
    );
}

#[test]
fn backup_with_prune_prunes_only_after_success() {
    let Some(pg) = pg() else { return };
    let src = pg.sample_db("pgbcli", 100, RowText::Plain);
    let repo = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        assert!(backup(&pg, repo.path(), &src.name, &[]).status.success());
    }
    // A failing backup (database gone) must not prune.
    let out = backup(
        &pg,
        repo.path(),
        "pgb_no_such_database",
        &["--prune", "--keep-last", "1"],
    );
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(list_json(repo.path()).len(), 2);
    let out = backup(
        &pg,
        repo.path(),
        &src.name,
        &["--prune", "--keep-last", "1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(list_json(repo.path()).len(), 1);
}

#[test]
fn bare_m_duration_is_rejected_with_a_hint() {
    let repo = tempfile::tempdir().unwrap();
    let out = pgb(&[
        "prune",
        "--repo",
        repo.path().to_str().unwrap(),
        "--keep-within",
        "3m",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(first_error_line(&out).contains("mo"), "{}", stderr(&out));
}

#[test]
fn retention_plan_reads_json_and_answers_json() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("b.json");
    std::fs::write(
        &input,
        r#"[{"id":"a","time":"2026-11-01T03:00:00Z"},{"id":"b","time":"2026-11-02T03:00:00Z"},
            {"id":"c","time":"2026-11-02T04:00:00Z","labels":["pre-migration"]}]"#,
    )
    .unwrap();
    let out = pgb(&[
        "retention",
        "plan",
        "--keep-daily",
        "1",
        "--keep-label",
        "pre-migration",
        "--input",
        input.to_str().unwrap(),
        "--now",
        "2026-11-03T00:00:00Z",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kept: Vec<&str> = plan["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(kept, ["c"], "{plan}");
    assert_eq!(plan["remove"], serde_json::json!(["b", "a"]));
}

#[test]
fn every_keep_count_accepts_unlimited() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("b.json");
    std::fs::write(
        &input,
        r#"[{"id":"a","time":"2026-11-01T03:00:00Z"},{"id":"b","time":"2026-11-01T04:00:00Z"},
            {"id":"c","time":"2026-11-02T04:00:00Z"}]"#,
    )
    .unwrap();
    // Unlimited keeps the newest backup of every bucket, and the oldest backup.
    for (flag, kept) in [
        ("--keep-last", ["c", "b", "a"].as_slice()),
        ("--keep-hourly", &["c", "b", "a"]),
        ("--keep-daily", &["c", "b", "a"]),
        ("--keep-weekly", &["c", "b", "a"]),
        ("--keep-monthly", &["c", "a"]),
        ("--keep-yearly", &["c", "a"]),
    ] {
        let out = pgb(&[
            "retention",
            "plan",
            flag,
            "unlimited",
            "--input",
            input.to_str().unwrap(),
            "--now",
            "2026-11-03T00:00:00Z",
            "--json",
        ]);
        assert!(out.status.success(), "{flag}: {}", stderr(&out));
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ids: Vec<&str> = plan["keep"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, kept, "{flag}: {plan}");
    }
}

#[test]
fn help_lists_a_commands_own_options_before_the_global_ones() {
    let out = pgb(&["prune", "--help"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let help = stdout(&out);
    let own = help.find("--keep-daily").expect("own option");
    let global = help.find("Global options:").expect("global heading");
    assert!(
        own < global && global < help.find("--verbose").unwrap(),
        "{help}"
    );
}

#[test]
fn gc_removes_only_old_leftovers() {
    let Some(pg) = pg() else { return };
    let src = pg.sample_db("pgbcli", 50, RowText::Plain);
    let repo = tempfile::tempdir().unwrap();
    assert!(backup(&pg, repo.path(), &src.name, &[]).status.success());
    // A leftover of a backup that never committed: data without a manifest.
    let leftover = repo.path().join("backups/20200101T000000Z-000000");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("data.dump.zst"), b"partial").unwrap();
    let r = repo.path().to_str().unwrap();
    let out = pgb(&["gc", "--repo", r, "--older-than", "24h"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        leftover.join("data.dump.zst").exists(),
        "a fresh leftover is within the grace period"
    );
    let out = pgb(&["gc", "--repo", r, "--older-than", "0h"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!leftover.exists(), "old leftover removed");
    assert_eq!(
        list_json(repo.path()).len(),
        1,
        "complete backups untouched"
    );
}
