//! The daemon's `/metrics`: the metrics of `pgb check --textfile` per job, computed from each
//! job's repository in the background, and the status page ([`super::status`]).
//!
//! A request only reads the last rendered reports: storage is read by
//! [`DaemonMetrics::refresh_loop`] at start, after each run of a job, and every
//! [`METRICS_REFRESH`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pgb_config::ResolvedJob;
use pgb_core::{Listing, Repository};
use pgb_open::EnvLookup;
use pgb_ops::{CheckOptions, CheckReport};
use pgb_scheduler::{CancellationToken, Clock, Endpoints, HealthHandle, MetricsFn, PageFn};
use tokio::sync::mpsc;

use super::status::{REPORT_EVERY_TICKS, StatusReports};
use super::{DaemonHost, LiveRuns};

/// How often every job's repository is checked again for `/metrics`, besides after its runs
/// (a `pgb run` from cron or another host shows up within this time).
pub const METRICS_REFRESH: Duration = Duration::from_secs(60);

/// One job's metrics source.
struct Source {
    repo: Repository,
    options: CheckOptions,
    /// Which listing it reads: jobs with the same repository URL and key sources share one
    /// listing per refresh (the listing's verdicts depend on the authentication keys).
    shared: (String, pgb_config::EncryptionSettings),
}

/// Every job's last check report and status report, refreshed in the background and rendered
/// on request: the daemon's `/metrics` and status page.
pub struct DaemonMetrics {
    sources: BTreeMap<String, Source>,
    reports: Mutex<BTreeMap<String, CheckReport>>,
    health: HealthHandle,
    /// Each job's report for the status page.
    status: StatusReports,
    /// How far the running jobs got, for the status page.
    live: LiveRuns,
    warnings: Vec<String>,
}

impl std::fmt::Debug for DaemonMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonMetrics")
            .field("jobs", &self.sources.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl DaemonMetrics {
    /// Metrics of `jobs`, each checked as `pgb check --job` does ([`crate::job_check`]), with
    /// their repositories opened; `health` (the scheduler's) gets each job's newest backup
    /// found in its repository, so runs outside the daemon count as successes. A job whose
    /// repository or keys cannot be opened has no metrics ([`Self::warnings`] says why, worded
    /// by `host`) and its status page entry shows why.
    pub fn new(
        jobs: &[ResolvedJob],
        env: &dyn EnvLookup,
        health: HealthHandle,
        host: &dyn DaemonHost,
    ) -> Self {
        let mut sources = BTreeMap::new();
        let mut warnings = Vec::new();
        for j in jobs {
            match crate::job_check(j, env, time::OffsetDateTime::now_utc()) {
                Ok((repo, options)) => {
                    let shared = (j.repository.clone(), j.encryption.clone());
                    let src = Source {
                        repo,
                        options,
                        shared,
                    };
                    sources.insert(j.name.clone(), src);
                }
                Err(e) => warnings.push(format!(
                    "no metrics for job {}: {}",
                    j.name,
                    host.describe(e.into())
                )),
            }
        }
        Self {
            sources,
            reports: Mutex::new(BTreeMap::new()),
            health,
            status: StatusReports::new(jobs, env, host),
            live: LiveRuns::default(),
            warnings,
        }
    }

    /// Shows how far the running jobs got on the status page: the runner's
    /// ([`super::Runner::live_runs`]). Without it the page says only which jobs run.
    #[must_use]
    pub fn with_live_runs(mut self, live: LiveRuns) -> Self {
        self.live = live;
        self
    }

    /// Why some jobs have no metrics: one line per job (`no metrics for job NAME: ...`).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The jobs in groups that share one listing (same repository and key sources), in
    /// name order.
    fn listing_groups(&self) -> Vec<Vec<&str>> {
        groups(self.sources.iter().map(|(j, s)| (j.as_str(), &s.shared)))
    }

    /// Checks every job of `group` over one listing of their shared repository.
    async fn refresh_group(&self, group: &[&str], report: bool) {
        let Some(first) = group.first().and_then(|j| self.sources.get(*j)) else {
            return;
        };
        let listing = first.repo.list().await;
        for job in group {
            self.refresh_with(job, report, Some(listing.as_ref())).await;
        }
    }

    /// Checks `job`'s repository now and keeps the report; with `report`, rebuilds its status
    /// page report too.
    pub async fn refresh(&self, job: &str, report: bool) {
        self.refresh_with(job, report, None).await;
    }

    /// [`Self::refresh`] over `listing` when given (made of the job's repository with its
    /// keys), else over a listing of its own.
    async fn refresh_with(
        &self,
        job: &str,
        report: bool,
        listing: Option<Result<&Listing, &pgb_core::Error>>,
    ) {
        if report {
            self.status.refresh(job).await;
        }
        let Some(src) = self.sources.get(job) else {
            return;
        };
        let mut opts = src.options.clone();
        opts.now = time::OffsetDateTime::now_utc();
        let report = match listing {
            Some(l) => pgb_ops::check_listed(&src.repo, l, &opts).await,
            None => pgb_ops::check(&src.repo, &opts).await,
        };
        tracing::debug!(job, status = %report.status, "metrics refreshed");
        let newest = report
            .sets
            .iter()
            .filter_map(|s| s.newest.as_ref())
            .map(|n| n.finished_at.unix_timestamp())
            .max()
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0));
        if let Some(t) = newest {
            let known = self
                .health
                .snapshot(chrono::Utc::now())
                .jobs
                .get(job)
                .and_then(|h| h.last_success);
            if known.is_none_or(|k| k < t) {
                self.health.set_last_success(job, t);
            }
        }
        self.lock().insert(job.to_owned(), report);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, CheckReport>> {
        self.reports.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The Prometheus text of the last reports (no storage access).
    pub fn render(&self) -> String {
        let reports = self.lock();
        pgb_ops::metrics::render_checks(reports.iter().map(|(j, r)| (Some(j.as_str()), r)))
    }

    /// The status page: the scheduler's state now, how far the running jobs got and the last
    /// reports (no storage access).
    pub fn status_page(&self) -> String {
        self.status.page(&self.health, &self.live)
    }

    /// Refreshes every job now, then each job named on `runs` (a run of it ended: see
    /// [`super::Runner::with_finished`]) and every job every [`METRICS_REFRESH`], until
    /// `cancel` fires. Jobs sharing a repository (and keys) share one listing per refresh;
    /// status reports are rebuilt after a job's run and every [`REPORT_EVERY_TICKS`] refreshes.
    pub async fn refresh_loop(
        self: Arc<Self>,
        mut runs: mpsc::UnboundedReceiver<String>,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(METRICS_REFRESH);
        let mut ticks: u32 = 0;
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {
                    let report = ticks.is_multiple_of(REPORT_EVERY_TICKS);
                    ticks = ticks.wrapping_add(1);
                    for group in self.listing_groups() {
                        tokio::select! {
                            () = cancel.cancelled() => return,
                            () = self.refresh_group(&group, report) => {}
                        }
                    }
                }
                Some(job) = runs.recv() => tokio::select! {
                    () = cancel.cancelled() => return,
                    () = self.refresh(&job, true) => {}
                },
            }
        }
    }

    /// `/healthz` over the scheduler's state, `/metrics` over [`Self::render`] and the status
    /// page at `/` ([`Self::status_page`]), on the system clock.
    pub fn endpoints(self: &Arc<Self>) -> Endpoints {
        let m = Arc::clone(self);
        let render: MetricsFn = Arc::new(move || m.render());
        let m = Arc::clone(self);
        let page: PageFn = Arc::new(move || m.status_page());
        Endpoints {
            health: self.health.clone(),
            metrics: render,
            clock: Clock::system(),
            status_page: Some(page),
        }
    }
}

