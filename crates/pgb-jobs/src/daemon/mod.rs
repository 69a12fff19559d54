//! pgb's daemon in the library: every scheduled job of a config file on its schedule, each run
//! a [`JobPlan`] run, every `drill.schedule` a [`JobDrill`], and the `/metrics` text and status
//! page refreshed from each job's repository in the background.
//!
//! - [`schedule`]: the scheduler's entries ([`ScheduledJob`]) of the jobs: each scheduled job
//!   ([`scheduled_job`], its last success the newest backup of its database in its repository)
//!   and each job's drill ([`scheduled_drill`], named `JOB/drill`).
//! - [`Runner`]: the [`JobRunner`] the scheduler calls: a job's name runs its plan, `JOB/drill`
//!   its drill; one log line per committed backup (target [`LOG_TARGET`]); how far each run
//!   in progress got is in its [`LiveRuns`] ([`Runner::live_runs`]).
//! - [`DaemonMetrics`]: every job's check (as `pgb check --job`) and status report (as `pgb
//!   report --job --since 30d`), rebuilt by [`DaemonMetrics::refresh_loop`] at start, after each
//!   run and every [`METRICS_REFRESH`]; [`DaemonMetrics::endpoints`] serves them with
//!   `/healthz` ([`pgb_scheduler::serve`]) without touching storage per request.
//!
//! What the daemon leaves to the program embedding it (progress display, the wording of a
//! failed run) is a [`DaemonHost`]; [`DefaultHost`] shows nothing and words errors as their
//! `Display`. The process (signals, the runtime, the listen
//! address, rendering) stays with the caller:
//!
//! ```no_run
//! use std::sync::Arc;
//! use pgb_jobs::daemon::{self, DaemonMetrics, DefaultHost, Runner};
//! use pgb_scheduler::{CancellationToken, Scheduler};
//!
//! # async fn f(jobs: Vec<pgb_config::ResolvedJob>) -> Result<(), Box<dyn std::error::Error>> {
//! // The embedder's environment (object-store credentials, the jobs' key variables).
//! let env: daemon::SharedEnv = Arc::new(|name: &str| std::env::var(name).ok());
//! let host = Arc::new(DefaultHost);
//! let entries = daemon::schedule(&jobs, &*env).await?;
//! let (runs_tx, runs) = tokio::sync::mpsc::unbounded_channel();
//! let runner = Runner::new(jobs.clone(), Arc::clone(&env), host.clone()).with_finished(runs_tx);
//! let live = runner.live_runs(); // the running jobs' progress, for the status page
//! let scheduler = Scheduler::new(entries, Arc::new(runner));
//! let metrics = DaemonMetrics::new(&jobs, &*env, scheduler.health(), &*host).with_live_runs(live);
//! let metrics = Arc::new(metrics);
//! let cancel = CancellationToken::new(); // cancel it to stop: a running backup is cancelled
//! tokio::spawn(Arc::clone(&metrics).refresh_loop(runs, cancel.clone()));
//! let listener = pgb_scheduler::bind("127.0.0.1:9187".parse()?).await?;
//! tokio::spawn(pgb_scheduler::serve(listener, metrics.endpoints(), cancel.clone()));
//! scheduler.run(cancel).await;
//! # Ok(()) }
//! ```

mod live;
mod metrics;
mod status;

pub use live::LiveRuns;
pub use metrics::{DaemonMetrics, METRICS_REFRESH};
pub use status::{PAGE_REFRESH_S, REPORT_EVERY_TICKS, RUNNING_REFRESH_S, STATUS_WINDOW};

use std::collections::BTreeMap;
use std::sync::Arc;

use pgb_config::ResolvedJob;
use pgb_core::{Holder, Listing, NoProgress, Progress};
use pgb_open::EnvLookup;
use pgb_scheduler::{CancellationToken, JobRunner, ScheduledJob, Trigger};
use tokio::sync::mpsc;

use crate::{JobDrill, JobPlan, PlanError, RunError, RunReport};

