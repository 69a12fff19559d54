//! The WAL series per cluster and timeline (window start and end, gaps, the newest archived
//! commit) rendered from checks of a real archive, and the alert rules on them
//! (`PgbWalGap`, `PgbWalCommitTooOld`, `PgbWalCommitTooOldDefault`) unit-tested with promtool:
//! PostgreSQL 15 archives into a directory (`cp`), each segment is pushed into the repository
//! with pgb's own push, a base backup of its first segment is recorded, and the checks run
//! two hours later; then a segment after the backup is removed (a gap).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pgb_core::wal::WalPushOptions;
use pgb_core::{BackupOptions, NoProgress, Repository};
use pgb_ops::metrics::render_check;
use pgb_ops::{CheckOptions, CheckReport, CheckStatus};
use pgb_storage_local::FsStorage;
use pgb_testkit::{FakeDumper, FakeOutcome, TempCluster, make_shared_dir};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::metrics_alerts::{alert, none, promtool, rules_file, run, series};

const SEG: u64 = 16 << 20;

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Rewrites a fake backup's manifest into a physical backup of segment `segno` (start and stop
/// in it), ended at `stop_time`.
fn make_physical(root: &Path, id: &str, sysid: u64, segno: u64, stop_time: OffsetDateTime) {
    let path = root.join(format!("backups/{id}/manifest.json"));
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let name = format!("00000001{:08X}{:08X}", segno / 256, segno % 256);
    let lsn = |off: u64| {
        let at = segno * SEG + off;
        format!("{:X}/{:X}", at >> 32, at & 0xFFFF_FFFF)
    };
    v["set"] = sysid.to_string().into();
    v["database"] = "*".into();
    v["format"] = "physical".into();
    v["finished_at"] = rfc3339(stop_time).into();
    v["physical"] = json!({
        "system_identifier": sysid.to_string(), "timeline": 1, "start_lsn": lsn(0x28),
        "stop_timeline": 1, "stop_lsn": lsn(0x100), "wal_segment_size": SEG, "wal": "archive",
        "start_wal_file": name, "stop_wal_file": name, "stop_time": rfc3339(stop_time),
        "backup_manifest_sha256": "0".repeat(64), "files": 1000, "server_major": 15,
    });
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

async fn check(repo: &Repository, at: OffsetDateTime) -> CheckReport {
    pgb_ops::check(
        repo,
        &CheckOptions::new(at).with_max_rpo(Duration::from_secs(3600)),
    )
    .await
}

#[tokio::test]
async fn wal_alert_rules_fire_on_a_gap_and_an_old_commit() {
    let bin = match std::env::var("PGB_TEST_PG15_BIN") {
        Ok(b) => b,
        Err(_) => {
            return pgb_testkit::require_or_skip("PostgreSQL 15", "PGB_TEST_PG15_BIN is not set")
                .unwrap_or(());
        }
    };
    let Some(_) = promtool() else { return };
    let archive = make_shared_dir().unwrap();
    let command = format!("cp %p {}/%f", archive.path().display());
    let pg = TempCluster::init(
        Path::new(&bin),
        &[("archive_mode", "on"), ("archive_command", &command)],
    )
    .expect("start PostgreSQL");
    let sysid = pg.system_identifier().unwrap();
    let backup_end = OffsetDateTime::now_utc() - Duration::from_secs(1);
    pg.psql("create table t(i int)").unwrap();
    for round in 0..4 {
        pg.psql(&format!("insert into t values ({round})")).unwrap();
        pg.switch_wal_and_wait_archived(Duration::from_secs(60))
            .unwrap();
    }
    let mut names: Vec<String> = std::fs::read_dir(archive.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 24)
        .collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");

    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::new(Arc::new(FsStorage::open(dir.path()).unwrap()));
    let opts = WalPushOptions::default().with_system_identifier(Some(sysid));
    for n in &names {
        repo.wal()
            .push_file(&archive.path().join(n), &opts)
            .await
            .expect(n);
    }
    let m = repo
        .backup(
            &FakeDumper::new(1000, FakeOutcome::Succeed),
            &BackupOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap();
    let first = u64::from_str_radix(&names[0][16..24], 16).unwrap()
        + 256 * u64::from_str_radix(&names[0][8..16], 16).unwrap();
    make_physical(dir.path(), m.id.as_str(), sysid, first, backup_end);

    // Two hours later with a one-hour RPO: the newest commit is too old; the window is whole.
    let at = OffsetDateTime::now_utc() + Duration::from_secs(2 * 3600);
    let old = check(&repo, at).await;
    assert_eq!(old.status, CheckStatus::Critical, "{}", old.summary());
    let old_text = render_check(&old, Some("e"));
    let tl = |job: &str| format!("system_identifier=\"{sysid}\",timeline=\"1\",pgb_job=\"{job}\"");
    assert!(
        old_text.contains(&format!(
            "pgb_wal_timeline_window_start_timestamp_seconds{{{}}} {}",
            tl("e"),
            backup_end.unix_timestamp()
        )),
        "{old_text}"
    );
    let end = old.wal[0].newest_commit.expect("the newest commit is read");
    assert!(
        old_text.contains(&format!(
            "pgb_wal_timeline_window_end_timestamp_seconds{{{}}} {}",
            tl("e"),
            end.unix_timestamp()
        )),
        "{old_text}"
    );
    assert!(
        old_text.contains(&format!("pgb_wal_timeline_gaps{{{}}} 0", tl("e"))),
        "{old_text}"
    );
    // The same archive checked without --max-rpo (job g) still carries the newest commit.
    let plain = pgb_ops::check(&repo, &CheckOptions::new(at)).await;
    let plain_text = render_check(&plain, Some("g"));
    assert!(
        plain_text.contains("pgb_wal_last_commit_timestamp_seconds{"),
        "{plain_text}"
    );

    // A segment after the backup goes: a gap, CRITICAL, one gap on timeline 1.
    std::fs::remove_file(
        dir.path()
            .join(format!("wal/{sysid}/00000001/{}", names[2])),
    )
    .unwrap();
    let now = OffsetDateTime::now_utc();
    let gap = pgb_ops::check(&repo, &CheckOptions::new(now)).await;
    assert_eq!(gap.status, CheckStatus::Critical, "{}", gap.summary());
    let gap_text = render_check(&gap, Some("f"));
    assert!(
        gap_text.contains(&format!("pgb_wal_timeline_gaps{{{}}} 1", tl("f"))),
        "{gap_text}"
    );
    eprintln!("wal_alerts: metrics of a check with a gap:\n{gap_text}");

    let mut input = Vec::new();
    input.extend(series(&old_text, at));
    input.extend(series(&plain_text, at));
    input.extend(series(&gap_text, now));
    let cluster = |job: &str, severity: &str| json!({"system_identifier": sysid.to_string(), "pgb_job": job, "severity": severity});
    let tests = json!({
        "rule_files": [rules_file()],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": input,
            "alert_rule_test": [
                alert("PgbWalGap", cluster("f", "critical"), Some(json!({
                    "summary": format!("A gap in the WAL archive of cluster {sysid} after its newest base backup (job f)")
                }))),
                alert("PgbWalCommitTooOld", cluster("e", "critical"), Some(json!({
                    "summary": format!("The newest archived commit of cluster {sysid} is older than the RPO (job e)")
                }))),
                alert("PgbWalCommitTooOldDefault", cluster("g", "warning"), None),
                none("PgbCheckWarning"),
            ],
        }],
    });
    let file = dir.path().join("pgb-wal-alerts.test.yml");
    std::fs::write(&file, serde_json::to_string_pretty(&tests).unwrap()).unwrap();
    let Some(mut test) = promtool() else { return };
    test.args(["test", "rules"]).arg(&file);
    let out = run(test);
    assert!(out.contains("SUCCESS"), "{out}");
}
