//! The daemon's status page at `GET /`: each job's report (its own set, its policy and drill
//! targets, the last [`STATUS_WINDOW`]) built in the background with the metrics, and the
//! scheduler's view of the jobs rendered on request ([`pgb_ops::report::status_html`]), with
//! how far each running job got ([`super::LiveRuns`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use pgb_config::ResolvedJob;
use pgb_core::Repository;
use pgb_open::EnvLookup;
use pgb_ops::report::{JobStatus, StatusPage};
use pgb_ops::{Report, ReportOptions};
use pgb_scheduler::HealthHandle;
use time::OffsetDateTime;

use super::{DaemonHost, LiveRuns};
use crate::PlanError;

/// The status page reloads itself this often (seconds).
pub const PAGE_REFRESH_S: u32 = 30;

/// While a job runs, the status page reloads itself this often (seconds): its progress moves.
pub const RUNNING_REFRESH_S: u32 = 5;

/// The window of the reports on the status page.
pub const STATUS_WINDOW: time::Duration = time::Duration::days(30);

/// Status reports are rebuilt after each run of their job and every this many metrics
/// refreshes (10 minutes): a report reads every drill and verification record.
pub const REPORT_EVERY_TICKS: u32 = 10;

/// A job's report options, as `pgb report --job NAME --since 30d` builds them.
fn options(
    job: &ResolvedJob,
    env: &dyn EnvLookup,
) -> Result<(Repository, ReportOptions), PlanError> {
    let now = OffsetDateTime::now_utc();
    let (repo, check) = crate::job_check(job, env, now)?;
    let mut o = ReportOptions::new(pgb_open::redact_url(&job.repository), now)
        .with_job(job.name.clone())
        .with_auth_key(check.auth_key.clone());
    // Without a host in its URL (or for a physical job, whose set is its cluster's system
    // identifier) the job's set is unknown until it connects: every set.
    if let Ok(set) = crate::job_retention_set(job, env) {
        o = o.with_sets([set]);
    }
    if let Some(p) = &job.retention {
        o = o.with_policy(
            Arc::new(p.clone()),
            format!("the keep_* keys of job {}", job.name),
        );
    }
    if let Some(d) = &job.drill {
        o = o.with_targets(d.max_rto, d.max_rpo);
    }
    Ok((repo, o))
}

/// Every job's last report, rebuilt in the background.
pub(super) struct StatusReports {
    sources: BTreeMap<String, (Repository, ReportOptions)>,
    reports: Mutex<BTreeMap<String, Result<Report, String>>>,
}

