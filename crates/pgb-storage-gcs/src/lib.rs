//! # pgb-storage-gcs
//!
//! Google Cloud Storage as a pgb [`Storage`](pgb_core::Storage), on the shared OpenDAL adapter.
//!
//! [`GcsConfig`] is a typed configuration (no environment reading: the binary does that);
//! [`GcsConfig::build`] returns a [`GcsStorage`].
//!
//! ```no_run
//! use pgb_storage_gcs::{GcsConfig, GcsCredentials};
//!
//! let storage = GcsConfig::new("my-backups")
//!     .with_prefix("prod/db1")
//!     .with_credentials(GcsCredentials::ServiceAccountFile("/etc/pgb/sa.json".into()))
//!     .build()?;
//! # let _ = storage;
//! # Ok::<(), pgb_core::StorageError>(())
//! ```
//!
//! # Uploads
//!
//! Every write is a **resumable upload**, sent in sequential 8 MiB chunks, so memory stays
//! bounded and there is no part limit. OpenDAL's GCS service picks the resumable path only for
//! conditional writes, so the adapter makes every write conditional on the object's generation
//! (its [`WriteStrategy::GenerationConditional`](pgb_storage_opendal::WriteStrategy)):
//! `ifGenerationMatch=0` for a new key (this is also how create-only is enforced) and
//! `ifGenerationMatch=<generation seen just before>` to replace an object.
//!
//! Why not OpenDAL's default chunked writer: it uses the XML multipart API (`?uploads`), which
//! neither fake-gcs-server nor gcp-storage-emulator implements (501 / `invalid uploadType`), and
//! its other escape hatch, one chunk at least as large as the object, would buffer a whole dump
//! in memory. Resumable uploads work the same on real GCS and on both emulators, which is what
//! lets the conformance suite test the production code path with objects of several chunks.
//!
//! # Retries of an upload
//!
//! OpenDAL's resumable writer keeps each chunk until the store acknowledged all of it: a chunk
//! whose request failed transiently is sent again from its first byte (GCS ignores bytes it
//! already persisted), and after a failed last chunk the writer asks for the upload's status
//! (`Content-Range: bytes */N`) and re-sends what is missing. The adapter's size check after
//! `finish` catches a store that finalized something else.
//!
//! # What the emulators cannot prove
//!
//! fake-gcs-server appends a re-sent chunk instead of ignoring the persisted prefix, and it
//! finalizes the object with what it holds when asked for the upload's status, so the retry of
//! a chunk it already received, or of the last chunk, cannot be exercised on it (the network
//! tests fault the other chunk PUTs of a session).
//!
//! fake-gcs-server accepts `ifGenerationMatch` without enforcing it, so on it create-only is
//! only the adapter's look-before-write check, which is racy. Tests therefore declare
//! [`GcsConfig::with_create_new_enforced`]`(false)`; real GCS enforces the condition atomically.

use std::fmt;
use std::path::PathBuf;

use opendal::Operator;
use opendal::services::Gcs;
use pgb_core::Capabilities;
use pgb_storage_opendal::{
    AdapterOptions, OpendalStorage, PartSizing, WriteStrategy, config_error, location,
    normalize_prefix, root_for,
};

pub use pgb_core::StorageError;
pub use pgb_storage_opendal::{RetryOptions, StorageStats, Timeouts};

const SCHEME: &str = "gs";

/// How pgb authenticates to GCS.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GcsCredentials {
    /// A service-account key file (JSON), e.g. the file `GOOGLE_APPLICATION_CREDENTIALS` names.
    ServiceAccountFile(PathBuf),
    /// The contents of a service-account key file; never printed.
    ServiceAccountJson(String),
    /// Application default credentials: `GOOGLE_APPLICATION_CREDENTIALS`, the gcloud
    /// well-known file, then the GCE metadata server. Only used when asked for explicitly.
    ApplicationDefault,
    /// Unsigned requests: public buckets and emulators.
    Anonymous,
}

