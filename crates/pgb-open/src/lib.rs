//! Opening a repository from a URL, as the `pgb` command does, with the environment passed in.
//!
//! Its own crate (not the `pgb` facade) so that the libraries above the storage layer
//! (`pgb-jobs`) open repositories without depending on the facade, which re-exports them.
//!
//! The schemes and the variables each reads are listed on [`open_storage`].
//!
//! Credentials never go in the URL (it is printed and logged): a URL with `user@` or a query
//! string is refused. The library never reads the process environment itself: pass
//! `&|name: &str| std::env::var(name).ok()` to use it, or a map in tests and services that
//! keep their settings elsewhere.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use pgb_core::{Repository, Storage, StorageError};

/// Where [`open_storage`] looks up credentials and settings: the process environment, a map,
/// a config system. Closures `Fn(&str) -> Option<String>` and string maps implement it.
pub trait EnvLookup {
    /// The value of variable `name`, if set.
    fn get(&self, name: &str) -> Option<String>;

    /// Every variable with its value, where the lookup can list them (string maps can,
    /// closures cannot: none). The PostgreSQL tools inherit the libpq, locale and path
    /// variables among them (`pgb_postgres::InheritedEnv`); a lookup that wraps another
    /// passes its list on.
    fn vars(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

impl<F: Fn(&str) -> Option<String>> EnvLookup for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

impl EnvLookup for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }

    fn vars(&self) -> Vec<(String, String)> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl EnvLookup for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }

    fn vars(&self) -> Vec<(String, String)> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Why a repository URL cannot be opened. One line; never contains a secret (URLs are
/// redacted with [`redact_url`], credential values are never quoted).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL is malformed: no bucket, credentials or a query string in it, a relative
    /// `file://` path.
    #[error("invalid repository URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The scheme is not one of `file`, `s3`, `gs`, `az`.
    #[error(
        "invalid repository URL {url}: unknown scheme {scheme:?} (use file://, s3://, gs:// or az://)"
    )]
    UnknownScheme {
        /// The URL, redacted.
        url: String,
        /// The scheme as given.
        scheme: String,
    },
    /// The backend exists but this build of the `pgb` crate does not include it.
    #[error(
        "repository {url}: this build has no {scheme}:// support (enable the pgb crate's `{feature}` feature)"
    )]
    NotCompiled {
        /// The URL, redacted.
        url: String,
        /// The scheme.
        scheme: &'static str,
        /// The cargo feature that adds it.
        feature: &'static str,
    },
    /// No credentials were found for the backend.
    #[error("repository {url}: no {backend} credentials: {needed}")]
    MissingCredentials {
        /// The URL, redacted.
        url: String,
        /// `S3`, `GCS`, `Azure`.
        backend: &'static str,
        /// Which variables would provide them.
        needed: &'static str,
    },
    /// A setting has a value the backend cannot use, or conflicts with another one.
    #[error("repository {url}: {variable} {problem}")]
    InvalidSetting {
        /// The URL, redacted.
        url: String,
        /// The variable at fault.
        variable: &'static str,
        /// What is wrong (never its value, which may be a secret).
        problem: &'static str,
    },
    /// A local repository directory does not exist, and [`StorageOptions::create`] was not
    /// set: a mistyped path is not taken for an empty repository. (A bucket or container that
    /// does not exist is reported by the first request, as a storage error.)
    #[error("repository {url} does not exist (no directory {path})")]
    NotFound {
        /// The URL, redacted.
        url: String,
        /// The directory looked for.
        path: String,
    },
    /// The backend refused its configuration or the location (e.g. an unusable directory).
    #[error("repository {url}: {source}")]
    Storage {
        /// The URL, redacted.
        url: String,
        /// The backend's error.
        #[source]
        source: StorageError,
    },
}

/// How [`open_storage_with`] opens: whether a missing local directory is created, and the
/// retries and time limits of object-store requests, the typed form
/// of `PGB_STORAGE_RETRIES`, `PGB_STORAGE_RETRY_BUDGET_SECS`, `PGB_STORAGE_TIMEOUT_SECS` and
/// `PGB_STORAGE_IO_TIMEOUT_SECS`. A field left `None` falls back to its variable in the
/// [`EnvLookup`], then to the backend's default (4 retries, 300 s budget, 60 s per request,
/// 120 s per I/O step). Local directories ignore the retries and time limits.
///
/// ```
/// use std::time::Duration;
/// let opts = pgb_open::StorageOptions::new()
///     .with_retries(8)
///     .with_retry_budget(Duration::from_secs(600))
///     .with_request_timeout(Duration::from_secs(30));
/// let dir = tempfile::tempdir()?;
/// let url = format!("file://{}", dir.path().display());
/// let repo = pgb_open::open_repository_with(&url, &|_: &str| None, &opts)?;
/// # let _ = repo;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StorageOptions {
    /// Retries of one request after its first attempt (0 disables retrying).
    pub retries: Option<u32>,
    /// The longest one storage call may take, retries and back-off included (at least 1 s).
    pub retry_budget: Option<Duration>,
    /// Time limit of one attempt of a request without a body (at least 1 s).
    pub request_timeout: Option<Duration>,
    /// Time limit of one I/O step: one part upload, one chunk of a download (at least 1 s).
    pub io_timeout: Option<Duration>,
    /// Create a local repository directory that does not exist (mode 0700, with its missing
    /// parents), as a backup into a new repository does. Off by default: opening a missing
    /// directory is [`OpenError::NotFound`], and opening creates nothing. Buckets and
    /// containers are never created.
    pub create: bool,
}

