//! `pgb drill --physical` on real PostgreSQL 15 and 17: a server archiving with `pgb wal
//! push`, one base backup, commits spread over a few seconds after it; then a drill to a
//! random second of the window (recorded with its phases, RTO and RPO, judged by `pgb
//! check`), a drill over a damaged segment (recorded as failed), a target outside the window
//! (refused with its exit code, nothing recorded or started) and SIGTERM mid-drill. After
//! each: no scratch directory, no server process, its port free.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{PGB, kill, one_line_error, pgb, pgb_cmd, stderr, stdout};
use pgb_testkit::{TempCluster, make_shared_dir};

const ARCHIVED: Duration = Duration::from_secs(60);

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

/// A server archiving into a new repository, one base backup, then five commits about a
/// second apart, all archived: a window of several seconds.
struct Source {
    pg: TempCluster,
    repo: tempfile::TempDir,
    system_id: u64,
}

fn source(bin: &Path) -> Source {
    let repo = make_shared_dir().unwrap();
    let cmd = format!("{PGB} wal push %p --repo {}", s(repo.path()));
    let pg = TempCluster::init(bin, &[("archive_mode", "on"), ("archive_command", &cmd)])
        .expect("start PostgreSQL");
    pg.psql("create table orders(id int primary key, note text); insert into orders select g, md5(g::text) from generate_series(1, 1000) g")
        .unwrap();
    let o = pgb(&[
        "backup",
        "--physical",
        "--repo",
        &s(repo.path()),
        "--db",
        &pg.url(),
        "--pg-bin-dir",
        &s(bin),
    ]);
    assert!(o.status.success(), "backup --physical: {}", stderr(&o));
    for i in 0..5 {
        std::thread::sleep(Duration::from_millis(1100));
        pg.psql(&format!(
            "insert into orders values ({}, 'after')",
            2000 + i
        ))
        .unwrap();
    }
    pg.switch_wal_and_wait_archived(ARCHIVED).unwrap();
    let system_id = pg.system_identifier().unwrap();
    Source {
        pg,
        repo,
        system_id,
    }
}

/// `pgb drill --physical --repo R --pg-bin-dir BIN EXTRA...`, scratch under `scratch`.
fn drill_cmd(src: &Source, scratch: &Path, extra: &[&str]) -> std::process::Command {
    let mut args = vec![
        "drill".to_owned(),
        "--physical".to_owned(),
        "--repo".to_owned(),
        s(src.repo.path()),
        "--pg-bin-dir".to_owned(),
        s(src.pg.bin_dir()),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = pgb_cmd(&args);
    cmd.env("PGB_SPOOL_DIR", scratch);
    cmd
}

/// Processes whose command line names `path` (a scratch server left running).
fn processes_under(path: &Path) -> Vec<String> {
    let needle = s(path);
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if line.contains(&needle) {
            found.push(line);
        }
    }
    found
}

/// Nothing of a drill is left: the scratch root is empty, no process names it, the port is
/// free.
fn nothing_left(scratch: &Path, server: Option<&str>) {
    let left: Vec<_> = std::fs::read_dir(scratch)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "scratch left behind: {left:?}");
    let procs = processes_under(scratch);
    assert!(procs.is_empty(), "scratch server still running: {procs:?}");
    if let Some(server) = server {
        std::net::TcpListener::bind(server)
            .unwrap_or_else(|e| panic!("port of {server} not free: {e}"));
    }
}

