//! The Prometheus exposition of real check reports (a local repository filled by the real
//! backup pipeline), compared with exact text, validated line by line against the text
//! format, and written atomically as a textfile.

use std::sync::Arc;
use std::time::Duration;

use pgb_core::{BackupOptions, NoProgress, Repository};
use pgb_ops::metrics::{render_check, render_checks, render_drill, write_textfile};
use pgb_ops::{CheckOptions, DrillReport};
use pgb_storage_local::FsStorage;
use pgb_testkit::{FakeDumper, FakeOutcome};
use time::OffsetDateTime;

/// Checks every line against the text exposition format: HELP and TYPE before samples of
/// their family, `name{label="value",...} number`, label names valid (and never Prometheus's
/// target labels `job` and `instance`), no duplicate series.
fn validate(text: &str) {
    let mut typed = std::collections::BTreeSet::new();
    let mut series = std::collections::BTreeSet::new();
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(kind, "gauge");
            assert!(typed.insert(name.to_owned()), "TYPE twice for {name}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (name, rest) = line.split_once('{').expect("labels");
        assert!(typed.contains(name), "sample before TYPE: {line}");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let (labels, value) = rest.rsplit_once("} ").expect("value");
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once("=\"").expect("label");
            assert!(
                k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{k}"
            );
            assert!(!v.contains('\n'));
            // Prometheus's own target labels: a series of pgb's must not carry them.
            assert!(k != "job" && k != "instance", "target label {k} in {line}");
        }
        assert!(
            series.insert(format!("{name}{{{labels}}}")),
            "duplicate {line}"
        );
    }
}

