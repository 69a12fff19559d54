//! Notification targets: `--notify` / `--notify-ping`, else `PGB_NOTIFY_URL` /
//! `PGB_NOTIFY_PING` (space-separated; the environment keeps the URLs out of `ps`). A job's
//! `[jobs.NAME.notify]` names the variables (or file) holding its URLs instead.

use pgb_config::ResolvedJob;
use pgb_notify::{Notifier, NotifyOptions, SecretUrl, Transport};

use super::{Env, var};
use crate::args::NotifyArgs;
use crate::exit::Failure;

fn urls(flags: &[String], env: Env<'_>, name: &str) -> Vec<String> {
    if flags.is_empty() {
        var(env, name)
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    } else {
        flags.to_vec()
    }
}

/// The notifier, or `None` when no target is configured. A bad URL is a usage error that
/// never echoes the URL.
pub(crate) fn notifier(a: &NotifyArgs, env: Env<'_>) -> Result<Option<Notifier>, Failure> {
    let bad = |what: &str, e: pgb_notify::InvalidUrl| Failure::usage(format!("{what}: {e}"));
    let mut transports = Vec::new();
    for u in urls(&a.notify, env, "PGB_NOTIFY_URL") {
        transports.push(match u.strip_prefix("slack+") {
            Some(rest) => Transport::Slack(SecretUrl::parse(rest).map_err(|e| bad("--notify", e))?),
            None => Transport::Webhook(SecretUrl::parse(&u).map_err(|e| bad("--notify", e))?),
        });
    }
    for u in urls(&a.notify_ping, env, "PGB_NOTIFY_PING") {
        transports.push(Transport::Healthchecks(
            SecretUrl::parse(&u).map_err(|e| bad("--notify-ping", e))?,
        ));
    }
    if transports.is_empty() {
        return Ok(None);
    }
    Notifier::new(transports, NotifyOptions::default())
        .map(Some)
        .map_err(|e| Failure::new(crate::exit::FAILURE, e.to_string()))
}

/// The notifier of a command: its `--notify` flags when given, else the job's (`--job`),
/// else the environment's.
pub(crate) fn notifier_for(
    a: &NotifyArgs,
    job: Option<&ResolvedJob>,
    env: Env<'_>,
) -> Result<Option<Notifier>, Failure> {
    match job {
        // The job's `[notify]` (or the environment's), as a job run resolves it.
        Some(j) if a.notify.is_empty() && a.notify_ping.is_empty() => {
            Ok(pgb_jobs::notifier(j, env)?)
        }
        _ => notifier(a, env),
    }
}
