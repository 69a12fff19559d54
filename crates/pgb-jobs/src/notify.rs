//! Where notifications go: [`NotifyTargets`] (URLs from flags or `PGB_NOTIFY_URL` /
//! `PGB_NOTIFY_PING`) and a job's `[notify]` table ([`notifier`]), one parser for both.

use pgb_config::ResolvedJob;
use pgb_notify::{Event, Notifier, NotifyOptions, SecretUrl, Transport};
use pgb_open::EnvLookup;

use crate::keys::read_secret;
use crate::plan::PlanError;

/// Why no notifier can be built. `Display` names where the URL came from, never the URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// A URL that cannot be used.
    #[error("{from}: {source}")]
    Url {
        /// Where it came from (a flag, a variable).
        from: String,
        /// Why.
        source: pgb_notify::InvalidUrl,
    },
    /// The HTTP client cannot be built.
    #[error(transparent)]
    Client(#[from] pgb_notify::ClientError),
    /// The job's `[notify]` table cannot be used ([`notifier`]).
    #[error(transparent)]
    Job(#[from] PlanError),
}

/// Notification URLs, each list named by where it came from: webhooks (`slack+https://...`
/// for Slack) and healthchecks pings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyTargets {
    webhooks: (String, Vec<String>),
    pings: (String, Vec<String>),
}

impl NotifyTargets {
    /// `PGB_NOTIFY_URL` and `PGB_NOTIFY_PING`, space-separated (the environment keeps the
    /// URLs out of `ps`).
    pub fn from_env(env: &dyn EnvLookup) -> Self {
        let urls = |name: &str| {
            let v = env.get(name).unwrap_or_default();
            (
                name.to_owned(),
                v.split_whitespace().map(str::to_owned).collect(),
            )
        };
        Self {
            webhooks: urls("PGB_NOTIFY_URL"),
            pings: urls("PGB_NOTIFY_PING"),
        }
    }

    /// The webhook and Slack URLs `urls` (named `from` in errors) instead, unless empty.
    #[must_use]
    pub fn with_webhooks(mut self, from: &str, urls: &[String]) -> Self {
        if !urls.is_empty() {
            self.webhooks = (from.to_owned(), urls.to_vec());
        }
        self
    }

    /// The healthchecks URLs `urls` (named `from` in errors) instead, unless empty.
    #[must_use]
    pub fn with_pings(mut self, from: &str, urls: &[String]) -> Self {
        if !urls.is_empty() {
            self.pings = (from.to_owned(), urls.to_vec());
        }
        self
    }

    /// Whether no URL is given.
    pub fn is_empty(&self) -> bool {
        self.webhooks.1.is_empty() && self.pings.1.is_empty()
    }

    /// The notifier, `None` when no URL is given.
    ///
    /// # Errors
    /// [`NotifyError`]: a bad URL (never echoed), the client.
    pub fn notifier(&self) -> Result<Option<Notifier>, NotifyError> {
        let parse = |from: &str, u: &str| {
            SecretUrl::parse(u).map_err(|source| NotifyError::Url {
                from: from.to_owned(),
                source,
            })
        };
        let (from, urls) = &self.webhooks;
        let mut transports = Vec::new();
        for u in urls {
            transports.push(match u.strip_prefix("slack+") {
                Some(rest) => Transport::Slack(parse(from, rest)?),
                None => Transport::Webhook(parse(from, u)?),
            });
        }
        let (from, urls) = &self.pings;
        for u in urls {
            transports.push(Transport::Healthchecks(parse(from, u)?));
        }
        if transports.is_empty() {
            return Ok(None);
        }
        Ok(Some(Notifier::new(transports, NotifyOptions::default())?))
    }
}

/// A command's notifier, one rule for every command: the URLs `given` (its flags, each list
/// replacing the environment's) over [`NotifyTargets::from_env`]; without any, the job's
/// ([`notifier`]) when it runs one. `None`: no target.
///
/// # Errors
/// [`NotifyError`]: a bad URL (never echoed), the client, the job's `[notify]`.
pub fn notifier_for(
    given: &NotifyTargets,
    job: Option<&ResolvedJob>,
    env: &dyn EnvLookup,
) -> Result<Option<Notifier>, NotifyError> {
    match job {
        Some(j) if given.is_empty() => Ok(notifier(j, env)?),
        _ => NotifyTargets::from_env(env)
            .with_webhooks(&given.webhooks.0, &given.webhooks.1)
            .with_pings(&given.pings.0, &given.pings.1)
            .notifier(),
    }
}

