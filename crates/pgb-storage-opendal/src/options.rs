//! Adapter settings: retries, timeouts, part sizing, identity. No OpenDAL types.

use std::fmt;
use std::time::Duration;

use pgb_core::Capabilities;

use crate::sizing::PartSizing;

/// Retries of single requests (one HTTP request, one part), never of a whole stream.
///
/// Only errors the backend marks as temporary are retried: 5xx, 429/`SlowDown`, timeouts and
/// connection failures, with exponential back-off and jitter. A failed condition, a 403 or a
/// 404 fails at once. Every storage call (a request with its retries; for streamed writes one
/// `write` or `finish` step) is also bounded by [`budget`](Self::budget), and a download whose
/// stream is reset or cut short is resumed from the last byte received with a range request,
/// up to [`max_read_resumes`](Self::max_read_resumes) times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryOptions {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: usize,
    /// First back-off delay; it doubles on each retry (with jitter).
    pub min_delay: Duration,
    /// Longest back-off delay.
    pub max_delay: Duration,
    /// The longest one storage call may take, retries and back-off included; past it the call
    /// fails as unavailable ("retry budget exhausted").
    pub budget: Duration,
    /// How many times one download may be resumed (a range request from the last byte
    /// received) after its stream was reset, stalled or cut short.
    pub max_read_resumes: usize,
}

impl Default for RetryOptions {
    fn default() -> Self {
        Self {
            max_retries: 4,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            budget: Duration::from_secs(300),
            max_read_resumes: 10,
        }
    }
}

impl RetryOptions {
    /// Sets the number of retries after the first attempt.
    pub fn with_max_retries(mut self, n: usize) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets the first and the longest back-off delay.
    pub fn with_delays(mut self, min: Duration, max: Duration) -> Self {
        self.min_delay = min;
        self.max_delay = max.max(min);
        self
    }

    /// Sets the total time budget of one storage call, retries included.
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Sets how many times one download may be resumed.
    pub fn with_max_read_resumes(mut self, n: usize) -> Self {
        self.max_read_resumes = n;
        self
    }
}

/// Time limits of single attempts. They sit *under* the retries: a timed-out attempt is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// Requests without a body to stream (stat, delete, a list page, starting an upload).
    pub request: Duration,
    /// One I/O step: uploading one part, reading one chunk of a response.
    pub io: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            request: Duration::from_secs(60),
            io: Duration::from_secs(120),
        }
    }
}

impl Timeouts {
    /// Sets both limits.
    pub fn new(request: Duration, io: Duration) -> Self {
        Self { request, io }
    }
}

/// How writes reach the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WriteStrategy {
    /// Chunked writes: a single PUT for small objects, multipart (S3) or block lists (Azure)
    /// for larger ones, with `concurrency` parts in flight. Create-only uses `If-None-Match: *`.
    #[default]
    Chunked,
    /// Every write is conditional on the object's generation: `ifGenerationMatch=0` when the key
    /// is absent, `ifGenerationMatch=<seen generation>` when replacing it. OpenDAL's GCS service
    /// sends conditional writes as resumable uploads (sequential 8 MiB chunks, no part limit),
    /// which real GCS and the emulators all implement, unlike the XML multipart API.
    GenerationConditional,
}

/// Everything the adapter needs besides the operator. Built by the backend crates.
#[derive(Clone)]
#[non_exhaustive]
pub struct AdapterOptions {
    /// URL scheme for [`pgb_core::StorageInfo`] (`s3`, `gs`, `az`).
    pub scheme: &'static str,
    /// Redacted location, e.g. `s3://bucket/prefix`.
    pub location: String,
    /// The endpoint, for messages about unreachable servers (no credentials in it).
    pub endpoint: Option<String>,
    /// What the backend promises.
    pub capabilities: Capabilities,
    /// Part sizes and concurrency.
    pub sizing: PartSizing,
    /// Request retries.
    pub retry: RetryOptions,
    /// Attempt time limits.
    pub timeouts: Timeouts,
    /// How writes are sent.
    pub write_strategy: WriteStrategy,
    /// Content type set on every object (some emulators mishandle objects without one).
    pub content_type: Option<String>,
    secrets: Vec<String>,
}

impl AdapterOptions {
    /// Options with defaults for `scheme` at `location`.
    pub fn new(scheme: &'static str, location: impl Into<String>) -> Self {
        Self {
            scheme,
            location: location.into(),
            endpoint: None,
            capabilities: Capabilities::default(),
            sizing: PartSizing::s3(),
            retry: RetryOptions::default(),
            timeouts: Timeouts::default(),
            write_strategy: WriteStrategy::default(),
            content_type: None,
            secrets: Vec::new(),
        }
    }

    /// Sets the endpoint named in connection errors.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sets the declared capabilities.
    pub fn with_capabilities(mut self, caps: Capabilities) -> Self {
        self.capabilities = caps;
        self
    }

    /// Sets the part sizing.
    pub fn with_sizing(mut self, sizing: PartSizing) -> Self {
        self.sizing = sizing;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryOptions) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the timeouts.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Sets the write strategy.
    pub fn with_write_strategy(mut self, strategy: WriteStrategy) -> Self {
        self.write_strategy = strategy;
        self
    }

    /// Sets the content type of written objects.
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Registers a secret (key, token, connection string) that must never appear in an error
    /// message or a log line; any occurrence is replaced by `<redacted>`.
    pub fn with_secret(mut self, secret: impl Into<String>) -> Self {
        let secret = secret.into();
        // Very short strings would redact ordinary words; real credentials are long.
        if secret.len() >= 8 {
            self.secrets.push(secret);
        }
        self
    }

    pub(crate) fn secrets(&self) -> &[String] {
        &self.secrets
    }
}

impl fmt::Debug for AdapterOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdapterOptions")
            .field("scheme", &self.scheme)
            .field("location", &self.location)
            .field("endpoint", &self.endpoint)
            .field("capabilities", &self.capabilities)
            .field("sizing", &self.sizing)
            .field("retry", &self.retry)
            .field("timeouts", &self.timeouts)
            .field("write_strategy", &self.write_strategy)
            .field("content_type", &self.content_type)
            .field(
                "secrets",
                &format_args!("<{} redacted>", self.secrets.len()),
            )
            .finish()
    }
}
