//! The repository is never created or mistaken by accident: reading commands on a repository
//! that does not exist fail (exit 3, `check` UNKNOWN) naming it and create nothing, only a
//! backup creates one, and an unwritable repository (permissions, a read-only file system) is
//! exit 3 naming the path. Plus the `pgb check` exit codes no other file covers (1, 3).

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// Every command that only reads the repository (or writes into an existing one), on `repo`.
fn reading_commands(repo: &str) -> Vec<Vec<String>> {
    let target = "postgres://127.0.0.1:1/pgb_nowhere";
    [
        vec!["list"],
        vec!["list", "--json"],
        vec!["verify", "latest"],
        vec!["verify", "20260101T000000Z-abcdef"],
        vec!["verify", "--all"],
        vec!["restore", "latest", "--db", target],
        vec!["drill", "--target", target],
        vec!["drill", "--history"],
        vec!["prune", "--keep-daily", "1", "--dry-run"],
        vec!["prune", "--keep-daily", "1"],
        vec!["gc", "--dry-run"],
        vec!["gc"],
    ]
    .into_iter()
    .map(|args| {
        let mut v: Vec<String> = args.into_iter().map(str::to_owned).collect();
        v.extend(["--repo".to_owned(), repo.to_owned()]);
        v
    })
    .collect()
}

