//! The config-file commands: `pgb config check`, `pgb config example`, `pgb schedule explain`.

pub mod common;

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
