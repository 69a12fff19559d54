//! `pgb drill`: restore a backup into a scratch database, check it, measure RTO/RPO; the
//! library records the result in the repository and drops the scratch database (also on a
//! signal: the signal is passed as the drill's `cancel`).

use std::future::Future;

use pgb_config::ResolvedJob;
use pgb_ops::{DrillError, DrillOutcome, DrillReport};

use super::Ctx;
use crate::args::DrillArgs;
use crate::exit::{DRILL_CHECK_FAILED, DRILL_LIMIT_EXCEEDED, Failure, MIGRATION};
use crate::render::{self, Output};
use crate::resolve::{self, Env};

pub(super) async fn run(mut a: DrillArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let layer = resolve::job::layer(&mut a, ctx.env)?;
    // A job with physical base backups drills them point in time.
    a.physical |= layer.job.as_ref().is_some_and(|j| j.format == "physical");
    let ctx = &ctx.with_env(&layer.env);
    if a.history {
        let repo = resolve::repository(&a.repo, ctx.env)?;
        let auth = resolve::auth_key(a.keys.auth_key_file.as_deref(), ctx.env)?;
        let entries = pgb_ops::drill_history(&repo, auth.as_ref()).await?;
        return Output::json(a.json).emit(&entries, |w| render::drill_history_text(w, &entries));
    }
    let res = Box::pin(drill_notified(
        &a,
        layer.job.as_ref(),
        ctx.env,
        ctx.cancelled(),
    ))
    .await?;
    let report = res?;
    if let Some(e) = &report.record_error {
        render::note(format_args!("warning: the drill was not recorded: {e}"));
    }
    Output::json(a.json).emit(&report, |w| render::drill_text(w, &report))?;
    let cause = || report.cause.clone().unwrap_or_default();
    match report.outcome {
        DrillOutcome::Passed => Ok(()),
        DrillOutcome::LimitExceeded => Err(Failure::new(
            DRILL_LIMIT_EXCEEDED,
            format!("drill over its limit: {}", cause()),
        )),
        DrillOutcome::MigrationFailed => Err(Failure::new(
            MIGRATION,
            format!("drill migration check failed: {}", cause()),
        )),
        _ => Err(Failure::new(
            DRILL_CHECK_FAILED,
            format!("drill check failed: {}", cause()),
        )),
    }
}

/// A drill as `pgb drill` and the daemon's scheduled drills run it: the options of `a` (with
/// `--job` already filled in), the job's `post_restore` hook on the scratch database, the run
/// announced (`/start`) and its outcome notified. `Err`: it could not be set up.
pub(super) async fn drill_notified(
    a: &DrillArgs,
    job: Option<&ResolvedJob>,
    env: Env<'_>,
    cancel: impl Future<Output = ()> + Send,
) -> Result<Result<DrillReport, DrillError>, Failure> {
    if a.physical {
        return Box::pin(super::pitr_drill::run(a, job, env, cancel)).await;
    }
    let mut opts = resolve::drill(a, env)?
        .with_migrations(resolve::migrations::expectation(&a.migrations, job, env).await?);
    if let Some(j) = job {
        opts = opts.with_job(j.name.clone());
    }
    let keys = resolve::decryption(&a.keys, env)?;
    let repo = resolve::repository(&a.repo, env)?
        .with_decryption(keys)
        .allow_unauthenticated(a.keys.allow_unauthenticated);
    let notifier = pgb_jobs::notifier_for(&a.notify.targets(), job, env)?;
    // From here on every way out sends the outcome that pairs with this `/start`.
    let run = super::notify::start(notifier.as_ref());
    let hook = job.and_then(|j| pgb_jobs::PostRestoreHook::from_env(j, env));
    let hook = hook.as_ref().map(|h| h as &dyn pgb_ops::DrillHook);
    let res = pgb_ops::drill(&repo, &opts, hook, &render::log_progress, cancel).await;
    let n = pgb_jobs::drill_notification(&res);
    let n = match job {
        Some(j) => n.with_job(j.name.clone()),
        None => n,
    };
    super::notify::finish(notifier.as_ref(), n, run).await;
    Ok(res)
}
