//! The alert rules shipped in deploy/prometheus/pgb-alerts.yml (and documented in
//! docs/monitoring.md), checked with `promtool check rules` and unit-tested with `promtool test
//! rules` on the series pgb_ops::metrics actually renders: a CRITICAL job, an OK one, a job checked
//! without a maximum age and a drill. A renamed metric or label breaks the expected alerts.
//!
//! promtool is Debian's `prometheus` package (scripts/test.sh installs it when missing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use pgb_core::{BackupOptions, NoProgress, Repository};
use pgb_ops::metrics::{render_check, render_drill};
use pgb_ops::{CheckOptions, CheckStatus, DrillReport};
use pgb_storage_local::FsStorage;
use pgb_testkit::{FakeDumper, FakeOutcome};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// The promtool evaluation time (seconds from 0) that stands for each exposition's "now".
const EVAL_S: i64 = 4 * 3600;

pub(crate) fn rules_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus/pgb-alerts.yml")
}

/// `promtool`, or `None` after a loud skip (a failure with `PGB_TEST_REQUIRE=1`).
pub(crate) fn promtool() -> Option<Command> {
    match Command::new("promtool").arg("--version").output() {
        Ok(o) if o.status.success() => Some(Command::new("promtool")),
        _ => pgb_testkit::require_or_skip(
            "promtool",
            "install Debian's prometheus package (scripts/test.sh does)",
        ),
    }
}

pub(crate) fn run(mut cmd: Command) -> String {
    let o = cmd.output().expect("run promtool");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{cmd:?} failed:\n{out}");
    out
}

/// promtool input series from an exposition: every sample, held for five hours at one-minute
/// steps; `*_timestamp_seconds` values are moved so that `now` (the time the exposition was
/// rendered for) is the evaluation time [`EVAL_S`], keeping every age as pgb wrote it.
pub(crate) fn series(text: &str, now: OffsetDateTime) -> Vec<Value> {
    let shift = EVAL_S - now.unix_timestamp();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("sample");
            let mut v: f64 = value.parse().expect("value");
            if series
                .split('{')
                .next()
                .unwrap()
                .ends_with("_timestamp_seconds")
            {
                v += shift as f64;
            }
            json!({"series": series, "values": format!("{v}x300")})
        })
        .collect()
}

pub(crate) fn alert(name: &str, labels: Value, annotations: Option<Value>) -> Value {
    let mut exp = json!({"exp_labels": labels});
    if let Some(a) = annotations {
        exp["exp_annotations"] = a;
    }
    json!({"eval_time": format!("{EVAL_S}s"), "alertname": name, "exp_alerts": [exp]})
}

pub(crate) fn none(name: &str) -> Value {
    json!({"eval_time": format!("{EVAL_S}s"), "alertname": name, "exp_alerts": []})
}

#[tokio::test]
async fn alert_rules_fire_on_the_series_pgb_writes() {
    let Some(mut check) = promtool() else { return };
    let rules = rules_file();
    check.args(["check", "rules"]).arg(&rules);
    run(check);

    // One backup; job a checks it 2 h later with a 1 h maximum age (CRITICAL), job b now with
    // 26 h (OK), job c 30 h later with no maximum age (the 26 h default rule applies).
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::new(Arc::new(FsStorage::open(dir.path()).unwrap()));
    let m = repo
        .backup(
            &FakeDumper::new(10_000, FakeOutcome::Succeed),
            &BackupOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let (at_a, at_b, at_c) = (
        now + Duration::from_secs(2 * 3600),
        now,
        now + Duration::from_secs(30 * 3600),
    );
    let a = pgb_ops::check(
        &repo,
        &CheckOptions::new(at_a).with_max_age(Duration::from_secs(3600)),
    )
    .await;
    let b = pgb_ops::check(
        &repo,
        &CheckOptions::new(at_b).with_max_age(Duration::from_secs(26 * 3600)),
    )
    .await;
    let c = pgb_ops::check(&repo, &CheckOptions::new(at_c)).await;
    assert_eq!(a.status, CheckStatus::Critical, "{}", a.summary());
    assert_eq!(b.status, CheckStatus::Ok, "{}", b.summary());
    assert_eq!(c.status, CheckStatus::Ok, "{}", c.summary());
    // Job d's drill: passed 9 days before its "now", with a 5 h RTO.
    let drill: DrillReport = serde_json::from_value(json!({
        "backup_id": "20261130T010000Z-abcdef", "set": "db:5432/app", "database": "app",
        "job": "d", "backup_started_at": "2026-11-30T01:00:00Z", "stored_size": 1234,
        "target_server": "drill:5432", "scratch_database": "pgb_drill_app_20261130t020000z",
        "kept": false, "dropped": true, "started_at": "2026-11-30T02:00:00Z",
        "finished_at": "2026-11-30T07:00:00Z", "outcome": "passed", "phases": [],
        "rto_ms": 18_000_000, "rpo_s": 3600, "toc_tables": 3, "checks": [],
        "pgb_version": "0.1.0"
    }))
    .unwrap();
    let at_d = drill.started_at + Duration::from_secs(9 * 86400);

    let mut input = Vec::new();
    input.extend(series(&render_check(&a, Some("a")), at_a));
    input.extend(series(&render_check(&b, Some("b")), at_b));
    input.extend(series(&render_check(&c, Some("c")), at_c));
    input.extend(series(&render_drill(&drill, None), at_d));
    // node_exporter's mtime of job a's textfile (the name pgb writes): 3 h old.
    input.push(json!({
        "series": format!(
            "node_textfile_mtime_seconds{{file=\"/var/lib/node_exporter/textfile/{}\"}}",
            pgb_ops::metrics::textfile_name(Some("a"), "/r", None)
        ),
        "values": format!("{}x300", EVAL_S - 3 * 3600),
    }));

    let set = |job: &str| json!({"set": m.set, "database": m.database, "pgb_job": job});
    let with = |mut l: Value, severity: &str| {
        l["severity"] = json!(severity);
        l
    };
    let tests = json!({
        "rule_files": [rules],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": input,
            "alert_rule_test": [
                alert("PgbBackupTooOld", with(set("a"), "critical"), Some(json!({
                    "summary": format!("No fresh backup of {} (job a)", m.set)
                }))),
                alert("PgbBackupTooOldDefault", with(set("c"), "critical"), Some(json!({
                    "summary": format!("No backup of {} for over 26 h (job c)", m.set)
                }))),
                alert("PgbCheckFailing", json!({"pgb_job": "a", "severity": "critical"}), None),
                none("PgbCheckWarning"),
                alert(
                    "PgbNoRecentDrill",
                    json!({"set": "db:5432/app", "database": "app", "pgb_job": "d",
                           "severity": "warning"}),
                    Some(json!({"summary": "No passed restore drill of db:5432/app for over a week"})),
                ),
                alert(
                    "PgbRtoOverBudget",
                    json!({"set": "db:5432/app", "database": "app", "pgb_job": "d",
                           "severity": "warning"}),
                    None,
                ),
                alert(
                    "PgbMetricsStale",
                    json!({"file": "/var/lib/node_exporter/textfile/pgb-a.prom",
                           "severity": "warning"}),
                    None,
                ),
            ],
        }],
    });
    // JSON is YAML: promtool reads it as is.
    let file = dir.path().join("pgb-alerts.test.yml");
    std::fs::write(&file, serde_json::to_string_pretty(&tests).unwrap()).unwrap();
    let Some(mut test) = promtool() else { return };
    test.args(["test", "rules"]).arg(&file);
    let out = run(test);
    assert!(out.contains("SUCCESS"), "{out}");
}
