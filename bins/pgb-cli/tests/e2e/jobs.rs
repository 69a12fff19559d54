//! The config-file commands: `pgb config check`, `pgb config example`, `pgb schedule explain`.

use crate::common;

use std::path::{Path, PathBuf};

use common::{one_line_error, pgb, stdout};

/// The example config at the repository root.
fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pgb.example.toml")
}

/// Writes `text` as `pgb.toml` in a fresh directory.
fn config(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pgb.toml");
    std::fs::write(&path, text).expect("write config");
    (dir, path.display().to_string())
}

#[test]
fn config_check_accepts_the_example_and_shows_where_each_value_comes_from() {
    let file = example();
    let o = pgb(&["config", "check", "--config", file.to_str().unwrap()]);
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    assert!(out.contains("[jobs.production]"), "{out}");
    // `timezone` is set in [defaults] at line 15 of the example; `keep_daily` of staging in its job.
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("timezone") && l.contains("pgb.example.toml:")),
        "timezone's source is the file and line: {out}"
    );
    let o = pgb(&[
        "config",
        "check",
        "--config",
        file.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{o:?}");
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let jobs = doc["jobs"].as_array().expect("jobs");
    assert!(jobs.iter().any(|j| j["job"] == "staging"), "{doc}");
    let staging = jobs.iter().find(|j| j["job"] == "staging").unwrap();
    assert_eq!(staging["settings"]["keep_daily"]["value"], 7, "{staging}");
    assert_eq!(staging["settings"]["keep_daily"]["source"]["kind"], "file");
}

#[test]
fn config_example_prints_a_config_that_checks() {
    let o = pgb(&["config", "example"]);
    assert!(o.status.success(), "{o:?}");
    let (_dir, path) = config(&stdout(&o));
    let o = pgb(&["config", "check", "--config", &path]);
    assert!(o.status.success(), "the printed example is valid: {o:?}");
}

/// Runs `config check` on `text`; asserts exit 2 with one error line naming `key`.
fn rejected(text: &str, key: &str) -> String {
    let (_dir, path) = config(text);
    let o = pgb(&["config", "check", "--config", &path]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let line = one_line_error(&o);
    assert!(line.contains(key), "names the key {key}: {line}");
    assert!(line.contains("pgb.toml"), "names the file: {line}");
    line
}

#[test]
fn a_malformed_cron_is_a_usage_error_naming_job_and_key() {
    let line = rejected(
        "[jobs.shop]\nrepository = \"/tmp/r\"\nschedule = \"61 2 * * *\"\n",
        "schedule",
    );
    assert!(line.contains("shop"), "{line}");
    assert!(
        line.contains("field 1 \"61\" is not a valid minute (0-59)"),
        "names the field at fault: {line}"
    );
}

#[test]
fn an_unknown_zone_is_a_usage_error_naming_the_key() {
    let line = rejected(
        "[jobs.shop]\nrepository = \"/tmp/r\"\ntimezone = \"Mars/Olympus\"\n",
        "timezone",
    );
    assert!(line.contains("Mars/Olympus"), "{line}");
}

#[test]
fn an_inline_secret_is_refused_without_echoing_it() {
    let line = rejected(
        "[jobs.shop]\nrepository = \"/tmp/r\"\ndatabase = \"postgres://u:hunter2@db/shop\"\n",
        "database",
    );
    assert!(
        !line.contains("hunter2"),
        "the secret is not echoed: {line}"
    );
    let line = rejected(
        "[jobs.shop]\nrepository = \"/tmp/r\"\npassphrase = \"hunter2\"\n",
        "passphrase",
    );
    assert!(
        !line.contains("hunter2"),
        "the secret is not echoed: {line}"
    );
}

#[test]
fn schedule_explain_says_the_jobs_delay_and_the_configured_jitter() {
    let (_dir, path) = config(
        "[jobs.nightly]\nrepository = \"/tmp/r\"\nschedule = \"30 2 * * *\"\njitter = \"5m\"\n",
    );
    let o = pgb(&["schedule", "explain", "nightly", "--config", &path]);
    assert!(o.status.success(), "{o:?}");
    let first = stdout(&o).lines().next().unwrap_or_default().to_owned();
    assert!(
        first.contains("after its slot (jitter = 5m, fixed per job)"),
        "{first}"
    );
    let o = pgb(&[
        "schedule", "explain", "nightly", "--config", &path, "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(doc["jitter_max_seconds"], 300);
    assert!(doc["jitter_seconds"].as_u64().unwrap() <= 300, "{doc}");
}

/// The `(+hh:mm)` offsets printed by `schedule explain` of a daily 02:30 Berlin job.
fn berlin_offsets(after: &str) -> Vec<String> {
    let (_dir, path) = config(
        "[jobs.nightly]\nrepository = \"/tmp/r\"\nschedule = \"30 2 * * *\"\ntimezone = \"Europe/Berlin\"\n",
    );
    let o = pgb(&[
        "schedule", "explain", "nightly", "--count", "6", "--after", after, "--config", &path,
    ]);
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    assert!(out.contains("Europe/Berlin"), "{out}");
    let offsets: Vec<String> = out
        .lines()
        .skip(1)
        .map(|l| {
            let open = l.find('(').expect("offset in parentheses");
            l[open + 1..open + 7].to_owned()
        })
        .collect();
    assert_eq!(offsets.len(), 6, "{out}");
    offsets
}

#[test]
fn schedule_explain_follows_daylight_saving_changes() {
    // Spring forward on Sunday 2027-03-28: 02:30 does not exist; CET (+01:00) becomes CEST.
    let spring = berlin_offsets("2027-03-25T12:00:00Z");
    assert_eq!(spring[0], "+01:00", "{spring:?}");
    assert_eq!(spring[5], "+02:00", "{spring:?}");
    // Fall back on Sunday 2027-10-31: CEST (+02:00) becomes CET (+01:00).
    let autumn = berlin_offsets("2027-10-28T12:00:00Z");
    assert_eq!(autumn[0], "+02:00", "{autumn:?}");
    assert_eq!(autumn[5], "+01:00", "{autumn:?}");
}

#[test]
fn schedule_explain_of_an_unscheduled_job_names_the_key() {
    let (_dir, path) = config("[jobs.adhoc]\nrepository = \"/tmp/r\"\n");
    let o = pgb(&["schedule", "explain", "adhoc", "--config", &path]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let line = one_line_error(&o);
    assert!(
        line.contains("schedule") && line.contains("adhoc"),
        "{line}"
    );
}

/// A config with one job `nightly` backing up `db` into `repo`, plus `extra` lines.
fn job_config(pg: &common::Pg, db: &str, repo: &Path, extra: &str) -> (tempfile::TempDir, String) {
    config(&format!(
        "[jobs.nightly]\ndatabase = \"{}\"\nrepository = \"{}\"\n{extra}\n",
        pg.url(db),
        repo.display()
    ))
}

/// Runs `pgb run nightly` with the test server's tools.
fn run_job(pg: &common::Pg, path: &str) -> std::process::Output {
    common::pgb_env(
        &["run", "nightly", "--config", path],
        &[("PGB_PG_BIN_DIR", pg.bin.to_str().unwrap())],
    )
}

#[test]
fn pgb_run_backs_up_verifies_prunes_and_runs_hooks_with_their_environment() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("jobs_run", 200, common::RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let log = dir.path().join("hooks.log");
    let hook = |what: &str| {
        format!(
            "[\"/bin/sh\", \"-c\", \"echo {what} $PGB_JOB $PGB_EVENT $PGB_STATUS $PGB_BACKUP_ID >> {}\"]",
            log.display()
        )
    };
    let (_c, path) = job_config(
        &pg,
        &db.name,
        &repo,
        &format!(
            "keep_last = 2\nverify_after_backup = true\npre_backup = {}\npost_backup = {}",
            hook("pre"),
            hook("post")
        ),
    );
    for _ in 0..3 {
        let o = run_job(&pg, &path);
        assert!(o.status.success(), "{o:?}");
    }
    let ids = common::ids(&repo);
    assert_eq!(ids.len(), 2, "keep_last = 2 pruned the oldest: {ids:?}");
    let log = std::fs::read_to_string(&log).expect("hooks ran");
    let last = log.lines().last().unwrap();
    assert_eq!(
        last,
        format!("post nightly post_backup success {}", ids[1]),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l == "pre nightly pre_backup running"),
        "{log}"
    );
}

#[test]
fn a_failing_pre_backup_hook_aborts_before_pg_dump_and_runs_on_error() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("jobs_pre", 10, common::RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let log = dir.path().join("on_error.log");
    let (_c, path) = job_config(
        &pg,
        &db.name,
        &repo,
        &format!(
            "pre_backup = [\"/bin/sh\", \"-c\", \"exit 3\"]\non_error = [\"/bin/sh\", \"-c\", \"echo $PGB_EVENT $PGB_STATUS > {}\"]",
            log.display()
        ),
    );
    let o = run_job(&pg, &path);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(one_line_error(&o).contains("pre_backup"), "{o:?}");
    assert!(common::files(&repo).is_empty() || common::ids(&repo).is_empty());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().trim(),
        "on_error failure"
    );
}

#[test]
fn a_second_concurrent_run_of_a_job_exits_8_naming_the_holder() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("jobs_lock", 10, common::RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let flag = dir.path().join("started");
    // The first run holds the lock while its pre_backup hook sleeps.
    let (_c, path) = job_config(
        &pg,
        &db.name,
        &repo,
        &format!(
            "pre_backup = [\"/bin/sh\", \"-c\", \"touch {}; sleep 4\"]",
            flag.display()
        ),
    );
    let mut first = common::pgb_cmd(&["run", "nightly", "--config", &path])
        .env("PGB_PG_BIN_DIR", &pg.bin)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !flag.exists() {
        assert!(
            start.elapsed().as_secs() < 30,
            "the first run's hook started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = run_job(&pg, &path);
    assert_eq!(second.status.code(), Some(8), "{second:?}");
    let line = one_line_error(&second);
    assert!(
        line.contains("already running") && line.contains("expires at"),
        "{line}"
    );
    assert!(first.wait().unwrap().success(), "the first run completes");
    assert_eq!(common::ids(&repo).len(), 1);
}

/// The status code of `GET path` on `addr`.
fn http_status(addr: &str, path: &str) -> u16 {
    common::http_get(addr, path).0
}

/// The value of the series `name{labels}` whose labels contain `label`, in a Prometheus text.
fn sample(text: &str, name: &str, label: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .find_map(|l| l.rsplit_once(' ')?.1.parse().ok())
}

#[test]
fn daemon_once_with_catch_up_runs_a_missed_slot_once() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("jobs_once", 10, common::RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let (_c, path) = job_config(
        &pg,
        &db.name,
        &repo,
        "schedule = \"0 3 * * *\"\ncatch_up = true",
    );
    let once = || {
        common::pgb_env(
            &["daemon", "--once", "--config", &path],
            &[("PGB_PG_BIN_DIR", pg.bin.to_str().unwrap())],
        )
    };
    let o = once();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(common::ids(&repo).len(), 1, "the missed 03:00 slot ran");
    let o = once();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        common::ids(&repo).len(),
        1,
        "nothing is due after it succeeded"
    );
}

#[test]
fn daemon_once_runs_a_due_drill_after_the_backup_and_records_it() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("jobs_drill", 20, common::RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let (_c, path) = job_config(
        &pg,
        &db.name,
        &repo,
        &format!(
            "schedule = \"0 3 * * *\"\n[jobs.nightly.drill]\ntarget = \"{}\"\nschedule = \"0 4 * * *\"",
            pg.url("postgres")
        ),
    );
    let once = || {
        common::pgb_env(
            &["daemon", "--once", "--config", &path],
            &[("PGB_PG_BIN_DIR", pg.bin.to_str().unwrap())],
        )
    };
    let o = once();
    assert!(o.status.success(), "{o:?}");
    let outcomes: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("outcomes");
    let jobs: Vec<&str> = outcomes
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["job"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, ["nightly", "nightly/drill"], "{outcomes}");
    let history = common::pgb(&[
        "drill",
        "--history",
        "--json",
        "--repo",
        repo.to_str().unwrap(),
    ]);
    let history: serde_json::Value = serde_json::from_str(&stdout(&history)).expect("history");
    let drills = history.as_array().unwrap();
    assert_eq!(drills.len(), 1, "{history}");
    assert_eq!(drills[0]["report"]["outcome"], "passed", "{history}");
    assert_eq!(drills[0]["report"]["job"], "nightly", "{history}");
    assert!(
        !pg.db_exists(drills[0]["report"]["scratch_database"].as_str().unwrap()),
        "scratch database dropped"
    );
    // The passed drill is the drill's last success: nothing is due any more.
    let o = once();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o).trim(), "[]", "{o:?}");
}

#[test]
fn a_whole_server_job_runs_with_pgb_run_and_picks_up_its_databases() {
    let Some(pg) = common::pg() else { return };
    let a = pg.sample_db("jobs_srv_a", 20, common::RowText::Plain);
    let b = pg.sample_db("jobs_srv_b", 30, common::RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let uploads = dir.path().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(uploads.join("photo.jpg"), b"not really a photo").unwrap();
    // The job names the server (through one of its databases) and selects by glob.
    let (_c, path) = job_config(
        &pg,
        &a.name,
        &repo,
        &format!(
            "all_databases = true\ninclude = [\"{}\", \"{}\"]\nfiles = [\"{}\"]\npost_restore = [\"/bin/sh\", \"-c\", \"{} -X -q -d \\\"$DATABASE_URL\\\" -c 'create table migrated (v int)'\"]",
            a.name,
            b.name,
            uploads.display(),
            pg.bin.join("psql").display()
        ),
    );
    let o = run_job(&pg, &path);
    assert!(o.status.success(), "{o:?}");
    let list = common::list_json(&repo);
    assert_eq!(list.len(), 1, "{list:?}");
    let mut dbs: Vec<&str> = list[0]["cluster"]["databases"]
        .as_array()
        .expect("a whole-server backup")
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    dbs.sort_unstable();
    let mut want = [a.name.as_str(), b.name.as_str()];
    want.sort_unstable();
    assert_eq!(dbs, want, "{list:?}");
    let verify = common::pgb(&["verify", "--repo", repo.to_str().unwrap()]);
    assert!(verify.status.success(), "{verify:?}");

    // One database of the whole-server backup, then the job's migration hook on it.
    let target = common::unique("jobs_srv_restored");
    let o = common::pgb_env(
        &[
            "restore",
            "latest",
            "--job",
            "nightly",
            "--config",
            &path,
            "--database",
            &b.name,
            "--db",
            &pg.url(&target),
        ],
        &[("PGB_PG_BIN_DIR", pg.bin.to_str().unwrap())],
    );
    let _drop = common::DbGuard {
        pg: &pg,
        name: target.clone(),
    };
    assert!(o.status.success(), "{o:?}");
    assert_eq!(pg.fingerprint(&target), pg.fingerprint(&b.name));
    assert_eq!(pg.psql(&target, "select count(*) from migrated"), "0");

    // A selection key without all_databases is refused, naming the key; nothing runs.
    let (_c2, bad) = job_config(&pg, &a.name, &dir.path().join("r2"), "include = [\"x\"]");
    let o = run_job(&pg, &bad);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(one_line_error(&o).contains("include"), "{o:?}");
    assert!(!dir.path().join("r2").exists());
}

#[test]
fn a_directory_format_job_runs_with_pgb_run_and_restores() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("jobs_dir", 500, common::RowText::Md5);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let (_c, path) = job_config(
        &pg,
        &db.name,
        &repo,
        &format!(
            "format = \"directory\"\njobs = 2\nspool_dir = \"{}\"",
            dir.path().display()
        ),
    );
    let o = run_job(&pg, &path);
    assert!(o.status.success(), "{o:?}");
    let list = common::list_json(&repo);
    assert_eq!(list[0]["format"], "directory", "{list:?}");
    let target = common::unique("jobs_dir_restored");
    let o = common::pgb_env(
        &[
            "restore",
            "latest",
            "--job",
            "nightly",
            "--config",
            &path,
            "--db",
            &pg.url(&target),
        ],
        &[("PGB_PG_BIN_DIR", pg.bin.to_str().unwrap())],
    );
    let _drop = common::DbGuard {
        pg: &pg,
        name: target.clone(),
    };
    assert!(o.status.success(), "{o:?}");
    assert_eq!(pg.fingerprint(&target), pg.fingerprint(&db.name));
}

#[test]
fn daemon_runs_a_scheduled_backup_serves_health_and_stops_on_sigterm() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("jobs_daemon", 10, common::RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let port = 20000 + (common::random_u32() % 20000);
    let addr = format!("127.0.0.1:{port}");
    // A job whose newest backup may be at most 1 s old is stale almost at once.
    let (_c, path) = job_config(
        &pg,
        &db.name,
        &repo,
        "schedule = \"* * * * *\"\n[jobs.nightly.check]\nmax_age = \"1s\"",
    );
    let log = dir.path().join("daemon.log");
    let mut daemon = common::KillOnDrop(
        common::pgb_cmd(&["daemon", "--listen", &addr, "--config", &path])
            .env("PGB_PG_BIN_DIR", &pg.bin)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let start = std::time::Instant::now();
    // The repository exists once the daemon opened it (reading commands never create one).
    while !repo.is_dir() || common::ids(&repo).is_empty() {
        assert!(
            start.elapsed().as_secs() < 75,
            "a scheduled backup within a minute"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(http_status(&addr, "/healthz"), 503, "the job is stale");
    // /metrics serves `pgb check --textfile`'s metrics, per job, refreshed after the run.
    let manifest = common::list_json(&repo).remove(0);
    let job = "pgb_job=\"nightly\"";
    let metrics = loop {
        let (status, body) = common::http_get(&addr, "/metrics");
        assert_eq!(status, 200);
        if body.contains("pgb_backup_last_success_timestamp_seconds{") {
            break body;
        }
        assert!(
            start.elapsed().as_secs() < 90,
            "metrics of the backup: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    let database = format!("database=\"{}\"", db.name);
    let finished = sample(&metrics, "pgb_backup_last_success_timestamp_seconds", job).unwrap();
    assert!(
        metrics.lines().any(
            |l| l.starts_with("pgb_backup_last_success_timestamp_seconds{")
                && l.contains(job)
                && l.contains(&database)
        ),
        "{metrics}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        now - finished < 120.0,
        "{finished} is the new backup: {metrics}"
    );
    assert!(sample(&metrics, "pgb_backup_last_duration_seconds", job).is_some());
    let size = sample(&metrics, "pgb_backup_last_size_bytes", job).unwrap();
    let stored: u64 = manifest["artifacts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["stored_size"].as_u64().unwrap_or(0))
                .sum()
        })
        .or_else(|| manifest["stored_size"].as_u64())
        .unwrap();
    assert!(size > 0.0, "{metrics}");
    assert_eq!(size as u64, stored, "{metrics}");
    assert_eq!(
        sample(&metrics, "pgb_backup_max_age_seconds", job),
        Some(1.0)
    );
    // Checked right after the run, when the backup was younger than the 1 s limit or not.
    let status = sample(&metrics, "pgb_check_status", job).unwrap();
    assert!(status == 0.0 || status == 2.0, "{metrics}");
    common::kill(daemon.0.id(), libc::SIGTERM);
    let status = daemon.0.wait().unwrap();
    assert_eq!(status.code(), Some(0), "a clean stop exits 0");
    // Its log tells what it did, without -v: start, the run (backup id, size), the stop.
    let log = std::fs::read_to_string(&log).unwrap();
    let id = manifest["id"].as_str().unwrap();
    assert!(log.contains("daemon started"), "{log}");
    assert!(
        log.lines().any(|l| l.contains("backup committed")
            && l.contains(id)
            && l.contains("stored_bytes")),
        "{log}"
    );
    assert!(
        log.contains("signal received") && log.contains("daemon stopped"),
        "{log}"
    );
    eprintln!("{log}");
}

#[test]
fn a_job_run_pings_start_then_success_or_fail_and_records_its_verify() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("jobs_ping", 10, common::RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let (ping_url, pings) = common::receiver();
    let (hook_url, hooks) = common::receiver();
    let notify = "[jobs.nightly.notify]\nping_url_env = \"HC_URL\"\nwebhook_url_env = \"HOOK_URL\"\nevents = [\"backup_failed\"]";
    let run = |path: &str| {
        common::pgb_env(
            &["run", "nightly", "--config", path],
            &[
                ("PGB_PG_BIN_DIR", pg.bin.to_str().unwrap()),
                ("HC_URL", &ping_url),
                ("HOOK_URL", &hook_url),
            ],
        )
    };
    let (_c, path) = job_config(
        &pg,
        &db.name,
        &repo,
        &format!("verify_after_backup = true\n{notify}"),
    );
    let o = run(&path);
    assert!(o.status.success(), "{o:?}");
    let [start, end] = common::pings(&pings);
    assert_eq!(start.path, "/hook/secret-token/start");
    assert_eq!(end.path, "/hook/secret-token");
    assert_eq!(start.rid, end.rid);
    assert!(
        end.body
            .starts_with("pgb: backup_succeeded [succeeded] (job nightly"),
        "{}",
        end.body
    );
    // verify_after_backup leaves the evidence prune's newest-verified rule reads.
    let id = &common::ids(&repo)[0];
    assert!(
        repo.join(format!("backups/{id}/verified")).is_dir(),
        "{:?}",
        common::files(&repo)
    );

    // A failing run: /start, then /fail with the failed hook and its output, same rid; the
    // webhook (events = ["backup_failed"]) gets only this one.
    let (_c2, path) = job_config(
        &pg,
        &db.name,
        &repo,
        &format!(
            "pre_backup = [\"/bin/sh\", \"-c\", \"echo lost the lock file; exit 3\"]\n{notify}"
        ),
    );
    let o = run(&path);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let [start2, fail] = common::pings(&pings);
    assert_eq!(start2.path, "/hook/secret-token/start");
    assert_eq!(fail.path, "/hook/secret-token/fail");
    assert_eq!(start2.rid, fail.rid);
    assert_ne!(start2.rid, start.rid);
    assert!(fail.body.starts_with("pgb: backup_failed"), "{}", fail.body);
    assert!(fail.body.contains("lost the lock file"), "{}", fail.body);
    let hook = hooks
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the webhook");
    assert!(hook.contains("\"backup_failed\""), "{hook}");
    assert!(
        hooks
            .recv_timeout(std::time::Duration::from_millis(500))
            .is_err(),
        "backup_succeeded is not in events"
    );
}

#[test]
fn config_check_warns_about_what_would_fail_on_this_host() {
    let (_dir, path) = config(
        "[jobs.shop]\nrepository = \"/tmp/r\"\npassphrase_env = \"SHOP_PASSPHRASE_UNSET\"\nfiles = [\"/nonexistent/uploads\"]\n[jobs.shop.notify]\nwebhook_url_env = \"SHOP_HOOK_UNSET\"\n",
    );
    let o = pgb(&["config", "check", "--config", &path]);
    assert!(o.status.success(), "valid as written: {o:?}");
    let out = stdout(&o);
    for needle in [
        "SHOP_PASSPHRASE_UNSET",
        "SHOP_HOOK_UNSET",
        "/nonexistent/uploads is not a directory",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("warning (on this host)") && l.contains(needle)),
            "{needle}: {out}"
        );
    }
    let o = pgb(&["config", "check", "--config", &path, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(doc["warnings"].as_array().map(Vec::len), Some(3), "{doc}");
}
