//! `pgb check`: the repository's health for monitoring, with the monitoring-plugin exit codes
//! (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) and, with `--textfile`, Prometheus metrics.

use pgb_notify::{Event, Notification};

use super::Ctx;
use crate::args::{CheckArgs, CheckFormat};
use crate::exit::{CHECK_UNKNOWN, Failure};
use crate::render::{self, Output};
use crate::resolve;

pub(super) async fn run(mut a: CheckArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let flag = a.format;
    let layer = resolve::job::layer(&mut a, ctx.env).map_err(|f| unknown(f, flag))?;
    let ctx = &ctx.with_env(&layer.env);
    let opts = resolve::check(&a, ctx.env).map_err(|f| unknown(f, a.format))?;
    let keys = resolve::wal_reading(a.auth_key_file.as_deref(), &a.identity_file, ctx.env)
        .map_err(|f| unknown(f, a.format))?;
    let repo = resolve::repository(&a.repo, ctx.env)
        .map_err(|f| unknown(f, a.format))?
        .with_decryption(keys);
    let notifier = pgb_jobs::notifier_for(&a.notify.targets(), layer.job.as_ref(), ctx.env)
        .map_err(|f| unknown(f.into(), a.format))?;
    let mut report = pgb_ops::check(&repo, &opts).await;
    if let Some(server) = resolve::check_server(&a).map_err(|f| unknown(f, a.format))? {
        let sql = pgb::postgres::SqlClient::locate(&resolve::tools(&a.tools, ctx.env))
            .await
            .map_err(|e| unknown(Failure::from(pgb::Error::Dump(e)), a.format))?;
        pgb_ops::check_archiver(&mut report, &sql, &server, a.max_ready).await;
    }
    if report.status.code() != 0 {
        let n = Notification::new(Event::CheckFailed)
            .with_status(report.status.as_str())
            .with_cause(report.summary());
        super::notify::send(notifier.as_ref(), n).await;
    }
    let job = layer.job.as_ref().map(|j| j.name.as_str());
    super::wal_notify::gaps(notifier.as_ref(), &report, job, ctx.env).await;
    if let Some(dir) = &a.textfile {
        // One file per check (pgb-<job>.prom, else per repository and database), so that
        // checks sharing the directory never overwrite each other's status.
        let job = layer.job.as_ref().map(|j| j.name.as_str());
        let repo_url = pgb::redact_url(&resolve::repo_url(&a.repo, ctx.env));
        let name = pgb_ops::metrics::textfile_name(job, &repo_url, a.database.as_deref());
        let text = pgb_ops::metrics::render_check(&report, job);
        if let Err(e) = pgb_ops::metrics::write_textfile(dir, &name, &text) {
            render::note(format_args!(
                "warning: cannot write {}: {e}",
                dir.join(&name).display()
            ));
        }
    }
    match a.format.unwrap_or(CheckFormat::Text) {
        CheckFormat::Nagios => render::stdout(|w| writeln!(w, "{}", pgb_ops::nagios(&report)))?,
        f => Output::json(f == CheckFormat::Json)
            .emit(&report, |w| render::check_text(w, &report))?,
    }
    match report.status.code() {
        0 => Ok(()),
        code => Err(Failure::silent(i32::from(code))),
    }
}

/// A check that cannot run (a bad flag value, a repository that cannot be opened) is UNKNOWN
/// (3), whatever the usual exit code: the monitoring-plugin convention, so that no monitor reads
/// it as CRITICAL. With `--format nagios` the plugin line says so on stdout too.
fn unknown(f: Failure, format: Option<CheckFormat>) -> Failure {
    if format == Some(CheckFormat::Nagios) {
        let line = format!("PGB UNKNOWN - {}", f.message).replace('|', "/");
        // The exit code and the error line still tell; a closed stdout changes nothing.
        let _ = render::stdout(|w| writeln!(w, "{line}"));
    }
    Failure::new(CHECK_UNKNOWN, f.message)
}
