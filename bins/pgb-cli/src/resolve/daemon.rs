//! The daemon's HTTP side: `--listen`, `/metrics` with the metrics of `pgb check
//! --textfile` per job, computed from each job's repository in the background, and the status
//! page at `/` ([`super::status`]).
//!
//! The HTTP handler only reads the last rendered reports: storage is read by a refresher task
//! at start, after each run of a job, and every [`METRICS_REFRESH`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pgb_config::ResolvedJob;
use pgb_ops::{CheckOptions, CheckReport};
use pgb_scheduler::{CancellationToken, Clock, Endpoints, HealthHandle, MetricsFn};
use tokio::sync::mpsc;

use super::Env;
use crate::exit::Failure;

/// How often every job's repository is checked again for `/metrics`, besides after its runs
/// (a `pgb run` from cron or another host shows up within this time).
pub(crate) const METRICS_REFRESH: Duration = Duration::from_secs(60);

/// `--listen ADDR`: `None` when not given.
pub(crate) fn listen(flag: Option<&str>) -> Result<Option<std::net::SocketAddr>, Failure> {
    flag.map(|a| {
        a.parse()
            .map_err(|e| Failure::usage(format!("--listen {a:?}: not an address: {e}")))
    })
    .transpose()
}

/// The check a job's metrics come from, and the job's repository: `pgb check --job NAME`'s
/// options, planned by the library ([`pgb_jobs::job_check`]).
pub(crate) fn check_source(
    job: &ResolvedJob,
    env: Env<'_>,
) -> Result<(pgb::Repository, CheckOptions), Failure> {
    Ok(pgb_jobs::job_check(
        job,
        env,
        time::OffsetDateTime::now_utc(),
    )?)
}

/// One job's metrics source.
struct Source {
    repo: pgb::Repository,
    options: CheckOptions,
    /// Which listing it reads: jobs with the same repository URL and key sources share one
    /// listing per refresh (the listing's verdicts depend on the authentication keys).
    shared: (String, pgb_config::EncryptionSettings),
}

/// Every job's last check report, refreshed in the background and rendered on request.
pub(crate) struct DaemonMetrics {
    sources: BTreeMap<String, Source>,
    reports: Mutex<BTreeMap<String, CheckReport>>,
    health: HealthHandle,
    /// Each job's report for the status page.
    status: super::status::StatusReports,
}

impl DaemonMetrics {
    /// Metrics of `jobs` (with their repositories opened); `health` gets each job's newest
    /// backup found in its repository, so runs outside the daemon count as successes.
    pub(crate) fn new(jobs: &[ResolvedJob], env: Env<'_>, health: HealthHandle) -> Self {
        let mut sources = BTreeMap::new();
        for j in jobs {
            match check_source(j, env) {
                Ok((repo, options)) => {
                    let shared = (j.repository.clone(), j.encryption.clone());
                    let src = Source {
                        repo,
                        options,
                        shared,
                    };
                    sources.insert(j.name.clone(), src);
                }
                // Scheduled jobs were resolved before; an unscheduled one is left out.
                Err(f) => crate::render::note(format_args!(
                    "warning: no metrics for job {}: {}",
                    j.name, f.message
                )),
            }
        }
        Self {
            sources,
            reports: Mutex::new(BTreeMap::new()),
            health,
            status: super::status::StatusReports::new(jobs, env),
        }
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
    async fn refresh(&self, job: &str, report: bool) {
        self.refresh_with(job, report, None).await;
    }

    /// [`Self::refresh`] over `listing` when given (made of the job's repository with its
    /// keys), else over a listing of its own.
    async fn refresh_with(
        &self,
        job: &str,
        report: bool,
        listing: Option<Result<&pgb::Listing, &pgb::Error>>,
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
    pub(crate) fn render(&self) -> String {
        let reports = self.lock();
        pgb_ops::metrics::render_checks(reports.iter().map(|(j, r)| (Some(j.as_str()), r)))
    }

    /// Refreshes every job now, then each job named on `runs` (a run of it ended) and every
    /// job every [`METRICS_REFRESH`], until `cancel` fires. Jobs sharing a repository (and
    /// keys) share one listing per refresh.
    pub(crate) async fn refresh_loop(
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
                    let report = ticks.is_multiple_of(super::status::REPORT_EVERY_TICKS);
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

/// `/healthz` over the scheduler's state, `/metrics` over `metrics` and the status page.
pub(crate) fn endpoints(health: HealthHandle, metrics: Arc<DaemonMetrics>) -> Endpoints {
    let m = Arc::clone(&metrics);
    let render: MetricsFn = Arc::new(move || m.render());
    let page: pgb_scheduler::PageFn = Arc::new(move || metrics.status.page(&metrics.health));
    Endpoints {
        health,
        metrics: render,
        clock: Clock::system(),
        status_page: Some(page),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    fn job(toml: &str, vars: &[(&str, &str)]) -> (ResolvedJob, HashMap<String, String>) {
        let cfg = pgb_config::LoadedConfig::parse(toml, Path::new("pgb.toml")).unwrap();
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let j = super::super::config::jobs(&cfg, Some("shop"), &env)
            .unwrap()
            .remove(0);
        (j, env)
    }

    #[test]
    fn a_jobs_metrics_check_its_database_with_its_thresholds() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().display();
        let (j, env) = job(
            &format!(
                "[jobs.shop]\ndatabase = \"postgres://app@db:5432/shop\"\nrepository = \"{dir}\"\n\
                 schedule = \"30 2 * * *\"\n[jobs.shop.check]\nmin_size = \"1MiB\"\n"
            ),
            &[],
        );
        let (_repo, o) = check_source(&j, &env).unwrap();
        assert_eq!(o.database.as_deref(), Some("shop"));
        assert_eq!(o.min_size, Some(1 << 20));
        assert_eq!(
            o.max_age,
            Some(Duration::from_secs(26 * 3600)),
            "a daily schedule: one day plus a 2 h grace"
        );
        // Without a database in the URL, libpq's PGDATABASE names it.
        let (j, env) = job(
            &format!("[jobs.shop]\nrepository = \"{dir}\"\n"),
            &[("PGDATABASE", "orders")],
        );
        assert_eq!(
            crate::resolve::job::database_name(&j, &env).as_deref(),
            Some("orders")
        );
        let (_repo, o) = check_source(&j, &env).unwrap();
        assert_eq!(o.max_age, None, "no schedule, no max_age");
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
        let cfg = pgb_config::LoadedConfig::parse(&toml, Path::new("pgb.toml")).unwrap();
        let env = HashMap::new();
        let jobs = super::super::config::jobs(&cfg, None, &env).unwrap();
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

    #[test]
    fn listen_takes_a_socket_address() {
        assert_eq!(
            listen(Some("127.0.0.1:9187")).unwrap(),
            Some("127.0.0.1:9187".parse().unwrap())
        );
        assert_eq!(listen(None).unwrap(), None);
        assert_eq!(listen(Some("localhost")).unwrap_err().code, 2);
    }
}
