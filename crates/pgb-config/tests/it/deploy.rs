//! The deployment files in `deploy/`: systemd units pass `systemd-analyze verify` without a
//! warning, and the Kubernetes manifests' embedded config validates and matches their CronJobs.

use std::path::{Path, PathBuf};
use std::process::Command;

use pgb_config::{Environment, JobSettings, LoadedConfig};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn require() -> bool {
    std::env::var("PGB_TEST_REQUIRE").is_ok_and(|v| v == "1")
}

#[test]
fn systemd_units_verify_cleanly() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            !require(),
            "systemd-analyze is missing and PGB_TEST_REQUIRE=1"
        );
        eprintln!("SKIPPED: systemd-analyze not installed");
        record_skip("systemd-analyze");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Instances of the templates, with the binary replaced by one that exists here.
    for (src, dst) in [
        ("pgb-daemon.service", "pgb-daemon.service"),
        ("pgb-run@.service", "pgb-run@shop.service"),
        ("pgb-run@.timer", "pgb-run@shop.timer"),
    ] {
        let text = std::fs::read_to_string(deploy().join("systemd").join(src)).unwrap();
        assert!(
            !src.ends_with(".service") || text.contains("/usr/local/bin/pgb"),
            "{src} runs pgb"
        );
        std::fs::write(
            dir.path().join(dst),
            text.replace("/usr/local/bin/pgb", "/bin/true"),
        )
        .unwrap();
    }
    let timer = std::fs::read_to_string(deploy().join("systemd/pgb-run@.timer")).unwrap();
    assert!(timer.contains("Persistent=true"));
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(
            [
                "pgb-daemon.service",
                "pgb-run@shop.service",
                "pgb-run@shop.timer",
            ]
            .map(|f| dir.path().join(f)),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Unknown keys and bad values are only warnings: there must be none.
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze warned:\n{stderr}"
    );
}

/// The block scalar under `pgb.toml: |` of the ConfigMap.
fn embedded_config(yaml: &str) -> String {
    let mut lines = yaml
        .lines()
        .skip_while(|l| l.trim() != "pgb.toml: |")
        .skip(1);
    let mut out = String::new();
    for l in lines.by_ref() {
        if l.is_empty() {
            out.push('\n');
        } else if let Some(rest) = l.strip_prefix("    ") {
            out.push_str(rest);
            out.push('\n');
        } else {
            break;
        }
    }
    out
}

#[test]
fn kubernetes_manifests_carry_a_valid_config_and_forbid_overlap() {
    let yaml = std::fs::read_to_string(deploy().join("kubernetes/pgb.yaml")).unwrap();
    assert!(!yaml.contains('\t'), "YAML must not contain tabs");
    let toml = embedded_config(&yaml);
    let cfg = LoadedConfig::parse(&toml, Path::new("configmap pgb-config")).unwrap();
    let none = |_: &str| None;
    let env = Environment {
        var: &none,
        is_executable: &|_| false,
    };
    let jobs = cfg.resolve_all(&env, &JobSettings::default()).unwrap();
    // Every CronJob forbids concurrency, and `pgb run JOB` names a configured job whose
    // schedule and zone the CronJob repeats.
    let docs: Vec<&str> = yaml.split("\n---\n").collect();
    let cronjobs: Vec<&&str> = docs
        .iter()
        .filter(|d| d.contains("kind: CronJob"))
        .collect();
    assert_eq!(cronjobs.len(), 2);
    for cj in &cronjobs {
        assert!(cj.contains("concurrencyPolicy: Forbid"), "{cj}");
        assert!(cj.contains("name: pgb-secrets") && cj.contains("name: pgb-config"));
        if let Some(i) = cj.find("args: [\"run\", \"") {
            let job = cj[i + 15..].split('"').next().unwrap();
            let j = jobs
                .iter()
                .find(|j| j.name == job)
                .unwrap_or_else(|| panic!("no job {job}"));
            let expr = j.schedule_expr.as_deref().unwrap();
            assert!(cj.contains(&format!("schedule: \"{expr}\"")), "{cj}");
            assert!(
                cj.contains(&format!("timeZone: \"{}\"", j.timezone.name())),
                "{cj}"
            );
        } else {
            assert!(cj.contains("args: [\"daemon\", \"--once\"]"), "{cj}");
        }
    }
    assert!(docs.iter().any(|d| d.contains("kind: Secret")));
}

/// As `pgb_testkit::record_skip` (this crate does not depend on the test kit): names the
/// skipped test in `PGB_TEST_SKIP_LOG`, which scripts/test.sh counts and prints.
fn record_skip(what: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("PGB_TEST_SKIP_LOG") else {
        return;
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_owned();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "deploy {test}: {what}");
    }
}

#[test]
fn systemd_units_raise_the_descriptor_limit_for_backups() {
    // A backup near the usual soft limit of 1024 fails with "Too many open files".
    for unit in ["pgb-daemon.service", "pgb-run@.service"] {
        let text = std::fs::read_to_string(deploy().join("systemd").join(unit)).unwrap();
        let limit: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("LimitNOFILE="))
            .unwrap_or_else(|| panic!("{unit} sets no LimitNOFILE"))
            .trim()
            .parse()
            .unwrap();
        assert!(limit >= 4096, "{unit}: LimitNOFILE={limit}");
    }
}
