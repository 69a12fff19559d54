//! The daemon's status page: its jobs as the scheduler sees them (next run, last outcome,
//! running now) above each job's report. Read-only, refreshing itself, and without secrets:
//! the caller passes only names, times and one-line causes, and every URL in a cause is cut
//! down to its scheme and host here (no credentials, no webhook path or query).

use std::fmt::Write as _;

use serde::Serialize;
use time::OffsetDateTime;

use super::Report;
use super::fmt::{self, esc};

/// One job as the daemon's scheduler sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobStatus {
    /// The job's (or its drill's: `shop/drill`) name.
    pub name: String,
    /// The next planned run.
    pub next_run: Option<OffsetDateTime>,
    /// Running now.
    pub running: bool,
    /// The last run: start, end, whether it succeeded, its one-line cause.
    pub last_run: Option<(OffsetDateTime, OffsetDateTime, bool, Option<String>)>,
    /// The newest success (this process, or the repository).
    pub last_success: Option<OffsetDateTime>,
    /// Whether the newest success is within the job's maximum age.
    pub fresh: bool,
    /// How far the running run got (`None` when not running or not known yet).
    pub progress: Option<RunProgressSnapshot>,
}

/// How far a running run got, as the daemon saw it last: only names, sizes and times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RunProgressSnapshot {
    /// When the run started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// What it is doing (`starting`, `backing up`, `committing`, `verifying`, ...), when known.
    pub phase: Option<String>,
    /// Plain bytes read so far (from the source; while verifying, from the backup).
    pub read_bytes: u64,
    /// Their stored (compressed, encrypted) size so far.
    pub stored_bytes: u64,
    /// The plain bytes expected (the previous backup's size), when known.
    pub total_bytes: Option<u64>,
    /// Milliseconds since it started.
    pub elapsed_ms: u64,
}

impl RunProgressSnapshot {
    /// A run started at `started_at`, `elapsed_ms` ago, nothing read yet.
    pub fn new(started_at: OffsetDateTime, elapsed_ms: u64) -> Self {
        Self {
            started_at,
            phase: None,
            read_bytes: 0,
            stored_bytes: 0,
            total_bytes: None,
            elapsed_ms,
        }
    }

    /// Plain bytes read per second so far (`None` before the first millisecond).
    pub fn bytes_per_second(&self) -> Option<u64> {
        (self.elapsed_ms > 0).then(|| {
            u64::try_from(u128::from(self.read_bytes) * 1000 / u128::from(self.elapsed_ms))
                .unwrap_or(u64::MAX)
        })
    }

    /// `backing up, 412 MiB read, 96 MiB stored, 37s, 11 MiB/s` (with the percentage of the
    /// expected size when known).
    fn words(&self) -> String {
        let mut w = self.phase.clone().unwrap_or_else(|| "running".to_owned());
        let _ = write!(w, ", {} read", fmt::bytes(self.read_bytes));
        if let Some(t) = self.total_bytes.filter(|t| *t > 0) {
            let pct = (u128::from(self.read_bytes) * 100 / u128::from(t)).min(100);
            let _ = write!(w, " ({pct}% of ~{})", fmt::bytes(t));
        }
        let _ = write!(
            w,
            ", {} stored, {}",
            fmt::bytes(self.stored_bytes),
            fmt::secs(self.elapsed_ms / 1000)
        );
        if let Some(r) = self.bytes_per_second() {
            let _ = write!(w, ", {}/s", fmt::bytes(r));
        }
        w
    }

    /// A `<progress>`: with `max` when the expected size is known, indeterminate when not.
    fn bar(&self, job: &str) -> String {
        match self.total_bytes.filter(|t| *t > 0) {
            Some(t) => format!(
                "<progress value=\"{}\" max=\"{t}\" aria-label=\"{} progress\"></progress>",
                self.read_bytes.min(t),
                esc(job)
            ),
            None => format!("<progress aria-label=\"{} progress\"></progress>", esc(job)),
        }
    }

    /// The machine-readable attributes of a running job's element.
    fn data(&self) -> String {
        format!(
            " data-read-bytes=\"{}\" data-stored-bytes=\"{}\" data-started=\"{}\"",
            self.read_bytes,
            self.stored_bytes,
            fmt::rfc3339(self.started_at)
        )
    }
}

impl JobStatus {
    /// A job called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            fresh: true,
            ..Self::default()
        }
    }
}

/// What the status page shows.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StatusPage {
    /// When the page was rendered.
    pub generated_at: OffsetDateTime,
    /// Seconds until the browser reloads the page.
    pub refresh_s: u32,
    /// The scheduler ticked recently.
    pub alive: bool,
    /// Alive and every job fresh (what `/healthz` answers).
    pub healthy: bool,
    /// Every scheduled job and drill.
    pub jobs: Vec<JobStatus>,
    /// Each job's last report, or why there is none yet.
    pub reports: Vec<(String, Result<Report, String>)>,
}

