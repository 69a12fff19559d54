//! `pgb report` and the daemon's status page in a real browser: headless Chromium (Debian's
//! `chromium`, which scripts/test.sh installs) loads the report file and the daemon's `/`,
//! and the test reads the DOM the browser built: every set is there, failed drills are marked,
//! and each chart's points carry exactly the numbers of the records (compared with `pgb report
//! --format json`). A page that logs a console error fails. Screenshots go to
//! `target/test-output/report-browser/` (docs/images/ holds copies).
//!
//! Without chromium the tests record a skip (a failure under `PGB_TEST_REQUIRE=1`).

use crate::common;
use crate::sample;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{pgb, pgb_cmd, stderr, stdout};
use serde_json::Value;

/// Where the screenshots and pages are kept: `target/test-output/report-browser`.
fn out_dir() -> PathBuf {
    let target = Path::new(common::PGB)
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/pgb");
    let dir = target.join("test-output").join("report-browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Headless Chromium with a throwaway profile, nothing fetched in the background.
struct Browser {
    bin: PathBuf,
    profile: tempfile::TempDir,
}

impl Browser {
    fn find() -> Option<Self> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let bin = std::env::split_paths(&path)
            .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
            .find(|p| p.is_file());
        let Some(bin) = bin else {
            return pgb_testkit::require_or_skip(
                "chromium",
                "install Debian's chromium (scripts/test.sh does)",
            );
        };
        Some(Self {
            bin,
            profile: tempfile::tempdir().unwrap(),
        })
    }

    /// Runs the browser on `url` with `extra` flags; (stdout, stderr). Killed after two
    /// minutes (a hung browser fails the test instead of hanging it).
    fn run(&self, extra: &[&str], url: &str) -> (String, String) {
        let mut child = Command::new(&self.bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", self.profile.path().display()))
            .args(extra)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut dom = String::new();
        let _ = out.read_to_string(&mut dom);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("chromium did not finish on {url}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (dom, reader.join().unwrap())
    }

    /// The DOM of `url` as the browser built it; fails on any console message.
    fn dom(&self, url: &str) -> String {
        let (dom, log) = self.run(&["--dump-dom"], url);
        let errors = console_errors(&log);
        assert!(
            errors.is_empty(),
            "{url} logged console errors: {errors:#?}"
        );
        assert!(dom.contains("</html>"), "no DOM for {url}: {log}");
        dom
    }

    fn screenshot(&self, url: &str, file: &Path) {
        let shot = format!("--screenshot={}", file.display());
        let (_, log) = self.run(
            &[&shot, "--window-size=1280,2000", "--hide-scrollbars"],
            url,
        );
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "screenshot of {url} is {size} bytes: {log}");
    }
}

/// The console lines in Chromium's log: an uncaught exception or any console message (the
/// pages run no script, so nothing may log).
fn console_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("Uncaught") || l.contains(":CONSOLE"))
        .collect()
}

/// Tags of the chart `id` in `dom`: the `(series, value, failed)` of each point, in order.
fn points(dom: &str, id: &str) -> Vec<(String, u64, bool)> {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no chart {id}"));
    let end = start + dom[start..].find("</svg>").unwrap();
    let attr = |tag: &str, name: &str| -> Option<String> {
        let i = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        Some(tag[i..i + tag[i..].find('"')?].to_owned())
    };
    dom[start..end]
        .split('<')
        .filter(|t| {
            (t.starts_with("circle ") || t.starts_with("rect ")) && t.contains("class=\"pt")
        })
        .map(|t| {
            (
                attr(t, "data-series").unwrap(),
                attr(t, "data-v").unwrap().parse().unwrap(),
                t.contains("class=\"pt bad"),
            )
        })
        .collect()
}

fn series(points: &[(String, u64, bool)], name: &str) -> Vec<u64> {
    points.iter().filter(|p| p.0 == name).map(|p| p.1).collect()
}

fn numbers(rows: &Value, field: &str) -> Vec<u64> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r[field].as_u64().unwrap())
        .collect()
}

