//! Notification targets ([`pgb_jobs::NotifyTargets`], [`pgb_jobs::notifier`]).

use pgb_config::ResolvedJob;
use pgb_jobs::NotifyTargets;
use pgb_notify::Notifier;

use super::Env;
use crate::args::NotifyArgs;
use crate::exit::Failure;

/// The notifier of a command (`None`: no target): `--notify` / `--notify-ping` over
/// `PGB_NOTIFY_URL` / `PGB_NOTIFY_PING`; without flags, the job's `[notify]` when `--job`.
pub(crate) fn notifier_for(
    a: &NotifyArgs,
    job: Option<&ResolvedJob>,
    env: Env<'_>,
) -> Result<Option<Notifier>, Failure> {
    match job {
        Some(j) if a.notify.is_empty() && a.notify_ping.is_empty() => {
            Ok(pgb_jobs::notifier(j, env)?)
        }
        _ => Ok(NotifyTargets::from_env(env)
            .with_webhooks("--notify", &a.notify)
            .with_pings("--notify-ping", &a.notify_ping)
            .notifier()?),
    }
}