/// The tracing target of the daemon's own lines (each scheduled entry, each committed backup):
/// a program shows it at `info` without its verbose switch.
pub const LOG_TARGET: &str = "pgb::daemon";

/// The scheduler's name for a job's drill: `shop/drill` (`/` is not in job names).
pub const DRILL_SUFFIX: &str = "/drill";

/// The environment, owned and shared by the daemon's runs.
pub type SharedEnv = Arc<dyn EnvLookup + Send + Sync>;

/// A run's progress display, told when the run ended.
pub trait RunProgress: Progress {
    /// The run ended: `Some(plain bytes)` of its committed backup, `None` when it failed.
    fn finish(self: Box<Self>, plain_bytes: Option<u64>);

    /// The plain size to expect, the job's previous backup's, once the runner looked it up
    /// (one listing per run, shared with the status page). Default: ignored.
    fn expect_total(&self, _plain_bytes: u64) {}
}

impl RunProgress for NoProgress {
    fn finish(self: Box<Self>, _: Option<u64>) {}
}

/// Why a scheduled run of a job failed: its plan or its run.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job could not be planned (keys, repository, a value).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The run failed (lock, hook, backup, verify, prune).
    #[error(transparent)]
    Run(#[from] RunError),
}

/// What the daemon leaves to the program embedding it. Every method has a default.
pub trait DaemonHost: Send + Sync {
    /// The progress display of one run of `plan`'s job (jobs run side by side). Default: none.
    fn run_progress(&self, plan: &JobPlan) -> Box<dyn RunProgress> {
        let _ = plan;
        Box::new(NoProgress)
    }

    /// The progress of a scheduled drill. Default: none.
    fn drill_progress(&self) -> &dyn Progress {
        &NoProgress
    }

    /// The one line a failed run (and a job without metrics) is recorded with: the status
    /// page, `run_once`'s outcomes. Default: the error's `Display`.
    fn describe(&self, error: JobError) -> String {
        error.to_string()
    }
}

/// The [`DaemonHost`] of every default: no progress, errors as they display.
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultHost;

impl DaemonHost for DefaultHost {}

/// Why the daemon's entries cannot be built (nothing has run then).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// A job's repository or keys.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A job's repository cannot be listed.
    #[error(transparent)]
    Repository(#[from] pgb_core::Error),
    /// A job's drill records cannot be read.
    #[error(transparent)]
    Record(#[from] pgb_ops::RecordError),
    /// A job's `drill.schedule` is not a cron expression.
    #[error("jobs.{job}.drill.schedule: {message}")]
    DrillSchedule {
        /// The job.
        job: String,
        /// What is wrong.
        message: String,
    },
}

fn utc(t: time::OffsetDateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), 0)
}

/// A scheduled job as the scheduler sees it (`None`: the job has no schedule); its last success
/// is the newest complete backup of its database in `listing` (of its repository), so runs
/// outside the daemon count.
pub fn scheduled_job(
    job: &ResolvedJob,
    listing: &Listing,
    env: &dyn EnvLookup,
) -> Option<ScheduledJob> {
    let schedule = job.schedule.clone()?;
    let db = crate::job_database(job, env);
    let last_success = listing
        .backups
        .iter()
        .filter(|m| db.as_ref().is_none_or(|d| &m.database == d))
        .map(|m| m.finished_at)
        .max()
        .and_then(utc);
    Some(ScheduledJob {
        name: job.name.clone(),
        schedule,
        zone: job.timezone,
        jitter: job.jitter,
        catch_up: job.catch_up,
        max_age: job.check.as_ref().and_then(|c| c.max_age),
        last_success,
    })
}