impl StorageOptions {
    /// Nothing set: every value from the environment lookup or the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the retries of one request.
    pub fn with_retries(mut self, n: u32) -> Self {
        self.retries = Some(n);
        self
    }

    /// Sets the retry budget of one storage call.
    pub fn with_retry_budget(mut self, d: Duration) -> Self {
        self.retry_budget = Some(d);
        self
    }

    /// Sets the time limit of one request attempt.
    pub fn with_request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = Some(d);
        self
    }

    /// Sets the time limit of one I/O step.
    pub fn with_io_timeout(mut self, d: Duration) -> Self {
        self.io_timeout = Some(d);
        self
    }

    /// Creates a missing local repository directory ([`create`](Self::create)).
    pub fn with_create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }
}

/// Opens the storage a repository URL names: `file:///path` (or a plain path, made absolute),
/// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`, with credentials and
/// settings from `env`. It creates nothing: a local directory must exist (a backup into a new
/// one opens with [`StorageOptions::with_create`]).
///
/// | URL | Credentials and settings (looked up through [`EnvLookup`]) | feature |
/// |---|---|---|
/// | `file:///path`, `path` | — | `local` |
/// | `s3://bucket/prefix` | `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), or `AWS_PROFILE`, or `PGB_S3_CREDENTIALS=default-chain`; `AWS_REGION` / `AWS_DEFAULT_REGION`; `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`; `PGB_S3_FORCE_PATH_STYLE`, `PGB_S3_SSE`, `PGB_S3_SSE_KMS_KEY_ID`, `PGB_S3_STORAGE_CLASS`, `PGB_S3_PART_SIZE_MIB`, `PGB_S3_CONDITIONAL_WRITES` | `s3` |
/// | `gs://bucket/prefix` | `GOOGLE_APPLICATION_CREDENTIALS`, or `PGB_GCS_CREDENTIALS=application-default`; `STORAGE_EMULATOR_HOST` (an emulator: no credentials) | `gcs` |
/// | `az://container/prefix` | `AZURE_STORAGE_CONNECTION_STRING`, or `AZURE_STORAGE_ACCOUNT` with `AZURE_STORAGE_KEY` or `AZURE_STORAGE_SAS_TOKEN`; `PGB_AZURE_ENDPOINT` | `azure` |
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let url = format!("file://{}", dir.path().display());
/// let no_env = |_: &str| None;
/// let storage = pgb_open::open_storage(&url, &no_env)?;
/// assert_eq!(storage.info().scheme, "file");
/// // A directory that does not exist is an error, and is not created.
/// let missing = format!("file://{}/typo", dir.path().display());
/// assert!(matches!(
///     pgb_open::open_storage(&missing, &no_env),
///     Err(pgb_open::OpenError::NotFound { .. })
/// ));
/// assert!(!dir.path().join("typo").exists());
/// // A scheme pgb does not know is an error, whatever features are compiled in.
/// assert!(pgb_open::open_storage("ftp://host/backups", &no_env).is_err());
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`OpenError`]: a malformed URL, an unknown or not compiled-in scheme, missing or invalid
/// settings, a local directory that does not exist, or a backend that refused its
/// configuration.
pub fn open_storage(url: &str, env: &dyn EnvLookup) -> Result<Arc<dyn Storage>, OpenError> {
    open_storage_with(url, env, &StorageOptions::default())
}

