//! `pgb daemon [--listen ADDR] [--once]`: every scheduled job of the config file on its
//! schedule (the `pgb-scheduler` loop), each run a `pgb run` (the `pgb-jobs` crate), and every
//! job's `drill.schedule` as a `pgb drill --job` (scheduled as `NAME/drill`); with `--listen`,
//! `/healthz` and `/metrics` ([`crate::resolve::daemon`]); and for every job with
//! `wal = "stream"`, its WAL stream, supervised ([`super::stream_supervisor`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use pgb_config::ResolvedJob;
use pgb_scheduler::{CancellationToken, JobRunner, ScheduledJob, Scheduler, Trigger};
use tokio::sync::mpsc;

use super::Ctx;
use crate::args::DaemonArgs;
use crate::exit::Failure;
use crate::render;
use crate::resolve::{Env, SharedEnv, config, daemon};

/// The log target of the daemon's own lines (start, each run, stop): shown without `-v`.
pub(crate) const LOG_TARGET: &str = "pgb::daemon";

/// The scheduler's name for a job's drill: `shop/drill` (`/` is not in job names).
const DRILL: &str = "/drill";

/// Runs a job by name, as `pgb run` does, with the environment `main` snapshotted.
struct Runner {
    jobs: BTreeMap<String, ResolvedJob>,
    env: SharedEnv,
    /// Told the job's name after each run, so `/metrics` is refreshed from its repository.
    finished: Option<mpsc::UnboundedSender<String>>,
    /// Log lines or nothing: jobs run side by side, so never a bar.
    progress: render::ProgressConfig,
}

impl Runner {
    async fn run_job(&self, name: &str, cancel: CancellationToken) -> Result<(), String> {
        let job = self.jobs.get(name).ok_or("no such job")?;
        let t0 = std::time::Instant::now();
        let report = Box::pin(super::run::run_job(
            job,
            &*self.env,
            &self.progress,
            cancel.cancelled_owned(),
        ))
        .await
        .map_err(|f| f.message)?;
        log_run(&report, t0.elapsed());
        Ok(())
    }
}

