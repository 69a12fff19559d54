//! # pgb-notify
//!
//! Notifications of backup, drill and check outcomes:
//!
//! - [`Transport::Webhook`]: `POST` the [`Notification`] as JSON;
//! - [`Transport::Slack`]: `POST` Slack's incoming-webhook format (`{"text": ...}`);
//! - [`Transport::Healthchecks`]: healthchecks.io-style pings: `<url>/start` when a run
//!   begins ([`Notifier::start`]), `<url>` on success, `<url>/fail` with the last log lines as
//!   the body on failure, paired by a run id (`?rid=<uuid>`).
//!
//! Every request has a timeout and is retried (connection failures, timeouts, 429 and 5xx)
//! with a short backoff. Failures are returned as [`Delivery`] values for the caller to log;
//! sending never panics and never fails the operation that is being reported.
//!
//! URLs are secrets (Slack and healthchecks URLs are bearer tokens): [`SecretUrl`] shows only
//! scheme and host in `Debug`, `Display`, errors and deliveries.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A backup committed.
    BackupSucceeded,
    /// A backup failed.
    BackupFailed,
    /// A restore drill passed.
    DrillPassed,
    /// A restore drill failed a check or a limit, or could not run.
    DrillFailed,
    /// `pgb check` found a WARNING, CRITICAL or UNKNOWN state.
    CheckFailed,
    /// `pgb wal push` (archive_command) failed; PostgreSQL retries every few seconds, so the
    /// sender rate-limits it per cluster ([`RateLimit`]).
    WalPushFailed,
    /// A gap in the WAL archive after the newest base backup: no restore reaches the present.
    WalGap,
    /// A WAL stream (`pgb wal stream`) stopped receiving from the server.
    WalStreamDown,
}

impl Event {
    /// The snake_case name (`backup_succeeded`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BackupSucceeded => "backup_succeeded",
            Self::BackupFailed => "backup_failed",
            Self::DrillPassed => "drill_passed",
            Self::DrillFailed => "drill_failed",
            Self::CheckFailed => "check_failed",
            Self::WalPushFailed => "wal_push_failed",
            Self::WalGap => "wal_gap",
            Self::WalStreamDown => "wal_stream_down",
        }
    }

    /// Whether it reports a success.
    pub fn is_success(self) -> bool {
        matches!(self, Self::BackupSucceeded | Self::DrillPassed)
    }

    /// Every event, in the order of [`Event::as_str`]'s names.
    pub const ALL: [Self; 8] = [
        Self::BackupSucceeded,
        Self::BackupFailed,
        Self::DrillPassed,
        Self::DrillFailed,
        Self::CheckFailed,
        Self::WalPushFailed,
        Self::WalGap,
        Self::WalStreamDown,
    ];

    /// The event named `name` (`backup_succeeded`, ...), as a job's `notify.events` lists them.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The payload of a notification (the generic webhook's JSON body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Notification {
    /// What happened.
    pub event: Event,
    /// When (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The host pgb ran on.
    pub host: Option<String>,
    /// The job, when run for one.
    pub job: Option<String>,
    /// The backup set (`host:port/database`).
    pub set: Option<String>,
    /// The backup.
    pub backup_id: Option<String>,
    /// `ok`, `failed`, or a check status (`WARNING`, `CRITICAL`, `UNKNOWN`).
    pub status: String,
    /// The error's cause line (one line, no secrets).
    pub cause: Option<String>,
    /// Durations by name in milliseconds (`total`, `rto`, phases...).
    pub durations_ms: BTreeMap<String, u64>,
    /// Sizes by name in bytes (`stored`, `plain`).
    pub sizes: BTreeMap<String, u64>,
    /// Migration heads by name, `framework:head`: for a backup each database's
    /// (`shop` → `prisma:20240501120000_init`), for a drill the restored database's `before`
    /// and `after` its `post_restore` hook, and the `expected` head.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub migrations: BTreeMap<String, String>,
    /// The cluster a WAL event is about: its system identifier (decimal text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_identifier: Option<String>,
    /// A WAL event's details by name (`wal_push_failed`: `segment`, `failures`, `since`;
    /// `wal_gap`: `timeline`, `first_missing`, `gaps`; `wal_stream_down`: `slot`, `timeline`,
    /// `last_flushed_lsn`, `since`), as text.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub wal: BTreeMap<String, String>,
    /// The last log lines (sent as the body of a healthchecks `/fail` ping; not in JSON).
    #[serde(skip)]
    pub log_tail: Vec<String>,
}