impl StatusPage {
    /// A page rendered at `generated_at`, reloading every `refresh_s` seconds.
    pub fn new(generated_at: OffsetDateTime, refresh_s: u32) -> Self {
        Self {
            generated_at,
            refresh_s,
            alive: false,
            healthy: false,
            jobs: Vec::new(),
            reports: Vec::new(),
        }
    }
}

/// Cuts every URL in `text` down to `scheme://host`: a cause may quote a URL, and URLs carry
/// passwords (`user:secret@`), webhook tokens (in the path) and signed queries.
pub(crate) fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.'))
            .map_or(0, |p| p + 1);
        out.push_str(&rest[..i + 3]);
        let after = &rest[i + 3..];
        let end = after
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '>' || c == ')')
            .unwrap_or(after.len());
        let url = &after[..end];
        let authority = url.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        out.push_str(host);
        if authority.contains('@') || url.len() > authority.len() {
            out.push_str("/…");
        }
        let _ = start;
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The status page as HTML.
pub fn status_html(p: &StatusPage) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<header><h1>pgb daemon</h1><p class=\"meta\">{} · generated {} · reloads every {} s · \
         read-only</p></header><main>",
        if p.healthy {
            "<strong class=\"good\">healthy</strong>"
        } else if p.alive {
            "<strong class=\"bad\">unhealthy: a job is overdue</strong>"
        } else {
            "<strong class=\"bad\">unhealthy: the scheduler is not ticking</strong>"
        },
        fmt::time(p.generated_at),
        p.refresh_s
    );
    let running: Vec<&JobStatus> = p.jobs.iter().filter(|j| j.running).collect();
    b.push_str("<section id=\"running\" aria-labelledby=\"running-h\"><h2 id=\"running-h\">Running now</h2>");
    if running.is_empty() {
        b.push_str("<p>No job is running.</p>");
    } else {
        b.push_str("<ul>");
        for j in running {
            match &j.progress {
                Some(pr) => {
                    let _ = write!(
                        b,
                        "<li class=\"running\" data-job=\"{}\"{}><strong>{}</strong>: {} {}</li>",
                        esc(&j.name),
                        pr.data(),
                        esc(&j.name),
                        esc(&pr.words()),
                        pr.bar(&j.name)
                    );
                }
                None => {
                    let _ = write!(
                        b,
                        "<li class=\"running\" data-job=\"{}\"><strong>{}</strong> is running</li>",
                        esc(&j.name),
                        esc(&j.name)
                    );
                }
            }
        }
        b.push_str("</ul>");
    }
    b.push_str(
        "</section><section id=\"jobs\" aria-labelledby=\"jobs-h\"><h2 id=\"jobs-h\">Jobs</h2>",
    );
    if p.jobs.is_empty() {
        b.push_str("<p>No scheduled job.</p>");
    } else {
        b.push_str(
            "<table class=\"jobs\"><caption>Scheduled jobs and drills</caption><thead><tr>\
             <th scope=\"col\">Job</th><th scope=\"col\">State</th><th scope=\"col\">Next run</th>\
             <th scope=\"col\">Last run</th><th scope=\"col\">Last success</th></tr></thead><tbody>",
        );
        for j in &p.jobs {
            let failed = j.last_run.as_ref().is_some_and(|r| !r.2);
            let last = match &j.last_run {
                None => "not run by this daemon yet".to_owned(),
                Some((_, end, true, _)) => {
                    format!("<span class=\"good\">succeeded</span> {}", fmt::time(*end))
                }
                Some((_, end, false, cause)) => format!(
                    "<span class=\"bad\">FAILED</span> {}: {}",
                    fmt::time(*end),
                    esc(&scrub(cause.as_deref().unwrap_or("no cause recorded")))
                ),
            };
            let _ = write!(
                b,
                "<tr class=\"job{}{}\" data-job=\"{}\"><th scope=\"row\">{}</th><td>{}</td><td>{}</td>\
                 <td>{last}</td><td>{}</td></tr>",
                if failed { " failed" } else { "" },
                if j.running { " running" } else { "" },
                esc(&j.name),
                esc(&j.name),
                match (&j.progress, j.running) {
                    (Some(pr), true) => format!("running: {}", esc(&pr.words())),
                    (None, true) => "running".to_owned(),
                    _ if j.fresh => "idle".to_owned(),
                    _ => "<span class=\"bad\">overdue</span>".to_owned(),
                },
                j.next_run.map_or("none".to_owned(), fmt::time),
                j.last_success.map_or("never".to_owned(), fmt::time),
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>");
    for (i, (job, report)) in p.reports.iter().enumerate() {
        let _ = write!(
            b,
            "<section class=\"job-report\" id=\"job-{i}\" data-job=\"{}\" aria-labelledby=\"job-{i}-h\">\
             <h2 id=\"job-{i}-h\">Job {}</h2>",
            esc(job),
            esc(job)
        );
        match report {
            Ok(r) => super::html::body(&mut b, r, 3, &format!("j{i}-")),
            Err(e) => {
                let _ = write!(b, "<p class=\"bad\">No report: {}</p>", esc(&scrub(e)));
            }
        }
        b.push_str("</section>");
    }
    b.push_str("</main><footer><p>Served by <code>pgb daemon --listen</code>; <a href=\"/healthz\">/healthz</a> and <a href=\"/metrics\">/metrics</a> for machines.</p></footer>");
    super::html::page("pgb daemon", Some(p.refresh_s), &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_paths_and_queries() {
        assert_eq!(
            scrub("POST https://hooks.slack.com/services/T0/B0/secret failed: 500"),
            "POST https://hooks.slack.com/… failed: 500"
        );
        assert_eq!(
            scrub("cannot connect to postgres://app:pw@db:5432/shop (refused)"),
            "cannot connect to postgres://db:5432/… (refused)"
        );
        assert_eq!(scrub("s3://bucket ok"), "s3://bucket ok");
        assert_eq!(scrub("no url here"), "no url here");
    }

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_780_000_000 + s).unwrap()
    }

    fn running_page(progress: Option<RunProgressSnapshot>) -> String {
        let mut p = StatusPage::new(at(60), 5);
        let mut shop = JobStatus::new("shop");
        shop.running = progress.is_some();
        shop.progress = progress;
        p.jobs = vec![shop, JobStatus::new("shop/drill")];
        status_html(&p)
    }

    #[test]
    fn a_running_job_shows_its_phase_bytes_time_and_rate_with_a_progress_bar() {
        let mut pr = RunProgressSnapshot::new(at(23), 37_000);
        pr.phase = Some("backing up".into());
        pr.read_bytes = 412 << 20;
        pr.stored_bytes = 96 << 20;
        assert_eq!(pr.bytes_per_second(), Some((412 << 20) / 37));
        let page = running_page(Some(pr.clone()));
        let running = page
            .split("<section id=\"running\"")
            .nth(1)
            .and_then(|s| s.split("</section>").next())
            .unwrap();
        assert!(
            running.contains(
                "<strong>shop</strong>: backing up, 412 MiB read, 96 MiB stored, 37s, 11 MiB/s"
            ),
            "{running}"
        );
        assert!(
            running.contains(&format!("data-read-bytes=\"{}\"", 412u64 << 20)),
            "{running}"
        );
        // The size to expect is unknown: an indeterminate bar (no value, no max).
        assert!(
            running.contains("<progress aria-label=\"shop progress\"></progress>"),
            "{running}"
        );
        assert!(!running.contains("No job is running"), "{running}");
        let row = page
            .split("<tr class=\"job running\" data-job=\"shop\">")
            .nth(1)
            .and_then(|s| s.split("</tr>").next())
            .unwrap();
        assert!(
            row.contains("<td>running: backing up, 412 MiB read"),
            "{row}"
        );

        // With the previous backup's size: a bar with its max, and the share said in words.
        pr.total_bytes = Some(824 << 20);
        let page = running_page(Some(pr));
        assert!(
            page.contains(&format!(
                "<progress value=\"{}\" max=\"{}\" aria-label=\"shop progress\">",
                412u64 << 20,
                824u64 << 20
            )),
            "{page}"
        );
        assert!(page.contains("412 MiB read (50% of ~824 MiB)"), "{page}");
    }

    #[test]
    fn without_a_running_job_the_page_shows_no_progress() {
        let page = running_page(None);
        assert!(page.contains("<p>No job is running.</p>"), "{page}");
        assert!(!page.contains("<progress"), "{page}");
        assert!(!page.contains("data-read-bytes"), "{page}");
        assert!(!page.contains(" read,"), "{page}");
    }

    #[test]
    fn the_progress_serializes_as_names_sizes_and_times() {
        let mut pr = RunProgressSnapshot::new(at(0), 1500);
        pr.phase = Some("verifying".into());
        pr.read_bytes = 3000;
        let v = serde_json::to_value(&pr).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "started_at": "2026-05-28T20:26:40Z",
                "phase": "verifying",
                "read_bytes": 3000,
                "stored_bytes": 0,
                "total_bytes": null,
                "elapsed_ms": 1500,
            })
        );
    }
}