/// [`open_storage`] with typed retry and timeout settings, which win over the environment
/// lookup's `PGB_STORAGE_*` variables, and the choice to create a missing local directory.
///
/// # Errors
/// As [`open_storage`].
pub fn open_storage_with(
    url: &str,
    env: &dyn EnvLookup,
    opts: &StorageOptions,
) -> Result<Arc<dyn Storage>, OpenError> {
    let _ = opts; // unused when no object store is compiled in
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(OpenError::InvalidUrl {
                url: redact_url(url),
                reason: "file URLs need an absolute path: file:///var/backups/pgb",
            });
        }
        return backends::local(url, path, opts.create);
    }
    match url.split_once("://") {
        None => {
            let abs = std::path::absolute(url).map_err(|_| OpenError::InvalidUrl {
                url: redact_url(url),
                reason: "the path cannot be made absolute",
            })?;
            backends::local(url, &abs.to_string_lossy(), opts.create)
        }
        Some(("s3", rest)) => backends::s3(url, rest, env, opts),
        Some(("gs", rest)) => backends::gcs(url, rest, env, opts),
        Some(("az", rest)) => backends::azure(url, rest, env, opts),
        Some((scheme, _)) => Err(OpenError::UnknownScheme {
            url: redact_url(url),
            scheme: scheme.to_owned(),
        }),
    }
}

/// [`open_storage`], wrapped in a [`Repository`].
///
/// # Errors
/// As [`open_storage`].
pub fn open_repository(url: &str, env: &dyn EnvLookup) -> Result<Repository, OpenError> {
    open_storage(url, env).map(Repository::new)
}

/// [`open_storage_with`], wrapped in a [`Repository`].
///
/// # Errors
/// As [`open_storage`].
pub fn open_repository_with(
    url: &str,
    env: &dyn EnvLookup,
    opts: &StorageOptions,
) -> Result<Repository, OpenError> {
    open_storage_with(url, env, opts).map(Repository::new)
}

/// A URL safe to print: any `user:password@` part is replaced, and any query string (an Azure
/// SAS, a presigned signature) is cut off.
///
/// ```
/// assert_eq!(pgb_open::redact_url("s3://id:pw@b/p"), "s3://***@b/p");
/// assert_eq!(pgb_open::redact_url("az://c/p?sig=x"), "az://c/p?<redacted>");
/// ```
#[must_use]
pub fn redact_url(url: &str) -> String {
    if let Some((base, _)) = url.split_once(['?', '#']) {
        return format!("{}?<redacted>", redact_url(base));
    }
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}{path}"),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

/// `bucket/prefix` of an object-store URL.
#[derive(Debug, PartialEq, Eq)]
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
struct Parsed {
    bucket: String,
    prefix: String,
}

#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
impl Parsed {
    fn new(url: &str, rest: &str, what: &'static str) -> Result<Self, OpenError> {
        let invalid = |reason| OpenError::InvalidUrl {
            url: redact_url(url),
            reason,
        };
        if rest.contains(['?', '#']) {
            return Err(invalid(
                "query strings are not supported (credentials and options come from the environment)",
            ));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.contains('@') {
            return Err(invalid(
                "credentials do not belong in the URL; set them in the environment",
            ));
        }
        if bucket.is_empty() {
            return Err(invalid(if what == "bucket" {
                "missing bucket name"
            } else {
                "missing container name"
            }));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }
}

/// The first of `names` that is set to a non-empty value.
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn first(env: &dyn EnvLookup, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| {
        env.get(n)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    })
}

#[cfg(any(feature = "local", feature = "s3", feature = "gcs", feature = "azure"))]
fn built<S: Storage>(
    url: &str,
    res: Result<S, StorageError>,
) -> Result<Arc<dyn Storage>, OpenError> {
    res.map(|s| Arc::new(s) as Arc<dyn Storage>)
        .map_err(|source| OpenError::Storage {
            url: redact_url(url),
            source,
        })
}

#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn setting(url: &str, variable: &'static str, problem: &'static str) -> OpenError {
    OpenError::InvalidSetting {
        url: redact_url(url),
        variable,
        problem,
    }
}

#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn parse_bool(url: &str, variable: &'static str, value: &str) -> Result<bool, OpenError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(setting(url, variable, "must be true or false")),
    }
}

/// Retries and time limits of single requests, from `PGB_STORAGE_RETRIES`,
/// `PGB_STORAGE_RETRY_BUDGET_SECS`, `PGB_STORAGE_TIMEOUT_SECS` and
/// `PGB_STORAGE_IO_TIMEOUT_SECS` (the same for every object store).
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn network(
    url: &str,
    env: &dyn EnvLookup,
    opts: &StorageOptions,
) -> Result<
    (
        pgb_storage_opendal::RetryOptions,
        pgb_storage_opendal::Timeouts,
    ),
    OpenError,