impl StatusReports {
    /// The reports of `jobs`; a job whose repository or keys cannot be opened shows why
    /// (worded by `host`).
    pub(super) fn new(jobs: &[ResolvedJob], env: &dyn EnvLookup, host: &dyn DaemonHost) -> Self {
        let mut sources = BTreeMap::new();
        let mut reports = BTreeMap::new();
        for j in jobs {
            match options(j, env) {
                Ok(s) => {
                    sources.insert(j.name.clone(), s);
                    reports.insert(j.name.clone(), Err("not built yet".to_owned()));
                }
                Err(e) => {
                    reports.insert(j.name.clone(), Err(host.describe(e.into())));
                }
            }
        }
        Self {
            sources,
            reports: Mutex::new(reports),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Result<Report, String>>> {
        self.reports.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Rebuilds `job`'s report now.
    pub(super) async fn refresh(&self, job: &str) {
        let Some((repo, options)) = self.sources.get(job) else {
            return;
        };
        let now = OffsetDateTime::now_utc();
        let mut o = options.clone().with_since(now - STATUS_WINDOW, "30d");
        o.now = now;
        let r = pgb_ops::report(repo, &o).await.map_err(|e| e.to_string());
        self.lock().insert(job.to_owned(), r);
    }

    /// The page: the scheduler's state now, how far the running jobs got and the last
    /// reports (no storage access).
    pub(super) fn page(&self, health: &HealthHandle, live: &LiveRuns) -> String {
        let ts = |t: chrono::DateTime<chrono::Utc>| {
            OffsetDateTime::from_unix_timestamp(t.timestamp()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
        };
        let state = health.snapshot(chrono::Utc::now());
        let mut live = live.snapshot();
        let refresh = if state.jobs.values().any(|h| h.running) || !live.is_empty() {
            RUNNING_REFRESH_S
        } else {
            PAGE_REFRESH_S
        };
        let mut p = StatusPage::new(OffsetDateTime::now_utc(), refresh);
        p.alive = state.alive;
        p.healthy = state.healthy;
        p.jobs = state
            .jobs
            .iter()
            .map(|(name, h)| {
                let mut j = JobStatus::new(name.clone());
                j.next_run = h.next_run.map(ts);
                // The runner's entry goes just before the scheduler's flag: either shows it.
                j.progress = live.remove(name);
                j.running = h.running || j.progress.is_some();
                j.last_run = h
                    .last_run
                    .as_ref()
                    .map(|r| (ts(r.started_at), ts(r.finished_at), r.ok, r.error.clone()));
                j.last_success = h.last_success.map(ts);
                j.fresh = h.fresh;
                j
            })
            .collect();
        p.reports = self
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pgb_ops::report::status_html(&p)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::daemon::DefaultHost;
    use crate::daemon::tests::jobs;

    #[tokio::test]
    async fn each_jobs_report_is_built_on_refresh_and_a_job_that_cannot_open_shows_why() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().display();
        let env = HashMap::new();
        let j = jobs(
            &format!(
                "[jobs.shop]\ndatabase = \"postgres://app@db/shop\"\nrepository = \"{dir}\"\n\
                 keep_last = 3\n[jobs.gone]\nrepository = \"{dir}/missing\"\n"
            ),
            &env,
        );
        let s = StatusReports::new(&j, &env, &DefaultHost);
        let (_, o) = &s.sources["shop"];
        assert_eq!(o.job.as_deref(), Some("shop"));
        assert!(!s.sources.contains_key("gone"));
        assert!(matches!(&s.lock()["shop"], Err(m) if m == "not built yet"));
        assert!(matches!(&s.lock()["gone"], Err(m) if m.contains("missing")));
        s.refresh("shop").await;
        assert!(
            s.lock()["shop"].is_ok(),
            "{:?}",
            s.lock()["shop"].as_ref().err()
        );
        let page = s.page(&HealthHandle::default(), &LiveRuns::default());
        assert!(page.contains("shop") && page.contains("gone"), "{page}");
    }

    #[tokio::test]
    async fn the_page_shows_how_far_a_running_job_got_and_reloads_sooner_meanwhile() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().display();
        let env = HashMap::new();
        let j = jobs(
            &format!(
                "[jobs.shop]\ndatabase = \"postgres://app@db/shop\"\nrepository = \"{dir}\"\n\
                 schedule = \"30 2 * * *\"\n"
            ),
            &env,
        );
        let entries = crate::daemon::schedule(&j, &env).await.unwrap();
        let runner =
            crate::daemon::Runner::new(j.clone(), Arc::new(env.clone()), Arc::new(DefaultHost));
        let live = runner.live_runs();
        let health = pgb_scheduler::Scheduler::new(entries, Arc::new(runner)).health();
        let s = StatusReports::new(&j, &env, &DefaultHost);
        let run = live.start("shop", "starting");
        run.record(&pgb_core::Event::Progress {
            plain_bytes: 5 << 20,
            stored_bytes: 2 << 20,
        });
        let page = s.page(&health, &live);
        assert!(
            page.contains("<strong>shop</strong>: starting, 5.0 MiB read, 2.0 MiB stored"),
            "{page}"
        );
        assert!(
            page.contains("<td>running: starting, 5.0 MiB read"),
            "{page}"
        );
        assert!(
            page.contains(&format!("content=\"{RUNNING_REFRESH_S}\"")),
            "{page}"
        );
        drop(run);
        let page = s.page(&health, &live);
        assert!(page.contains("No job is running."), "{page}");
        assert!(!page.contains("MiB read"), "{page}");
        assert!(
            page.contains(&format!("content=\"{PAGE_REFRESH_S}\"")),
            "{page}"
        );
    }
}