/// The scheduler entry of a job's `drill.schedule` (`None`: it has none), named `JOB/drill`;
/// its last success is the newest passed drill of the job's database recorded in the
/// repository. The repository is created when missing, as the job's first backup would.
///
/// # Errors
/// [`ScheduleError`]: the cron expression, the repository or keys, the drill records.
pub async fn scheduled_drill(
    job: &ResolvedJob,
    env: &dyn EnvLookup,
) -> Result<Option<ScheduledJob>, ScheduleError> {
    let Some(expr) = job.drill.as_ref().and_then(|d| d.schedule.as_deref()) else {
        return Ok(None);
    };
    let schedule = pgb_config::parse_cron(expr).map_err(|m| ScheduleError::DrillSchedule {
        job: job.name.clone(),
        message: m.to_string(),
    })?;
    let repo = crate::job_repository(job, env, true)?;
    let auth = crate::job_auth_key(job, env)?;
    let db = crate::job_database(job, env);
    let last_success = pgb_ops::drill_history(&repo, auth.as_ref())
        .await?
        .into_iter()
        .filter_map(|e| e.report)
        .filter(|r| r.passed() && db.as_ref().is_none_or(|d| &r.database == d))
        .map(|r| r.finished_at)
        .max()
        .and_then(utc);
    Ok(Some(ScheduledJob {
        name: format!("{}{DRILL_SUFFIX}", job.name),
        schedule,
        zone: job.timezone,
        jitter: job.jitter,
        catch_up: false,
        max_age: None,
        last_success,
    }))
}

/// Every entry of `jobs`: each scheduled job (its repository listed, created when missing as
/// its first backup would), then each job's drill.
///
/// # Errors
/// [`ScheduleError`] of the first job that fails.
pub async fn schedule(
    jobs: &[ResolvedJob],
    env: &dyn EnvLookup,
) -> Result<Vec<ScheduledJob>, ScheduleError> {
    let mut entries = Vec::new();
    for j in jobs.iter().filter(|j| j.schedule.is_some()) {
        let repo = crate::job_repository(j, env, true)?;
        entries.extend(scheduled_job(j, &repo.list().await?, env));
    }
    for j in jobs {
        entries.extend(scheduled_drill(j, env).await?);
    }
    Ok(entries)
}

