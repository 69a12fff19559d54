//! The daemon's WAL streams: for each job with `wal = "stream"`, the stream `pgb wal stream
//! --job NAME --create-slot` runs ([`super::wal_stream::Stream`]), supervised: restarted after
//! a failure with exponential backoff (1 s doubling to 60 s, back to 1 s after a healthy
//! minute), a log line per start, stop and failure, a rate-limited `wal_stream_down`
//! notification per failure (at most one in `PGB_WAL_NOTIFY_INTERVAL`, default 15m, per job),
//! and a clean stop when the daemon is (`pg_receivewal` reaped, a last pass over the spool).
//! Whether each stream is up and how often it restarted is in `/metrics` ([`StreamStates`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pgb_config::ResolvedJob;
use pgb_notify::{Event, Notification, RateLimit};
use pgb_scheduler::CancellationToken;

use super::daemon::LOG_TARGET;
use super::wal_stream::{self, Stream};
use crate::resolve::{self, SharedEnv};

/// The first wait before a restart.
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A stream that ran this long before failing restarts after [`MIN_BACKOFF`] again.
const HEALTHY: Duration = Duration::from_secs(60);
/// At most one `wal_stream_down` per job in this long, unless `PGB_WAL_NOTIFY_INTERVAL`.
const NOTIFY_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// Each streamed job's state for `/metrics`: up (the receiver runs) and restarts so far.
#[derive(Debug, Default)]
pub(super) struct StreamStates(Mutex<BTreeMap<String, (bool, u64)>>);

impl StreamStates {
    fn set(&self, job: &str, up: bool, restarts: u64) {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        m.insert(job.to_owned(), (up, restarts));
    }

    /// `pgb_wal_stream_up` and `pgb_wal_stream_restarts_total` per job, in Prometheus text
    /// (nothing when no job streams).
    pub(super) fn render(&self) -> String {
        let m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        if m.is_empty() {
            return out;
        }
        let label = |j: &str| j.replace('\\', "\\\\").replace('"', "\\\"");
        out.push_str(
            "# HELP pgb_wal_stream_up Whether the daemon's WAL stream of the job runs (1) or is down, waiting to restart (0).\n# TYPE pgb_wal_stream_up gauge\n",
        );
        for (j, (up, _)) in m.iter() {
            let _ = writeln!(
                out,
                "pgb_wal_stream_up{{pgb_job=\"{}\"}} {}",
                label(j),
                u8::from(*up)
            );
        }
        out.push_str(
            "# HELP pgb_wal_stream_restarts_total Failures of the job's WAL stream since the daemon started (each followed by a restart).\n# TYPE pgb_wal_stream_restarts_total counter\n",
        );
        for (j, (_, n)) in m.iter() {
            let _ = writeln!(
                out,
                "pgb_wal_stream_restarts_total{{pgb_job=\"{}\"}} {n}",
                label(j)
            );
        }
        out
    }
}

/// The jobs whose WAL the daemon streams.
pub(super) fn streamed(jobs: &[ResolvedJob]) -> Vec<ResolvedJob> {
    jobs.iter()
        .filter(|j| j.format == "physical" && j.wal == "stream")
        .cloned()
        .collect()
}

/// Runs `job`'s stream until `cancel`, restarting it when it fails.
pub(super) async fn supervise(
    job: ResolvedJob,
    env: SharedEnv,
    states: Arc<StreamStates>,
    cancel: CancellationToken,
) {
    let name = job.name.clone();
    states.set(&name, false, 0);
    let mut backoff = MIN_BACKOFF;
    let mut limit = RateLimit::default();
    let mut restarts = 0u64;
    while !cancel.is_cancelled() {
        let t0 = Instant::now();
        tracing::info!(target: LOG_TARGET, job = %name, restarts, "wal stream starting");
        let res = match Stream::for_job(&job, &*env) {
            Ok(s) => {
                let started = |pre: &pgb::postgres::StreamPreflight, line: String| {
                    states.set(&name, true, restarts);
                    for w in &pre.warnings {
                        tracing::warn!(target: LOG_TARGET, job = %name, "wal stream: {w}");
                    }
                    tracing::info!(target: LOG_TARGET, job = %name, "{line}");
                };
                s.run(started, cancel.clone().cancelled_owned())
                    .await
                    .map_err(|e| wal_stream::failure(e).message)
            }
            Err(f) => Err(f.message),
        };
        let error = match res {
            Ok(r) if cancel.is_cancelled() => {
                tracing::info!(
                    target: LOG_TARGET,
                    job = %name,
                    archived = r.archived,
                    last_archived = r.last_archived.as_deref().unwrap_or("none"),
                    partial_uploads = r.partial_uploads,
                    "wal stream stopped"
                );
                states.set(&name, false, restarts);
                return;
            }
            Ok(_) => "the stream ended".to_owned(),
            Err(m) => m,
        };
        if t0.elapsed() >= HEALTHY {
            backoff = MIN_BACKOFF;
        }
        restarts += 1;
        states.set(&name, false, restarts);
        tracing::warn!(
            target: LOG_TARGET,
            job = %name,
            error = %error,
            retry_in_s = backoff.as_secs(),
            "wal stream failed"
        );
        stream_down(&job, &env, &mut limit, &error).await;
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    tracing::info!(target: LOG_TARGET, job = %name, "wal stream stopped");
}

/// `wal_stream_down` to the job's (or the environment's) targets, unless one was sent less
/// than the interval ago.
async fn stream_down(job: &ResolvedJob, env: &SharedEnv, limit: &mut RateLimit, cause: &str) {
    let env = &**env;
    let notifier = match pgb_jobs::notifier_for(&Default::default(), Some(job), env) {
        Ok(Some(n)) => n,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(job = %job.name, error = %e, "wal_stream_down not sent");
            return;
        }
    };
    let every = env
        .get("PGB_WAL_NOTIFY_INTERVAL")
        .and_then(|v| pgb_config::parse_duration(&v).ok())
        .unwrap_or(NOTIFY_INTERVAL);
    let Some(failures) = limit.failure(time::OffsetDateTime::now_utc(), every) else {
        tracing::info!(job = %job.name, "wal_stream_down suppressed (rate limit)");
        return;
    };
    let n = Notification::new(Event::WalStreamDown)
        .with_host(resolve::config::holder(env).host)
        .with_job(&job.name)
        .with_wal("slot", &job.wal_stream_slot)
        .with_wal("failures", failures)
        .with_wal("interval_s", every.as_secs())
        .with_cause(cause);
    super::notify::send(Some(&notifier), n).await;
}