fn history(src: &Source) -> Vec<serde_json::Value> {
    let o = pgb(&[
        "drill",
        "--history",
        "--json",
        "--repo",
        &s(src.repo.path()),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn time(v: &serde_json::Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        v.as_str().unwrap_or_else(|| panic!("not a time: {v}")),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

fn random_second_drill(major: u32) {
    let Some(bin) = bin_dir(major) else { return };
    let src = source(&bin);
    let scratch = tempfile::tempdir().unwrap();
    let smoke_dir = tempfile::tempdir().unwrap();
    let smoke_file = smoke_dir.path().join("orders.sql");
    std::fs::write(&smoke_file, "select count(*) >= 1000 from orders").unwrap();
    let o = drill_cmd(
        &src,
        scratch.path(),
        &[
            "--to-time",
            "random",
            "--amcheck",
            "--smoke",
            &s(&smoke_file),
            "--json",
        ],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["outcome"], "passed", "{r}");
    let phases: Vec<&str> = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["plan", "base_fetch", "wal_fetch", "replay", "checks"],
        "{r}"
    );
    assert!(r["rto_ms"].as_u64().unwrap() > 0, "{r}");
    assert!(r["rpo_s"].is_u64(), "{r}");
    let p = &r["pitr"];
    assert_eq!(p["target"], "random", "{r}");
    assert_eq!(p["system_identifier"], src.system_id.to_string());
    assert_eq!(p["server_major"], major);
    let (target, from, to) = (
        time(&p["target_time"]),
        time(&p["window_from"]),
        time(&p["window_to"]),
    );
    assert!(from < target && target < to, "{r}");
    assert_eq!(target.nanosecond(), 0, "{r}");
    // Recovery stopped at the target: the last replayed commit (none when the target
    // precedes the first commit after the backup) is at or before it.
    if !p["replayed_to"].is_null() {
        assert!(time(&p["replayed_to"]) <= target, "{r}");
    }
    assert!(p["wal_segments"].as_u64().unwrap() >= 1, "{r}");
    let checks: Vec<(&str, bool)> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["passed"].as_bool().unwrap()))
        .collect();
    for name in [
        "base fetch",
        "wal fetch",
        "recovery to the target",
        "tables",
        "smoke orders.sql",
        "amcheck",
    ] {
        assert!(checks.contains(&(name, true)), "{name}: {r}");
    }
    assert_eq!(r["dropped"], true, "{r}");
    let key = r["recorded_as"].as_str().unwrap();
    assert!(key.starts_with("drills/"), "{key}");
    nothing_left(scratch.path(), r["target_server"].as_str());
    // Recorded like any drill, and judged by `pgb check` for the cluster's set.
    let h = history(&src);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["report"]["pitr"]["target_time"], p["target_time"]);
    let o = pgb(&[
        "check",
        "--repo",
        &s(src.repo.path()),
        "--max-drill-age",
        "1h",
        "--format",
        "json",
    ]);
    let c: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
    let set = c["sets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["set"] == r["set"])
        .unwrap_or_else(|| panic!("no set {} in {c}", r["set"]));
    assert_eq!(set["last_drill"]["outcome"], "passed", "{c}");
    assert_eq!(set["status"], "OK", "{c}");
    // ... and exported per cluster for Prometheus.
    let prom = smoke_dir.path().join("prom");
    std::fs::create_dir(&prom).unwrap();
    let o = pgb(&[
        "check",
        "--repo",
        &s(src.repo.path()),
        "--textfile",
        &s(&prom),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let file = std::fs::read_dir(&prom)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let metrics = std::fs::read_to_string(file).unwrap();
    let series = format!(
        "pgb_pitr_drill_last_passed{{system_identifier=\"{}\",pgb_job=\"\"}} 1",
        src.system_id
    );
    assert!(metrics.contains(&series), "{series} not in\n{metrics}");
    // The text form names the target and the scratch server's fate.
    let o = drill_cmd(&src, scratch.path(), &[]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("a random second of the window"), "{text}");
    assert!(text.contains(": stopped and removed"), "{text}");
    nothing_left(scratch.path(), None);
    // A job with physical backups drills point in time: `pgb drill --job NAME`.
    let config = smoke_dir.path().join("pgb.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.cluster]\ndatabase = \"{}\"\nrepository = \"{}\"\nformat = \"physical\"\n\n[jobs.cluster.drill]\nsmoke = [\"{}\"]\nmax_rto = \"4h\"\n",
            src.pg.url(),
            s(src.repo.path()),
            s(&smoke_file)
        ),
    )
    .unwrap();
    let o = pgb_cmd(&[
        "drill",
        "--job",
        "cluster",
        "--config",
        &s(&config),
        "--pg-bin-dir",
        &s(src.pg.bin_dir()),
        "--json",
    ])
    // A physical job takes no spool_dir (PGB_SPOOL_DIR): the scratch goes to TMPDIR.
    .env("TMPDIR", scratch.path())
    .output()
    .unwrap();
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["job"], "cluster", "{j}");
    assert_eq!(j["pitr"]["target"], "random", "{j}");
    assert_eq!(
        j["max_rto_ms"],
        4 * 3600 * 1000,
        "the job's drill.max_rto: {j}"
    );
    assert!(
        j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "smoke orders.sql" && c["passed"] == true),
        "{j}"
    );
    nothing_left(scratch.path(), None);
    assert_eq!(history(&src).len(), 3);
}

#[test]
fn a_drill_to_a_random_second_is_recorded_and_leaves_nothing_on_postgres_15() {
    random_second_drill(15);
}

#[test]
fn a_drill_to_a_random_second_is_recorded_and_leaves_nothing_on_postgres_17() {
    random_second_drill(17);
}