impl fmt::Debug for GcsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServiceAccountFile(p) => f.debug_tuple("ServiceAccountFile").field(p).finish(),
            Self::ServiceAccountJson(_) => f.write_str("ServiceAccountJson(<redacted>)"),
            Self::ApplicationDefault => f.write_str("ApplicationDefault"),
            Self::Anonymous => f.write_str("Anonymous"),
        }
    }
}

/// Configuration of a GCS repository. Its `Debug` never prints credential contents.
#[derive(Clone)]
#[non_exhaustive]
pub struct GcsConfig {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (`""` for the root).
    pub prefix: String,
    /// Custom endpoint (an emulator such as `http://127.0.0.1:4443`); Google's when unset.
    pub endpoint: Option<String>,
    /// Credentials; `build` fails when unset.
    pub credentials: Option<GcsCredentials>,
    /// Storage class of new objects (`NEARLINE`, `COLDLINE`, `ARCHIVE`).
    pub storage_class: Option<String>,
    /// Request retries.
    pub retry: RetryOptions,
    /// Attempt time limits.
    pub timeouts: Timeouts,
    /// Whether the server enforces `ifGenerationMatch` (real GCS does; the emulators do not).
    pub create_new_enforced: bool,
}

impl Default for GcsConfig {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            prefix: String::new(),
            endpoint: None,
            credentials: None,
            storage_class: None,
            retry: RetryOptions::default(),
            timeouts: Timeouts::default(),
            create_new_enforced: true,
        }
    }
}

impl fmt::Debug for GcsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcsConfig")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.credentials)
            .field("storage_class", &self.storage_class)
            .field("retry", &self.retry)
            .field("timeouts", &self.timeouts)
            .field("create_new_enforced", &self.create_new_enforced)
            .finish()
    }
}

impl GcsConfig {
    /// A configuration for `bucket` with defaults.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            ..Self::default()
        }
    }

    /// Sets the key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets a custom endpoint.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sets the credentials.
    pub fn with_credentials(mut self, credentials: GcsCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Sets the storage class of new objects.
    pub fn with_storage_class(mut self, class: impl Into<String>) -> Self {
        self.storage_class = Some(class.into());
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

    /// Declares whether the server enforces `ifGenerationMatch` (create-only). Set `false` for
    /// the emulators, which accept the condition but do not check it.
    pub fn with_create_new_enforced(mut self, yes: bool) -> Self {
        self.create_new_enforced = yes;
        self
    }

    /// Builds the storage. No request is sent.
    ///
    /// # Errors
    /// `Config` for an empty or malformed bucket, an invalid prefix, missing credentials, or a
    /// configuration OpenDAL rejects.
    pub fn build(&self) -> Result<GcsStorage, StorageError> {
        let bucket = self.bucket.trim();
        if bucket.is_empty() || bucket.contains('/') {
            return Err(config_error(SCHEME, "bucket name is empty or contains '/'"));
        }
        let prefix = normalize_prefix(SCHEME, &self.prefix)?;
        let mut b = Gcs::default().bucket(bucket).root(&root_for(&prefix));
        let endpoint = self.endpoint.as_deref().map(|e| e.trim_end_matches('/'));
        if let Some(e) = endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(config_error(
                    SCHEME,
                    "endpoint must start with http:// or https://",
                ));
            }
            b = b.endpoint(e);
        }
        let mut opts = AdapterOptions::new(SCHEME, location("gs", bucket, &prefix))
            .with_endpoint(endpoint.unwrap_or("https://storage.googleapis.com"))
            .with_sizing(PartSizing::sequential())
            .with_write_strategy(WriteStrategy::GenerationConditional)
            // gcp-storage-emulator stores a null content type otherwise, which breaks reads.
            .with_content_type("application/octet-stream")
            .with_retry(self.retry)
            .with_timeouts(self.timeouts)
            .with_capabilities(Capabilities::default().with_create_new(self.create_new_enforced));
        match &self.credentials {
            None => {
                return Err(config_error(
                    SCHEME,
                    "no GCS credentials: give a service-account key file or its JSON, or \
                     explicitly choose application default credentials",
                ));
            }
            Some(GcsCredentials::ServiceAccountFile(path)) => {
                let Some(p) = path.to_str().filter(|p| !p.is_empty()) else {
                    return Err(config_error(
                        SCHEME,
                        "service-account file path is empty or not UTF-8",
                    ));
                };
                if !path.is_file() {
                    return Err(config_error(
                        SCHEME,
                        format!("service-account file {p} does not exist"),
                    ));
                }
                b = b
                    .credential_path(p)
                    .disable_config_load()
                    .disable_vm_metadata();
            }
            Some(GcsCredentials::ServiceAccountJson(json)) => {
                if json.trim().is_empty() {
                    return Err(config_error(SCHEME, "service-account JSON is empty"));
                }
                let encoded = base64(json.as_bytes());
                b = b
                    .credential(&encoded)
                    .disable_config_load()
                    .disable_vm_metadata();
                opts = opts.with_secret(json.clone()).with_secret(encoded);
            }
            Some(GcsCredentials::ApplicationDefault) => {}
            Some(GcsCredentials::Anonymous) => {
                b = b
                    .skip_signature()
                    .disable_config_load()
                    .disable_vm_metadata();
            }
        }
        if let Some(class) = &self.storage_class {
            b = b.default_storage_class(class);
        }
        let op = Operator::new(b).map_err(|e| {
            config_error(
                SCHEME,
                format!("invalid GCS configuration: {}", e.message()),
            )
        })?;
        tracing::debug!(location = %opts.location, "GCS storage configured");
        Ok(GcsStorage(OpendalStorage::__from_operator(op, opts)))
    }
}

