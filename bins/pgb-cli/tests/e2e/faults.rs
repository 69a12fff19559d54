//! Fault, crash and concurrency tests of the `pgb` binary against a real PostgreSQL
//! (PGB_TEST_PG_URL) and local repositories: SIGKILL at failpoints, pg_dump dying or lying,
//! prune and gc racing a running backup, concurrent backups, interrupted prunes, a full disk
//! and file permissions (docs/RELIABILITY.md tests 1-3, 11-13, 22-24, 26 and 29).
//!
//! After every fault the invariants of RELIABILITY.md hold: one clear `pgb: error:` line and
//! no panic, no new backup in `pgb list`, earlier backups still verify, nothing partial under a
//! final name, no pg_dump left running.

use crate::common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn verify_all_ok(repo: &Path, expected: usize) {
    let out = pgb(&["verify", "--all", "--repo", repo.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.starts_with("ok "))
            .count(),
        expected,
        "{}",
        stdout(&out)
    );
}

fn pid_of(needle: &str) -> Option<i32> {
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            // The python stand-in, not the shell that started it.
            if cmd.contains(needle) && cmd.starts_with("/usr/bin/python3") {
                return Some(pid);
            }
        }
    }
    None
}

/// Waits (up to 10 s) until no live process mentions all of `needles`.
fn assert_no_process(needles: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_mentioning(needles);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "processes left: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `cond` holds, up to `secs` seconds.
fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Spawns pgb with stdout and stderr going to files (so they can be polled while it runs).
fn spawn_pgb(args: &[String], envs: &[(&str, &str)], log: &Path) -> Child {
    let err = std::fs::File::create(log).unwrap();
    let out = std::fs::File::create(log.with_extension("out")).unwrap();
    pgb_cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .envs(envs.iter().copied())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn pgb")
}

fn lease_ids(repo: &Path) -> Vec<String> {
    files(repo)
        .iter()
        .filter_map(|f| f.strip_prefix("locks/")?.strip_suffix(".json"))
        .map(str::to_owned)
        .collect()
}

fn staging_files(repo: &Path) -> Vec<String> {
    files(repo)
        .into_iter()
        .filter(|f| f.starts_with(".pgb-staging/"))
        .collect()
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Every folder with a manifest also holds the data object (and sidecar) it names.
fn assert_no_manifest_without_data(repo: &Path) {
    let backups = repo.join("backups");
    let Ok(rd) = std::fs::read_dir(&backups) else {
        return;
    };
    for e in rd.flatten() {
        let manifest = e.path().join("manifest.json");
        if !manifest.exists() {
            continue;
        }
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        let data = repo.join(m["artifacts"][0]["key"].as_str().unwrap());
        assert!(data.is_file(), "manifest without data: {}", data.display());
        let sidecar = PathBuf::from(format!("{}.sha256", data.display()));
        assert!(
            sidecar.is_file(),
            "manifest without sidecar: {}",
            sidecar.display()
        );
    }
}

/// Without the `test-support` feature the binary has no failpoints: this crash test cannot run
/// (a loud skip, a failure under `PGB_TEST_REQUIRE=1`). scripts/test.sh enables the feature.
#[cfg(not(feature = "test-support"))]
#[test]
fn sigkill_at_each_failpoint_commits_nothing_and_gc_waits_for_the_lease() {
    pgb_testkit::require_or_skip::<()>(
        "the PGB_TEST_FAILPOINT hook",
        "build the tests with --features pgb-cli/test-support, as scripts/test.sh does",
    );
}

#[cfg(feature = "test-support")]
#[test]
fn sigkill_at_each_failpoint_commits_nothing_and_gc_waits_for_the_lease() {
    let Some(pg) = pg() else { return };
    let src = pg.sample_db("pgbfault", 3000, RowText::Md5);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let r = repo.to_str().unwrap();
    let out = backup(&pg, &repo, &src.name, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut complete = ids(&repo);
    let first_fp = pg.fingerprint(&src.name);
    // Later runs dump different data, so a restore shows which backup it used.
    pg.psql(
        &src.name,
        "insert into items values (-1, 'after the first backup', '{}')",
    );

    for point in ["mid-data", "after-data", "before-manifest"] {
        let log = dir.path().join(format!("{point}.log"));
        let mut child = spawn_pgb(
            &backup_args(&pg, &repo, &src.name, &[]),
            &[("PGB_TEST_FAILPOINT", point)],
            &log,
        );
        let announce = format!("pgb: FAILPOINT {point} reached; waiting to be killed");
        wait_until(&format!("failpoint {point}"), 30, || {
            std::fs::read_to_string(&log).is_ok_and(|s| s.contains(&announce))
        });
        kill(child.id(), libc::SIGKILL);
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );

        // The killed run's lease is the only one.
        let leases = lease_ids(&repo);
        assert_eq!(leases.len(), 1, "{point}: {leases:?}");
        let killed = leases[0].clone();
        let folder = format!("backups/{killed}/");
        let in_folder: Vec<String> = files(&repo)
            .into_iter()
            .filter(|f| f.starts_with(&folder))
            .collect();
        match point {
            "mid-data" => {
                assert!(
                    in_folder.is_empty(),
                    "{point}: nothing under a final name: {in_folder:?}"
                );
                assert_eq!(staging_files(&repo).len(), 1, "{point}: {:?}", files(&repo));
            }
            "after-data" => assert_eq!(in_folder, [format!("{folder}data.dump.zst")], "{point}"),
            _ => assert_eq!(
                in_folder,
                [
                    format!("{folder}data.dump.zst"),
                    format!("{folder}data.dump.zst.sha256")
                ],
                "{point}"
            ),
        }

        // Never listed; `latest` is the newest complete backup.
        assert_eq!(
            ids(&repo),
            complete,
            "{point}: the killed run is not a backup"
        );
        let target = unique("pgbfault_latest");
        let out = pgb(&[
            "restore",
            "latest",
            "--json",
            "--repo",
            r,
            "--db",
            &pg.url(&target),
        ]);
        assert!(out.status.success(), "{point}: {}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report["backup"].as_str(),
            complete.last().map(String::as_str)
        );
        if complete.len() == 1 {
            assert_eq!(pg.fingerprint(&target), first_fp);
        }
        drop_db_quietly(&pg, &target);
        assert_no_process(&["pg_dump", &src.name]);

        // gc leaves the killed run alone while its lease is live, even with no grace period.
        let before = files(&repo);
        let out = pgb(&["gc", "--repo", r, "--older-than", "0h"]);
        assert!(out.status.success(), "{point}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("removed 0 leftover"),
            "{point}: {}",
            stdout(&out)
        );
        assert_eq!(files(&repo), before, "{point}: gc touched a live backup");

        // A re-run succeeds meanwhile.
        let out = backup(&pg, &repo, &src.name, &[]);
        assert!(out.status.success(), "{point}: {}", stderr(&out));
        complete = ids(&repo);

        // Expired 10 minutes ago on our clock: still live, within the 15-minute skew
        // tolerance.
        let lease = repo.join("locks").join(format!("{killed}.json"));
        let mut rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&lease).unwrap()).unwrap();
        rec["expires_at"] =
            rfc3339(time::OffsetDateTime::now_utc() - time::Duration::minutes(10)).into();
        std::fs::write(&lease, serde_json::to_vec(&rec).unwrap()).unwrap();
        let before = files(&repo);
        let out = pgb(&["gc", "--repo", r, "--older-than", "0h"]);
        assert!(out.status.success(), "{point}: {}", stderr(&out));
        assert_eq!(
            files(&repo),
            before,
            "{point}: lease within skew tolerance honoured"
        );

        // Two hours later (the lease was never refreshed): gc collects the leftovers and the
        // expired lease.
        rec["expires_at"] =
            rfc3339(time::OffsetDateTime::now_utc() - time::Duration::hours(2)).into();
        std::fs::write(&lease, serde_json::to_vec(&rec).unwrap()).unwrap();
        let out = pgb(&["gc", "--repo", r, "--older-than", "0h"]);
        assert!(out.status.success(), "{point}: {}", stderr(&out));
        let left: Vec<String> = files(&repo)
            .into_iter()
            .filter(|f| f.contains(&killed))
            .collect();
        assert!(left.is_empty(), "{point}: gc left {left:?}");
        if point != "mid-data" {
            assert!(
                stdout(&out).contains(&format!("removed {killed}")),
                "{point}: {}",
                stdout(&out)
            );
        }

        // A staging file of a killed run is swept by the next run once it is a day old.
        for f in staging_files(&repo) {
            let out = Command::new("touch")
                .args(["-d", "2 days ago"])
                .arg(repo.join(&f))
                .output()
                .unwrap();
            assert!(out.status.success());
        }
        let _ = list_json(&repo);
        assert!(
            staging_files(&repo).is_empty(),
            "{point}: {:?}",
            files(&repo)
        );
        assert_no_manifest_without_data(&repo);
    }
    verify_all_ok(&repo, complete.len());
}

