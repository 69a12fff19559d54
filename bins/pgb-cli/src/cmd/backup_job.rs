//! `backup --job NAME`: the job, with this command's flags as its top layer, planned by the
//! library ([`pgb_jobs::JobPlan`]: repository, keys, the one choice of backup kind, dumper
//! and options), backed up, then the after-commit step with this command's `--verify` (or the
//! job's `verify_after_backup`) and `--prune`. Unlike `pgb run`, no job lock and no hooks.

use pgb::EnvLookup;
use pgb_config::ResolvedJob;
use pgb_jobs::{JobDumper, JobPlan, PlannedBackup};

use super::Ctx;
use crate::args::BackupArgs;
use crate::exit::Failure;
use crate::render::{self, cluster, physical};
use crate::resolve::{self, Env};

/// The command's environment with `--pg-bin-dir` standing for `PGB_PG_BIN_DIR`, where the
/// plan looks for PostgreSQL's tools.
struct Tools<'a> {
    base: Env<'a>,
    dirs: Option<String>,
}

impl EnvLookup for Tools<'_> {
    fn get(&self, name: &str) -> Option<String> {
        match (&self.dirs, name) {
            (Some(d), "PGB_PG_BIN_DIR") => Some(d.clone()),
            _ => self.base.get(name),
        }
    }

    fn vars(&self) -> Vec<(String, String)> {
        self.base.vars()
    }
}

/// Returns (id, set, stored bytes) for the notification.
pub(super) async fn backup(
    a: BackupArgs,
    job: &ResolvedJob,
    ctx: &Ctx<'_>,
) -> Result<(String, String, u64), Failure> {
    if a.encrypt.passphrase.is_some() {
        return Err(Failure::usage(resolve::SECRET_FLAG));
    }
    let prune = match (a.prune, resolve::policy(&a.policy)?) {
        (true, None) => {
            return Err(Failure::usage(
                "--prune needs a retention policy, e.g. --keep-daily 7 --keep-weekly 4 (or keep_* keys in the job)",
            ));
        }
        (true, p) => p,
        (false, _) => None,
    };
    let dirs = a.tools.pg_bin_dirs.iter().map(|d| d.display().to_string());
    let env = Tools {
        base: ctx.env,
        dirs: (!a.tools.pg_bin_dirs.is_empty()).then(|| dirs.collect::<Vec<_>>().join(":")),
    };
    let mut plan = JobPlan::resolve(job, &env)?;
    plan.options = std::mem::take(&mut plan.options).with_verify_upload(a.verify_upload);
    let bar = match plan.dumper {
        JobDumper::Server(_) | JobDumper::Directory { .. } => None,
        _ => Some(render::Reporter::backup(&ctx.progress, &plan.repo)),
    };
    let progress: &dyn pgb::Progress = match &bar {
        Some(b) => b,
        None => &render::log_progress,
    };
    let done = Box::pin(plan.backup_until(progress, ctx.cancelled())).await;
    if let Some(b) = bar {
        b.finish(done.as_ref().ok().map(|d| d.report().manifest.plain_size()));
    }
    let repo = &plan.repo;
    match done? {
        PlannedBackup::Server(c) => {
            cluster::notes(&c);
            super::backup::after_commit(&a, ctx, repo, &c.backup, prune, &c, |w| {
                cluster::backup(w, &c)
            })
            .await
        }
        PlannedBackup::Backup(r) if matches!(plan.dumper, JobDumper::Physical { .. }) => {
            super::backup::after_commit(&a, ctx, repo, &r, prune, &r, |w| physical::backup(w, &r))
                .await
        }
        PlannedBackup::Backup(r) => {
            super::backup::after_commit(&a, ctx, repo, &r, prune, &r, |w| {
                render::backup_text(w, &r)
            })
            .await
        }
        _ => unreachable!("PlannedBackup has two kinds"),
    }
}
