//! `pgb wal push|fetch|verify` against real PostgreSQL 15 and 17: archive_command and
//! restore_command as PostgreSQL calls them, the archive contract (same content succeeds,
//! different content fails and leaves the archived file alone), damaged and missing files.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::pitr::bin_dir;
use common::{PGB, pgb, stderr};
use pgb_testkit::{TempCluster, make_shared_dir};

/// A server archiving with `pgb wal push` into `repo`, and with `cp` into `copies` (what
/// PostgreSQL handed over, to compare with what comes back).
fn archiving_server(bin: &Path, repo: &Path, copies: &Path) -> TempCluster {
    let command = format!(
        "cp %p {copies}/%f && {PGB} wal push %p --repo {repo}",
        copies = copies.display(),
        repo = repo.display()
    );
    TempCluster::init(
        bin,
        &[("archive_mode", "on"), ("archive_command", &command)],
    )
    .expect("start PostgreSQL")
}

fn wal_verify_json(repo: &Path) -> serde_json::Value {
    let o = pgb(&[
        "wal",
        "verify",
        "--repo",
        &repo.display().to_string(),
        "--json",
    ]);
    assert!(o.status.success(), "wal verify: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("JSON")
}

fn archive_round_trip(major: u32) {
    let Some(bin) = bin_dir(major) else { return };
    let repo = make_shared_dir().unwrap();
    let copies = make_shared_dir().unwrap();
    let pg = archiving_server(&bin, repo.path(), copies.path());
    pg.psql("create table t(i int); insert into t select generate_series(1, 10000)")
        .unwrap();
    let first = pg
        .switch_wal_and_wait_archived(Duration::from_secs(60))
        .unwrap();
    pg.psql("insert into t select generate_series(1, 10000)")
        .unwrap();
    let second = pg
        .switch_wal_and_wait_archived(Duration::from_secs(60))
        .unwrap();
    let system_id = pg.system_identifier().unwrap();
    let r = repo.path().display().to_string();

    // Each archived segment is stored under its own name, in the cluster's folder.
    let stored = repo
        .path()
        .join(format!("wal/{system_id}/00000001/{second}"));
    assert!(stored.is_file(), "{} missing", stored.display());
    let report = wal_verify_json(repo.path());
    assert_eq!(report["system_identifier"], system_id);
    assert_eq!(report["segment_size"], 16 << 20);
    let tl = &report["timelines"][0];
    assert_eq!(tl["timeline"], 1);
    assert!(tl["segments"].as_u64().unwrap() >= 2, "{report}");
    assert_eq!(tl["gaps"].as_array().unwrap().len(), 0, "{report}");

    // restore_command: the file comes back byte for byte, checked; the spool gets the next.
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("RECOVERYXLOG");
    let spool = out.path().join("spool");
    let o = pgb(&[
        "wal",
        "fetch",
        &first,
        &dest.display().to_string(),
        "--repo",
        &r,
        "--spool",
        &spool.display().to_string(),
        "--prefetch",
        "2",
    ]);
    assert!(o.status.success(), "fetch: {}", stderr(&o));
    let original = std::fs::read(copies.path().join(&first)).unwrap();
    assert!(
        std::fs::read(&dest).unwrap() == original,
        "fetched {first} differs"
    );
    assert!(
        spool.join(&second).is_file(),
        "the next segment was not prefetched"
    );
    // The next request is served from the spool and leaves it.
    let o = pgb(&[
        "wal",
        "fetch",
        &second,
        &dest.display().to_string(),
        "--repo",
        &r,
        "--spool",
        &spool.display().to_string(),
    ]);
    assert!(o.status.success(), "fetch from spool: {}", stderr(&o));
    assert!(std::fs::read(&dest).unwrap() == std::fs::read(copies.path().join(&second)).unwrap());
    assert!(!spool.join(&second).exists());

    // The end of the archive is "not found" (1), never a failure PostgreSQL would stop on.
    let o = pgb(&[
        "wal",
        "fetch",
        "0000000100000000000000FE",
        &dest.display().to_string(),
        "--repo",
        &r,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = pgb(&[
        "wal",
        "fetch",
        "00000002.history",
        &dest.display().to_string(),
        "--repo",
        &r,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    // PostgreSQL re-archives after a crash: the same content again succeeds, writes nothing.
    let before = std::fs::read(&stored).unwrap();
    let copy = copies.path().join(&second);
    let o = pgb(&["wal", "push", &copy.display().to_string(), "--repo", &r]);
    assert!(o.status.success(), "re-push: {}", stderr(&o));
    // Different content under the same name: refused loudly, the archived file untouched.
    let mut altered = std::fs::read(&copy).unwrap();
    altered[100_000] ^= 0xFF;
    let other = out.path().join(&second);
    std::fs::write(&other, &altered).unwrap();
    let o = pgb(&["wal", "push", &other.display().to_string(), "--repo", &r]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("different content"), "{}", stderr(&o));
    assert!(
        std::fs::read(&stored).unwrap() == before,
        "the archived segment changed"
    );

    // A damaged archived segment is never handed to PostgreSQL: 255 stops recovery.
    let mut damaged = before.clone();
    let n = damaged.len();
    damaged[n - 10] ^= 0xFF;
    std::fs::write(&stored, &damaged).unwrap();
    let dest2 = out.path().join("RECOVERYXLOG2");
    let o = pgb(&[
        "wal",
        "fetch",
        &second,
        &dest2.display().to_string(),
        "--repo",
        &r,
    ]);
    assert_eq!(o.status.code(), Some(255), "{}", stderr(&o));
    assert!(!dest2.exists(), "a damaged segment reached the destination");
    let o = pgb(&["wal", "verify", "--repo", &r, "--rehash"]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(
        common::stdout(&o).contains("DAMAGED"),
        "{}",
        common::stdout(&o)
    );
    std::fs::write(&stored, &before).unwrap();

    // A removed segment is a gap that verify names.
    std::fs::remove_file(&stored).unwrap();
    pg.psql("insert into t values (1)").unwrap();
    pg.switch_wal_and_wait_archived(Duration::from_secs(60))
        .unwrap();
    let o = pgb(&["wal", "verify", "--repo", &r, "--json"]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{} {}",
        stderr(&o),
        common::stdout(&o)
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let gaps = report["timelines"][0]["gaps"].as_array().unwrap().clone();
    assert_eq!(gaps.len(), 1, "{report}");
    assert_eq!(gaps[0]["first_missing"], second.as_str());
    assert_eq!(gaps[0]["missing"], 1);
}

#[test]
fn archive_round_trip_on_postgres_15() {
    archive_round_trip(15);
}

#[test]
fn archive_round_trip_on_postgres_17() {
    archive_round_trip(17);
}

#[test]
fn files_that_are_not_wal_or_of_another_cluster_are_refused_with_nothing_written() {
    let repo = make_shared_dir().unwrap();
    let r = repo.path().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "hello").unwrap();
    let o = pgb(&["wal", "push", &junk.display().to_string(), "--repo", &r]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a WAL file name"), "{}", stderr(&o));
    // A file with a segment's name but not a segment's content.
    let fake = dir.path().join("000000010000000000000001");
    std::fs::write(&fake, vec![0u8; 16 << 20]).unwrap();
    let o = pgb(&["wal", "push", &fake.display().to_string(), "--repo", &r]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not a valid WAL segment"),
        "{}",
        stderr(&o)
    );
    // A history file names no cluster: it needs the data directory or --system-id.
    let history = dir.path().join("00000002.history");
    std::fs::write(&history, "1\t0/3000000\tno recovery target specified\n").unwrap();
    let o = pgb(&["wal", "push", &history.display().to_string(), "--repo", &r]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--system-id"), "{}", stderr(&o));
    assert!(!repo.path().join("wal").exists(), "something was written");
    // With it, stored; a different history under the same name is never accepted.
    let h = history.display().to_string();
    let o = pgb(&["wal", "push", &h, "--repo", &r, "--system-id", "7"]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(&history, "1\t0/4000000\tno recovery target specified\n").unwrap();
    let o = pgb(&["wal", "push", &h, "--repo", &r, "--system-id", "7"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    // restore_command with bad arguments stops recovery (255), never "not found".
    let o = pgb(&["wal", "fetch", "00000002.history"]);
    assert_eq!(o.status.code(), Some(255), "{}", stderr(&o));
}

/// A 16 MiB segment with a valid first-page header and random content after it (the archive
/// checks headers, not records): the data of the network tests.
fn synthetic_segment(name: &str, system_id: u64) -> Vec<u8> {
    let size = 16u64 << 20;
    let hex = |r: std::ops::Range<usize>| u64::from_str_radix(&name[r], 16).unwrap();
    let (timeline, start) = (hex(0..8) as u32, (hex(8..16) << 32) | (hex(16..24) * size));
    let mut d = vec![0u8; size as usize];
    let mut x = u64::from(common::random_u32()) | 1;
    for chunk in d.chunks_mut(8) {
        // xorshift: incompressible enough that a segment is several requests' worth.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    d[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
    d[2..4].copy_from_slice(&2u16.to_le_bytes());
    d[4..8].copy_from_slice(&timeline.to_le_bytes());
    d[8..16].copy_from_slice(&start.to_le_bytes());
    d[24..32].copy_from_slice(&system_id.to_le_bytes());
    d[32..36].copy_from_slice(&(size as u32).to_le_bytes());
    d[36..40].copy_from_slice(&8192u32.to_le_bytes());
    d
}

/// The S3 emulator behind a fault proxy: (proxy, repository URL, environment), or a skip.
/// A fault proxy in front of the S3 emulator, the repository URL, and pgb's environment.
type ProxiedS3 = (pgb_faultproxy::FaultProxy, String, Vec<(String, String)>);

fn s3_behind_proxy() -> Option<ProxiedS3> {
    let (Some(endpoint), Some(bucket)) = (
        common::env("PGB_TEST_S3_ENDPOINT"),
        common::env("PGB_TEST_S3_BUCKET"),
    ) else {
        return pgb_testkit::require_or_skip(
            "the S3 emulator (PGB_TEST_S3_*)",
            "scripts/services/s3.sh start DIR",
        );
    };
    let proxy = pgb_faultproxy::FaultProxy::start(&endpoint, pgb_faultproxy::Store::S3).unwrap();
    let envs = vec![
        ("AWS_ENDPOINT_URL".to_owned(), proxy.url()),
        (
            "AWS_ACCESS_KEY_ID".to_owned(),
            common::env("PGB_TEST_S3_ACCESS_KEY_ID").unwrap_or_else(|| "test".into()),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            common::env("PGB_TEST_S3_SECRET_ACCESS_KEY").unwrap_or_else(|| "test".into()),
        ),
        (
            "AWS_REGION".to_owned(),
            common::env("PGB_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
        ),
        ("PGB_S3_FORCE_PATH_STYLE".to_owned(), "true".to_owned()),
        ("PGB_STORAGE_TIMEOUT_SECS".to_owned(), "3".to_owned()),
        ("PGB_STORAGE_RETRY_BUDGET_SECS".to_owned(), "20".to_owned()),
    ];
    let repo = format!("s3://{bucket}/{}", common::unique("wal"));
    Some((proxy, repo, envs))
}

#[test]
fn push_and_fetch_ride_out_network_faults_and_an_unreachable_store_stops_recovery() {
    use pgb_faultproxy::{Fault, Match, Rule};
    let Some((proxy, repo, envs)) = s3_behind_proxy() else {
        return;
    };
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let run = |args: &[&str]| common::pgb_env(args, &envs);
    let dir = tempfile::tempdir().unwrap();
    let name = "000000010000000000000011";
    let segment = synthetic_segment(name, 4242);
    let path = dir.path().join(name);
    std::fs::write(&path, &segment).unwrap();
    let p = path.display().to_string();

    // The first write answered 503, then a write applied whose answer is lost: the retry
    // finds the object and the push judges it by its digest, as PostgreSQL's contract asks.
    proxy.add_rule(Rule::new(Match::method("PUT"), Fault::Status(503)).first(1));
    proxy.add_rule(Rule::new(Match::method("PUT"), Fault::ForwardThenReset).first(1));
    let o = run(&["wal", "push", &p, "--repo", &repo]);
    assert!(o.status.success(), "push through faults: {}", stderr(&o));
    proxy.clear_faults();

    // A download cut short and a reset: fetch retries and still verifies every byte.
    proxy.add_rule(Rule::new(Match::method("GET"), Fault::TruncateBodyPercent(50)).first(1));
    proxy.add_rule(Rule::new(Match::method("GET"), Fault::ResetBeforeForward).first(1));
    let dest = dir.path().join("RECOVERYXLOG");
    let d = dest.display().to_string();
    let o = run(&[
        "wal",
        "fetch",
        name,
        &d,
        "--repo",
        &repo,
        "--system-id",
        "4242",
    ]);
    assert!(o.status.success(), "fetch through faults: {}", stderr(&o));
    assert!(
        std::fs::read(&dest).unwrap() == segment,
        "fetched bytes differ"
    );
    proxy.clear_faults();

    // A store that stays down is not "the end of the archive": 255, recovery stops.
    std::fs::remove_file(&dest).unwrap();
    proxy.add_rule(Rule::new(Match::any(), Fault::Status(503)));
    let o = run(&[
        "wal",
        "fetch",
        name,
        &d,
        "--repo",
        &repo,
        "--system-id",
        "4242",
    ]);
    assert_eq!(o.status.code(), Some(255), "{}", stderr(&o));
    assert!(!dest.exists());
    // And a push against it fails below 126, so PostgreSQL keeps the segment and retries.
    let o = run(&["wal", "push", &p, "--repo", &repo]);
    let code = o.status.code().unwrap();
    assert!((1..126).contains(&code), "push exit {code}: {}", stderr(&o));
    proxy.clear_faults();
}

#[test]
fn a_push_killed_mid_upload_leaves_nothing_that_looks_archived() {
    use pgb_faultproxy::{Fault, Match, Rule};
    let Some((proxy, repo, envs)) = s3_behind_proxy() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let name = "000000010000000000000012";
    let segment = synthetic_segment(name, 4343);
    let path = dir.path().join(name);
    std::fs::write(&path, &segment).unwrap();
    let p = path.display().to_string();
    // The upload hangs; pgb is killed with SIGKILL while it waits.
    proxy.add_rule(Rule::new(
        Match::method("PUT"),
        Fault::Stall(Duration::from_secs(30)),
    ));
    let mut child = common::pgb_cmd(&["wal", "push", &p, "--repo", &repo])
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .spawn()
        .unwrap();
    // The push checked for an archived copy (logged once answered); its upload follows and
    // hangs (logged only when it ends).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while proxy.log().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "pgb never reached the store"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    proxy.clear_faults();
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // Nothing under the name: fetch says "not found", verify sees no WAL.
    let dest = dir.path().join("out").display().to_string();
    let o = common::pgb_env(
        &[
            "wal",
            "fetch",
            name,
            &dest,
            "--repo",
            &repo,
            "--system-id",
            "4343",
        ],
        &envs,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // PostgreSQL retries the segment: it is archived then.
    let o = common::pgb_env(&["wal", "push", &p, "--repo", &repo], &envs);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = common::pgb_env(
        &[
            "wal",
            "fetch",
            name,
            &dest,
            "--repo",
            &repo,
            "--system-id",
            "4343",
        ],
        &envs,
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `restore --preview` answers before anything is written: a reachable time, a time after the
/// idle server's last commit, an unknown restore point, a gap, a timeline that does not lead
/// there; each its own exit code, and the data directory never created.
fn preview_verdicts(major: u32) {
    let Some(bin) = bin_dir(major) else { return };
    let repo = common::shared_repository();
    let r = repo.path().display().to_string();
    let command = format!("{PGB} wal push %p --repo {r}");
    let pg = TempCluster::init(
        &bin,
        &[("archive_mode", "on"), ("archive_command", &command)],
    )
    .expect("start PostgreSQL");
    pg.psql("create table status(message text); insert into status values ('before')")
        .unwrap();
    let o = pgb(&[
        "backup",
        "--physical",
        "--repo",
        &r,
        "--db",
        &pg.url(),
        "--pg-bin-dir",
        &bin.display().to_string(),
    ]);
    assert!(o.status.success(), "backup: {}", stderr(&o));
    pg.psql("update status set message = 'target'").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let target = pg.psql("select clock_timestamp()").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    pg.psql("update status set message = 'after'").unwrap();
    pg.psql("select pg_create_restore_point('known')").unwrap();
    pg.switch_wal_and_wait_archived(Duration::from_secs(60))
        .unwrap();
    pg.psql("update status set message = 'later'").unwrap();
    pg.switch_wal_and_wait_archived(Duration::from_secs(60))
        .unwrap();
    // Idle from here: nothing commits after this second.
    std::thread::sleep(Duration::from_millis(1100));
    let idle = pg.psql("select clock_timestamp()").unwrap();

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("restored");
    let d = dir.display().to_string();
    let preview = |extra: &[&str]| {
        let mut args = vec![
            "restore",
            "latest",
            "--repo",
            &r,
            "--pgdata",
            &d,
            "--preview",
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = pgb(&args);
        let json: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
        (o.status.code(), json, stderr(&o))
    };
    let (code, json, err) = preview(&["--to-time", &target]);
    assert_eq!(code, Some(0), "{err} {json}");
    assert_eq!(json["wal"]["verdict"], "reachable", "{json}");
    assert!(json["wal"]["segments"].as_u64().unwrap() >= 1, "{json}");
    let (code, json, err) = preview(&["--to-time", &idle]);
    assert_eq!(code, Some(14), "{err} {json}");
    assert_eq!(json["wal"]["verdict"], "after_last_commit", "{json}");
    assert!(err.contains("archive_timeout"), "{err}");
    let (code, json, _) = preview(&["--to-name", "known"]);
    assert_eq!(
        (code, &json["wal"]["verdict"]),
        (Some(0), &serde_json::json!("reachable"))
    );
    let (code, json, _) = preview(&["--to-name", "never-made"]);
    assert_eq!(
        (code, &json["wal"]["verdict"]),
        (Some(14), &serde_json::json!("not_in_archive"))
    );
    let (code, json, _) = preview(&["--timeline", "9"]);
    assert_eq!(
        (code, &json["wal"]["verdict"]),
        (Some(16), &serde_json::json!("timeline_does_not_lead"))
    );

    // A segment removed between the backup and the target: the WAL stops at a gap.
    let stop = json["stop_lsn"].as_str().map(str::to_owned);
    let sysid = pg.system_identifier().unwrap();
    let tl = repo.path().join(format!("wal/{sysid}/00000001"));
    let mut names: Vec<String> = std::fs::read_dir(&tl)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.len() == 24)
        .collect();
    names.sort();
    let stop_file = {
        let listed = common::list_json(repo.path());
        listed[0]["physical"]["stop_wal_file"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let after: Vec<&String> = names.iter().filter(|n| **n > stop_file).collect();
    assert!(after.len() >= 2, "{names:?} (stop {stop:?})");
    std::fs::remove_file(tl.join(after[0])).unwrap();
    let (code, json, err) = preview(&["--to-time", &idle]);
    assert_eq!(code, Some(15), "{err} {json}");
    assert_eq!(json["wal"]["verdict"], "in_gap", "{json}");
    assert_eq!(json["wal"]["first_missing"], after[0].as_str());
    assert!(!dir.exists(), "--preview wrote the data directory");
}

#[test]
fn preview_answers_before_anything_is_written_on_postgres_15() {
    preview_verdicts(15);
}

#[test]
fn preview_answers_before_anything_is_written_on_postgres_17() {
    preview_verdicts(17);
}

/// `pgb backup --physical --wal archive` with `extra` flags; the backup's listed manifest.
fn labelled_physical_backup(pg: &TempCluster, repo: &Path, extra: &[&str]) -> serde_json::Value {
    let (repo_s, url, bin) = (s(repo), pg.url(), s(pg.bin_dir()));
    let mut args = vec![
        "backup",
        "--physical",
        "--repo",
        &repo_s,
        "--db",
        &url,
        "--pg-bin-dir",
        &bin,
        "--json",
    ];
    args.extend_from_slice(extra);
    let o = pgb(&args);
    assert!(o.status.success(), "backup --physical: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    common::pitr::listed(repo, report["id"].as_str().unwrap())
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The holes a prune leaves between base backups kept by GFS counts or labels (their
/// start-to-stop WAL kept, the rest before the window deleted: `retain.rs`) are not gaps:
/// `pgb wal verify` lists them as pruned and exits 0. A missing segment a kept backup needs
/// (its start-to-stop WAL), or one after the newest backup's start, is a gap: exit 5.
///
/// The hole is made by hand, as such a prune makes it: a real prune keeps islands only for
/// backups older than a `--keep-within` window (at least an hour), which a test cannot wait for.
#[test]
fn wal_verify_tells_pruned_holes_between_kept_backups_from_gaps() {
    use common::pitr::{ARCHIVED, archiving_server, work};
    let Some(bin) = bin_dir(15) else { return };
    let repo = make_shared_dir().unwrap();
    let r = repo.path();
    let pg = archiving_server(&bin, r);
    let sysid = pg.system_identifier().unwrap();
    pg.switch_wal_and_wait_archived(ARCHIVED).unwrap();

    let first = labelled_physical_backup(&pg, r, &["--label", "monthly"]);
    work(&pg);
    work(&pg);
    let second = labelled_physical_backup(&pg, r, &[]);
    work(&pg);
    work(&pg);
    let third = labelled_physical_backup(&pg, r, &[]);
    work(&pg);
    work(&pg);
    work(&pg);

    let folder = r.join(format!("wal/{sysid}/00000001"));
    let mut names: Vec<String> = common::files(&folder)
        .into_iter()
        .map(|f| f.rsplit('/').next().unwrap().to_owned())
        .filter(|n| n.len() == 24)
        .collect();
    names.sort();
    let (first_stop, second_start) = (
        first["physical"]["stop_wal_file"].as_str().unwrap(),
        second["physical"]["start_wal_file"].as_str().unwrap(),
    );
    // What a prune deletes when the first backup is kept by a GFS count or a label and the
    // window starts at the second: everything between the first one's stop and the second
    // one's start.
    let hole: Vec<String> = names
        .iter()
        .filter(|n| n.as_str() > first_stop && n.as_str() < second_start)
        .cloned()
        .collect();
    assert!(!hole.is_empty(), "WAL between the backups: {names:?}");
    for n in &hole {
        std::fs::remove_file(folder.join(n)).unwrap();
    }

    let v = wal_verify_json(r);
    let t = &v["timelines"][0];
    assert!(t["gaps"].as_array().unwrap().is_empty(), "{v}");
    let pruned = t["pruned"].as_array().unwrap();
    assert_eq!(pruned.len(), 1, "{v}");
    assert_eq!(pruned[0]["first_missing"], hole[0].as_str(), "{v}");
    assert_eq!(pruned[0]["missing"], hole.len(), "{v}");
    let o = pgb(&["wal", "verify", "--repo", &s(r)]);
    let text = common::stdout(&o);
    eprintln!("wal verify with a pruned hole between kept backups:\n{text}");
    assert!(
        o.status.success() && text.contains("    pruned: "),
        "{text}"
    );
    names.retain(|n| !hole.contains(n));

    let verify_fails_naming = |missing: &str| {
        let gone = folder.join(missing);
        let aside = r.join("aside");
        std::fs::rename(&gone, &aside).unwrap();
        let o = pgb(&["wal", "verify", "--repo", &s(r), "--json"]);
        std::fs::rename(&aside, &gone).unwrap();
        assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let gaps = v["timelines"][0]["gaps"].as_array().unwrap().clone();
        assert!(
            gaps.iter().any(|g| g["last_missing"] == missing),
            "{missing} in a gap: {v}"
        );
    };
    // The second backup's first segment: the hole before it now reaches into its WAL.
    verify_fails_naming(second["physical"]["start_wal_file"].as_str().unwrap());
    // A segment after the newest backup's start (not the archive's last).
    let after = names
        .iter()
        .rev()
        .skip(1)
        .find(|n| n.as_str() > third["physical"]["start_wal_file"].as_str().unwrap())
        .unwrap_or_else(|| panic!("a segment after the third backup: {names:?}"));
    verify_fails_naming(after);
    // All back: the pruned hole alone, exit 0.
    assert!(pgb(&["wal", "verify", "--repo", &s(r)]).status.success());
}