#[tokio::test]
async fn check_metrics_exposition() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::new(Arc::new(FsStorage::open(dir.path()).unwrap()));
    let dumper = FakeDumper::new(100_000, FakeOutcome::Succeed);
    repo.backup(&dumper, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let m = repo
        .backup(&dumper, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let report = pgb_ops::check(
        &repo,
        &CheckOptions::new(now).with_max_age(Duration::from_secs(93_600)),
    )
    .await;
    let text = render_check(&report, Some("nightly \"main\""));
    validate(&text);
    let l = format!(
        "set=\"{}\",database=\"{}\",pgb_job=\"nightly \\\"main\\\"\"",
        m.set, m.database
    );
    let expected = format!(
        "# HELP pgb_backup_last_success_timestamp_seconds Unix time the newest complete backup of the set finished.
# TYPE pgb_backup_last_success_timestamp_seconds gauge
pgb_backup_last_success_timestamp_seconds{{{l}}} {}
# HELP pgb_backup_last_duration_seconds Duration of the newest complete backup of the set.
# TYPE pgb_backup_last_duration_seconds gauge
pgb_backup_last_duration_seconds{{{l}}} {}
# HELP pgb_backup_last_size_bytes Stored size of the newest complete backup of the set.
# TYPE pgb_backup_last_size_bytes gauge
pgb_backup_last_size_bytes{{{l}}} {}
# HELP pgb_backups Complete backups of the set in the repository.
# TYPE pgb_backups gauge
pgb_backups{{{l}}} 2
# HELP pgb_backup_max_age_seconds The maximum age the check applies to the newest backup of the set.
# TYPE pgb_backup_max_age_seconds gauge
pgb_backup_max_age_seconds{{{l}}} 93600
# HELP pgb_check_status Check status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
# TYPE pgb_check_status gauge
pgb_check_status{{pgb_job=\"nightly \\\"main\\\"\"}} 0
",
        m.finished_at.unix_timestamp(),
        (m.finished_at - m.started_at).whole_seconds(),
        m.stored_size(),
    );
    assert_eq!(text, expected);
    assert!(!text.contains(m.id.as_str()), "backup ids are never labels");

    // Written atomically: the file appears complete and no temp file is left.
    let out = tempfile::tempdir().unwrap();
    let path = write_textfile(out.path(), "pgb.prom", &text).unwrap();
    assert_eq!(path, out.path().join("pgb.prom"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    let again = render_check(&report, None);
    write_textfile(out.path(), "pgb.prom", &again).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), again);
    let names: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["pgb.prom"]);
    // A directory that does not exist is an error, not a panic.
    assert!(write_textfile(&out.path().join("missing"), "pgb.prom", &text).is_err());
}

#[tokio::test]
async fn several_jobs_share_one_exposition() {
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
    let ok = pgb_ops::check(&repo, &CheckOptions::new(now)).await;
    let empty = pgb_ops::check(&repo, &CheckOptions::new(now).with_database("shop")).await;
    let text = render_checks([(Some("app"), &ok), (Some("shop"), &empty)]);
    // One HELP/TYPE per family (validate() fails on a TYPE twice), every job's series under it.
    validate(&text);
    let l = format!(
        "set=\"{}\",database=\"{}\",pgb_job=\"app\"",
        m.set, m.database
    );
    assert!(
        text.contains(&format!(
            "pgb_backup_last_size_bytes{{{l}}} {}\n",
            m.stored_size()
        )),
        "{text}"
    );
    assert!(
        text.contains("pgb_check_status{pgb_job=\"app\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("pgb_check_status{pgb_job=\"shop\"} 2\n"),
        "{text}"
    );
    // The job with no backups of its database has only its status.
    assert_eq!(text.matches("pgb_job=\"shop\"").count(), 1, "{text}");
    assert_eq!(
        render_checks([(Some("app"), &ok)]),
        render_check(&ok, Some("app"))
    );
}

#[test]
fn drill_metrics_exposition() {
    let report: DrillReport = serde_json::from_value(serde_json::json!({
        "backup_id": "20261130T010000Z-abcdef",
        "set": "db:5432/app",
        "database": "app",
        "job": "nightly",
        "backup_started_at": "2026-11-30T01:00:00Z",
        "stored_size": 1234,
        "target_server": "drill:5432",
        "scratch_database": "pgb_drill_app_20261130t020000z",
        "kept": false,
        "dropped": true,
        "started_at": "2026-11-30T02:00:00Z",
        "finished_at": "2026-11-30T02:01:35Z",
        "outcome": "passed",
        "phases": [],
        "rto_ms": 95250,
        "rpo_s": 3600,
        "toc_tables": 3,
        "checks": [],
        "pgb_version": "0.1.0"
    }))
    .unwrap();
    let text = render_drill(&report, None);
    validate(&text);
    let l = "set=\"db:5432/app\",database=\"app\",pgb_job=\"nightly\"";
    assert_eq!(
        text,
        format!(
            "# HELP pgb_drill_last_success_timestamp_seconds Unix time the last passed restore drill of the set started.
# TYPE pgb_drill_last_success_timestamp_seconds gauge
pgb_drill_last_success_timestamp_seconds{{{l}}} 1796004000
# HELP pgb_drill_last_rto_seconds Recovery time measured by the last restore drill of the set.
# TYPE pgb_drill_last_rto_seconds gauge
pgb_drill_last_rto_seconds{{{l}}} 95.250
# HELP pgb_drill_last_rpo_seconds Recovery point (backup age at drill time) of the last restore drill of the set.
# TYPE pgb_drill_last_rpo_seconds gauge
pgb_drill_last_rpo_seconds{{{l}}} 3600
"
        )
    );
}

#[test]
fn textfile_names_are_per_check() {
    use pgb_ops::metrics::textfile_name;
    assert_eq!(textfile_name(Some("a"), "/r", None), "pgb-a.prom");
    assert_eq!(
        textfile_name(Some("nightly main/1"), "/r", Some("app")),
        "pgb-nightly_main_1.prom"
    );
    assert_eq!(
        textfile_name(None, "/var/backups/pgb", None),
        "pgb-repo-var_backups_pgb.prom"
    );
    assert_eq!(
        textfile_name(None, "s3://bucket/prefix", Some("app")),
        "pgb-repo-s3___bucket_prefix-db-app.prom"
    );
    // Different repositories or databases never share a file; the same check always does.
    assert_ne!(
        textfile_name(None, "/a", None),
        textfile_name(None, "/b", None)
    );
    assert_ne!(
        textfile_name(None, "/a", Some("x")),
        textfile_name(None, "/a", Some("y"))
    );
    assert_eq!(
        textfile_name(None, "/a", Some("x")),
        textfile_name(None, "/a", Some("x"))
    );
    // Nothing that leaves the directory or hides the file.
    assert_eq!(textfile_name(Some("../.."), "/r", None), "pgb-_.prom");
}