> {
    let number = |name: &'static str| -> Result<Option<u64>, OpenError> {
        first(env, &[name])
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| setting(url, name, "must be a whole number"))
            })
            .transpose()
    };
    let secs = |d: Option<Duration>, name: &'static str| -> Result<Option<Duration>, OpenError> {
        Ok(match d {
            Some(d) => Some(d),
            None => number(name)?.map(Duration::from_secs),
        }
        .map(|d| d.max(Duration::from_secs(1))))
    };
    let mut retry = pgb_storage_opendal::RetryOptions::default();
    let mut timeouts = pgb_storage_opendal::Timeouts::default();
    let retries = match opts.retries {
        Some(n) => Some(u64::from(n)),
        None => number("PGB_STORAGE_RETRIES")?,
    };
    if let Some(n) = retries {
        retry = retry.with_max_retries(usize::try_from(n).unwrap_or(usize::MAX));
    }
    if let Some(d) = secs(opts.retry_budget, "PGB_STORAGE_RETRY_BUDGET_SECS")? {
        retry = retry.with_budget(d);
    }
    if let Some(d) = secs(opts.request_timeout, "PGB_STORAGE_TIMEOUT_SECS")? {
        timeouts = pgb_storage_opendal::Timeouts::new(d, timeouts.io);
    }
    if let Some(d) = secs(opts.io_timeout, "PGB_STORAGE_IO_TIMEOUT_SECS")? {
        timeouts = pgb_storage_opendal::Timeouts::new(timeouts.request, d);
    }
    Ok((retry, timeouts))
}

#[cfg(not(all(feature = "local", feature = "s3", feature = "gcs", feature = "azure")))]
fn not_compiled(url: &str, scheme: &'static str, feature: &'static str) -> OpenError {
    OpenError::NotCompiled {
        url: redact_url(url),
        scheme,
        feature,
    }
}

/// One function per backend; a backend that is not compiled in answers `NotCompiled`.
mod backends {
    use super::*;

    #[cfg(feature = "local")]
    pub(super) fn local(
        url: &str,
        path: &str,
        create: bool,
    ) -> Result<Arc<dyn Storage>, OpenError> {
        use pgb_storage_local::FsStorage;
        let opened = if create {
            FsStorage::open_or_create(path)
        } else {
            FsStorage::open(path)
        };
        match opened {
            Err(e) if e.kind() == pgb_core::StorageErrorKind::NotFound => {
                Err(OpenError::NotFound {
                    url: redact_url(url),
                    path: path.to_owned(),
                })
            }
            res => built(url, res),
        }
    }

    #[cfg(not(feature = "local"))]
    pub(super) fn local(url: &str, _: &str, _: bool) -> Result<Arc<dyn Storage>, OpenError> {
        Err(not_compiled(url, "file", "local"))
    }