impl Notification {
    /// A notification of `event` now, with `status` `ok` for successes and `failed` otherwise.
    pub fn new(event: Event) -> Self {
        Self {
            event,
            at: OffsetDateTime::now_utc(),
            host: None,
            job: None,
            set: None,
            backup_id: None,
            status: if event.is_success() { "ok" } else { "failed" }.to_owned(),
            cause: None,
            durations_ms: BTreeMap::new(),
            sizes: BTreeMap::new(),
            migrations: BTreeMap::new(),
            system_identifier: None,
            wal: BTreeMap::new(),
            log_tail: Vec::new(),
        }
    }

    /// Sets the cluster of a WAL event.
    pub fn with_system_identifier(mut self, id: impl ToString) -> Self {
        self.system_identifier = Some(id.to_string());
        self
    }

    /// Adds a detail of a WAL event.
    pub fn with_wal(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.wal.insert(name.into(), value.to_string());
        self
    }

    /// Sets the host pgb ran on.
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Sets the job.
    pub fn with_job(mut self, job: impl Into<String>) -> Self {
        self.job = Some(job.into());
        self
    }

    /// Sets the backup set.
    pub fn with_set(mut self, set: impl Into<String>) -> Self {
        self.set = Some(set.into());
        self
    }

    /// Sets the backup id.
    pub fn with_backup_id(mut self, id: impl Into<String>) -> Self {
        self.backup_id = Some(id.into());
        self
    }

    /// Sets the status.
    pub fn with_status(mut self, status: impl Into<String>) -> Self {
        self.status = status.into();
        self
    }

    /// Sets the cause line (only its first line is kept).
    pub fn with_cause(mut self, cause: impl AsRef<str>) -> Self {
        self.cause = Some(cause.as_ref().lines().next().unwrap_or("").to_owned());
        self
    }

    /// Adds a duration.
    pub fn with_duration(mut self, name: impl Into<String>, d: Duration) -> Self {
        self.durations_ms.insert(
            name.into(),
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        );
        self
    }

    /// Adds a size.
    pub fn with_size(mut self, name: impl Into<String>, bytes: u64) -> Self {
        self.sizes.insert(name.into(), bytes);
        self
    }

    /// Adds a migration head (`framework:head`, several comma-separated) under `name`.
    pub fn with_migration(mut self, name: impl Into<String>, head: impl Into<String>) -> Self {
        self.migrations.insert(name.into(), head.into());
        self
    }

    /// Sets the last log lines.
    pub fn with_log_tail(mut self, lines: Vec<String>) -> Self {
        self.log_tail = lines;
        self
    }

    /// One human line, e.g. `pgb: backup_failed (job nightly, set db:5432/app): disk full`.
    pub fn headline(&self) -> String {
        let mut ctx = Vec::new();
        if let Some(j) = &self.job {
            ctx.push(format!("job {j}"));
        }
        if let Some(s) = &self.set {
            ctx.push(format!("set {s}"));
        }
        if let Some(b) = &self.backup_id {
            ctx.push(format!("backup {b}"));
        }
        if let Some(c) = &self.system_identifier {
            ctx.push(format!("cluster {c}"));
        }
        if let Some(h) = &self.host {
            ctx.push(format!("on {h}"));
        }
        let mut line = format!("pgb: {} [{}]", self.event, self.status);
        if !ctx.is_empty() {
            let _ = write!(line, " ({})", ctx.join(", "));
        }
        if let Some(c) = &self.cause {
            line.push_str(": ");
            line.push_str(c);
        }
        line
    }
}