#[test]
fn pg_dump_killed_by_sigkill_mid_stream_commits_nothing() {
    let Some(pg) = pg() else { return };
    let src = pg.sample_db("pgbfault", 10, RowText::Md5);
    let dir = tempfile::tempdir().unwrap();
    let marker = unique("pgb_shim_stream");
    let bin = shim(
        dir.path(),
        "bin",
        &format!(
            "echo 'pg_dump: dumping contents of table \"public.items\"' >&2\n\
             exec /usr/bin/python3 -c 'import sys, time, os\n# {marker}\n\
             sys.stdout.buffer.write(b\"PGDMP\" + os.urandom(1000))\n\
             while True:\n    sys.stdout.buffer.write(os.urandom(65536)); sys.stdout.buffer.flush(); time.sleep(0.01)\n'"
        ),
    );
    let key = dir.path().join("ops.txt");
    let out = pgb(&["key", "generate", "--output", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let recipient = stdout(&out).trim().to_owned();

    for (name, extra) in [
        ("zstd", vec![]),
        (
            "gzip+age",
            vec!["--compression", "gzip", "--recipient", recipient.as_str()],
        ),
    ] {
        let repo = dir.path().join(name);
        let earlier = pg.sample_db("pgbfault", 5, RowText::Md5);
        assert!(backup(&pg, &repo, &earlier.name, &[]).status.success());
        let earlier_ids = ids(&repo);

        let mut extra = extra.clone();
        extra.extend(["--pg-bin-dir", bin.to_str().unwrap()]);
        let log = dir.path().join(format!("{name}.log"));
        let mut child = spawn_pgb(&backup_args(&pg, &repo, &src.name, &extra), &[], &log);
        let mut pid = None;
        wait_until("the pg_dump stand-in", 20, || {
            pid = pid_of(&marker);
            pid.is_some()
        });
        // Let it stream for a while, into the staging file.
        wait_until("data in the staging file", 20, || {
            staging_files(&repo)
                .iter()
                .any(|f| std::fs::metadata(repo.join(f)).is_ok_and(|m| m.len() > 256 * 1024))
        });
        kill(pid.unwrap() as u32, libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "{name}: pgb did not notice");
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = Output {
            status,
            stdout: std::fs::read(log.with_extension("out")).unwrap(),
            stderr: std::fs::read(&log).unwrap(),
        };
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        let line = one_line_error(&out);
        assert!(
            line.contains("pg_dump was killed by signal 9"),
            "{name}: {line}"
        );
        assert!(
            stderr(&out).contains("dumping contents of table"),
            "{name}: pg_dump's last stderr lines shown: {}",
            stderr(&out)
        );

        // Nothing committed, nothing under a final name, no staging file, lease released.
        assert_eq!(ids(&repo), earlier_ids, "{name}");
        let left: Vec<String> = files(&repo)
            .into_iter()
            .filter(|f| !f.starts_with(&format!("backups/{}/", earlier_ids[0])))
            .collect();
        assert!(left.is_empty(), "{name}: left behind: {left:?}");
        assert_no_process(&[&marker]);
        verify_all_ok(&repo, 1);
    }
}

#[test]
fn pg_dump_failing_or_writing_nothing_commits_nothing_but_warnings_are_fine() {
    let Some(pg) = pg() else { return };
    let src = pg.sample_db("pgbfault", 500, RowText::Md5);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let r = repo.to_str().unwrap();
    assert!(backup(&pg, &repo, &src.name, &[]).status.success());
    let earlier = ids(&repo);

    let empty = shim(dir.path(), "empty-bin", "exit 0");
    let failing = shim(
        dir.path(),
        "failing-bin",
        "head -c 5242880 /dev/urandom\necho 'pg_dump: error: simulated failure after 5 MiB' >&2\nexit 1",
    );
    for (bin, fragment) in [
        (&empty, "wrote nothing"),
        (
            &failing,
            "pg_dump exited with status 1: pg_dump: error: simulated failure after 5 MiB",
        ),
    ] {
        let out = backup(
            &pg,
            &repo,
            &src.name,
            &["--pg-bin-dir", bin.to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let line = one_line_error(&out);
        assert!(line.contains(fragment), "{line}");
        assert_eq!(ids(&repo), earlier, "nothing committed");
        let extra: Vec<String> = files(&repo)
            .into_iter()
            .filter(|f| !f.starts_with(&format!("backups/{}/", earlier[0])))
            .collect();
        assert!(extra.is_empty(), "left behind: {extra:?}");
    }

    // Warnings on stderr with exit 0 and real output: a successful backup, warnings logged.
    let warn = shim(
        dir.path(),
        "warn-bin",
        &format!(
            "'{}/pg_dump' \"$@\" || exit $?\necho 'pg_dump: warning: test' >&2",
            pg.bin.display()
        ),
    );
    let out = backup(
        &pg,
        &repo,
        &src.name,
        &["-vv", "--pg-bin-dir", warn.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pg_dump: warning: test"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("15.99"),
        "the shim was used: {}",
        stderr(&out)
    );
    assert_eq!(ids(&repo).len(), 2);
    verify_all_ok(&repo, 2);
    let target = unique("pgbfault_warned");
    let out = pgb(&["restore", "latest", "--repo", r, "--db", &pg.url(&target)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(pg.fingerprint(&target), pg.fingerprint(&src.name));
    drop_db_quietly(&pg, &target);
}

#[test]
fn prune_and_gc_during_a_slow_backup_leave_it_alone() {
    let Some(pg) = pg() else { return };
    let src = pg.sample_db("pgbfault", 4000, RowText::Md5);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let r = repo.to_str().unwrap();
    for _ in 0..2 {
        let out = backup(&pg, &repo, &src.name, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let before = ids(&repo);
    let bin = slow_pg_dump(&pg, dir.path(), 0.08);
    let log = dir.path().join("slow.log");
    let mut child = spawn_pgb(
        &backup_args(
            &pg,
            &repo,
            &src.name,
            &["--pg-bin-dir", bin.to_str().unwrap()],
        ),
        &[],
        &log,
    );
    wait_until("the slow backup to stream", 30, || {
        lease_ids(&repo).len() == 1 && !staging_files(&repo).is_empty()
    });
    let running = lease_ids(&repo)[0].clone();

    let out = pgb(&["prune", "--repo", r, "--keep-last", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("skipped 1 in-progress backup(s)") && stderr(&out).contains(&running),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("pruned 1 backup(s)"),
        "{}",
        stdout(&out)
    );
    let out = pgb(&["gc", "--repo", r, "--older-than", "0h"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("removed 0 leftover"),
        "{}",
        stdout(&out)
    );

    assert!(
        child.try_wait().unwrap().is_none(),
        "the backup was still running"
    );
    assert_eq!(lease_ids(&repo), vec![running.clone()], "lease untouched");
    assert!(!staging_files(&repo).is_empty(), "its data untouched");

    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let after = ids(&repo);
    assert_eq!(
        after,
        [before[1].clone(), running.clone()],
        "newest kept, new one added"
    );
    assert!(lease_ids(&repo).is_empty(), "lease released");
    let target = unique("pgbfault_slow");
    let out = pgb(&["restore", &running, "--repo", r, "--db", &pg.url(&target)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(pg.fingerprint(&target), pg.fingerprint(&src.name));
    drop_db_quietly(&pg, &target);
    assert_no_process(&[bin.to_str().unwrap()]);
}

#[test]
fn two_concurrent_backups_of_one_database_get_distinct_ids_and_both_verify() {
    let Some(pg) = pg() else { return };
    let src = pg.sample_db("pgbfault", 3000, RowText::Md5);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let args = backup_args(&pg, &repo, &src.name, &[]);
    let children: Vec<Child> = (0..2)
        .map(|i| spawn_pgb(&args, &[], &dir.path().join(format!("b{i}.log"))))
        .collect();
    for (i, mut c) in children.into_iter().enumerate() {
        let status = c.wait().unwrap();
        assert!(
            status.success(),
            "{}",
            std::fs::read_to_string(dir.path().join(format!("b{i}.log"))).unwrap()
        );
    }
    let all = ids(&repo);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_ne!(all[0], all[1]);
    verify_all_ok(&repo, 2);
    assert_no_manifest_without_data(&repo);
    assert!(lease_ids(&repo).is_empty() && staging_files(&repo).is_empty());
}

#[test]
fn an_interrupted_prune_never_leaves_a_manifest_without_data_and_gc_finishes_it() {
    let Some(pg) = pg() else { return };
    let src = pg.sample_db("pgbfault", 200, RowText::Md5);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let r = repo.to_str().unwrap();
    for _ in 0..3 {
        assert!(backup(&pg, &repo, &src.name, &[]).status.success());
    }
    let all = ids(&repo);
    let out = pgb(&["prune", "--repo", r, "--keep-last", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ids(&repo), [all[2].clone()]);
    assert_no_manifest_without_data(&repo);
    assert!(
        files(&repo)
            .iter()
            .all(|f| f.starts_with(&format!("backups/{}/", all[2]))),
        "{:?}",
        files(&repo)
    );

    // A prune killed between its deletes: the manifest is gone (deleted first), the data not.
    assert!(backup(&pg, &repo, &src.name, &[]).status.success());
    let victim = all[2].clone();
    std::fs::remove_file(repo.join("backups").join(&victim).join("manifest.json")).unwrap();
    assert_no_manifest_without_data(&repo);
    let out = pgb(&["list", "--repo", r]);
    assert!(out.status.success());
    assert!(!stdout(&out).contains(&victim), "no longer a backup");
    assert!(
        stderr(&out).contains("1 uncommitted backup folder"),
        "{}",
        stderr(&out)
    );
    // Not a backup, so it does not count toward retention: the newest is kept.
    let out = pgb(&["prune", "--repo", r, "--keep-last", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ids(&repo).len(), 1);
    // Within the default grace period the leftover stays; with none, gc finishes the delete.
    let out = pgb(&["gc", "--repo", r]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(files(&repo).iter().any(|f| f.contains(&victim)));
    let out = pgb(&["gc", "--repo", r, "--older-than", "0h"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("removed {victim}")),
        "{}",
        stdout(&out)
    );
    assert!(!files(&repo).iter().any(|f| f.contains(&victim)));
    verify_all_ok(&repo, 1);
}

/// Unmounts the tmpfs when the test ends, passing or failing.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

#[test]
fn a_full_local_disk_fails_the_backup_cleanly() {
    // Optional: needs root and a tmpfs mount. Without them it is skipped with a notice, even
    // under PGB_TEST_REQUIRE=1, because it tests the real kernel path of a check that
    // pgb-storage-local's own tests cover with injected faults.
    let Some(pg) = pg() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    // Root, checked without unsafe code.
    let uid = Command::new("id").arg("-u").output().unwrap();
    if stdout(&uid).trim() != "0" {
        eprintln!("SKIPPED: disk-full test needs root to mount a tmpfs");
        pgb_testkit::record_skip("root, to mount a tmpfs");
        return;
    }
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(&mnt)
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "SKIPPED: disk-full test cannot mount a 16 MiB tmpfs: {}",
            stderr(&out).trim()
        );
        pgb_testkit::record_skip("a 16 MiB tmpfs mount");
        return;
    }
    let _mount = Mount(mnt.clone());
    let repo = mnt.join("repo");

    let small = pg.sample_db("pgbfault", 100, RowText::Md5);
    assert!(backup(&pg, &repo, &small.name, &[]).status.success());
    let earlier = ids(&repo);

    // About 30 MB of base64 of random bytes: more than 16 MiB after zstd.
    let big = pg.sample_db("pgbfault", 1, RowText::Md5);
    pg.psql(
        &big.name,
        "create table blob (id int, b text);
         insert into blob select g, encode(decode(string_agg(md5(random()::text), ''), 'hex'), 'base64')
           from generate_series(1, 1400) g, generate_series(1, 1000) h group by g;",
    );
    let out = backup(&pg, &repo, &big.name, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let line = one_line_error(&out);
    assert!(line.contains("no space left"), "{line}");
    assert_eq!(ids(&repo), earlier, "nothing committed");
    assert!(
        staging_files(&repo).is_empty(),
        "staging file removed: {:?}",
        files(&repo)
    );
    let extra: Vec<String> = files(&repo)
        .into_iter()
        .filter(|f| !f.starts_with(&format!("backups/{}/", earlier[0])))
        .collect();
    assert!(extra.is_empty(), "left behind: {extra:?}");
    verify_all_ok(&repo, 1);
    assert_no_process(&["pg_dump", &big.name]);
}

#[test]
fn repository_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let Some(pg) = pg() else { return };
    let src = pg.sample_db("pgbfault", 100, RowText::Md5);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("new/repo");
    let key = dir.path().join("id.txt");
    let auth = dir.path().join("auth.key");
    let run = |args: &[&str]| {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "umask 000; exec \"$0\" \"$@\"", PGB])
            .args(args);
        let out = without_pgb_env(&mut cmd).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    };
    let out = run(&[
        "key",
        "generate",
        "--output",
        key.to_str().unwrap(),
        "--auth-key-file",
        auth.to_str().unwrap(),
    ]);
    let recipient = stdout(&out).trim().to_owned();
    for secret in [&key, &auth] {
        let mode = std::fs::metadata(secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", secret.display());
    }
    let url = pg.url(&src.name);
    let r = repo.to_str().unwrap();
    run(&["backup", "--repo", r, "--db", &url]);
    run(&[
        "backup",
        "--repo",
        r,
        "--db",
        &url,
        "--recipient",
        &recipient,
        "--auth-key-file",
        auth.to_str().unwrap(),
    ]);

    let mut checked = 0;
    let mut stack = vec![repo.clone()];
    while let Some(d) = stack.pop() {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "directory {}", d.display());
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mode = e.metadata().unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "file {}", p.display());
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 6, "two backups of three objects each");
}

/// SIGINT (and SIGTERM) while `pgb restore` is loading data: exit 130 (143), one error line,
/// and the target database the restore created is gone, with no pg_restore left running.
/// The source has a CHECK constraint whose function sleeps unless the session sets `pgb.fast`,
/// so its restore takes seconds on any machine and the signal reliably lands mid-way.
#[test]
fn a_restore_interrupted_by_a_signal_drops_the_database_it_created() {
    let Some(pg) = pg() else { return };
    let src = unique("pgbslow");
    pg.psql("postgres", &format!("create database {src}"));
    let _src = DbGuard {
        pg: &pg,
        name: src.clone(),
    };
    pg.psql(
        &src,
        "create function public.slow_ok(i int) returns boolean language plpgsql as $$
         begin
           if coalesce(current_setting('pgb.fast', true), '') <> 'on' then
             perform pg_sleep(0.002);
           end if;
           return true;
         end $$;
         create table public.slow (id int primary key check (public.slow_ok(id)), pad text);
         set pgb.fast = on;
         insert into public.slow select g, repeat('x', 100) from generate_series(1, 3000) g;",
    );
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let out = backup(&pg, &repo, &src, &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let target = unique("pgbslow_target");
        let _target = DbGuard {
            pg: &pg,
            name: target.clone(),
        };
        let log = dir.path().join(format!("restore-{sig}.log"));
        let mut child = spawn_pgb(
            &[
                "restore".to_owned(),
                "latest".to_owned(),
                "--repo".to_owned(),
                repo.to_str().unwrap().to_owned(),
                "--db".to_owned(),
                pg.url(&target),
            ],
            &[],
            &log,
        );
        wait_until("the restore to load data", 60, || {
            pg.psql(
                "postgres",
                &format!(
                    "select count(*) from pg_stat_activity where datname = '{target}' and state = 'active'"
                ),
            ) != "0"
        });
        kill(child.id(), sig);
        let status = child.wait().unwrap();
        let err = std::fs::read_to_string(&log).unwrap();
        assert_eq!(status.code(), Some(code), "signal {sig}: {err}");
        assert!(
            err.lines()
                .any(|l| l.starts_with("pgb: error: interrupted")),
            "signal {sig}: {err}"
        );
        assert!(!err.contains("panicked"), "signal {sig}: {err}");
        assert!(
            !pg.db_exists(&target),
            "signal {sig}: the interrupted restore left {target} behind"
        );
        assert_no_process(&["pg_restore", &target]);
    }
}
