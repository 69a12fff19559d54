//! `pgb drill --physical`: a point-in-time recovery drill. Flags → the library's options →
//! `pgb_ops::drill_pitr` (which starts and stops the scratch server and removes its
//! directory, also when the signal cancels it) → the report, rendered and judged like any
//! drill.

use std::future::Future;

use pgb_config::ResolvedJob;
use pgb_ops::{DrillError, DrillReport};

use crate::args::DrillArgs;
use crate::exit::Failure;
use crate::resolve::{self, Env};

/// Runs the drill of `a` (its `--job` already layered in); the report is rendered by the
/// caller like a drill of a dump.
pub(super) async fn run(
    a: &DrillArgs,
    job: Option<&ResolvedJob>,
    env: Env<'_>,
    cancel: impl Future<Output = ()> + Send,
) -> Result<Result<DrillReport, DrillError>, Failure> {
    let mut opts = resolve::pitr::options(a, env)?;
    if let Some(j) = job {
        opts = opts.with_job(j.name.clone());
    }
    let keys = resolve::decryption(&a.keys, env)?;
    let repo = resolve::repository(&a.repo, env)?
        .with_decryption(keys)
        .allow_unauthenticated(a.keys.allow_unauthenticated);
    let notifier = pgb_jobs::notifier_for(&a.notify.targets(), job, env)?;
    let run = super::notify::start(notifier.as_ref());
    let res = Box::pin(pgb_ops::drill_pitr(
        &repo,
        &opts,
        &crate::render::log_progress,
        cancel,
    ))
    .await;
    let n = pgb_jobs::drill_notification(&res);
    let n = match job {
        Some(j) => n.with_job(j.name.clone()),
        None => n,
    };
    super::notify::finish(notifier.as_ref(), n, run).await;
    Ok(res)
}
