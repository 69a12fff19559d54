//! The daemon's status page: its jobs as the scheduler sees them (next run, last outcome,
//! running now) above each job's report. Read-only, refreshing itself, and without secrets:
//! the caller passes only names, times and one-line causes, and every URL in a cause is cut
//! down to its scheme and host here (no credentials, no webhook path or query).

use std::fmt::Write as _;

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
            let _ = write!(
                b,
                "<li class=\"running\" data-job=\"{}\"><strong>{}</strong> is running</li>",
                esc(&j.name),
                esc(&j.name)
            );
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
                if j.running {
                    "running"
                } else if j.fresh {
                    "idle"
                } else {
                    "<span class=\"bad\">overdue</span>"
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
}