/// The job's notifier: the URLs from the variables (or file) its `[notify]` table names, with
/// its `events` filter; without that table, [`NotifyTargets::from_env`]. A named variable
/// that is unset, or a bad URL, is an error naming the key, never the URL.
///
/// # Errors
/// [`PlanError::Invalid`].
pub fn notifier(job: &ResolvedJob, env: &dyn EnvLookup) -> Result<Option<Notifier>, PlanError> {
    let invalid = |key: String, message: String| PlanError::Invalid {
        job: job.name.clone(),
        key,
        message,
    };
    let Some(cfg) = &job.notify else {
        return NotifyTargets::from_env(env)
            .notifier()
            .map_err(|e| match e {
                NotifyError::Url { from, source } => invalid(from, source.to_string()),
                e => invalid("notify".into(), e.to_string()),
            });
    };
    let key = |k: &str| format!("notify.{k}");
    let from_env = |k: &str, name: &Option<String>| -> Result<Option<SecretUrl>, PlanError> {
        let Some(name) = name else { return Ok(None) };
        let url = env
            .get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid(key(k), format!("variable {name} is not set")))?;
        SecretUrl::parse(url.trim())
            .map(Some)
            .map_err(|e| invalid(key(k), e.to_string()))
    };
    let mut transports = Vec::new();
    if let Some(u) = from_env("webhook_url_env", &cfg.webhook_url_env)? {
        transports.push(Transport::Webhook(u));
    }
    if let Some(path) = &cfg.webhook_url_file {
        let text = read_secret(path, "webhook URL")
            .map_err(|e| invalid(key("webhook_url_file"), e.to_string()))?;
        let u = SecretUrl::parse(text.trim())
            .map_err(|e| invalid(key("webhook_url_file"), e.to_string()))?;
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
        .map_err(|e| invalid("notify".into(), e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn flags_replace_each_list_of_the_environment_and_errors_name_the_source() {
        let env: HashMap<String, String> = [
            (
                "PGB_NOTIFY_URL",
                "https://hooks.example/a slack+https://hooks.slack.example/b",
            ),
            ("PGB_NOTIFY_PING", "not a url"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let e = NotifyTargets::from_env(&env).notifier().unwrap_err();
        assert!(e.to_string().starts_with("PGB_NOTIFY_PING: "), "{e}");
        assert!(!e.to_string().contains("not a url"), "{e}");
        let pings = ["https://hc.example/ping/1".to_owned()];
        let t = NotifyTargets::from_env(&env).with_pings("--notify-ping", &pings);
        assert!(t.notifier().unwrap().is_some());
        let bad = ["ftp://x".to_owned()];
        let e = t.with_webhooks("--notify", &bad).notifier().unwrap_err();
        assert!(e.to_string().starts_with("--notify: "), "{e}");
        assert!(
            NotifyTargets::from_env(&HashMap::new())
                .notifier()
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn given_urls_win_over_the_job_and_the_environment_fills_the_other_list() {
        let env: HashMap<String, String> =
            [("PGB_NOTIFY_PING".to_owned(), "not a url".to_owned())].into();
        let cfg = "[jobs.shop]\nrepository = \"/r\"\n";
        let cfg = pgb_config::LoadedConfig::parse(cfg, std::path::Path::new("pgb.toml")).unwrap();
        let job = crate::resolve_job(&cfg, "shop", &env, &Default::default()).unwrap();
        let none = NotifyTargets::default();
        // The job has no [notify]: the environment's, with its error naming the variable.
        let e = notifier_for(&none, Some(&job), &env).unwrap_err();
        assert!(matches!(e, NotifyError::Job(_)), "{e}");
        assert!(e.to_string().contains("PGB_NOTIFY_PING"), "{e}");
        let e = notifier_for(&none, None, &env).unwrap_err();
        assert!(e.to_string().starts_with("PGB_NOTIFY_PING: "), "{e}");
        let pings = ["https://hc.example/ping/1".to_owned()];
        let given = NotifyTargets::default().with_pings("--notify-ping", &pings);
        assert!(!given.is_empty());
        assert!(notifier_for(&given, Some(&job), &env).unwrap().is_some());
        let empty = HashMap::new();
        assert!(notifier_for(&none, None, &empty).unwrap().is_none());
    }
}
