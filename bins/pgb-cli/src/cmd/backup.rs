//! `pgb backup`: one backup, then (only after it committed) with `--verify` a recorded verify
//! and with `--prune` a prune.

use pgb_notify::{Event, Notification};

use super::Ctx;
use crate::args::BackupArgs;
use crate::exit::Failure;
use crate::render::{self, BackupOut, Output};
use crate::resolve;

/// Announces the run (healthchecks `/start`), runs the backup, then sends `backup_succeeded` or
/// `backup_failed` under the same run id (never changing the exit code): with the host, the
/// set (on failure the set the backup would have had, when the database URL names its host),
/// the duration, and on success the backup id and its stored and plain sizes.
pub(super) async fn run(mut a: BackupArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let layer = resolve::job::layer(&mut a, ctx.env)?;
    let ctx = &ctx.with_env(&layer.env);
    let notifier = pgb_jobs::notifier_for(&a.notify.targets(), layer.job.as_ref(), ctx.env)?;
    let run = super::notify::start(notifier.as_ref());
    let intended_set = match &layer.job {
        Some(j) => pgb_jobs::job_intended_set(j, ctx.env),
        None if a.physical.physical => None,
        None => pgb_jobs::intended_set(a.db.as_deref(), a.cluster.all_databases, ctx.env),
    };
    // The repository again, to read the committed manifest's plain size for the notification.
    let repo_args = crate::args::RepoArgs {
        repo: a.repo.repo.clone(),
        retries: a.repo.retries,
        retry_budget: a.repo.retry_budget.clone(),
        request_timeout: a.repo.request_timeout.clone(),
        io_timeout: a.repo.io_timeout.clone(),
        from_job: a.repo.from_job,
    };
    let t0 = std::time::Instant::now();
    let res = match &layer.job {
        Some(j) => Box::pin(super::backup_job::backup(a, j, ctx)).await,
        None => Box::pin(backup(a, ctx)).await,
    };
    let elapsed = t0.elapsed();
    let n = match &res {
        Ok((id, set, size)) => {
            let n = Notification::new(Event::BackupSucceeded)
                .with_status("succeeded")
                .with_backup_id(id.clone())
                .with_set(set.clone())
                .with_size("stored", *size);
            match committed(notifier.is_some(), &repo_args, id, ctx).await {
                Some(m) => pgb_jobs::notify_heads(n.with_size("plain", m.plain_size()), &m),
                None => n,
            }
        }
        Err(f) => {
            let n = Notification::new(Event::BackupFailed)
                .with_status("failed")
                .with_cause(&f.message);
            match intended_set {
                Some(s) => n.with_set(s),
                None => n,
            }
        }
    }
    .with_host(resolve::config::holder(ctx.env).host)
    .with_duration("total", elapsed);
    let n = match &layer.job {
        Some(j) => n.with_job(j.name.clone()),
        None => n,
    };
    super::notify::finish(notifier.as_ref(), n, run).await;
    res.map(|_| ())
}

/// The manifest of committed backup `id`, read back for its plain size and migration heads
/// (only when a notification is sent; `None` when it cannot be read).
async fn committed(
    notify: bool,
    repo: &crate::args::RepoArgs,
    id: &str,
    ctx: &Ctx<'_>,
) -> Option<pgb::Manifest> {
    if !notify {
        return None;
    }
    let repo = resolve::repository(repo, ctx.env).ok()?;
    match repo.resolve(id, None).await {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::debug!(error = %e, "plain size not read back for the notification");
            None
        }
    }
}

async fn backup(a: BackupArgs, ctx: &Ctx<'_>) -> Result<(String, String, u64), Failure> {
    if a.physical.physical {
        return Box::pin(super::physical::backup(a, ctx)).await;
    }
    if a.cluster.all_databases {
        return Box::pin(super::cluster::backup(a, ctx)).await;
    }
    if a.format == Some(crate::args::Format::Directory) {
        return Box::pin(super::cluster::backup_directory(a, ctx)).await;
    }
    let plan = resolve::backup(&a, ctx.env)?;
    let repo = resolve::backup_repository(&a.repo, ctx.env)?;
    let progress = render::Reporter::backup(&ctx.progress, &repo);
    // Boxed: the backup's future is large, and every command's future would carry it.
    let request = pgb::BackupRequest::database(&plan.dumper, &plan.options);
    let report = Box::pin(repo.backup_request(request, &progress, ctx.cancelled()))
        .await
        .map(pgb::BackupOutcome::into_report);
    progress.finish(report.as_ref().ok().map(|r| r.manifest.plain_size()));
    let report = report?;
    after_commit(&a, ctx, &repo, &report, plan.prune, &report, |w| {
        render::backup_text(w, &report)
    })
    .await
}

/// After a commit: the library's one after-commit step (`--verify`, recorded; `--prune` of
/// this backup's own set with the newest-verified guard), then the report. Returns (id, set,
/// stored bytes) for the notification.
pub(super) async fn after_commit<T: serde::Serialize>(
    a: &BackupArgs,
    ctx: &Ctx<'_>,
    repo: &pgb::Repository,
    backup: &pgb::BackupReport,
    prune: Option<pgb::retention::Policy>,
    report: &T,
    text: impl Fn(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<(String, String, u64), Failure> {
    let out = Output::json(a.json);
    let m = &backup.manifest;
    let checker = pgb_jobs::archive_checker(resolve::tools(&a.tools, ctx.env), ctx.env);
    let auth = resolve::auth_key(None, ctx.env)?;
    let mut steps = pgb_ops::AfterCommit::new()
        .with_auth_key(auth.as_ref())
        .with_retention(prune.as_ref().map(|p| p as &dyn pgb::RetentionPolicy));
    if a.verify {
        steps = steps.with_verify(Some(&checker));
    }
    let progress = a
        .verify
        .then(|| render::Reporter::new(&ctx.progress, "verify", Some(m.plain_size())));
    let mut done = pgb_ops::AfterCommitReport::default();
    let shown: &dyn pgb::Progress = progress.as_ref().map_or(&pgb::NoProgress, |p| p);
    let result = pgb_ops::after_commit(repo, m, &steps, shown, &mut done).await;
    if let Some(p) = progress {
        p.finish(done.verify.as_ref().map(|_| m.plain_size()));
    }
    if let Some(e) = &done.verify_not_recorded {
        render::note(format_args!(
            "warning: the verify of {} was not recorded: {e}",
            m.id
        ));
    }
    result.map_err(|e| match e {
        pgb_ops::AfterCommitError::Pgb(e) => Failure::from(e),
        pgb_ops::AfterCommitError::Record(e) => Failure::from(e),
    })?;
    let result = (m.id.to_string(), m.set.clone(), m.stored_size());
    let Some(pruned) = &done.prune else {
        out.emit(report, text)?;
        return Ok(result);
    };
    if out == Output::Text {
        render::stdout(text)?;
    }
    render::prune_notes(pruned);
    let both = BackupOut {
        backup,
        prune: pruned,
    };
    out.emit(&both, |w| render::prune_text(w, pruned))?;
    Ok(result)
}
