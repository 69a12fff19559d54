//! `pgb run JOB [--dry-run]`: one run of a configured job (lock, hooks, backup, verify, prune).

use super::Ctx;
use crate::args::RunArgs;
use crate::exit::Failure;
use crate::render::{self, Output};
use crate::resolve::{self, config};

pub(super) async fn run(a: RunArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let job = config::job(a.file.config.as_deref(), &a.job, ctx.env)?;
    let env = resolve::job::job_env(&job, ctx.env)?;
    let ctx = &ctx.with_env(&env);
    let backup_args = config::backup_args(&job, ctx.env)?;
    let plan = resolve::backup(&backup_args, ctx.env)?;
    if a.dry_run {
        let report = job.report();
        return Output::json(a.json).emit(&report, |w| render::jobs::dry_run(w, &report));
    }
    let repo = resolve::repository(&backup_args.repo, ctx.env)?;
    let checker = resolve::checker(&backup_args.tools, ctx.env);
    let notifier = resolve::job_notifier(&job, ctx.env)?;
    let auth = resolve::auth_key(job.encryption.auth_key_file.as_deref(), ctx.env)?;
    let progress = render::Reporter::job(&ctx.progress, &repo, &job.name);
    let run = pgb_jobs::JobRun {
        job: &job,
        repo: &repo,
        dumper: &plan.dumper,
        options: &plan.options,
        checker: Some(&checker),
        holder: config::holder(ctx.env),
        hook_env: config::hook_env(ctx.env),
        progress: &progress,
        notifier: notifier.as_ref(),
        auth_key: auth.as_ref(),
    };
    let result = pgb_jobs::run_job(&run, ctx.cancelled()).await;
    let backup = result.as_ref().ok().and_then(|r| r.backup.as_ref());
    progress.finish(backup.map(pgb::Manifest::plain_size));
    match result {
        Ok(report) => Output::json(a.json).emit(&report, |w| render::jobs::run(w, &report)),
        Err(f) => Err(Failure::from(f.error)),
    }
}