/// Checks a page's report against the JSON one: sets, chart points, failed drills. `prefix`:
/// the ids' prefix on the status page (`j0-`), empty on the report's own page.
fn check_report_dom(dom: &str, json: &Value, prefix: &str) {
    let sets = json["sets"].as_array().unwrap();
    assert!(!sets.is_empty());
    for (i, s) in sets.iter().enumerate() {
        let name = s["set"].as_str().unwrap();
        assert!(
            dom.contains(&format!("data-set=\"{name}\"")),
            "set {name} missing"
        );
        let k = format!("{prefix}{i}");
        let sizes = points(dom, &format!("sizes-{k}"));
        assert_eq!(
            series(&sizes, "stored"),
            numbers(&s["backups"], "stored_size"),
            "{name}"
        );
        assert_eq!(
            series(&sizes, "dump"),
            numbers(&s["backups"], "plain_size"),
            "{name}"
        );
        let durations = points(dom, &format!("durations-{k}"));
        assert_eq!(
            series(&durations, "duration"),
            numbers(&s["backups"], "duration_s")
        );
        let rto = points(dom, &format!("rto-{k}"));
        assert_eq!(
            series(&rto, "RTO"),
            numbers(&s["drills"], "rto_ms"),
            "{name}"
        );
        let rpo = points(dom, &format!("rpo-{k}"));
        assert_eq!(
            series(&rpo, "RPO"),
            numbers(&s["drills"], "rpo_s"),
            "{name}"
        );
        // A failed drill is a red square in both charts and a marked row in the table.
        let failed: Vec<bool> = s["drills"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| !d["passed"].as_bool().unwrap())
            .collect();
        assert_eq!(
            rto.iter().map(|p| p.2).collect::<Vec<_>>(),
            failed,
            "{name}"
        );
        assert_eq!(
            rpo.iter().map(|p| p.2).collect::<Vec<_>>(),
            failed,
            "{name}"
        );
        for d in s["drills"].as_array().unwrap() {
            let row = format!(
                "<tr class=\"drill{}\" data-id=\"{}\" data-outcome=\"{}\"",
                if d["passed"].as_bool().unwrap() {
                    ""
                } else {
                    " failed"
                },
                d["backup_id"].as_str().unwrap(),
                d["outcome"].as_str().unwrap()
            );
            assert!(dom.contains(&row), "no row {row}");
        }
        // The target lines are the records' targets.
        if let Some(t) = s["drills"]
            .as_array()
            .unwrap()
            .last()
            .and_then(|d| d["max_rto_ms"].as_u64())
        {
            assert!(dom.contains(&format!("class=\"target\" data-v=\"{t}\"")));
        }
    }
}

/// The tags of the SVG `id` in `dom` with class `class` (`range`, `gap`, `mark`): each one's
/// attributes `names`, in order.
fn chart_tags(dom: &str, id: &str, class: &str, names: &[&str]) -> Vec<Vec<String>> {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no chart {id}"));
    let end = start + dom[start..].find("</svg>").unwrap();
    let attr = |tag: &str, name: &str| -> String {
        let i = tag
            .find(&format!(" {name}=\""))
            .unwrap_or_else(|| panic!("no {name} in {tag}"))
            + name.len()
            + 3;
        tag[i..i + tag[i..].find('"').unwrap()].to_owned()
    };
    dom[start..end]
        .split('<')
        .filter(|t| {
            t.contains(&format!("class=\"{class}\"")) || t.contains(&format!("class=\"{class} "))
        })
        .map(|t| names.iter().map(|n| attr(t, n)).collect())
        .collect()
}