fn run(args: &[String]) -> Output {
    pgb(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn reading_commands_on_a_missing_repository_exit_3_naming_it_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo/repo");
    let path = missing.to_str().unwrap().to_owned();
    for repo in [path.clone(), format!("file://{path}")] {
        for args in reading_commands(&repo) {
            let out = run(&args);
            assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
            let line = one_line_error(&out);
            assert!(
                line.contains(&format!("repository {repo} does not exist")),
                "{args:?} names the repository: {line}"
            );
            assert!(
                !dir.path().join("typo").exists(),
                "{args:?} created the repository directory"
            );
        }
        // `check` is UNKNOWN (3), never CRITICAL, with the plugin line on stdout.
        let out = pgb(&["check", "--repo", &repo, "--format", "nagios"]);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        let line = stdout(&out);
        assert!(line.starts_with("PGB UNKNOWN - "), "{line}");
        assert!(line.contains(&repo), "names the repository: {line}");
        assert!(!dir.path().join("typo").exists(), "check created it");
    }
}

#[test]
fn the_default_repository_is_not_created_by_a_reading_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = pgb_cmd(&["list"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        one_line_error(&out).contains("repository pgb-backups does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("pgb-backups").exists());
}

#[test]
fn an_existing_empty_directory_is_an_empty_repository() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().to_str().unwrap();
    let out = pgb(&["list", "--repo", r]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).to_lowercase().starts_with("no backups in "),
        "{}",
        stdout(&out)
    );
    // A path that is a file is not a repository.
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let out = pgb(&["list", "--repo", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(one_line_error(&out).contains("not a directory"));
}

#[test]
fn check_exits_3_unknown_for_a_bad_flag_value_never_2() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().to_str().unwrap();
    for args in [
        vec!["check", "--repo", r, "--format", "bogus"],
        vec!["check", "--repo", r, "--no-such-flag"],
        vec!["check", "--repo", r, "--max-age", "bogus"],
    ] {
        let out = pgb(&args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
    }
    // Other commands keep exit 2 for bad usage; help is not an error.
    assert_eq!(pgb(&["list", "--no-such-flag"]).status.code(), Some(2));
    assert_eq!(pgb(&["check", "--help"]).status.code(), Some(0));
}

#[test]
fn only_a_backup_creates_the_repository_directory() {
    let Some(pg) = pg() else { return };
    let db = pg.sample_db("pgbnewrepo", 10, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("new/repo");
    let out = backup(&pg, &repo, &db.name, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let meta = std::fs::metadata(&repo).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o700
    );
    assert_eq!(ids(&repo).len(), 1);
}

/// A WARNING (exit 1): a fresh backup, but no drill within `--max-drill-age`.
#[test]
fn check_warns_with_exit_1() {
    let Some(pg) = pg() else { return };
    let db = pg.sample_db("pgbwarn", 10, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    assert!(backup(&pg, &repo, &db.name, &[]).status.success());
    let r = repo.to_str().unwrap();
    let out = pgb(&[
        "check",
        "--repo",
        r,
        "--max-drill-age",
        "1d",
        "--format",
        "nagios",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("PGB WARNING - "),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("no drill recorded"),
        "{}",
        stdout(&out)
    );
}

/// Whether this process runs as root, where permission bits do not stop a write.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|u| u.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Whether `program` runs (`--version`).
fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Asserts that a backup into the unwritable `repo` failed with exit 3, its message naming the
/// directory and `cause`, and wrote nothing.
fn assert_unwritable(out: &Output, repo: &Path, cause: &str) {
    assert_eq!(out.status.code(), Some(3), "{cause}: {}", stderr(out));
    let line = one_line_error(out);
    assert!(
        line.contains(repo.to_str().unwrap()),
        "{cause}: the message names the directory: {line}"
    );
    assert!(line.contains(cause), "{line}");
    assert!(files(repo).is_empty(), "{:?}", files(repo));
}

#[test]
fn a_backup_into_a_directory_without_write_permission_exits_3_naming_it() {
    let Some(pg) = pg() else { return };
    let db = pg.sample_db("pgbunwritable", 10, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let chmod = |p: &Path, m| {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap();
    };
    chmod(&repo, 0o555);
    let bin = pg.bin.to_str().unwrap();
    let args = backup_args(&pg, &repo, &db.name, &["--pg-bin-dir", bin]);
    let out = if running_as_root() {
        // Root ignores mode 0555: run pgb as `nobody`, who can reach the directory.
        if !have("setpriv") {
            eprintln!("skipped: running as root without setpriv(1), mode 0555 stops nothing");
            return;
        }
        chmod(dir.path(), 0o755);
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", PGB])
            .args(&args);
        without_pgb_env(&mut cmd).output().unwrap()
    } else {
        run(&args)
    };
    chmod(&repo, 0o755);
    assert_unwritable(&out, &repo, "Permission denied");
}

#[test]
fn a_backup_into_a_read_only_file_system_exits_3_naming_it() {
    let Some(pg) = pg() else { return };
    if !running_as_root() || !have("unshare") {
        eprintln!(
            "skipped: a read-only bind mount needs root and unshare(1); the EROFS mapping is \
             tested in pgb-storage-local's unit tests"
        );
        return;
    }
    let db = pg.sample_db("pgbrofs", 10, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let r = repo.to_str().unwrap();
    // A private mount namespace: the read-only mount ends with the command.
    let script =
        format!("mount --bind '{r}' '{r}' && mount -o remount,bind,ro '{r}' && exec \"$0\" \"$@\"");
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
        PGB,
    ])
    .args(backup_args(&pg, &repo, &db.name, &[]));
    let out = without_pgb_env(&mut cmd).output().unwrap();
    if stderr(&out).contains("mount:") || stderr(&out).contains("unshare:") {
        eprintln!("skipped: cannot mount here: {}", stderr(&out));
        return;
    }
    assert_unwritable(&out, &repo, "Read-only file system");
}

/// Object stores agree: a bucket that does not exist is exit 3 (`check`: UNKNOWN with the
/// plugin line), while a prefix with no objects in an existing bucket is an empty repository.
#[test]
fn a_missing_bucket_exits_3_and_an_empty_prefix_is_an_empty_repository() {
    let (Some(endpoint), Some(bucket), Some(key), Some(secret)) = (
        env("PGB_TEST_S3_ENDPOINT"),
        env("PGB_TEST_S3_BUCKET"),
        env("PGB_TEST_S3_ACCESS_KEY_ID"),
        env("PGB_TEST_S3_SECRET_ACCESS_KEY"),
    ) else {
        return pgb_testkit::require_or_skip(
            "the S3 emulator (PGB_TEST_S3_*)",
            "scripts/services/s3.sh start DIR",
        )
        .unwrap_or(());
    };
    let envs = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("PGB_S3_FORCE_PATH_STYLE", "true"),
        ("PGB_STORAGE_RETRIES", "0"),
    ];
    let missing = format!("s3://{}/x", unique("pgb-no-such-bucket").replace('_', "-"));
    let out = pgb_env(&["list", "--repo", &missing], &envs);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        one_line_error(&out).contains("bucket does not exist"),
        "{}",
        stderr(&out)
    );
    let out = pgb_env(&["check", "--repo", &missing, "--format", "nagios"], &envs);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("PGB UNKNOWN - "),
        "{}",
        stdout(&out)
    );
    let empty = format!("s3://{bucket}/{}", unique("empty"));
    let out = pgb_env(&["list", "--repo", &empty, "--json"], &envs);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "[]");
}
