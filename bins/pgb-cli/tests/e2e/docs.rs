//! `pgb completions` and `pgb man`: generated from the clap definitions, so every subcommand
//! `pgb --help` lists (and its flags) is in the completions and has a man page that renders.

use crate::common;

use std::process::Command;

use common::{pgb, stdout};

/// The subcommands `pgb --help` lists (`help` aside).
fn subcommands() -> Vec<String> {
    let help = stdout(&pgb(&["--help"]));
    let list = help
        .split("Commands:")
        .nth(1)
        .expect("a Commands section")
        .split("\n\n")
        .next()
        .unwrap();
    let names: Vec<String> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_owned)
        .collect();
    assert!(names.len() >= 15, "{names:?}");
    names
}

#[test]
fn completions_offer_every_subcommand_and_their_flags() {
    let subs = subcommands();
    for shell in ["bash", "zsh", "fish"] {
        let o = pgb(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {o:?}");
        let script = stdout(&o);
        for s in &subs {
            assert!(script.contains(s.as_str()), "{shell}: no {s}");
        }
        for flag in ["repo", "keep-daily", "max-rto", "listen"] {
            assert!(script.contains(flag), "{shell}: no --{flag}");
        }
    }
    // An unknown shell is bad usage.
    assert_eq!(pgb(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn man_pages_cover_every_subcommand_and_render_without_warnings() {
    let o = pgb(&["man"]);
    assert!(o.status.success(), "{o:?}");
    let page = stdout(&o);
    assert!(
        page.starts_with(".ie") || page.contains(".TH pgb 1"),
        "{page}"
    );
    let subs = subcommands();
    for s in &subs {
        assert!(
            page.contains(&format!("pgb\\-{s}")),
            "pgb.1 does not name {s}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let o = pgb(&["man", "--dir", out.to_str().unwrap()]);
    assert!(o.status.success(), "{o:?}");
    for s in &subs {
        assert!(out.join(format!("pgb-{s}.1")).is_file(), "no pgb-{s}.1");
    }
    assert!(out.join("pgb.1").is_file() && out.join("pgb-key-generate.1").is_file());
    let backup = std::fs::read_to_string(out.join("pgb-backup.1")).unwrap();
    for flag in ["\\-\\-repo", "\\-\\-compression", "\\-\\-verify"] {
        assert!(backup.contains(flag), "pgb-backup.1 lacks {flag}");
    }

    // What man(1) shows: groff with preconv (-k, UTF-8 input as man-db feeds it), every
    // warning on (-ww), output discarded (-z). Nothing on stderr.
    if Command::new("groff").arg("--version").output().is_err() {
        pgb_testkit::require_or_skip::<()>("groff", "install groff-base (scripts/test.sh does)");
        return;
    }
    let mut pages: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    for p in &pages {
        let r = Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(p)
            .output()
            .unwrap();
        assert!(
            r.status.success() && r.stderr.is_empty(),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&r.stderr)
        );
    }
}

#[test]
fn man_dir_that_cannot_be_written_fails_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let o = pgb(&["man", "--dir", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        common::stderr(&o).contains("cannot write the man pages into"),
        "{o:?}"
    );
}
