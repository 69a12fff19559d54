//! One grammar per value, whatever the entry point: a size or a duration means the same as a
//! flag (with or without `--job`) and as a key of the config file (SI `MB` = 10^6 bytes,
//! binary `MiB` = 2^20; durations in s, m, h, d, w everywhere).

use crate::common;

use common::{RowText, stdout};

/// The minimum size `pgb check ARGS --format json` compared the newest backup against, from
/// its set's CRITICAL finding.
fn minimum(args: &[&str]) -> u64 {
    let mut all = vec!["check", "--format", "json"];
    all.extend(args);
    let o = common::pgb(&all);
    let report: serde_json::Value =
        serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {o:?}"));
    assert_eq!(o.status.code(), Some(2), "CRITICAL: {report}");
    let sets = report["sets"].as_array().unwrap();
    let finding = sets
        .iter()
        .flat_map(|s| s["findings"].as_array().unwrap())
        .filter_map(|f| f["message"].as_str())
        .find(|m| m.contains("below the minimum of"))
        .unwrap_or_else(|| panic!("a size finding in {report}"));
    finding
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {finding}"))
}

#[test]
fn a_size_means_the_same_as_a_flag_and_as_a_toml_key() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("grammar", 50, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let o = common::backup(&pg, &repo, &db.name, &[]);
    assert!(o.status.success(), "{o:?}");
    let config = dir.path().join("pgb.toml");
    let job = |name: &str| {
        format!(
            "[jobs.{name}]\ndatabase = \"{}\"\nrepository = \"{}\"\n",
            pg.url(&db.name),
            repo.display()
        )
    };
    std::fs::write(
        &config,
        format!(
            "{}{}[jobs.sized.check]\nmin_size = \"500MB\"\n",
            job("plain"),
            job("sized")
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let repo = repo.to_str().unwrap();
    let si = 500_000_000;
    let binary = 500 << 20;
    assert_eq!(minimum(&["--job", "sized", "--config", config]), si, "key");
    assert_eq!(
        minimum(&["--job", "plain", "--config", config, "--min-size", "500MB"]),
        si,
        "flag beside --job"
    );
    assert_eq!(
        minimum(&["--repo", repo, "--min-size", "500MB"]),
        si,
        "flag"
    );
    assert_eq!(minimum(&["--repo", repo, "--min-size", "500MiB"]), binary);
    assert_eq!(
        minimum(&["--job", "sized", "--config", config, "--min-size", "500MiB"]),
        binary,
        "the flag wins over the key"
    );
    // A bare unit letter is ambiguous, as a flag and as a key: both spellings offered (check's
    // UNKNOWN, exit 3, as for any error of check).
    for args in [
        vec!["check", "--repo", repo, "--min-size", "500M"],
        vec![
            "check",
            "--job",
            "plain",
            "--config",
            config,
            "--min-size",
            "500M",
        ],
    ] {
        let o = common::pgb(&args);
        let err = common::one_line_error(&o);
        assert_eq!(o.status.code(), Some(3), "{err}");
        assert!(err.contains("500MB") && err.contains("500MiB"), "{err}");
    }
}

/// `gc --older-than` takes the duration grammar of every other flag and key: seconds and
/// minutes too, `0s` included.
#[test]
fn every_duration_flag_takes_seconds_and_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let repo = repo.to_str().unwrap();
    for older_than in ["0s", "90m", "1h30m", "2w"] {
        let o = common::pgb(&[
            "gc",
            "--repo",
            repo,
            "--older-than",
            older_than,
            "--dry-run",
        ]);
        assert!(o.status.success(), "--older-than {older_than}: {o:?}");
    }
    let o = common::pgb(&["gc", "--repo", repo, "--older-than", "3mo", "--dry-run"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = common::pgb(&[
        "check",
        "--repo",
        repo,
        "--max-age",
        "90s",
        "--format",
        "json",
    ]);
    assert!(
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).is_ok(),
        "--max-age 90s is read: {o:?}"
    );
}