/// Rate limiting of a repeated failure (`wal_push_failed`: PostgreSQL retries a failing
/// `archive_command` every few seconds): at most one notification per interval, the next one
/// counting the failures in between. The caller keeps this state between processes (it is
/// `Serialize`/`Deserialize`, a few bytes of JSON) and decides where; the library does no I/O.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct RateLimit {
    /// When the last notification was sent.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_sent: Option<OffsetDateTime>,
    /// Failures not notified since then.
    #[serde(default)]
    pub suppressed: u64,
}

impl RateLimit {
    /// Records one failure at `now`: `Some(n)` when a notification is due (`n` failures, this
    /// one included, since the last one was sent), `None` when it is suppressed. A `last_sent`
    /// in the future (a clock set back) counts as due.
    pub fn failure(&mut self, now: OffsetDateTime, every: Duration) -> Option<u64> {
        self.suppressed += 1;
        let due = self.last_sent.is_none_or(|t| {
            let since = now - t;
            since.is_negative() || since.unsigned_abs() >= every
        });
        if !due {
            return None;
        }
        let n = self.suppressed;
        self.last_sent = Some(now);
        self.suppressed = 0;
        Some(n)
    }
}

/// A URL that is a secret: `Debug` and `Display` show `scheme://host/***` only.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(reqwest::Url);

/// A notification URL that cannot be used. Never contains the URL.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid notification URL: {0}")]
pub struct InvalidUrl(String);

impl SecretUrl {
    /// Parses an `http` or `https` URL.
    ///
    /// # Errors
    /// [`InvalidUrl`], without echoing the URL.
    pub fn parse(url: &str) -> Result<Self, InvalidUrl> {
        let u = reqwest::Url::parse(url).map_err(|e| InvalidUrl(e.to_string()))?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            return Err(InvalidUrl("expected an http:// or https:// URL".to_owned()));
        }
        Ok(Self(u))
    }

    /// The full URL, for sending only.
    fn expose(&self) -> &reqwest::Url {
        &self.0
    }

    /// `scheme://host[:port]/***`.
    pub fn redacted(&self) -> String {
        let port = self.0.port().map(|p| format!(":{p}")).unwrap_or_default();
        format!(
            "{}://{}{port}/***",
            self.0.scheme(),
            self.0.host_str().unwrap_or("?")
        )
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Where and how to send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// POST the notification as JSON.
    Webhook(SecretUrl),
    /// POST Slack's incoming-webhook format.
    Slack(SecretUrl),
    /// healthchecks.io-style pings on the check's URL.
    Healthchecks(SecretUrl),
}

impl Transport {
    /// The kind: `webhook`, `slack`, `healthchecks`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Webhook(_) => "webhook",
            Self::Slack(_) => "slack",
            Self::Healthchecks(_) => "healthchecks",
        }
    }

    fn url(&self) -> &SecretUrl {
        match self {
            Self::Webhook(u) | Self::Slack(u) | Self::Healthchecks(u) => u,
        }
    }
}

/// A run id pairing healthchecks pings (`?rid=`): a random UUID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId(String);

impl RunId {
    /// A new random (version 4) UUID.
    pub fn generate() -> Self {
        let mut b = [0u8; 16];
        if getrandom::fill(&mut b).is_err() {
            let n = OffsetDateTime::now_utc().unix_timestamp_nanos();
            b = n.to_le_bytes();
        }
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        Self(format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        ))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The result of sending to one transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Delivery {
    /// `webhook`, `slack`, `healthchecks`.
    pub transport: &'static str,
    /// The redacted URL.
    pub url: String,
    /// Whether it was accepted (2xx).
    pub ok: bool,
    /// Requests made.
    pub attempts: u32,
    /// The last failure, one line, without the URL.
    pub error: Option<String>,
}

/// Timeouts and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotifyOptions {
    /// Per-request timeout (connect and response).
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// Backoff before the first retry; doubled each time.
    pub backoff: Duration,
}

impl Default for NotifyOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(500),
        }
    }
}