fn failures(major: u32) {
    let Some(bin) = bin_dir(major) else { return };
    let src = source(&bin);
    let scratch = tempfile::tempdir().unwrap();
    let r = s(src.repo.path());

    // Outside the window: before the backup ended, after the newest commit. One line, exit
    // 12 / 14, nothing started or recorded.
    for (at, code) in [
        ("2000-01-01 00:00:00+00", 12),
        ("2100-01-01 00:00:00+00", 14),
    ] {
        let o = drill_cmd(&src, scratch.path(), &["--to-time", at])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(code), "{at}: {}", stderr(&o));
        let line = one_line_error(&o);
        assert!(line.contains("outside the recoverable window"), "{line}");
        nothing_left(scratch.path(), None);
    }
    let o = drill_cmd(&src, scratch.path(), &["--to-time", "yesterday"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(history(&src).is_empty());

    // SIGTERM once the scratch server runs: exit 143, the server stopped, the directory
    // removed, nothing recorded.
    let mut child = drill_cmd(&src, scratch.path(), &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while processes_under(scratch.path())
        .iter()
        .all(|p| !p.contains("postgres"))
    {
        assert!(Instant::now() < deadline, "no scratch server appeared");
        assert!(child.try_wait().unwrap().is_none(), "drill ended first");
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(child.id(), libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    nothing_left(scratch.path(), None);
    assert!(history(&src).is_empty());

    // A damaged segment the replay needs: the drill runs, fails its WAL check, is recorded.
    let list = pgb(&["list", "--json", "--repo", &r]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let stop = v[0]["physical"]["stop_wal_file"]
        .as_str()
        .unwrap_or_else(|| panic!("no stop_wal_file in {v}"))
        .to_owned();
    let path = src
        .repo
        .path()
        .join(format!("wal/{}/{}/{stop}", src.system_id, &stop[..8]));
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xFF;
    std::fs::write(&path, &bytes).unwrap();
    let o = drill_cmd(&src, scratch.path(), &["--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(10), "{}", stderr(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["outcome"], "check_failed", "{rep}");
    let cause = rep["cause"].as_str().unwrap();
    assert!(
        cause.starts_with("wal fetch: ") && cause.contains(&stop),
        "{cause}"
    );
    nothing_left(scratch.path(), None);
    let h = history(&src);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["report"]["outcome"], "check_failed");
}

#[test]
fn outside_the_window_sigterm_and_a_damaged_segment_on_postgres_15() {
    failures(15);
}

#[test]
fn outside_the_window_sigterm_and_a_damaged_segment_on_postgres_17() {
    failures(17);
}

/// `pgb daemon --once` runs a physical job's due `drill.schedule` as a PITR drill: no
/// `drill.target`, recorded under the job, nothing left behind.
#[test]
fn the_daemon_runs_a_physical_jobs_scheduled_drill_point_in_time() {
    let Some(bin) = bin_dir(15) else { return };
    let src = source(&bin);
    let scratch = tempfile::tempdir().unwrap();
    let conf_dir = tempfile::tempdir().unwrap();
    let config = conf_dir.path().join("pgb.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.cluster]\ndatabase = \"{}\"\nrepository = \"{}\"\nformat = \"physical\"\n\n[jobs.cluster.drill]\nschedule = \"0 4 * * *\"\n",
            src.pg.url(),
            s(src.repo.path()),
        ),
    )
    .unwrap();
    let o = pgb_cmd(&["daemon", "--once", "--config", &s(&config)])
        .env("PGB_PG_BIN_DIR", &bin)
        .env("TMPDIR", scratch.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let outcomes: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let jobs: Vec<&str> = outcomes
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["job"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, ["cluster/drill"], "{outcomes}");
    let h = history(&src);
    assert_eq!(h.len(), 1, "{h:?}");
    let r = &h[0]["report"];
    assert_eq!(r["outcome"], "passed", "{r}");
    assert_eq!(r["job"], "cluster", "{r}");
    assert_eq!(r["pitr"]["target"], "random", "{r}");
    nothing_left(scratch.path(), None);
}

/// The scratch server gets none of pgb's secrets: with canaries in pgb's environment (a
/// `DATABASE_URL` with a password, a webhook-style URL, a cloud secret, `PGPASSWORD`), a
/// smoke script has the server run `env` (`COPY FROM PROGRAM`: the environment the server
/// keeps and hands its children, `restore_command` among them): no canary, but `PATH`. The
/// drill still recovers (its `restore_command` copies from the verified spool).
#[test]
fn the_scratch_server_inherits_none_of_pgbs_secrets_on_postgres_15() {
    let Some(bin) = bin_dir(15) else { return };
    let src = source(&bin);
    let scratch = tempfile::tempdir().unwrap();
    let smoke_dir = tempfile::tempdir().unwrap();
    let smoke_file = smoke_dir.path().join("environ.sql");
    std::fs::write(
        &smoke_file,
        // PostgreSQL overwrites its /proc/PID/environ with its process title; `env` run by
        // the server shows the environment it keeps and hands its children.
        "create temp table environ(line text);\n\
         copy environ from program 'env' with (format csv, delimiter E'\\x1f', quote E'\\x1e');\n\
         select bool_or(line like 'PATH=%') \
            and not bool_or(line like '%canary-secret%' or line like 'DATABASE_URL=%' \
                or line like 'PGB_WEBHOOK_URL=%' or line like 'AWS_SECRET_ACCESS_KEY=%' \
                or line like 'PGPASSWORD=%') \
         from environ;",
    )
    .unwrap();
    let o = drill_cmd(
        &src,
        scratch.path(),
        &["--smoke", &s(&smoke_file), "--json"],
    )
    .env(
        "DATABASE_URL",
        "postgres://app:canary-secret@db.invalid/app",
    )
    .env("PGB_WEBHOOK_URL", "http://127.0.0.1:9/canary-secret")
    .env("AWS_SECRET_ACCESS_KEY", "canary-secret")
    .env("PGPASSWORD", "canary-secret")
    .output()
    .unwrap();
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["outcome"], "passed", "{r}");
    let smoke = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "smoke environ.sql")
        .unwrap_or_else(|| panic!("no smoke check: {r}"));
    assert_eq!(smoke["passed"], true, "{r}");
    assert!(r["pitr"]["wal_segments"].as_u64().unwrap() > 0, "{r}");
    nothing_left(scratch.path(), r["target_server"].as_str());
}

/// A PITR drill from an S3 repository (the emulator), its credentials only in pgb's
/// environment: the drill fetches the WAL into its spool, and the scratch server, which gets
/// none of them, recovers from the spool alone.
#[test]
fn a_drill_from_an_s3_repository_on_postgres_15() {
    let Some(bin) = bin_dir(15) else { return };
    let (Some(endpoint), Some(bucket)) = (
        common::env("PGB_TEST_S3_ENDPOINT"),
        common::env("PGB_TEST_S3_BUCKET"),
    ) else {
        pgb_testkit::require_or_skip::<()>(
            "the S3 emulator (PGB_TEST_S3_*)",
            "scripts/services/s3.sh start DIR",
        );
        return;
    };
    let envs = [
        ("AWS_ENDPOINT_URL", endpoint),
        (
            "AWS_ACCESS_KEY_ID",
            common::env("PGB_TEST_S3_ACCESS_KEY_ID").unwrap_or_else(|| "test".into()),
        ),
        (
            "AWS_SECRET_ACCESS_KEY",
            common::env("PGB_TEST_S3_SECRET_ACCESS_KEY").unwrap_or_else(|| "test".into()),
        ),
        (
            "AWS_REGION",
            common::env("PGB_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
        ),
        ("PGB_S3_FORCE_PATH_STYLE", "true".to_owned()),
    ];
    let repo = format!("s3://{bucket}/{}", common::unique("pitrdrill"));
    // The test server's archiver gets the credentials on its command line (a test's own).
    let vars: String = envs.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    let cmd = format!("env {vars}{PGB} wal push %p --repo {repo}");
    let pg = TempCluster::init(&bin, &[("archive_mode", "on"), ("archive_command", &cmd)])
        .expect("start PostgreSQL");
    pg.psql("create table t(i int primary key); insert into t select generate_series(1, 100)")
        .unwrap();
    let run = |args: &[&str], extra: &[(&str, &Path)]| {
        let mut c = pgb_cmd(args);
        c.envs(envs.iter().map(|(k, v)| (*k, v.as_str())));
        for (k, v) in extra {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let o = run(
        &[
            "backup",
            "--physical",
            "--repo",
            &repo,
            "--db",
            &pg.url(),
            "--pg-bin-dir",
            &s(&bin),
        ],
        &[],
    );
    assert!(o.status.success(), "backup --physical: {}", stderr(&o));
    for i in 0..3 {
        std::thread::sleep(Duration::from_millis(1100));
        pg.psql(&format!("insert into t values ({})", 1000 + i))
            .unwrap();
    }
    pg.switch_wal_and_wait_archived(ARCHIVED).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let o = run(
        &[
            "drill",
            "--physical",
            "--repo",
            &repo,
            "--pg-bin-dir",
            &s(&bin),
            "--json",
        ],
        &[("PGB_SPOOL_DIR", scratch.path())],
    );
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["outcome"], "passed", "{r}");
    assert_eq!(r["pitr"]["target"], "random", "{r}");
    nothing_left(scratch.path(), r["target_server"].as_str());
}
