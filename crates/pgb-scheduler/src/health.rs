//! What `/healthz` reports: the scheduler's liveness and each job's runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// How long the scheduler may go without a tick before it counts as dead.
pub const TICK_STALE_AFTER: Duration = Duration::from_secs(120);

/// One finished run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Whether it succeeded.
    pub ok: bool,
    /// The error's one-line cause, when it failed.
    pub error: Option<String>,
    /// Why it ran: `scheduled`, `catch_up` or `once`.
    pub trigger: String,
}

/// One job's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobHealth {
    /// The last run, successful or not.
    pub last_run: Option<RunRecord>,
    /// The newest success (from this process or, at start, from the repository).
    pub last_success: Option<DateTime<Utc>>,
    /// The next planned run (jitter included).
    pub next_run: Option<DateTime<Utc>>,
    /// Whether it is running now.
    pub running: bool,
    /// The newest success must be younger than this, in seconds.
    pub max_age_seconds: Option<u64>,
    /// Whether the newest success is within the maximum age (set by [`HealthState::evaluate`]).
    pub fresh: bool,
}

/// The scheduler's state, shared with the HTTP endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HealthState {
    /// When the scheduler last ticked.
    pub last_tick: Option<DateTime<Utc>>,
    /// Whether the scheduler ticked within [`TICK_STALE_AFTER`] (set by `evaluate`).
    pub alive: bool,
    /// Whether everything is fine: alive and every job fresh (set by `evaluate`).
    pub healthy: bool,
    /// Per job.
    pub jobs: BTreeMap<String, JobHealth>,
}

impl HealthState {
    /// Fills in `alive`, `healthy` and each job's `fresh` as of `now`, and returns `healthy`.
    pub fn evaluate(&mut self, now: DateTime<Utc>) -> bool {
        let stale = chrono::Duration::from_std(TICK_STALE_AFTER).expect("small");
        self.alive = self.last_tick.is_some_and(|t| now - t <= stale);
        let mut all_fresh = true;
        for j in self.jobs.values_mut() {
            j.fresh = match j.max_age_seconds {
                None => true,
                Some(max) => j.last_success.is_some_and(|t| {
                    (now - t).num_seconds() <= i64::try_from(max).unwrap_or(i64::MAX)
                }),
            };
            all_fresh &= j.fresh;
        }
        self.healthy = self.alive && all_fresh;
        self.healthy
    }
}

/// A shared handle on the [`HealthState`].
#[derive(Debug, Clone, Default)]
pub struct HealthHandle(Arc<Mutex<HealthState>>);

impl HealthHandle {
    /// A copy of the state, evaluated as of `now`.
    pub fn snapshot(&self, now: DateTime<Utc>) -> HealthState {
        let mut s = self.lock().clone();
        s.evaluate(now);
        s
    }

    /// Sets a job's newest success, e.g. from the repository when a backup ran outside the
    /// scheduler (`pgb run` from cron). Unknown jobs are ignored.
    pub fn set_last_success(&self, job: &str, at: DateTime<Utc>) {
        self.update(|h| {
            if let Some(j) = h.jobs.get_mut(job) {
                j.last_success = Some(at);
            }
        });
    }

    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut HealthState) -> R) -> R {
        f(&mut self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
