//! `pgb run JOB [--dry-run]`: one run of a configured job (lock, hooks, backup, verify, prune).

use std::future::Future;

use pgb_config::ResolvedJob;

use super::Ctx;
use crate::args::RunArgs;
use crate::exit::Failure;
use crate::render::{self, Output, ProgressConfig};
use crate::resolve::{self, Env, config};

pub(super) async fn run(a: RunArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let job = config::job(a.file.config.as_deref(), &a.job, ctx.env)?;
    if a.dry_run {
        // Resolve everything a run would (keys included), run nothing.
        let env = resolve::job::job_env(&job, ctx.env)?;
        Plan::resolve(&config::backup_args(&job, &env)?, &env)?;
        let report = job.report();
        return Output::json(a.json).emit(&report, |w| render::jobs::dry_run(w, &report));
    }
    let report = Box::pin(run_job(&job, ctx.env, &ctx.progress, ctx.cancelled())).await?;
    Output::json(a.json).emit(&report, |w| render::jobs::run(w, &report))
}

/// One run of `job`, as `pgb run` and the daemon do it: the job's key variables layered over
/// `env`, its repository, dumper, checker, notifier and lock holder, progress per job.
pub(super) async fn run_job(
    job: &ResolvedJob,
    env: Env<'_>,
    progress: &ProgressConfig,
    cancel: impl Future<Output = ()> + Send,
) -> Result<pgb_jobs::RunReport, Failure> {
    let job_env = resolve::job::job_env(job, env)?;
    let env: Env<'_> = &job_env;
    let backup_args = config::backup_args(job, env)?;
    let plan = Plan::resolve(&backup_args, env)?;
    let repo = resolve::repository(&backup_args.repo, env)?;
    let checker = resolve::checker(&backup_args.tools, env);
    let notifier = resolve::job_notifier(job, env)?;
    let auth = resolve::auth_key(None, env)?;
    let progress = render::Reporter::job(progress, &repo, &job.name);
    let run = pgb_jobs::JobRun {
        job,
        repo: &repo,
        backup: plan.job_backup(),
        checker: Some(&checker),
        holder: config::holder(env),
        hook_env: config::hook_env(env),
        progress: &progress,
        notifier: notifier.as_ref(),
        auth_key: auth.as_ref(),
    };
    let result = pgb_jobs::run_job(&run, cancel).await;
    let backup = result.as_ref().ok().and_then(|r| r.backup.as_ref());
    progress.finish(backup.map(pgb::Manifest::plain_size));
    result.map_err(|f| Failure::from(f.error))
}

/// A job's backup, resolved: one database, a whole server, or the directory format.
enum Plan {
    Database(resolve::Backup),
    Server(resolve::ClusterBackup),
    Directory(resolve::DirectoryBackup),
}

impl Plan {
    fn resolve(a: &crate::args::BackupArgs, env: Env<'_>) -> Result<Self, Failure> {
        Ok(if a.cluster.all_databases {
            Self::Server(resolve::cluster_backup(a, env)?)
        } else if a.format == Some(crate::args::Format::Directory) {
            Self::Directory(resolve::directory_backup(a, env)?)
        } else {
            Self::Database(resolve::backup(a, env)?)
        })
    }

    fn job_backup(&self) -> pgb_jobs::JobBackup<'_> {
        match self {
            Self::Database(p) => pgb_jobs::JobBackup::Database {
                dumper: &p.dumper,
                options: &p.options,
            },
            Self::Server(p) => pgb_jobs::JobBackup::Server {
                dumper: &p.dumper,
                options: &p.options,
            },
            Self::Directory(p) => pgb_jobs::JobBackup::Directory {
                dumper: &p.dumper,
                jobs: p.jobs,
                options: &p.options,
            },
        }
    }
}
