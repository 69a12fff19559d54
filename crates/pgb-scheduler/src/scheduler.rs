//! The job loop: each job at its times, one run at a time per job, catch-up, `once` mode.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::health::{HealthHandle, JobHealth, RunRecord};
use crate::schedule::{default_max_age, jitter_for, missed_slot, next_run};

/// A job as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct ScheduledJob {
    /// The job name.
    pub name: String,
    /// When it runs.
    pub schedule: Cron,
    /// The zone the schedule is read in.
    pub zone: Tz,
    /// Maximum jitter after each slot (the actual delay is fixed per job name).
    pub jitter: Duration,
    /// Run once at start if a slot was missed while the scheduler was down.
    pub catch_up: bool,
    /// The newest success must be younger than this for `/healthz`; default: one period
    /// plus grace ([`default_max_age`]).
    pub max_age: Option<Duration>,
    /// The newest successful run known at start (read from the repository by the caller).
    pub last_success: Option<DateTime<Utc>>,
}

/// Why a run happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "trigger", rename_all = "snake_case")]
pub enum Trigger {
    /// Its slot came.
    Scheduled {
        /// The slot.
        slot: DateTime<Utc>,
    },
    /// A slot was missed while the scheduler was down.
    CatchUp {
        /// The missed slot.
        slot: DateTime<Utc>,
    },
    /// `once` mode found it due.
    Once {
        /// The slot it was due for.
        slot: DateTime<Utc>,
    },
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Trigger::Scheduled { .. } => "scheduled",
            Trigger::CatchUp { .. } => "catch_up",
            Trigger::Once { .. } => "once",
        }
    }
}

/// Runs one job: the caller's backup, verify and prune. The token is cancelled when the
/// scheduler stops; the run must then stop cleanly (nothing committed, leases released).
#[async_trait]
pub trait JobRunner: Send + Sync {
    /// Runs `job`. `Err` carries the failure's one-line cause.
    async fn run(
        &self,
        job: &str,
        trigger: Trigger,
        cancel: CancellationToken,
    ) -> Result<(), String>;
}

/// The scheduler's notion of now. The system clock in production; tests anchor it to tokio's
/// (pausable) clock so a paused test runtime jumps straight to the next slot.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor: Option<(DateTime<Utc>, tokio::time::Instant)>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { anchor: None }
    }

    /// `start` now, then advancing with tokio's clock (which tests may pause and advance).
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            anchor: Some((start, tokio::time::Instant::now())),
        }
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        match self.anchor {
            None => Utc::now(),
            Some((t, i)) => {
                t + chrono::Duration::from_std(i.elapsed()).unwrap_or(chrono::Duration::zero())
            }
        }
    }

    async fn sleep_until(&self, t: DateTime<Utc>) {
        let d = (t - self.now()).to_std().unwrap_or(Duration::ZERO);
        tokio::time::sleep(d).await;
    }
}

/// One run's outcome, as reported by [`Scheduler::run_once`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunOutcome {
    /// The job.
    pub job: String,
    /// Why it ran.
    #[serde(flatten)]
    pub trigger: Trigger,
    /// The run.
    pub record: RunRecord,
}

/// Runs jobs on their schedules until cancelled, or once.
pub struct Scheduler {
    jobs: Vec<ScheduledJob>,
    runner: Arc<dyn JobRunner>,
    health: HealthHandle,
    clock: Clock,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("jobs", &self.jobs)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// How often the scheduler marks itself alive.
const TICK: Duration = Duration::from_secs(30);

impl Scheduler {
    /// A scheduler for `jobs`, running them through `runner`.
    pub fn new(jobs: Vec<ScheduledJob>, runner: Arc<dyn JobRunner>) -> Self {
        let health = HealthHandle::default();
        let clock = Clock::system();
        let now = clock.now();
        health.update(|h| {
            for j in &jobs {
                h.jobs.insert(
                    j.name.clone(),
                    JobHealth {
                        last_success: j.last_success,
                        max_age_seconds: j
                            .max_age
                            .or_else(|| default_max_age(&j.schedule, j.zone, now))
                            .map(|d| d.as_secs()),
                        ..JobHealth::default()
                    },
                );
            }
        });
        Self {
            jobs,
            runner,
            health,
            clock,
        }
    }