impl NotifyOptions {
    /// Sets the timeout.
    pub fn with_timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Sets the retries.
    pub fn with_retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// Sets the backoff.
    pub fn with_backoff(mut self, d: Duration) -> Self {
        self.backoff = d;
        self
    }
}

/// The HTTP client could not be built (TLS roots).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the notification HTTP client: {0}")]
pub struct ClientError(String);

/// Sends notifications to a set of transports.
#[derive(Debug, Clone)]
pub struct Notifier {
    transports: Vec<Transport>,
    client: reqwest::Client,
    opts: NotifyOptions,
    events: Option<Vec<Event>>,
}

impl Notifier {
    /// A notifier for `transports`.
    ///
    /// # Errors
    /// [`ClientError`] when the HTTP client cannot be built.
    pub fn new(transports: Vec<Transport>, opts: NotifyOptions) -> Result<Self, ClientError> {
        let client = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout)
            .user_agent(concat!("pgb/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError(e.without_url().to_string()))?;
        Ok(Self {
            transports,
            client,
            opts,
            events: None,
        })
    }

    /// Sends webhook and Slack notifications only for `events` (a job's `notify.events`; all
    /// when never called). Healthchecks pings are not filtered: a check expects its success
    /// and failure pings, so every run is pinged.
    pub fn with_events(mut self, events: impl IntoIterator<Item = Event>) -> Self {
        self.events = Some(events.into_iter().collect());
        self
    }

    /// Whether any transport is configured.
    pub fn is_empty(&self) -> bool {
        self.transports.is_empty()
    }

    /// Announces a run: healthchecks `/start` pings (other transports get nothing).
    pub async fn start(&self, run: &RunId) -> Vec<Delivery> {
        let mut out = Vec::new();
        for t in &self.transports {
            if let Transport::Healthchecks(u) = t {
                let url = ping_url(u, "start", run);
                out.push(self.send(t, url, None).await);
            }
        }
        out
    }

    /// Sends `n` to every transport (in order) and reports each delivery. `run` pairs the
    /// healthchecks ping with its `/start`.
    pub async fn notify(&self, n: &Notification, run: &RunId) -> Vec<Delivery> {
        let mut out = Vec::new();
        let wanted = self.events.as_ref().is_none_or(|e| e.contains(&n.event));
        for t in &self.transports {
            if !wanted && !matches!(t, Transport::Healthchecks(_)) {
                continue;
            }
            let (url, body) = match t {
                Transport::Webhook(u) => (
                    u.expose().clone(),
                    Some((
                        "application/json",
                        serde_json::to_vec(n).expect("notifications serialize"),
                    )),
                ),
                Transport::Slack(u) => (
                    u.expose().clone(),
                    Some((
                        "application/json",
                        serde_json::to_vec(&slack_body(n)).expect("json"),
                    )),
                ),
                Transport::Healthchecks(u) => {
                    if n.event.is_success() {
                        (
                            ping_url(u, "", run),
                            Some(("text/plain", n.headline().into_bytes())),
                        )
                    } else {
                        let mut body = n.headline();
                        for l in &n.log_tail {
                            body.push('\n');
                            body.push_str(l);
                        }
                        let body = tail_bytes(body, PING_BODY_LIMIT);
                        (
                            ping_url(u, "fail", run),
                            Some(("text/plain", body.into_bytes())),
                        )
                    }
                }
            };
            out.push(self.send(t, url, body).await);
        }
        out
    }

    async fn send(
        &self,
        t: &Transport,
        url: reqwest::Url,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Delivery {
        let mut attempts = 0;
        let mut backoff = self.opts.backoff;
        let error = loop {
            attempts += 1;
            let mut req = self.client.post(url.clone());
            if let Some((ct, b)) = &body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, *ct)
                    .body(b.clone());
            }
            let (err, retry) = match req.send().await {
                Ok(resp) if resp.status().is_success() => break None,
                Ok(resp) => {
                    let s = resp.status();
                    (
                        format!("HTTP {s}"),
                        s.is_server_error() || s == reqwest::StatusCode::TOO_MANY_REQUESTS,
                    )
                }
                Err(e) => (describe(&e), true),
            };
            if !retry || attempts > self.opts.retries {
                break Some(err);
            }
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        };
        let d = Delivery {
            transport: t.kind(),
            url: t.url().redacted(),
            ok: error.is_none(),
            attempts,
            error,
        };
        if let Some(e) = &d.error {
            tracing::warn!(transport = d.transport, url = %d.url, attempts, error = %e, "notification not delivered");
        }
        d
    }
}