    #[cfg(feature = "s3")]
    pub(super) fn s3(
        url: &str,
        rest: &str,
        env: &dyn EnvLookup,
        opts: &StorageOptions,
    ) -> Result<Arc<dyn Storage>, OpenError> {
        let at = Parsed::new(url, rest, "bucket")?;
        use pgb_storage_s3::{AddressingStyle, S3Config};
        let mut cfg = S3Config::new(&at.bucket)
            .with_prefix(&at.prefix)
            .with_region(
                first(env, &["AWS_REGION", "AWS_DEFAULT_REGION"])
                    .unwrap_or_else(|| "us-east-1".to_owned()),
            );
        if let Some(endpoint) = first(env, &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]) {
            cfg = cfg.with_endpoint(endpoint);
        }
        if let Some(v) = first(env, &["PGB_S3_FORCE_PATH_STYLE"]) {
            cfg = cfg.with_addressing(if parse_bool(url, "PGB_S3_FORCE_PATH_STYLE", &v)? {
                AddressingStyle::Path
            } else {
                AddressingStyle::VirtualHost
            });
        }
        cfg = cfg.with_credentials(s3_credentials(url, env)?);
        if let Some(sse) = s3_encryption(url, env)? {
            cfg = cfg.with_encryption(sse);
        }
        if let Some(class) = first(env, &["PGB_S3_STORAGE_CLASS"]) {
            cfg = cfg.with_storage_class(class);
        }
        if let Some(mib) = first(env, &["PGB_S3_PART_SIZE_MIB"]) {
            let mib: u64 = mib
                .parse()
                .ok()
                .filter(|m| (5..=5120).contains(m))
                .ok_or_else(|| {
                    setting(
                        url,
                        "PGB_S3_PART_SIZE_MIB",
                        "must be a number from 5 to 5120",
                    )
                })?;
            cfg = cfg.with_part_size(mib * 1024 * 1024);
        }
        if let Some(v) = first(env, &["PGB_S3_CONDITIONAL_WRITES"]) {
            cfg = cfg.with_create_new_enforced(parse_bool(url, "PGB_S3_CONDITIONAL_WRITES", &v)?);
        }
        let (retry, timeouts) = network(url, env, opts)?;
        built(url, cfg.with_retry(retry).with_timeouts(timeouts).build())
    }

    #[cfg(feature = "s3")]
    fn s3_credentials(
        url: &str,
        env: &dyn EnvLookup,
    ) -> Result<pgb_storage_s3::S3Credentials, OpenError> {
        use pgb_storage_s3::S3Credentials;
        let mode = first(env, &["PGB_S3_CREDENTIALS"]).map(|m| m.to_ascii_lowercase());
        match mode.as_deref() {
            Some("default-chain") => return Ok(S3Credentials::DefaultChain),
            Some("anonymous") => return Ok(S3Credentials::Anonymous),
            Some("static") | None => {}
            Some(_) => {
                return Err(setting(
                    url,
                    "PGB_S3_CREDENTIALS",
                    "must be static, default-chain or anonymous",
                ));
            }
        }
        match (
            first(env, &["AWS_ACCESS_KEY_ID"]),
            first(env, &["AWS_SECRET_ACCESS_KEY"]),
        ) {
            (Some(id), Some(secret)) => {
                let c = S3Credentials::static_keys(id, secret);
                Ok(match first(env, &["AWS_SESSION_TOKEN"]) {
                    Some(t) => c.with_session_token(t),
                    None => c,
                })
            }
            (Some(_), None) => Err(setting(
                url,
                "AWS_ACCESS_KEY_ID",
                "is set but AWS_SECRET_ACCESS_KEY is not",
            )),
            (None, Some(_)) => Err(setting(
                url,
                "AWS_SECRET_ACCESS_KEY",
                "is set but AWS_ACCESS_KEY_ID is not",
            )),
            (None, None) => match first(env, &["AWS_PROFILE"]) {
                Some(profile) => Ok(S3Credentials::Profile(profile)),
                None => Err(OpenError::MissingCredentials {
                    url: redact_url(url),
                    backend: "S3",
                    needed: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or PGB_S3_CREDENTIALS=default-chain to use instance or pod roles)",
                }),
            },
        }
    }

    #[cfg(feature = "s3")]
    fn s3_encryption(
        url: &str,
        env: &dyn EnvLookup,
    ) -> Result<Option<pgb_storage_s3::S3Encryption>, OpenError> {
        use pgb_storage_s3::S3Encryption;
        let kms_key = first(env, &["PGB_S3_SSE_KMS_KEY_ID"]);
        let sse = first(env, &["PGB_S3_SSE"]).map(|v| v.to_ascii_lowercase());
        match sse.as_deref() {
            None if kms_key.is_some() => Ok(Some(S3Encryption::Kms { key_id: kms_key })),
            None | Some("none" | "") => Ok(None),
            Some("aes256" | "s3" | "sse-s3") if kms_key.is_some() => Err(setting(
                url,
                "PGB_S3_SSE_KMS_KEY_ID",
                "needs PGB_S3_SSE=aws:kms, not AES256",
            )),
            Some("aes256" | "s3" | "sse-s3") => Ok(Some(S3Encryption::S3Managed)),
            Some("aws:kms" | "kms" | "sse-kms") => Ok(Some(S3Encryption::Kms { key_id: kms_key })),
            Some(_) => Err(setting(
                url,
                "PGB_S3_SSE",
                "must be AES256 (SSE-S3) or aws:kms (SSE-KMS)",
            )),
        }
    }

    #[cfg(not(feature = "s3"))]
    pub(super) fn s3(
        url: &str,
        _: &str,
        _: &dyn EnvLookup,
        _: &StorageOptions,
    ) -> Result<Arc<dyn Storage>, OpenError> {
        Err(not_compiled(url, "s3", "s3"))
    }

    #[cfg(feature = "gcs")]
    pub(super) fn gcs(
        url: &str,
        rest: &str,
        env: &dyn EnvLookup,
        opts: &StorageOptions,
    ) -> Result<Arc<dyn Storage>, OpenError> {
        let at = Parsed::new(url, rest, "bucket")?;
        use pgb_storage_gcs::{GcsConfig, GcsCredentials};
        let mut cfg = GcsConfig::new(&at.bucket).with_prefix(&at.prefix);
        if let Some(host) = first(env, &["STORAGE_EMULATOR_HOST"]) {
            // The Google SDKs' convention: an emulator, reached without credentials. Emulators
            // do not enforce ifGenerationMatch, so create-only is declared as not enforced.
            let endpoint = if host.contains("://") {
                host
            } else {
                format!("http://{host}")
            };
            cfg = cfg
                .with_endpoint(endpoint)
                .with_credentials(GcsCredentials::Anonymous)
                .with_create_new_enforced(false);
        } else if let Some(path) = first(env, &["GOOGLE_APPLICATION_CREDENTIALS"]) {
            cfg = cfg.with_credentials(GcsCredentials::ServiceAccountFile(path.into()));
        } else {
            let mode = first(env, &["PGB_GCS_CREDENTIALS"]).map(|m| m.to_ascii_lowercase());
            cfg = cfg.with_credentials(match mode.as_deref() {
                Some("application-default") => GcsCredentials::ApplicationDefault,
                Some("anonymous") => GcsCredentials::Anonymous,
                Some(_) => {
                    return Err(setting(
                        url,
                        "PGB_GCS_CREDENTIALS",
                        "must be application-default or anonymous",
                    ));
                }
                None => {
                    return Err(OpenError::MissingCredentials {
                        url: redact_url(url),
                        backend: "GCS",
                        needed: "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file (or PGB_GCS_CREDENTIALS=application-default on GCE/GKE)",
                    });
                }
            });
        }
        let (retry, timeouts) = network(url, env, opts)?;
        built(url, cfg.with_retry(retry).with_timeouts(timeouts).build())
    }

    #[cfg(not(feature = "gcs"))]
    pub(super) fn gcs(
        url: &str,
        _: &str,
        _: &dyn EnvLookup,
        _: &StorageOptions,
    ) -> Result<Arc<dyn Storage>, OpenError> {
        Err(not_compiled(url, "gs", "gcs"))
    }

    #[cfg(feature = "azure")]
    pub(super) fn azure(
        url: &str,
        rest: &str,
        env: &dyn EnvLookup,
        opts: &StorageOptions,
    ) -> Result<Arc<dyn Storage>, OpenError> {
        let at = Parsed::new(url, rest, "container")?;
        use pgb_storage_azure::{AzureConfig, AzureCredentials};
        let account = first(env, &["AZURE_STORAGE_ACCOUNT"]).unwrap_or_default();
        let missing = |needed| OpenError::MissingCredentials {
            url: redact_url(url),
            backend: "Azure",
            needed,
        };
        let creds = if let Some(conn) = first(env, &["AZURE_STORAGE_CONNECTION_STRING"]) {
            AzureCredentials::ConnectionString(conn)
        } else if account.is_empty() {
            return Err(missing(
                "set AZURE_STORAGE_ACCOUNT (with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN), or AZURE_STORAGE_CONNECTION_STRING",
            ));
        } else if let Some(key) = first(env, &["AZURE_STORAGE_KEY"]) {
            AzureCredentials::AccountKey(key)
        } else if let Some(sas) = first(env, &["AZURE_STORAGE_SAS_TOKEN"]) {
            AzureCredentials::SasToken(sas)
        } else {
            return Err(missing(
                "set AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN (or AZURE_STORAGE_CONNECTION_STRING)",
            ));
        };
        let mut cfg = AzureConfig::new(account, &at.bucket)
            .with_prefix(&at.prefix)
            .with_credentials(creds);
        if let Some(endpoint) = first(env, &["PGB_AZURE_ENDPOINT"]) {
            cfg = cfg.with_endpoint(endpoint);
        }
        let (retry, timeouts) = network(url, env, opts)?;
        built(url, cfg.with_retry(retry).with_timeouts(timeouts).build())
    }

    #[cfg(not(feature = "azure"))]
    pub(super) fn azure(
        url: &str,
        _: &str,
        _: &dyn EnvLookup,
        _: &StorageOptions,
    ) -> Result<Arc<dyn Storage>, OpenError> {
        Err(not_compiled(url, "az", "azure"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(url: &str, vars: &[(&str, &str)]) -> Result<Arc<dyn Storage>, OpenError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        open_storage(url, &map)
    }

    /// The error text of a failed open (panics if it opened).
    fn error(res: Result<Arc<dyn Storage>, OpenError>) -> OpenError {
        match res {
            Err(e) => e,
            Ok(s) => panic!("expected an error, got {s:?}"),
        }
    }

    #[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
    #[test]
    fn bucket_and_prefix_are_parsed() {
        let p = |u: &str| {
            let (_, rest) = u.split_once("://").unwrap();
            Parsed::new(u, rest, "bucket").map(|p| (p.bucket, p.prefix))
        };
        assert_eq!(p("s3://b").unwrap(), ("b".to_owned(), String::new()));
        assert_eq!(p("s3://b/").unwrap(), ("b".to_owned(), String::new()));
        assert_eq!(
            p("s3://b/x/y/").unwrap(),
            ("b".to_owned(), "x/y".to_owned())
        );
        assert!(matches!(p("s3://"), Err(OpenError::InvalidUrl { .. })));
        assert!(matches!(p("s3:///x"), Err(OpenError::InvalidUrl { .. })));
        assert!(matches!(
            p("s3://id:secret@b/x"),
            Err(OpenError::InvalidUrl { .. })
        ));
        assert!(matches!(
            p("s3://b/x?versionId=1"),
            Err(OpenError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn local_paths_and_file_urls_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        assert_eq!(open(path, &[]).unwrap().info().scheme, "file");
        assert_eq!(
            open(&format!("file://{path}"), &[]).unwrap().info().scheme,
            "file"
        );
        assert!(matches!(
            open("file://relative/dir", &[]),
            Err(OpenError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn a_missing_directory_is_not_found_and_only_created_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("typo/repo");
        let url = format!("file://{}", missing.display());
        for u in [url.as_str(), missing.to_str().unwrap()] {
            let e = error(open(u, &[]));
            assert!(matches!(&e, OpenError::NotFound { .. }), "{e:?}");
            assert!(e.to_string().contains(u), "names the URL: {e}");
            assert!(!dir.path().join("typo").exists(), "nothing created");
        }
        let created = open_storage_with(
            &url,
            &|_: &str| None,
            &StorageOptions::new().with_create(true),
        )
        .unwrap();
        assert_eq!(created.info().scheme, "file");
        assert!(missing.is_dir());
        // An existing empty directory is an empty repository.
        assert!(open(&url, &[]).is_ok());
        // A file where the directory should be is not a repository.
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let e = error(open(file.to_str().unwrap(), &[]));
        assert!(matches!(&e, OpenError::Storage { .. }), "{e:?}");
    }

    #[test]
    fn unknown_schemes_are_refused() {
        let e = error(open("ftp://h/x", &[]));
        assert!(matches!(&e, OpenError::UnknownScheme { scheme, .. } if scheme == "ftp"));
        assert!(e.to_string().contains("unknown scheme"), "{e}");
    }

    #[test]
    fn urls_with_secrets_are_redacted() {
        let text = error(open("az://c/p?sv=2022-11-02&sig=SECRETSIG", &[])).to_string();
        assert!(!text.contains("SECRETSIG"), "{text}");
        assert_eq!(redact_url("s3://id:pw@b/p"), "s3://***@b/p");
        assert_eq!(redact_url("az://c/p?sig=x"), "az://c/p?<redacted>");
        assert_eq!(redact_url("s3://b/p"), "s3://b/p");
        let text = error(open("s3://id:SECRETPW@b/p", &[])).to_string();
        assert!(!text.contains("SECRETPW"), "{text}");
    }

    #[test]
    fn closures_and_maps_are_lookups() {
        let f = |k: &str| (k == "A").then(|| "1".to_owned());
        assert_eq!(EnvLookup::get(&f, "A").as_deref(), Some("1"));
        let m: BTreeMap<String, String> = [("A".to_owned(), "2".to_owned())].into();
        assert_eq!(EnvLookup::get(&m, "A").as_deref(), Some("2"));
    }

    #[cfg(feature = "s3")]
    mod s3 {
        use super::*;

        const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

        #[test]
        fn s3_opens_with_static_keys() {
            let s = open(
                "s3://backups/prod/db1",
                &[
                    ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
                    ("AWS_SECRET_ACCESS_KEY", SECRET),
                    ("AWS_SESSION_TOKEN", "token-token-token"),
                    ("AWS_DEFAULT_REGION", "eu-west-1"),
                    ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
                    ("PGB_S3_FORCE_PATH_STYLE", "true"),
                    ("PGB_S3_SSE", "aws:kms"),
                    ("PGB_S3_SSE_KMS_KEY_ID", "alias/pgb"),
                    ("PGB_S3_STORAGE_CLASS", "STANDARD_IA"),
                ],
            )
            .expect("open");
            assert_eq!(s.info().scheme, "s3");
            assert_eq!(s.info().location, "s3://backups/prod/db1");
            let dbg = format!("{s:?}");
            assert!(
                !dbg.contains(SECRET) && !dbg.contains("token-token-token"),
                "{dbg}"
            );
        }

        #[test]
        fn s3_missing_credentials_name_the_variable() {
            let e = error(open("s3://b/p", &[]));
            assert!(
                matches!(e, OpenError::MissingCredentials { backend: "S3", .. }),
                "{e}"
            );
            let text = e.to_string();
            assert!(
                text.contains("AWS_ACCESS_KEY_ID") && text.contains("AWS_SECRET_ACCESS_KEY"),
                "{text}"
            );
            let text = error(open("s3://b/p", &[("AWS_ACCESS_KEY_ID", "AKID")])).to_string();
            assert!(text.contains("AWS_SECRET_ACCESS_KEY is not"), "{text}");
            let text = error(open("s3://b/p", &[("AWS_SECRET_ACCESS_KEY", SECRET)])).to_string();
            assert!(text.contains("AWS_ACCESS_KEY_ID is not"), "{text}");
            assert!(!text.contains(SECRET), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }

        #[test]
        fn s3_profile_and_default_chain_are_opt_in() {
            open("s3://b", &[("AWS_PROFILE", "backup")]).expect("profile");
            open("s3://b", &[("PGB_S3_CREDENTIALS", "default-chain")]).expect("default chain");
            let e = error(open("s3://b", &[("PGB_S3_CREDENTIALS", "magic")]));
            assert!(
                matches!(
                    e,
                    OpenError::InvalidSetting {
                        variable: "PGB_S3_CREDENTIALS",
                        ..
                    }
                ),
                "{e}"
            );
        }

        /// Typed options win over the lookup's `PGB_STORAGE_*`; the lookup wins over the
        /// defaults. Seen in the message of a request to a closed port, which names the retries.
        #[tokio::test]
        async fn storage_options_beat_the_environment() {
            let vars: HashMap<String, String> = [
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", SECRET),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
                ("PGB_STORAGE_RETRIES", "1"),
                ("PGB_STORAGE_TIMEOUT_SECS", "5"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
            let key = pgb_core::ObjectKey::parse("k").unwrap();
            let fast = StorageOptions::new().with_retry_budget(Duration::from_secs(30));
            let from_env = open_storage_with("s3://b", &vars, &fast).unwrap();
            let text = from_env.head(&key).await.unwrap_err().to_string();
            assert!(text.contains("after 1 retries"), "{text}");
            let typed = open_storage_with("s3://b", &vars, &fast.with_retries(0)).unwrap();
            let text = typed.head(&key).await.unwrap_err().to_string();
            assert!(text.contains("after 0 retries"), "{text}");
            let mut bad = vars.clone();
            bad.insert("PGB_STORAGE_RETRY_BUDGET_SECS".into(), "5m".into());
            let e = error(open_storage_with("s3://b", &bad, &StorageOptions::new()));
            assert!(
                matches!(
                    e,
                    OpenError::InvalidSetting {
                        variable: "PGB_STORAGE_RETRY_BUDGET_SECS",
                        ..
                    }
                ),
                "{e}"
            );
        }

        #[test]
        fn s3_bad_knobs_are_config_errors() {
            let keys = [
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", SECRET),
            ];
            for (name, value) in [
                ("PGB_S3_SSE", "rot13"),
                ("PGB_S3_FORCE_PATH_STYLE", "maybe"),
                ("PGB_S3_PART_SIZE_MIB", "1"),
                ("AWS_ENDPOINT_URL", "127.0.0.1:9000"),
            ] {
                let mut vars = keys.to_vec();
                vars.push((name, value));
                let e = error(open("s3://b", &vars));
                let text = e.to_string();
                assert!(!text.contains(SECRET), "{text}");
                assert!(
                    matches!(
                        e,
                        OpenError::InvalidSetting { .. } | OpenError::Storage { .. }
                    ),
                    "{name}: {text}"
                );
            }
        }
    }

    #[cfg(feature = "gcs")]
    #[test]
    fn gcs_needs_credentials_or_an_emulator() {
        let text = error(open("gs://b/p", &[])).to_string();
        assert!(text.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{text}");
        let s = open("gs://b/p", &[("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")]).expect("emulator");
        assert_eq!(s.info().location, "gs://b/p");
        assert!(
            !s.info().capabilities.create_new,
            "emulators do not enforce create-only"
        );
        let text = error(open(
            "gs://b",
            &[("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/sa.json")],
        ))
        .to_string();
        assert!(text.contains("/nonexistent/sa.json"), "{text}");
    }

    #[cfg(feature = "azure")]
    #[test]
    fn azure_needs_an_account_and_credentials() {
        let text = error(open("az://c/p", &[])).to_string();
        assert!(text.contains("AZURE_STORAGE_ACCOUNT"), "{text}");
        let text = error(open("az://c/p", &[("AZURE_STORAGE_ACCOUNT", "acct")])).to_string();
        assert!(
            text.contains("AZURE_STORAGE_KEY") && text.contains("AZURE_STORAGE_SAS_TOKEN"),
            "{text}"
        );
        let key = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS1ub3QtcmVhbA==";
        let s = open(
            "az://c/p",
            &[
                ("AZURE_STORAGE_ACCOUNT", "acct"),
                ("AZURE_STORAGE_KEY", key),
            ],
        )
        .expect("account key");
        assert_eq!(s.info().location, "az://c/p");
        assert!(!format!("{s:?}").contains(key));
        let conn = format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
        );
        open("az://c", &[("AZURE_STORAGE_CONNECTION_STRING", &conn)]).expect("connection string");
        open(
            "az://c",
            &[
                ("AZURE_STORAGE_ACCOUNT", "acct"),
                ("AZURE_STORAGE_SAS_TOKEN", "?sv=1&sig=abc"),
            ],
        )
        .expect("sas");
    }

    #[cfg(not(feature = "s3"))]
    #[test]
    fn backends_not_compiled_in_say_which_feature_adds_them() {
        let e = error(open("s3://b/p", &[]));
        assert!(
            matches!(e, OpenError::NotCompiled { feature: "s3", .. }),
            "{e}"
        );
    }
}
