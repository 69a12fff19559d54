//! `pgb daemon [--listen ADDR] [--once]`: the library's daemon ([`pgb_jobs::daemon`]) over
//! the config file's jobs: every scheduled job on its schedule (the `pgb-scheduler` loop), each
//! run a `pgb run`, every job's `drill.schedule` as a `pgb drill --job` (scheduled as
//! `NAME/drill`); with `--listen`, `/healthz`, `/metrics` and the status page; and for every
//! job with `wal = "stream"`, its WAL stream, supervised ([`super::stream_supervisor`]). This
//! handler keeps the process: the flags, the signal, the listener, progress and error wording.

use std::sync::Arc;

use pgb_jobs::daemon::{self, DaemonHost, JobError, RunProgress, Runner};
use pgb_scheduler::{CancellationToken, Scheduler};
use tokio::sync::mpsc;

use super::Ctx;
use crate::args::DaemonArgs;
use crate::exit::Failure;
use crate::render;
use crate::resolve::config;

/// The log target of the daemon's own lines (start, each run, stop): shown without `-v`.
pub(crate) use pgb_jobs::daemon::LOG_TARGET;

/// `--listen ADDR`: `None` when not given.
fn parse_listen(flag: Option<&str>) -> Result<Option<std::net::SocketAddr>, Failure> {
    flag.map(|a| {
        a.parse()
            .map_err(|e| Failure::usage(format!("--listen {a:?}: not an address: {e}")))
    })
    .transpose()
}

/// What the library's daemon leaves to this binary: each run's progress as log lines (jobs
/// run side by side, so never a bar) and failures worded as `pgb run` words them.
struct Host {
    progress: render::ProgressConfig,
}

impl DaemonHost for Host {
    fn run_progress(&self, plan: &pgb_jobs::JobPlan) -> Box<dyn RunProgress> {
        Box::new(render::Reporter::daemon_job(&self.progress, &plan.job.name))
    }

    fn drill_progress(&self) -> &dyn pgb::Progress {
        &render::log_progress
    }

    fn describe(&self, error: JobError) -> String {
        match error {
            JobError::Plan(e) => Failure::from(e).message,
            JobError::Run(e) => Failure::from(e).message,
        }
    }
}

impl RunProgress for render::Reporter {
    fn finish(self: Box<Self>, plain_bytes: Option<u64>) {
        render::Reporter::finish(*self, plain_bytes);
    }

    fn expect_total(&self, plain_bytes: u64) {
        render::Reporter::expect_total(self, plain_bytes);
    }
}

pub(super) async fn run(a: DaemonArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let cfg = config::require(a.file.config.as_deref(), ctx.env)?;
    let jobs = config::jobs(&cfg, None, ctx.env)?;
    let listen = parse_listen(a.listen.as_deref())?;
    let scheduled = daemon::schedule(&jobs, ctx.env).await?;
    let (finished, runs) = mpsc::unbounded_channel();
    let host = Arc::new(Host {
        progress: render::ProgressConfig {
            mode: match ctx.progress.mode {
                render::ProgressMode::Bar => render::ProgressMode::Log,
                m => m,
            },
            ..ctx.progress
        },
    });
    // Metrics cover every job of the file, also those `pgb run` runs from cron.
    let all_jobs = jobs.clone();
    let mut runner = Runner::new(
        jobs,
        ctx.shared_env(),
        Arc::clone(&host) as Arc<dyn DaemonHost>,
    )
    .with_holder(config::holder(ctx.env));
    if listen.is_some() {
        runner = runner.with_finished(finished);
    }
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
    // How far each running job got: the status page shows it.
    let live = runner.live_runs();
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
        let metrics = Arc::new(
            daemon::DaemonMetrics::new(&all_jobs, ctx.env, scheduler.health(), &*host)
                .with_live_runs(live),
        );
        for w in metrics.warnings() {
            render::note(format_args!("warning: {w}"));
        }
        let mut endpoints = metrics.endpoints();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_a_socket_address() {
        assert_eq!(
            parse_listen(Some("127.0.0.1:9187")).unwrap(),
            Some("127.0.0.1:9187".parse().unwrap())
        );
        assert_eq!(parse_listen(None).unwrap(), None);
        assert_eq!(parse_listen(Some("localhost")).unwrap_err().code, 2);
    }
}
