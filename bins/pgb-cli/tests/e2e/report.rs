//! `pgb report` over what real backups, verifies and drills leave in a repository (PostgreSQL:
//! PGB_TEST_PG_URL), and over bad input: a report that says what is wrong, never a crash or an
//! empty page.

use crate::common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn report(repo: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["report", "--repo", repo.to_str().unwrap()];
    args.extend(extra);
    pgb(&args)
}

fn json(repo: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["--format", "json"];
    args.extend(extra);
    let o = report(repo, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).expect("report JSON")
}

fn notices(r: &Value) -> String {
    r["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| format!("{}: {}", n["level"], n["message"]))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_report_holds_real_backups_verifications_drills_and_the_next_prune() {
    let Some(pg) = pg() else { return };
    let db = pg.sample_db("report", 50, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    for _ in 0..2 {
        let o = backup(&pg, &repo, &db.name, &["--verify"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let drill = |sql: &str| {
        let smoke = dir.path().join("smoke.sql");
        std::fs::write(&smoke, sql).unwrap();
        pgb(&[
            "drill",
            "--repo",
            repo.to_str().unwrap(),
            "--target",
            &pg.url("postgres"),
            "--pg-bin-dir",
            pg.bin.to_str().unwrap(),
            "--smoke",
            smoke.to_str().unwrap(),
            "--max-rto",
            "1h",
        ])
    };
    assert_eq!(
        drill("select count(*) = 50 from items").status.code(),
        Some(0)
    );
    assert_eq!(
        drill("select count(*) = 51 from items").status.code(),
        Some(10)
    );

    let r = json(&repo, &["--keep-last", "1", "--since", "1d"]);
    let set = format!("{}/{}", pg.hostport(), db.name);
    assert_eq!(r["sets"].as_array().unwrap().len(), 1);
    let s = &r["sets"][0];
    assert_eq!(s["set"], set.as_str());
    // The backups are those `pgb list` lists, with the same sizes.
    let list: Value = serde_json::from_str(&stdout(&pgb(&[
        "list",
        "--repo",
        repo.to_str().unwrap(),
        "--json",
    ])))
    .unwrap();
    let ids = |v: &Value, f: &str| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|b| b[f].to_string())
            .collect()
    };
    assert_eq!(ids(&s["backups"], "id"), ids(&list, "id"));
    assert_eq!(ids(&s["backups"], "stored_size"), ids(&list, "stored_size"));
    // Both drills, the failed one with its cause, which is the last failure.
    let drills = s["drills"].as_array().unwrap();
    assert_eq!(drills.len(), 2);
    assert_eq!(drills[0]["passed"], true);
    assert_eq!(drills[1]["outcome"], "check_failed");
    assert_eq!(drills[1]["max_rto_ms"], 3_600_000);
    let cause = drills[1]["cause"].as_str().unwrap();
    assert!(cause.contains("smoke"), "{cause}");
    assert_eq!(r["last_failure"]["cause"], cause);
    assert!(notices(&r).contains("the last drill"), "{}", notices(&r));
    // Every verify recorded by backup --verify (and the passed drill) is there.
    assert!(s["verifications"].as_array().unwrap().len() >= 2);
    // keep-last 1: the next prune removes the older backup, keeping the newest.
    assert_eq!(r["retention"]["removals"], 1);
    let b = s["backups"].as_array().unwrap();
    assert_eq!(b[0]["retention"]["keep"], false);
    assert_eq!(b[1]["retention"]["keep"], true);
    assert_eq!(s["next_prune"]["remove"][0], b[0]["id"]);

    // The same in Markdown and HTML.
    let md = stdout(&report(&repo, &["--format", "md"]));
    assert!(
        md.contains(&format!("## Set `{set}`")) && md.contains("**FAILED**") && md.contains(cause)
    );
    let html = stdout(&report(&repo, &[]));
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<tr class=\"drill failed\""));
}

#[test]
fn bad_input_gives_a_report_that_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();

    // No backups at all: a report that says so, in every format.
    let r = json(&repo, &[]);
    assert!(
        notices(&r).contains("no usable backups in this repository"),
        "{r}"
    );
    for format in ["html", "md"] {
        let o = report(&repo, &["--format", format]);
        assert!(
            o.status.success() && stdout(&o).contains("no usable backups"),
            "{format}"
        );
    }

    // A window in the future.
    let r = json(&repo, &["--since", "2999-01-01"]);
    assert!(
        notices(&r).contains("the window starts in the future"),
        "{r}"
    );

    // An unusable backup: listed with its problem, never counted.
    let bad = repo.join("backups/20260101T000000Z-abcdef");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("manifest.json"), "{\"format_version\": 3,").unwrap();
    let r = json(&repo, &[]);
    assert_eq!(r["unusable"][0]["kind"], "backup");
    assert_eq!(r["unusable"][0]["name"], "20260101T000000Z-abcdef");
    assert_eq!(r["summary"]["backups_total"], 0);
    assert!(notices(&r).contains("cannot be used"), "{r}");

    // What cannot make a report is an error with its cause.
    let o = report(&repo, &["--since", "three months"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--since"));
    let o = report(&dir.path().join("missing"), &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = report(
        &repo,
        &[
            "-o",
            dir.path().join("no/such/dir/r.html").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));

    // --output writes the page whole.
    let out = dir.path().join("r.html");
    let o = report(&repo, &["-o", out.to_str().unwrap()]);
    assert!(
        o.status.success() && stdout(&o).is_empty(),
        "{}",
        stderr(&o)
    );
    let page = std::fs::read_to_string(&out).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
}

#[test]
fn the_recoverable_window_of_real_wal_is_the_one_pgb_list_computes_with_its_gap() {
    use common::pitr::{ARCHIVED, archiving_server, bin_dir, physical_backup, work};
    let Some(bin) = bin_dir(15) else { return };
    let dir = pgb_testkit::make_shared_dir().unwrap();
    let repo = dir.path();
    let pg = archiving_server(&bin, repo);
    let sysid = pg.system_identifier().unwrap().to_string();
    pg.switch_wal_and_wait_archived(ARCHIVED).unwrap();
    let first = physical_backup(&pg, repo);
    work(&pg);
    work(&pg);
    let second = physical_backup(&pg, repo);
    work(&pg);
    work(&pg);
    // A segment between the backups goes: the first one's restores stop at the gap.
    let tli = repo.join(format!("wal/{sysid}/00000001"));
    let stop1 = first["physical"]["stop_wal_file"].as_str().unwrap();
    let start2 = second["physical"]["start_wal_file"].as_str().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&tli)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 24 && n.as_str() > stop1 && n.as_str() < start2)
        .collect();
    names.sort();
    let between = names.first().expect("a segment between the backups");
    std::fs::remove_file(tli.join(between)).unwrap();

    let o = pgb(&[
        "list",
        "--windows",
        "--json",
        "--repo",
        repo.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    let want = &listed[0]["timelines"][0];
    let r = json(repo, &[]);
    // Base backups alone are not an empty repository.
    assert!(
        !notices(&r).contains("no usable backups"),
        "{}",
        notices(&r)
    );
    let w = &r["physical"]["windows"][0];
    assert_eq!(w["system_identifier"], sysid.as_str());
    let t = &w["timelines"][0];
    assert_eq!(t["timeline"], "00000001");
    // The ranges and the gap are `pgb list --windows`', with the commit times it read.
    let ranges = t["ranges"].as_array().unwrap();
    let want_ranges = want["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 2, "{t:#}");
    for (got, want) in ranges.iter().zip(want_ranges) {
        assert_eq!(got["from"], want["from_time"], "{got:#} {want:#}");
        assert_eq!(got["from_backup"], want["from_backup"]);
        assert_eq!(got["reaches_end"], want["reaches_end"]);
        assert_eq!(got["to_lsn"], want["to_lsn"]);
        if want["to_commit"].is_string() {
            assert_eq!(got["to"], want["to_commit"]);
            assert_eq!(got["to_source"], "commit");
        }
    }
    assert_eq!(ranges[1]["to_source"], "commit", "{t:#}");
    assert_eq!(ranges[0]["backups"][0], first["id"]);
    assert_eq!(ranges[1]["from_backup"], second["id"]);
    let gap = &t["gaps"][0];
    assert_eq!(gap["first_missing"], between.as_str(), "{gap:#}");
    assert_eq!(gap["first_missing"], want["gaps"][0]["first_missing"]);
    assert_eq!(gap["affects"], want["gaps"][0]["affects"]);
    assert_eq!(gap["after"], ranges[0]["to"]);
    assert_eq!(gap["until"], ranges[1]["from"]);

    // The page draws them: both bars, the gap, and a mark per base backup.
    let o = report(repo, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = stdout(&o);
    // The summary counts the base backups (no logical backup here).
    assert!(
        page.contains("<dt>Base backups</dt><dd>2 ("),
        "{}",
        &page[page.find("Summary").unwrap_or(0)..][..2000.min(page.len())]
    );
    let chart = &page[page
        .find(&format!("id=\"window-{sysid}\""))
        .expect("window chart")..];
    let chart = &chart[..chart.find("</svg>").unwrap()];
    for r in ranges {
        assert!(
            chart.contains(&format!(
                "data-from=\"{}\" data-to=\"{}\"",
                r["from"].as_str().unwrap(),
                r["to"].as_str().unwrap()
            )),
            "{chart}"
        );
    }
    assert!(chart.contains(&format!("data-first-missing=\"{between}\"")));
    for b in [&first, &second] {
        assert!(chart.contains(&format!(
            "<path class=\"mark\" data-id=\"{}\"",
            b["id"].as_str().unwrap()
        )));
    }
    let md = stdout(&report(repo, &["--format", "md"]));
    assert!(
        md.contains(&format!("**GAP** of 1 segment(s), `{between}`")),
        "{md}"
    );
}
