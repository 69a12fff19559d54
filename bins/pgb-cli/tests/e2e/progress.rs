//! `--progress`: outside a terminal, `log` writes a progress line every few seconds (and a
//! summary at the end) for backup, verify and restore, with the ETA from the previous backup of
//! the database; `none` writes none. On a pseudo-terminal (`script`), `auto` draws the bar, or
//! writes log lines when TERM is `dumb` or unset.
//! The byte, rate and ETA logic is unit-tested in `render/progress/mod.rs`.

use crate::common;

use common::{RowText, shim, stderr};

/// Progress lines in a run's stderr (the `pgb::progress` log target).
fn progress_lines(o: &std::process::Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| l.contains("pgb::progress"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn progress_log_writes_periodic_lines_and_none_writes_none() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("progress", 200, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    // A pg_dump that takes 3.5 s before dumping: long enough for lines 1 s apart.
    let slow = shim(
        dir.path(),
        "slow",
        &format!("sleep 3.5\nexec '{}/pg_dump' \"$@\"", pg.bin.display()),
    );
    let bin_dir = format!("{}:{}", slow.display(), pg.bin.display());
    let env = [
        ("PGB_PG_BIN_DIR", bin_dir.as_str()),
        ("PGB_PROGRESS_INTERVAL", "1"),
    ];

    let o = common::backup_env(&pg, &repo, &db.name, &["--progress", "log"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = progress_lines(&o);
    let periodic: Vec<_> = lines.iter().filter(|l| l.contains("elapsed")).collect();
    assert!(periodic.len() >= 2, "a line every second: {lines:#?}");
    assert!(
        periodic.iter().all(|l| l.contains("backup: ")),
        "{lines:#?}"
    );
    assert!(
        lines.last().unwrap().contains("backup: ") && lines.last().unwrap().contains(" in "),
        "a summary line ends it: {lines:#?}"
    );
    assert!(
        !lines.last().unwrap().contains("backup: 0 B"),
        "the summary counts the dump's bytes: {lines:#?}"
    );
    // The first backup of the database has no expected size; the second one takes it from
    // the first, so its lines show a share and the size they expect.
    assert!(!lines.iter().any(|l| l.contains("% of ~")), "{lines:#?}");
    let o = common::backup_env(&pg, &repo, &db.name, &["--progress", "log"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = progress_lines(&o);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("backup: ") && l.contains("% of ~")),
        "{lines:#?}"
    );

    // PGB_PROGRESS=none (and --progress none) is silent, however long the run.
    let o = common::backup_env(
        &pg,
        &repo,
        &db.name,
        &[],
        &[env[0], env[1], ("PGB_PROGRESS", "none")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(progress_lines(&o), Vec::<String>::new());
    let o = common::backup_env(&pg, &repo, &db.name, &["--progress", "none"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(progress_lines(&o), Vec::<String>::new());

    // Verify and restore report too (here, fast: their summary line).
    let r = repo.to_str().unwrap();
    let o = common::pgb_env(
        &["verify", "latest", "--repo", r, "--progress", "log"],
        &env,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        progress_lines(&o).iter().any(|l| l.contains("verify: ")),
        "{}",
        stderr(&o)
    );
    let restored = common::DbGuard {
        pg: &pg,
        name: format!("{}_restored", db.name),
    };
    let target = pg.url(&restored.name);
    let o = common::pgb_env(
        &[
            "restore",
            "latest",
            "--repo",
            r,
            "--db",
            &target,
            "--progress",
            "log",
        ],
        &env,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        progress_lines(&o).iter().any(|l| l.contains("restore: ")),
        "{}",
        stderr(&o)
    );

    // A bad PGB_PROGRESS is a usage error before anything runs.
    let o = common::pgb_env(&["list", "--repo", r], &[("PGB_PROGRESS", "fancy")]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("PGB_PROGRESS"), "{}", stderr(&o));
}

/// On a terminal (a pseudo-terminal from util-linux `script`), `auto` draws the bar: bytes
/// against the previous backup's size, rate and ETA.
#[test]
fn auto_draws_a_bar_on_a_terminal() {
    let Some(pg) = common::pg() else { return };
    if !std::path::Path::new("/usr/bin/script").exists() {
        let _: Option<()> = pgb_testkit::require_or_skip(
            "/usr/bin/script (util-linux)",
            "it gives the test a pseudo-terminal",
        );
        return;
    }
    let db = pg.sample_db("progressbar", 50, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let slow = shim(
        dir.path(),
        "slow",
        &format!("sleep 1.5\nexec '{}/pg_dump' \"$@\"", pg.bin.display()),
    );
    let bin_dir = format!("{}:{}", slow.display(), pg.bin.display());
    let env = [("PGB_PG_BIN_DIR", bin_dir.as_str())];
    let o = common::backup_env(&pg, &repo, &db.name, &[], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let transcript = dir.path().join("tty.log");
    let backup = common::backup_args(&pg, &repo, &db.name, &[]);
    let line = format!("'{}' {} > /dev/null", common::PGB, backup.join(" "));
    let o = common::without_pgb_env(&mut std::process::Command::new("/usr/bin/script"))
        .args(["-qec", &line, transcript.to_str().unwrap()])
        .envs(env)
        // A real terminal type, whatever the caller's: under cron or a CI runner TERM is
        // `dumb` or unset, and a dumb terminal gets log lines instead of a bar.
        .env("TERM", "xterm-256color")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let tty = String::from_utf8_lossy(&std::fs::read(&transcript).unwrap()).into_owned();
    assert!(
        tty.contains("backup") && tty.contains(" [") && tty.contains("/~") && tty.contains("B/s"),
        "{tty}"
    );
    assert!(
        !tty.contains("pgb::progress"),
        "a bar, not log lines: {tty}"
    );
}

/// On a terminal that cannot draw a bar (TERM `dumb`, as under many CI runners and editors'
/// shells, or unset, as under cron), `auto` writes log lines instead of drawing nothing.
#[test]
fn auto_writes_log_lines_on_a_dumb_terminal() {
    let Some(pg) = common::pg() else { return };
    if !std::path::Path::new("/usr/bin/script").exists() {
        let _: Option<()> = pgb_testkit::require_or_skip(
            "/usr/bin/script (util-linux)",
            "it gives the test a pseudo-terminal",
        );
        return;
    }
    let db = pg.sample_db("progressdumb", 50, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let slow = shim(
        dir.path(),
        "slow",
        &format!("sleep 2.5\nexec '{}/pg_dump' \"$@\"", pg.bin.display()),
    );
    let bin_dir = format!("{}:{}", slow.display(), pg.bin.display());
    let env = [
        ("PGB_PG_BIN_DIR", bin_dir.as_str()),
        ("PGB_PROGRESS_INTERVAL", "1"),
    ];
    let backup = common::backup_args(&pg, &repo, &db.name, &[]);
    let line = format!("'{}' {} > /dev/null", common::PGB, backup.join(" "));
    for term in [Some("dumb"), None] {
        let transcript = dir.path().join("tty.log");
        let mut cmd = std::process::Command::new("/usr/bin/script");
        common::without_pgb_env(&mut cmd)
            .args(["-qec", &line, transcript.to_str().unwrap()])
            .envs(env);
        match term {
            Some(t) => cmd.env("TERM", t),
            None => cmd.env_remove("TERM"),
        };
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "TERM={term:?}: {}", stderr(&o));
        let tty = String::from_utf8_lossy(&std::fs::read(&transcript).unwrap()).into_owned();
        let lines: Vec<&str> = tty
            .lines()
            .filter(|l| l.contains("pgb::progress"))
            .collect();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("backup: ") && l.contains("elapsed")),
            "TERM={term:?}: periodic log lines on the terminal: {tty}"
        );
        assert!(
            lines.last().is_some_and(|l| l.contains(" in ")),
            "TERM={term:?}: a summary line ends it: {tty}"
        );
    }
}