/// A GCS bucket (or a prefix of one) as a pgb [`Storage`](pgb_core::Storage).
#[derive(Debug, Clone)]
pub struct GcsStorage(OpendalStorage);

impl GcsStorage {
    /// Retries, download resumes and exhausted retry budgets so far (all clones together).
    pub fn stats(&self) -> StorageStats {
        self.0.stats()
    }
}

pgb_storage_opendal::forward_storage_to_inner!(GcsStorage);

/// Standard base64 with padding (OpenDAL takes inline credentials base64-encoded).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use pgb_core::{Storage, StorageErrorKind};

    use super::*;

    const PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----MIIEvQIBADANBgkqhkiG9w0BAQEFAASC";

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn debug_never_shows_credential_json() {
        let json = format!(r#"{{"type":"service_account","private_key":"{PRIVATE_KEY}"}}"#);
        let cfg = GcsConfig::new("b").with_credentials(GcsCredentials::ServiceAccountJson(json));
        let text = format!("{cfg:?}");
        assert!(!text.contains(PRIVATE_KEY), "{text}");
    }

    #[test]
    fn missing_credentials_are_a_config_error() {
        let err = GcsConfig::new("b").build().expect_err("no credentials");
        assert_eq!(err.kind(), StorageErrorKind::Config);
        assert!(err.to_string().contains("no GCS credentials"), "{err}");
        let err = GcsConfig::new("b")
            .with_credentials(GcsCredentials::ServiceAccountFile(
                "/nonexistent/pgb-sa.json".into(),
            ))
            .build()
            .expect_err("missing file");
        assert_eq!(err.kind(), StorageErrorKind::Config);
        assert!(
            err.to_string().contains("/nonexistent/pgb-sa.json"),
            "{err}"
        );
    }

    #[test]
    fn capabilities_are_declared() {
        let cfg = GcsConfig::new("b")
            .with_prefix("p")
            .with_endpoint("http://127.0.0.1:9")
            .with_credentials(GcsCredentials::Anonymous);
        let info = cfg.build().expect("build").info();
        assert_eq!(info.location, "gs://b/p");
        assert!(info.capabilities.create_new);
        let info = cfg.with_create_new_enforced(false).build().unwrap().info();
        assert!(!info.capabilities.create_new);
    }
}