    /// Uses `clock` instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The shared state for `/healthz`.
    pub fn health(&self) -> HealthHandle {
        self.health.clone()
    }

    /// Runs every job that is due now, one after the other, and returns: a job is due when
    /// its latest slot at or before now has no success since ([`missed_slot`]). For
    /// Kubernetes CronJobs and systemd timers (`pgb daemon --once`).
    pub async fn run_once(&self, cancel: &CancellationToken) -> Vec<RunOutcome> {
        let mut out = Vec::new();
        let now = self.clock.now();
        self.health.update(|h| h.last_tick = Some(now));
        for job in &self.jobs {
            if cancel.is_cancelled() {
                break;
            }
            let Some(slot) = missed_slot(&job.schedule, job.zone, job.last_success, now) else {
                tracing::info!(job = %job.name, "not due");
                continue;
            };
            let trigger = Trigger::Once { slot };
            let record = self.run_job(job, trigger, cancel).await;
            out.push(RunOutcome {
                job: job.name.clone(),
                trigger,
                record,
            });
        }
        out
    }

    /// Runs every job at its times until `cancel` fires, then cancels running jobs, waits
    /// for them to stop and returns. Jobs run concurrently with each other, but a job never
    /// overlaps itself: a slot that passes while the job still runs is skipped (logged).
    pub async fn run(self, cancel: CancellationToken) {
        let this = Arc::new(self);
        let mut tasks = tokio::task::JoinSet::new();
        {
            let (health, clock, cancel) = (this.health.clone(), this.clock, cancel.clone());
            tasks.spawn(async move {
                loop {
                    health.update(|h| h.last_tick = Some(clock.now()));
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(TICK) => {}
                    }
                }
            });
        }
        for idx in 0..this.jobs.len() {
            let (this, cancel) = (Arc::clone(&this), cancel.clone());
            tasks.spawn(async move { this.job_loop(idx, cancel).await });
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn job_loop(&self, idx: usize, cancel: CancellationToken) {
        let job = &self.jobs[idx];
        let delay = jitter_for(&job.name, job.jitter);
        if job.catch_up
            && let Some(slot) =
                missed_slot(&job.schedule, job.zone, job.last_success, self.clock.now())
        {
            tracing::info!(job = %job.name, %slot, "a slot was missed while down: catching up");
            self.run_job(job, Trigger::CatchUp { slot }, &cancel).await;
        }
        let mut after = self.clock.now();
        loop {
            let slot = match next_run(&job.schedule, job.zone, after) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(job = %job.name, error = %e, "no further runs");
                    return;
                }
            };
            let at = slot + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero());
            self.health.update(|h| {
                if let Some(j) = h.jobs.get_mut(&job.name) {
                    j.next_run = Some(at);
                }
            });
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.clock.sleep_until(at) => {}
            }
            self.run_job(job, Trigger::Scheduled { slot }, &cancel)
                .await;
            if cancel.is_cancelled() {
                return;
            }
            let now = self.clock.now();
            if let Ok(next) = next_run(&job.schedule, job.zone, slot)
                && next < now
            {
                tracing::warn!(job = %job.name, %next, "the run outlasted the next slot; skipped");
            }
            after = now.max(slot);
        }
    }

    async fn run_job(
        &self,
        job: &ScheduledJob,
        trigger: Trigger,
        cancel: &CancellationToken,
    ) -> RunRecord {
        let started_at = self.clock.now();
        self.health.update(|h| {
            if let Some(j) = h.jobs.get_mut(&job.name) {
                j.running = true;
            }
        });
        tracing::info!(job = %job.name, trigger = trigger.name(), "run starts");
        let res = self
            .runner
            .run(&job.name, trigger, cancel.child_token())
            .await;
        let finished_at = self.clock.now();
        if let Err(e) = &res {
            tracing::error!(job = %job.name, error = %e, "run failed");
        } else {
            tracing::info!(job = %job.name, "run succeeded");
        }
        let record = RunRecord {
            started_at,
            finished_at,
            ok: res.is_ok(),
            error: res.err(),
            trigger: trigger.name().to_owned(),
        };
        self.health.update(|h| {
            if let Some(j) = h.jobs.get_mut(&job.name) {
                j.running = false;
                if record.ok {
                    j.last_success = Some(finished_at);
                }
                j.last_run = Some(record.clone());
            }
        });
        record
    }
}
