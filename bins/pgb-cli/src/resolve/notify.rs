//! Notification targets: `--notify` / `--notify-ping`, else `PGB_NOTIFY_URL` /
//! `PGB_NOTIFY_PING` (space-separated; the environment keeps the URLs out of `ps`). A job's
//! `[jobs.NAME.notify]` names the variables (or file) holding its URLs instead.

use pgb_config::ResolvedJob;
use pgb_notify::{Event, Notifier, NotifyOptions, SecretUrl, Transport};

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
        Some(j) if a.notify.is_empty() && a.notify_ping.is_empty() => job_notifier(j, env),
        _ => notifier(a, env),
    }
}

/// A job's notifier: the URLs from the variables (or file) its `[notify]` table names, with
/// its `events` filter; without that table, as [`notifier`] without flags
/// (`PGB_NOTIFY_URL` / `PGB_NOTIFY_PING`). A named variable that is unset, or a bad URL, is a
/// usage error naming the key, never the URL.
pub(crate) fn job_notifier(job: &ResolvedJob, env: Env<'_>) -> Result<Option<Notifier>, Failure> {
    let Some(cfg) = &job.notify else {
        return notifier(&NotifyArgs::default(), env);
    };
    let key = |k: &str| format!("jobs.{}.notify.{k}", job.name);
    let from_env = |k: &str, name: &Option<String>| -> Result<Option<SecretUrl>, Failure> {
        let Some(name) = name else { return Ok(None) };
        let url = var(env, name)
            .ok_or_else(|| Failure::usage(format!("{}: variable {name} is not set", key(k))))?;
        let url = url.trim();
        SecretUrl::parse(url)
            .map(Some)
            .map_err(|e| Failure::usage(format!("{}: {e}", key(k))))
    };
    let mut transports = Vec::new();
    if let Some(u) = from_env("webhook_url_env", &cfg.webhook_url_env)? {
        transports.push(Transport::Webhook(u));
    }
    if let Some(path) = &cfg.webhook_url_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::usage(format!(
                "{}: cannot read {}: {e}",
                key("webhook_url_file"),
                path.display()
            ))
        })?;
        let u = SecretUrl::parse(text.trim())
            .map_err(|e| Failure::usage(format!("{}: {e}", key("webhook_url_file"))))?;
        transports.push(Transport::Webhook(u));
    }
    if let Some(u) = from_env("slack_url_env", &cfg.slack_url_env)? {
        transports.push(Transport::Slack(u));
    }
    if let Some(u) = from_env("ping_url_env", &cfg.ping_url_env)? {
        transports.push(Transport::Healthchecks(u));
    }
    if transports.is_empty() {
        return Ok(None);
    }
    let n = Notifier::new(transports, NotifyOptions::default())
        .map_err(|e| Failure::new(crate::exit::FAILURE, e.to_string()))?;
    // The config was validated: every name is an event.
    let events: Vec<Event> = cfg
        .events
        .iter()
        .filter_map(|e| Event::from_name(e))
        .collect();
    Ok(Some(if events.is_empty() {
        n
    } else {
        n.with_events(events)
    }))
}