impl Runner {
    /// A job's scheduled drill, as `pgb drill --job NAME` runs it, planned by the library (the
    /// scratch database is dropped also when the daemon is stopped: `cancel` is the drill's
    /// cancellation).
    async fn run_drill(&self, name: &str, cancel: CancellationToken) -> Result<(), String> {
        let job = self.jobs.get(name).ok_or("no such job")?;
        let mut drill = pgb_jobs::JobDrill::resolve(job, &*self.env).map_err(|e| e.to_string())?;
        if job.format == "physical" {
            // A PITR drill: its server's restore_command is this binary's `wal fetch`.
            let cmd = crate::resolve::pitr::job_restore_command(job, &*self.env)
                .map_err(|f| f.message)?;
            drill = drill.with_restore_command(cmd);
        }
        match drill
            .run(&render::log_progress, cancel.cancelled_owned())
            .await
        {
            Ok(r) if r.passed() => Ok(()),
            Ok(r) => Err(format!(
                "drill {}: {}",
                pgb_jobs::outcome_name(r.outcome),
                r.cause.unwrap_or_default()
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// One line per run: what a person reading the daemon's log wants to know.
fn log_run(r: &pgb_jobs::RunReport, took: std::time::Duration) {
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

/// The scheduler entry of a job's `drill.schedule`; its last success is the newest passed
/// drill of the job's database recorded in the repository.
async fn scheduled_drill(job: &ResolvedJob, env: Env<'_>) -> Result<Option<ScheduledJob>, Failure> {
    let Some(expr) = job.drill.as_ref().and_then(|d| d.schedule.as_deref()) else {
        return Ok(None);
    };
    let schedule = pgb_config::parse_cron(expr)
        .map_err(|m| Failure::usage(format!("jobs.{}.drill.schedule: {m}", job.name)))?;
    // The job's backups go there: a new repository is created, as its first backup would.
    let repo = pgb_jobs::job_repository(job, env, true)?;
    let auth = pgb_jobs::job_auth_key(job, env)?;
    let db = pgb_jobs::job_database(job, env);
    let last_success = pgb_ops::drill_history(&repo, auth.as_ref())
        .await
        .map_err(|e| Failure::new(crate::exit::REPOSITORY, e.to_string()))?
        .into_iter()
        .filter_map(|e| e.report)
        .filter(|r| r.passed() && db.as_ref().is_none_or(|d| &r.database == d))
        .map(|r| r.finished_at.unix_timestamp())
        .max()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0));
    Ok(Some(ScheduledJob {
        name: format!("{}{DRILL}", job.name),
        schedule,
        zone: job.timezone,
        jitter: job.jitter,
        catch_up: false,
        max_age: None,
        last_success,
    }))
}

#[async_trait::async_trait]
impl JobRunner for Runner {
    async fn run(&self, job: &str, _t: Trigger, cancel: CancellationToken) -> Result<(), String> {
        let drill = job.strip_suffix(DRILL);
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

pub(super) async fn run(a: DaemonArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let cfg = config::require(a.file.config.as_deref(), ctx.env)?;
    let jobs = config::jobs(&cfg, None, ctx.env)?;
    let listen = daemon::listen(a.listen.as_deref())?;
    let mut scheduled = Vec::new();
    for j in jobs.iter().filter(|j| j.schedule.is_some()) {
        // The daemon backs the job up: a new repository is created, as its first backup would.
        let repo = pgb_jobs::job_repository(j, ctx.env, true)?;
        scheduled.push(config::scheduled(j, &repo.list().await?, ctx.env));
    }
    for j in &jobs {
        scheduled.extend(scheduled_drill(j, ctx.env).await?);
    }
    let (finished, runs) = mpsc::unbounded_channel();
    // Metrics cover every job of the file, also those `pgb run` runs from cron.
    let all_jobs = jobs.clone();
    let runner = Runner {
        jobs: jobs.into_iter().map(|j| (j.name.clone(), j)).collect(),
        env: ctx.shared_env(),
        finished: listen.is_some().then_some(finished),
        progress: render::ProgressConfig {
            mode: match ctx.progress.mode {
                render::ProgressMode::Bar => render::ProgressMode::Log,
                m => m,
            },
            ..ctx.progress
        },
    };
    for j in &scheduled {
        let next = pgb_scheduler::next_run(&j.schedule, j.zone, chrono::Utc::now())
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|e| e.to_string());
        tracing::info!(target: LOG_TARGET, job = %j.name, next = %next, zone = %j.zone, "scheduled");
    }
    // Bound before the start line, which names the address actually bound
    // (`--listen 127.0.0.1:0` logs the port the system chose).
    let listener = match listen {
        Some(addr) => {
            if let Some(w) = pgb_scheduler::listen_warning(addr) {
                render::note(format_args!("warning: {w}"));
            }
            let l = pgb_scheduler::bind(addr)
                .await
                .map_err(|e| Failure::usage(format!("--listen {addr}: {e}")))?;
            let bound = l.local_addr().unwrap_or(addr);
            Some((l, bound))
        }
        None => None,
    };
    tracing::info!(
        target: LOG_TARGET,
        jobs = scheduled.len(),
        listen = %listener.as_ref().map_or_else(|| "no".to_owned(), |(_, a)| a.to_string()),
        "daemon started"
    );
    let scheduler = Scheduler::new(scheduled, Arc::new(runner));
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let interrupted = ctx.cancelled();
    tokio::spawn(async move {
        interrupted.await;
        tracing::info!(
            target: LOG_TARGET,
            "signal received: stopping (a running backup is cancelled, nothing half-committed)"
        );
        stop.cancel();
    });
    let stream_states = Arc::new(super::stream_supervisor::StreamStates::default());
    if let Some((listener, _)) = listener {
        let metrics = Arc::new(daemon::DaemonMetrics::new(
            &all_jobs,
            ctx.env,
            scheduler.health(),
        ));
        let mut endpoints = daemon::endpoints(scheduler.health(), Arc::clone(&metrics));
        let (checks, st) = (endpoints.metrics, Arc::clone(&stream_states));
        endpoints.metrics = Arc::new(move || checks() + &st.render());
        tokio::spawn(metrics.refresh_loop(runs, cancel.clone()));
        tokio::spawn(pgb_scheduler::serve(listener, endpoints, cancel.clone()));
    }
    // The streams run until the daemon stops (not with --once, which runs the due jobs).
    let mut streams = tokio::task::JoinSet::new();
    for j in super::stream_supervisor::streamed(&all_jobs)
        .into_iter()
        .filter(|_| !a.once)
    {
        let states = Arc::clone(&stream_states);
        let supervise =
            super::stream_supervisor::supervise(j, ctx.shared_env(), states, cancel.clone());
        streams.spawn(supervise);
    }
    if a.once {
        let outcomes = scheduler.run_once(&cancel).await;
        let failed = outcomes.iter().filter(|o| !o.record.ok).count();
        render::stdout(|w| serde_json::to_writer_pretty(&mut *w, &outcomes).map_err(Into::into))?;
        return match failed {
            0 => Ok(()),
            n => Err(Failure::new(
                crate::exit::FAILURE,
                format!("{n} job run(s) failed"),
            )),
        };
    }
    scheduler.run(cancel).await;
    // Each stream stops its pg_receivewal and archives what is complete first.
    while streams.join_next().await.is_some() {}
    tracing::info!(target: LOG_TARGET, "daemon stopped");
    Ok(())
}