/// The last lines of a process's log, for the body of a healthchecks `/fail` ping: a bounded
/// ring of lines (ANSI colours removed). The binary tees its log output into
/// [`LogTail::writer`]; the library never installs it itself.
#[derive(Debug, Clone)]
pub struct LogTail {
    inner: std::sync::Arc<std::sync::Mutex<TailBuf>>,
}

#[derive(Debug, Default)]
struct TailBuf {
    lines: std::collections::VecDeque<String>,
    partial: Vec<u8>,
    max: usize,
}

impl LogTail {
    /// Keeps the last `max_lines` lines.
    pub fn new(max_lines: usize) -> Self {
        Self {
            inner: std::sync::Arc::new(std::sync::Mutex::new(TailBuf {
                max: max_lines.max(1),
                ..TailBuf::default()
            })),
        }
    }

    /// A writer that appends to the tail (for a log subscriber's writer).
    pub fn writer(&self) -> LogTailWriter {
        LogTailWriter(self.clone())
    }

    /// The last lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        let b = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        b.lines.iter().cloned().collect()
    }
}

/// Appends what is written to a [`LogTail`], line by line.
#[derive(Debug)]
pub struct LogTailWriter(LogTail);

impl std::io::Write for LogTailWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut b = self
            .0
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        b.partial.extend_from_slice(buf);
        while let Some(pos) = b.partial.iter().position(|c| *c == b'\n') {
            let line: Vec<u8> = b.partial.drain(..=pos).collect();
            let line = strip_ansi(String::from_utf8_lossy(&line[..pos]).trim_end());
            if b.lines.len() == b.max {
                b.lines.pop_front();
            }
            b.lines.push_back(line);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Removes ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// healthchecks.io keeps ping bodies up to 10 000 bytes (self-hosted default); the end of the
/// log is what explains a failure, so the end is kept.
const PING_BODY_LIMIT: usize = 10_000;

fn tail_bytes(s: String, limit: usize) -> String {
    if s.len() <= limit {
        return s;
    }
    let mut start = s.len() - limit;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_owned()
}

/// A one-line description of a request failure, without the URL.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // reqwest's Display includes the URL; its sources do not.
    let mut cause = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}

/// `<url>[/<suffix>]?rid=<run id>`, keeping the URL's own query.
fn ping_url(u: &SecretUrl, suffix: &str, run: &RunId) -> reqwest::Url {
    let mut url = u.expose().clone();
    if !suffix.is_empty() {
        let path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{path}/{suffix}"));
    }
    url.query_pairs_mut().append_pair("rid", run.as_str());
    url
}