/// Runs the scheduler's entries: a job's name runs the job's plan ([`JobPlan::run`]),
/// `JOB/drill` its drill ([`JobDrill::run`]), with the environment it was given.
pub struct Runner {
    jobs: BTreeMap<String, ResolvedJob>,
    env: SharedEnv,
    host: Arc<dyn DaemonHost>,
    holder: Option<Holder>,
    finished: Option<mpsc::UnboundedSender<String>>,
    live: LiveRuns,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("jobs", &self.jobs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// Runs `jobs` with `env`; `host` shows their progress and words their failures.
    pub fn new(
        jobs: impl IntoIterator<Item = ResolvedJob>,
        env: SharedEnv,
        host: Arc<dyn DaemonHost>,
    ) -> Self {
        Self {
            jobs: jobs.into_iter().map(|j| (j.name.clone(), j)).collect(),
            env,
            host,
            holder: None,
            finished: None,
            live: LiveRuns::default(),
        }
    }

    /// How far each run in progress got (shared: it follows the runs), for the status page
    /// ([`DaemonMetrics::with_live_runs`]). A run's entry starts with the run, takes the same
    /// progress events as the host's display and goes when the run ends.
    pub fn live_runs(&self) -> LiveRuns {
        self.live.clone()
    }

    /// Who takes the jobs' locks (default: as [`JobPlan::resolve`] names it).
    #[must_use]
    pub fn with_holder(mut self, holder: Holder) -> Self {
        self.holder = Some(holder);
        self
    }

    /// Sends the job's name after each of its runs and drills (failed or not): what
    /// [`DaemonMetrics::refresh_loop`] takes to refresh the job's metrics.
    #[must_use]
    pub fn with_finished(mut self, finished: mpsc::UnboundedSender<String>) -> Self {
        self.finished = Some(finished);
        self
    }

    async fn run_job(&self, name: &str, cancel: CancellationToken) -> Result<(), String> {
        let job = self.jobs.get(name).ok_or("no such job")?;
        let t0 = std::time::Instant::now();
        let tracked = self.live.start(name, "starting");
        let mut plan = match JobPlan::resolve(job, &*self.env) {
            Ok(p) => p,
            Err(e) => return Err(self.host.describe(e.into())),
        };
        if let Some(h) = &self.holder {
            plan = plan.with_holder(h.clone());
        }
        let progress = self.host.run_progress(&plan);
        let result = {
            let tee = tracked.tee(&*progress);
            let run = Box::pin(plan.run(&tee, cancel.cancelled_owned()));
            // The size to expect is the previous backup's, looked up while the run goes on.
            match crate::job_database(job, &*self.env) {
                Some(db) => {
                    let lookup = tracked.look_up_total(&plan.repo, &db);
                    tokio::pin!(lookup, run);
                    tokio::select! {
                        biased;
                        r = &mut run => r,
                        total = &mut lookup => {
                            if let Some(t) = total {
                                progress.expect_total(t);
                            }
                            run.await
                        }
                    }
                }
                None => run.await,
            }
        };
        // The run is over: off the status page before its display's summary.
        drop(tracked);
        let backup = result.as_ref().ok().and_then(|r| r.backup.as_ref());
        progress.finish(backup.map(pgb_core::Manifest::plain_size));
        let report = result.map_err(|f| self.host.describe(f.error.into()))?;
        log_run(&report, t0.elapsed());
        Ok(())
    }

    /// A job's scheduled drill (the scratch database is dropped also when the daemon stops:
    /// `cancel` is the drill's cancellation).
    async fn run_drill(&self, name: &str, cancel: CancellationToken) -> Result<(), String> {
        let job = self.jobs.get(name).ok_or("no such job")?;
        let tracked = self
            .live
            .start(&format!("{name}{DRILL_SUFFIX}"), "drilling");
        let drill = JobDrill::resolve(job, &*self.env).map_err(|e| e.to_string())?;
        let tee = tracked.tee(self.host.drill_progress());
        let result = drill.run(&tee, cancel.cancelled_owned()).await;
        drop(tracked);
        match result {
            Ok(r) if r.passed() => Ok(()),
            Ok(r) => Err(format!(
                "drill {}: {}",
                crate::outcome_name(r.outcome),
                r.cause.unwrap_or_default()
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[async_trait::async_trait]
impl JobRunner for Runner {
    async fn run(&self, job: &str, _t: Trigger, cancel: CancellationToken) -> Result<(), String> {
        let drill = job.strip_suffix(DRILL_SUFFIX);
        let res = match drill {
            Some(name) => self.run_drill(name, cancel).await,
            None => self.run_job(job, cancel).await,
        };
        if let Some(tx) = &self.finished {
            // A drill changes its job's drill metrics.
            let _ = tx.send(drill.unwrap_or(job).to_owned());
        }
        res
    }
}

/// One line per committed backup: what a person reading the daemon's log wants to know.
fn log_run(r: &RunReport, took: std::time::Duration) {
    let Some(m) = &r.backup else { return };
    let verify = match (&r.verify, &r.verify_not_recorded) {
        (None, _) => "not asked",
        (Some(_), None) => "passed",
        (Some(_), Some(_)) => "passed, not recorded",
    };
    let prune = r.prune.as_ref().map_or_else(
        || "no policy".to_owned(),
        |p| format!("{} deleted", p.deleted()),
    );
    tracing::info!(
        target: LOG_TARGET,
        job = %r.job,
        backup = %m.id,
        set = %m.set,
        stored_bytes = m.stored_size(),
        plain_bytes = m.plain_size(),
        seconds = took.as_secs(),
        verify,
        prune = %prune,
        "backup committed"
    );
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    pub(super) fn jobs(toml: &str, env: &HashMap<String, String>) -> Vec<ResolvedJob> {
        let cfg = pgb_config::LoadedConfig::parse(toml, Path::new("pgb.toml")).unwrap();
        let var = |k: &str| env.get(k).cloned();
        let environment = pgb_config::Environment {
            var: &var,
            is_executable: &|_| false,
        };
        cfg.resolve_all(&environment, &pgb_config::JobSettings::default())
            .unwrap()
    }

    #[tokio::test]
    async fn scheduled_jobs_and_drills_become_entries_with_their_last_success() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        let dir = dir.display();
        let env = HashMap::new();
        let jobs = jobs(
            &format!(
                "[jobs.shop]\ndatabase = \"postgres://app@db/shop\"\nrepository = \"{dir}\"\n\
                 schedule = \"30 2 * * *\"\ncatch_up = true\n[jobs.shop.check]\nmax_age = \"2d\"\n\
                 [jobs.shop.drill]\nschedule = \"0 4 * * 0\"\ntarget = \"postgres://db/postgres\"\n\
                 [jobs.adhoc]\nrepository = \"{dir}\"\n"
            ),
            &env,
        );
        let entries = schedule(&jobs, &env).await.unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["shop", "shop/drill"], "adhoc has no schedule");
        let shop = &entries[0];
        assert!(shop.catch_up);
        assert_eq!(
            shop.max_age,
            Some(std::time::Duration::from_secs(2 * 86_400))
        );
        assert_eq!(shop.last_success, None, "a new repository: created, empty");
        assert!(!entries[1].catch_up, "a missed drill is not caught up");
        assert!(
            tmp.path().join("repo").is_dir(),
            "created as a backup would"
        );
        let unscheduled = jobs.iter().find(|j| j.name == "adhoc").unwrap();
        let listing = Listing::default();
        assert!(scheduled_job(unscheduled, &listing, &env).is_none());
    }

    /// A host whose display notes what the runner's live entry said when the display started,
    /// and how the run ended.
    #[derive(Default)]
    struct Watching {
        live: std::sync::OnceLock<LiveRuns>,
        seen: Arc<std::sync::Mutex<Vec<String>>>,
    }

    struct Display(Arc<std::sync::Mutex<Vec<String>>>, LiveRuns);

    impl Progress for Display {
        fn event(&self, _: &pgb_core::Event) {}
    }

    impl RunProgress for Display {
        fn finish(self: Box<Self>, plain_bytes: Option<u64>) {
            let running = self.1.snapshot().len();
            self.0
                .lock()
                .unwrap()
                .push(format!("finish {plain_bytes:?}, {running} running"));
        }
    }

    fn now_live(l: &std::sync::OnceLock<LiveRuns>) -> LiveRuns {
        l.get().unwrap().clone()
    }

    impl DaemonHost for Watching {
        fn run_progress(&self, _: &JobPlan) -> Box<dyn RunProgress> {
            let now = self.live.get().unwrap().snapshot();
            self.seen.lock().unwrap().push(format!(
                "live {:?}",
                now.iter()
                    .map(|(k, v)| (k.as_str(), v.phase.as_deref()))
                    .collect::<Vec<_>>()
            ));
            Box::new(Display(Arc::clone(&self.seen), now_live(&self.live)))
        }
    }

    #[tokio::test]
    async fn the_runner_records_a_run_while_it_runs_and_clears_it_when_it_ends() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().display();
        let env: HashMap<String, String> = HashMap::new();
        // Nothing listens on port 1: the backup fails once the run started.
        let jobs = jobs(
            &format!(
                "[jobs.shop]\ndatabase = \"postgres://app@127.0.0.1:1/shop\"\n\
                 repository = \"{dir}\"\nschedule = \"30 2 * * *\"\n"
            ),
            &env,
        );
        let host = Arc::new(Watching::default());
        let runner = Runner::new(
            jobs,
            Arc::new(env),
            Arc::clone(&host) as Arc<dyn DaemonHost>,
        );
        let live = runner.live_runs();
        host.live.set(runner.live_runs()).unwrap();
        let res = runner
            .run(
                "shop",
                Trigger::Once {
                    slot: chrono::Utc::now(),
                },
                CancellationToken::new(),
            )
            .await;
        assert!(res.is_err(), "{res:?}");
        assert_eq!(
            *host.seen.lock().unwrap(),
            [
                "live [(\"shop\", Some(\"starting\"))]",
                "finish None, 0 running"
            ],
            "recorded from the start of the run, gone before its display finished"
        );
        assert!(live.snapshot().is_empty(), "{live:?}");
    }
}
