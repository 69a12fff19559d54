//! The daemon's status page (`GET /`) shows a running job with how far it got (phase, bytes
//! read and stored, time, rate, a `<progress>`), live while the backup runs through a slowed
//! pg_dump, and the outcome without any progress once it ended.

use std::time::{Duration, Instant};

use crate::common;

/// The address the daemon bound (`--listen 127.0.0.1:0`), from its start line.
fn bound_address(log: &std::path::Path, start: Instant) -> String {
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("daemon started")) {
            let at = line
                .find("listen=")
                .expect("the start line names the address")
                + 7;
            return line[at..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
        }
        assert!(start.elapsed() < Duration::from_secs(60), "started: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The "Running now" section of a status page.
fn running_section(page: &str) -> &str {
    page.split("<section id=\"running\"")
        .nth(1)
        .and_then(|s| s.split("</section>").next())
        .expect("a Running now section")
}

/// `data-read-bytes` of job `job`'s entry under "Running now", when it has one.
fn read_bytes(page: &str, job: &str) -> Option<u64> {
    let running = running_section(page);
    let entry = running.split(&format!("data-job=\"{job}\"")).nth(1)?;
    let at = entry.find("data-read-bytes=\"")? + "data-read-bytes=\"".len();
    entry[at..].split('"').next()?.parse().ok()
}

#[test]
fn the_status_page_shows_a_running_jobs_progress_live_and_its_outcome_after() {
    let Some(pg) = common::pg() else { return };
    // About 12 MB of pg_dump output: several progress events (one per 4 MiB).
    let db = pg.sample_db("status_progress", 200_000, common::RowText::Md5);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    // 8 KiB every 5 ms: the backup streams for several seconds.
    let slow = common::slow_pg_dump(&pg, dir.path(), 0.005);
    let bin_dir = format!("{}:{}", slow.display(), pg.bin.display());
    let config = dir.path().join("pgb.toml");
    // Never backed up, `catch_up`: the missed 03:00 slot runs as soon as the daemon starts.
    std::fs::write(
        &config,
        format!(
            "[jobs.shop]\ndatabase = \"{}\"\nrepository = \"{}\"\nschedule = \"0 3 * * *\"\n\
             catch_up = true\n",
            pg.url(&db.name),
            repo.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("daemon.log");
    let mut daemon = common::KillOnDrop(
        common::pgb_cmd(&[
            "daemon",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ])
        .env("PGB_PG_BIN_DIR", &bin_dir)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap(),
    );
    let start = Instant::now();
    let addr = bound_address(&log, start);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    // While the backup streams: the job under "Running now" with bytes read, live.
    let mut seen = Vec::new();
    let running = loop {
        let (status, page) = common::http_get(&addr, "/");
        assert_eq!(status, 200, "{page}");
        if let Some(n) = read_bytes(&page, "shop") {
            seen.push(n);
            if n > 0 {
                break page;
            }
        }
        assert!(
            common::ids(&repo).is_empty(),
            "the backup committed before the page showed its bytes (seen {seen:?}): {}",
            log_text()
        );
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no progress on the page (seen {seen:?}): {page}\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(150));
    };
    let section = running_section(&running);
    eprintln!("{section}");
    assert!(
        section.contains("<strong>shop</strong>: backing up, ") && section.contains(" read, "),
        "{section}"
    );
    assert!(
        section.contains(" stored, ") && section.contains("/s"),
        "{section}"
    );
    // A first backup: the size to expect is unknown, so the bar has no maximum.
    assert!(
        section.contains("<progress aria-label=\"shop progress\"></progress>"),
        "{section}"
    );
    assert!(
        running.contains("<td>running: backing up, "),
        "the jobs table says it too: {running}"
    );
    assert!(
        running.contains("<meta http-equiv=\"refresh\" content=\"5\">"),
        "reloads sooner while a job runs"
    );
    assert!(
        !running.contains(&pg.url(&db.name)),
        "names and sizes only, no URL"
    );

    // Once it committed: the outcome, and no progress left.
    let done = loop {
        let (_, page) = common::http_get(&addr, "/");
        if common::ids(&repo).len() == 1
            && page.contains("No job is running.")
            && page.contains("succeeded")
        {
            break page;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the run ended: {page}\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(!done.contains("data-read-bytes"), "{done}");
    assert!(!done.contains("<progress"), "{done}");
    assert!(!done.contains("running: "), "{done}");
    assert!(
        done.contains("<meta http-equiv=\"refresh\" content=\"30\">"),
        "{done}"
    );
    let row = done
        .split("data-job=\"shop\"><th scope=\"row\">shop</th>")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap();
    assert!(row.starts_with("<td>idle</td>"), "{row}");
    assert!(
        row.contains("<span class=\"good\">succeeded</span>"),
        "{row}"
    );

    common::kill(daemon.0.id(), libc::SIGTERM);
    assert_eq!(daemon.0.wait().unwrap().code(), Some(0), "{}", log_text());
}