fn slack_body(n: &Notification) -> serde_json::Value {
    let icon = if n.event.is_success() {
        ":white_check_mark:"
    } else {
        ":rotating_light:"
    };
    let mut text = format!("{icon} {}", n.headline());
    let mut facts: Vec<String> = n
        .durations_ms
        .iter()
        .map(|(k, v)| format!("{k} {:.1}s", *v as f64 / 1000.0))
        .collect();
    facts.extend(n.sizes.iter().map(|(k, v)| format!("{k} {v} B")));
    if !facts.is_empty() {
        let _ = write!(text, "\n{}", facts.join(", "));
    }
    serde_json::json!({ "text": text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_everywhere() {
        let u = SecretUrl::parse("https://hooks.slack.com/services/T000/B000/XXXXSECRET").unwrap();
        assert_eq!(u.to_string(), "https://hooks.slack.com/***");
        assert!(!format!("{u:?}").contains("SECRET"));
        let t = Transport::Slack(u);
        assert!(!format!("{t:?}").contains("SECRET"));
        let e = SecretUrl::parse("ftp://user:SECRET@host/x").unwrap_err();
        assert!(!e.to_string().contains("SECRET"));
        let e = SecretUrl::parse("not a url SECRET").unwrap_err();
        assert!(!e.to_string().contains("SECRET"));
    }

    #[test]
    fn long_ping_bodies_keep_their_end() {
        let s = format!("{}é{}", "a".repeat(20_000), "END");
        let t = tail_bytes(s, PING_BODY_LIMIT);
        assert!(
            t.len() <= PING_BODY_LIMIT && t.ends_with("éEND"),
            "{}",
            t.len()
        );
        assert_eq!(tail_bytes("short".into(), 10), "short");
    }

    #[test]
    fn the_log_tail_keeps_the_last_lines_without_colours() {
        use std::io::Write as _;
        let tail = LogTail::new(2);
        let mut w = tail.writer();
        w.write_all(b"one\n\x1b[31mERROR\x1b[0m two\nthr").unwrap();
        assert_eq!(tail.lines(), vec!["one", "ERROR two"]);
        w.write_all(b"ee\n").unwrap();
        assert_eq!(tail.lines(), vec!["ERROR two", "three"]);
    }

    #[test]
    fn a_repeated_failure_is_notified_once_per_interval_with_the_count() {
        let t0 = time::macros::datetime!(2026-12-05 06:00 UTC);
        let every = Duration::from_secs(900);
        let mut r = RateLimit::default();
        assert_eq!(r.failure(t0, every), Some(1), "the first failure is sent");
        for s in 1..=100 {
            // PostgreSQL retries every few seconds: suppressed.
            assert_eq!(r.failure(t0 + time::Duration::seconds(s * 5), every), None);
        }
        let json = serde_json::to_string(&r).unwrap();
        let mut r: RateLimit = serde_json::from_str(&json).unwrap();
        assert_eq!(r.suppressed, 100);
        assert_eq!(
            r.failure(t0 + time::Duration::minutes(15), every),
            Some(101),
            "the next one after the interval counts every failure since"
        );
        assert_eq!(r.suppressed, 0);
        // A clock set back does not silence it for good.
        assert_eq!(r.failure(t0 - time::Duration::hours(1), every), Some(1));
    }

    #[test]
    fn events_parse_from_their_names() {
        for e in Event::ALL {
            assert_eq!(Event::from_name(e.as_str()), Some(e));
        }
        assert_eq!(Event::from_name("backup_done"), None);
    }

    #[test]
    fn ping_urls_pair_by_run_id() {
        let u = SecretUrl::parse("https://hc-ping.com/abc-uuid/").unwrap();
        let r = RunId::generate();
        assert_eq!(r.as_str().len(), 36);
        assert_eq!(&r.as_str()[14..15], "4");
        assert_eq!(
            ping_url(&u, "start", &r).as_str(),
            format!("https://hc-ping.com/abc-uuid/start?rid={}", r.as_str())
        );
        assert_eq!(
            ping_url(&u, "", &r).as_str(),
            format!("https://hc-ping.com/abc-uuid/?rid={}", r.as_str())
        );
    }

    #[test]
    fn the_payload_has_the_documented_fields() {
        let n = Notification::new(Event::BackupFailed)
            .with_job("nightly")
            .with_set("db:5432/app")
            .with_cause("storage: write backups/x: no space left\nsecond line")
            .with_duration("total", Duration::from_millis(1500))
            .with_size("stored", 10);
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["event"], "backup_failed");
        assert_eq!(v["status"], "failed");
        assert_eq!(v["job"], "nightly");
        assert_eq!(v["cause"], "storage: write backups/x: no space left");
        assert_eq!(v["durations_ms"]["total"], 1500);
        assert_eq!(v["sizes"]["stored"], 10);
        assert!(v.get("log_tail").is_none());
        assert!(v["backup_id"].is_null());
    }
}