/// Names grouped by equal keys, in first-seen order.
fn groups<'a, K: PartialEq + 'a>(
    items: impl Iterator<Item = (&'a str, &'a K)>,
) -> Vec<Vec<&'a str>> {
    let mut groups: Vec<(&K, Vec<&str>)> = Vec::new();
    for (name, key) in items {
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, names)) => names.push(name),
            None => groups.push((key, vec![name])),
        }
    }
    groups.into_iter().map(|(_, names)| names).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::daemon::DefaultHost;
    use crate::daemon::tests::jobs;

    #[test]
    fn a_jobs_metrics_check_its_database_with_its_thresholds() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().display();
        let env = HashMap::new();
        let j = jobs(
            &format!(
                "[jobs.shop]\ndatabase = \"postgres://app@db:5432/shop\"\nrepository = \"{dir}\"\n\
                 schedule = \"30 2 * * *\"\n[jobs.shop.check]\nmin_size = \"1MiB\"\n"
            ),
            &env,
        );
        let m = DaemonMetrics::new(&j, &env, HealthHandle::default(), &DefaultHost);
        assert!(m.warnings().is_empty(), "{:?}", m.warnings());
        let o = &m.sources["shop"].options;
        assert_eq!(o.database.as_deref(), Some("shop"));
        assert_eq!(o.min_size, Some(1 << 20));
        assert_eq!(
            o.max_age,
            Some(Duration::from_secs(26 * 3600)),
            "a daily schedule: one day plus a 2 h grace"
        );
        // Without a database in the URL, libpq's PGDATABASE names it; no schedule, no max_age.
        let env: HashMap<String, String> = [("PGDATABASE".to_owned(), "orders".to_owned())].into();
        let j = jobs(&format!("[jobs.shop]\nrepository = \"{dir}\"\n"), &env);
        let (_repo, o) = crate::job_check(&j[0], &env, time::OffsetDateTime::now_utc()).unwrap();
        assert_eq!(o.database.as_deref(), Some("orders"));
        assert_eq!(o.max_age, None, "no schedule, no max_age");
        // A repository that does not exist: no metrics, and why.
        let j = jobs(
            &format!("[jobs.gone]\nrepository = \"{dir}/missing\"\n"),
            &env,
        );
        let m = DaemonMetrics::new(&j, &env, HealthHandle::default(), &DefaultHost);
        assert_eq!(m.warnings().len(), 1);
        assert!(
            m.warnings()[0].starts_with("no metrics for job gone: "),
            "{:?}",
            m.warnings()
        );
    }

    #[test]
    fn jobs_with_one_repository_and_the_same_keys_share_a_listing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().display();
        let toml = format!(
            "[jobs.a]\nrepository = \"{dir}\"\n[jobs.b]\nrepository = \"{dir}\"\n\
             [jobs.c]\nrepository = \"{dir}\"\nauth_key_env = \"PGB_AUTH_C\"\n\
             [jobs.d]\nrepository = \"{dir}/other\"\n"
        );
        let jobs = jobs(&toml, &HashMap::new());
        let keys: Vec<_> = jobs
            .iter()
            .map(|j| {
                (
                    j.name.as_str(),
                    (j.repository.clone(), j.encryption.clone()),
                )
            })
            .collect();
        assert_eq!(
            groups(keys.iter().map(|(n, k)| (*n, k))),
            vec![vec!["a", "b"], vec!["c"], vec!["d"]],
            "a and b list once; c authenticates with its own key; d is another repository"
        );
    }
}