/// Every cluster's window chart draws exactly the JSON's ranges, gaps and base backups.
fn check_window_chart(dom: &str, json: &Value) {
    let physical = &json["physical"];
    let windows = physical["windows"].as_array().unwrap();
    assert!(!windows.is_empty());
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    for w in windows {
        let sys = w["system_identifier"].as_str().unwrap();
        let id = format!("window-{sys}");
        let timelines = w["timelines"].as_array().unwrap();
        let ranges: Vec<Vec<String>> = timelines
            .iter()
            .flat_map(|t| t["ranges"].as_array().unwrap().iter())
            .map(|r| vec![text(&r["from"]), text(&r["to"]), text(&r["from_backup"])])
            .collect();
        assert!(!ranges.is_empty(), "{w:#}");
        assert_eq!(
            chart_tags(dom, &id, "range", &["data-from", "data-to", "data-id"]),
            ranges
        );
        let gaps: Vec<Vec<String>> = timelines
            .iter()
            .flat_map(|t| t["gaps"].as_array().unwrap().iter())
            .filter(|g| g["after"].is_string())
            .map(|g| {
                vec![
                    text(&g["after"]),
                    text(&g["until"]),
                    text(&g["first_missing"]),
                ]
            })
            .collect();
        assert_eq!(
            chart_tags(
                dom,
                &id,
                "gap",
                &["data-after", "data-until", "data-first-missing"]
            ),
            gaps
        );
        let marks: Vec<Vec<String>> = physical["backups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["system_identifier"] == sys)
            .map(|b| vec![text(&b["id"]), text(&b["finished_at"])])
            .collect();
        assert!(!marks.is_empty());
        assert_eq!(chart_tags(dom, &id, "mark", &["data-id", "data-t"]), marks);
    }
}

#[test]
fn the_report_reads_in_a_browser_with_every_set_failure_and_data_point() {
    let Some(browser) = Browser::find() else {
        return;
    };
    // The detector itself: a page that throws is caught.
    let tmp = tempfile::tempdir().unwrap();
    let boom = tmp.path().join("boom.html");
    std::fs::write(
        &boom,
        "<!DOCTYPE html><html><body><script>throw new Error('pgb-boom')</script></body></html>",
    )
    .unwrap();
    let (_, log) = browser.run(&["--dump-dom"], &format!("file://{}", boom.display()));
    assert!(
        !console_errors(&log).is_empty(),
        "a thrown error is not seen: {log}"
    );

    // In a folder named as pgb's default repository, so the page's title reads naturally.
    sample::write_repository(&tmp.path().join("pgb-backups"));
    let repo = "./pgb-backups";
    let in_tmp = |args: &[&str]| pgb_cmd(args).current_dir(tmp.path()).output().unwrap();
    let out = out_dir();
    let html = out.join("report.html");
    let policy = ["--keep-daily", "7", "--keep-weekly", "4"];
    let mut args = vec![
        "report",
        "--repo",
        repo,
        "--since",
        "90d",
        "-o",
        html.to_str().unwrap(),
    ];
    args.extend(policy);
    let o = in_tmp(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut args = vec![
        "report", "--repo", repo, "--since", "90d", "--format", "json",
    ];
    args.extend(policy);
    let o = in_tmp(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let sets: Vec<&str> = json["sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["set"].as_str().unwrap())
        .collect();
    assert_eq!(sets, sample::SETS);
    assert_eq!(json["summary"]["drills_failed"], 2);
    assert_eq!(json["summary"]["unusable"], 2, "{:#}", json["unusable"]);

    // Self-contained: nothing to fetch, no script.
    let raw = std::fs::read_to_string(&html).unwrap();
    assert!(
        !raw.contains("<script") && !raw.contains(" src="),
        "the page loads something"
    );
    let urls = raw.matches("://").count();
    let svg_ns = raw.matches("http://www.w3.org/2000/svg").count();
    assert_eq!(
        urls, svg_ns,
        "the page names a URL besides the SVG namespace"
    );

    let url = format!("file://{}", html.display());
    let dom = browser.dom(&url);
    check_report_dom(&dom, &json, "");
    // Figures with captions and accessible charts, the last failure with its cause.
    assert!(dom.matches("<figure").count() >= 4 && dom.contains("<figcaption"));
    assert!(
        dom.contains("role=\"img\"") && dom.contains("aria-labelledby=\"rto-0-title rto-0-desc\"")
    );
    let cause = json["last_failure"]["cause"].as_str().unwrap();
    let lf = &dom[dom.find("id=\"last-failure\"").unwrap()..];
    assert!(
        lf[..lf.find("</section>").unwrap()].contains(cause),
        "{cause}"
    );
    // The unusable records, the next prune and the WAL gap are shown.
    assert!(dom.contains("checksum mismatch") && dom.contains("-ffffff"));
    assert!(dom.contains("REMOVE (no rule keeps it)"));
    assert!(dom.contains(
        "after <code>000000010000000000000017</code> until <code>00000001000000000000001B</code>"
    ));
    // The recoverable window as a timeline: its bars, gaps and base backup marks are the
    // JSON's ranges, gaps and physical backups.
    check_window_chart(&dom, &json);
    let w = &json["physical"]["windows"][0];
    assert_eq!(w["gaps"], 1);
    let t = &w["timelines"][0];
    assert_eq!(t["ranges"].as_array().unwrap().len(), 2, "{t:#}");
    assert_eq!(t["ranges"][0]["reaches_end"], false, "{t:#}");
    assert_eq!(t["ranges"][1]["reaches_end"], true, "{t:#}");
    let gap = &t["gaps"][0];
    assert_eq!(gap["first_missing"], "000000010000000000000018", "{gap:#}");
    assert_eq!(gap["affects"].as_array().unwrap().len(), 2, "{gap:#}");
    assert_eq!(gap["after"], t["ranges"][0]["to"], "{t:#}");
    assert_eq!(gap["until"], t["ranges"][1]["from"], "{t:#}");

    browser.screenshot(&url, &out.join("report.png"));
}

#[test]
fn a_report_of_nothing_says_so_in_the_browser() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let html = tmp.path().join("empty.html");
    let o = pgb(&[
        "report",
        "--repo",
        empty.to_str().unwrap(),
        "--since",
        "2099-01-01",
        "-o",
        html.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dom = browser.dom(&format!("file://{}", html.display()));
    assert!(
        dom.contains("no usable backups in this repository"),
        "{dom}"
    );
    assert!(dom.contains("the window starts in the future"));
    assert!(dom.contains("No physical backups in this repository."));
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on 127.0.0.1:port; the whole response, or `None` while nothing listens.
fn get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn the_daemons_status_page_reads_in_a_browser_and_shows_no_secret() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    sample::write_repository(&repo);
    let config = tmp.path().join("pgb.toml");
    let mut toml = String::new();
    for db in ["billing", "shop"] {
        let _ = write!(
            toml,
            "[jobs.{db}]\ndatabase = \"postgres://app@{}/{db}\"\nrepository = \"{}\"\n\
             schedule = \"0 3 1 1 *\"\nkeep_daily = 7\nkeep_weekly = 4\n\
             [jobs.{db}.drill]\nmax_rto = \"45m\"\nmax_rpo = \"26h\"\n\
             [jobs.{db}.notify]\nwebhook_url_env = \"PGB_TEST_HOOK\"\n",
            sample::SERVER,
            repo.display()
        );
    }
    std::fs::write(&config, toml).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut daemon = pgb_cmd(&[
        "daemon",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        &listen,
    ])
    .env(
        "PGB_TEST_HOOK",
        "https://hooks.example.invalid/services/T000/B000/SECRETTOKEN",
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    // Ready once the reports are built (in the background, right after start).
    let deadline = Instant::now() + Duration::from_secs(60);
    let page = loop {
        match get(port, "/") {
            Some(p) if p.contains("data-set=\"db.example:5432/shop\"") => break p,
            _ if Instant::now() > deadline => {
                let _ = daemon.kill();
                panic!("the status page never showed the reports");
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let url = format!("http://{listen}/");
    let dom = browser.dom(&url);
    let healthz = get(port, "/healthz").unwrap();
    let metrics = get(port, "/metrics").unwrap();
    browser.screenshot(&url, &out_dir().join("status.png"));
    common::kill(daemon.id(), libc::SIGTERM);
    let _ = daemon.wait();

    for secret in [
        "SECRETTOKEN",
        "hooks.example.invalid",
        "PGB_TEST_HOOK",
        "postgres://",
    ] {
        assert!(!dom.contains(secret), "the status page shows {secret}");
    }
    assert!(dom.contains("http-equiv=\"refresh\""));
    for job in ["billing", "shop"] {
        assert!(
            dom.contains(&format!("<tr class=\"job\" data-job=\"{job}\"")),
            "{job}"
        );
    }
    assert!(
        dom.contains("No job is running.") && dom.contains("-01-01 03:00 UTC"),
        "{dom}"
    );
    // Each job's report is its own set's, with the same data as `pgb report --job`.
    for (i, job) in ["billing", "shop"].iter().enumerate() {
        let o = pgb(&[
            "report",
            "--config",
            config.to_str().unwrap(),
            "--job",
            job,
            "--since",
            "30d",
            "--format",
            "json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let json: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(json["sets"].as_array().unwrap().len(), 1);
        check_report_dom(&dom, &json, &format!("j{i}-"));
    }
    // The endpoints for machines are unchanged.
    assert!(healthz.starts_with("HTTP/1.1 200") || healthz.starts_with("HTTP/1.1 503"));
    assert!(healthz.contains("\"jobs\"") && metrics.contains("pgb_backups"));
}
