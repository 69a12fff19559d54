//! `pgb run JOB [--dry-run]`: one run of a configured job, planned and run by the library
//! ([`pgb_jobs::JobPlan`]): lock, hooks, backup, verify, prune of the job's own set.

use std::future::Future;

use pgb_config::ResolvedJob;

use super::Ctx;
use crate::args::RunArgs;
use crate::exit::Failure;
use crate::render::{self, Output, ProgressConfig};
use crate::resolve::{Env, config};

pub(super) async fn run(a: RunArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let job = config::job(a.file.config.as_deref(), &a.job, ctx.env)?;
    if a.dry_run {
        // Resolve everything a run would (keys, repository, dumper), run nothing.
        pgb_jobs::JobPlan::resolve(&job, ctx.env)?;
        let report = job.report();
        return Output::json(a.json).emit(&report, |w| render::jobs::dry_run(w, &report));
    }
    let report = Box::pin(run_job(&job, ctx.env, &ctx.progress, ctx.cancelled())).await?;
    Output::json(a.json).emit(&report, |w| render::jobs::run(w, &report))
}

/// One run of `job`, as `pgb run` and the daemon do it: the library's plan, this host as the
/// lock holder, progress per job.
pub(super) async fn run_job(
    job: &ResolvedJob,
    env: Env<'_>,
    progress: &ProgressConfig,
    cancel: impl Future<Output = ()> + Send,
) -> Result<pgb_jobs::RunReport, Failure> {
    let plan = pgb_jobs::JobPlan::resolve(job, env)?.with_holder(config::holder(env));
    let progress = render::Reporter::job(progress, &plan.repo, &job.name);
    let result = plan.run(&progress, cancel).await;
    let backup = result.as_ref().ok().and_then(|r| r.backup.as_ref());
    progress.finish(backup.map(pgb::Manifest::plain_size));
    result.map_err(|f| Failure::from(f.error))
}
