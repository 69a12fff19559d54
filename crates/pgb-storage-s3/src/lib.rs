//! # pgb-storage-s3
//!
//! Amazon S3 and S3-compatible stores (MinIO, Backblaze B2, Oracle OCI, Ceph, ...) as a pgb
//! [`Storage`](pgb_core::Storage), on the shared OpenDAL adapter.
//!
//! [`S3Config`] is a typed configuration (no environment reading: the binary does that);
//! [`S3Config::build`] returns an [`S3Storage`].
//!
//! ```
//! use pgb_storage_s3::{S3Config, S3Credentials, S3Encryption};
//!
//! let storage = S3Config::new("my-backups")
//!     .with_prefix("prod/db1")
//!     .with_region("eu-west-1")
//!     .with_credentials(S3Credentials::static_keys("AKIAEXAMPLE", "secret-access-key"))
//!     .with_encryption(S3Encryption::Kms { key_id: Some("alias/pgb".into()) })
//!     .build()?;
//! # let _ = storage;
//! # Ok::<(), pgb_core::StorageError>(())
//! ```
//!
//! Large objects use multipart uploads whose part size is chosen from
//! [`WriteOptions::size_hint`](pgb_core::WriteOptions) so the 10,000-part limit is not reached
//! (see [`PartSizing`]); without a hint, 32 MiB parts hold up to about 312 GiB. Create-only
//! writes send `If-None-Match: *`, which AWS S3 enforces; some S3-compatible stores ignore it,
//! and for those [`S3Config::with_create_new_enforced`] must be set to `false` so pgb knows.

use std::fmt;

use opendal::Operator;
use opendal::services::S3;
use pgb_core::Capabilities;
use pgb_storage_opendal::{
    AdapterOptions, OpendalStorage, config_error, location, normalize_prefix, root_for,
};

pub use pgb_core::StorageError;
pub use pgb_storage_opendal::{PartSizing, RetryOptions, StorageStats, Timeouts, UploadPlan};

const SCHEME: &str = "s3";

/// How pgb authenticates to S3.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum S3Credentials {
    /// An access key pair, with a session token for temporary credentials.
    Static {
        /// `AWS_ACCESS_KEY_ID`.
        access_key_id: String,
        /// `AWS_SECRET_ACCESS_KEY`; never printed.
        secret_access_key: String,
        /// `AWS_SESSION_TOKEN`; never printed.
        session_token: Option<String>,
    },
    /// A named profile from `~/.aws/config` and `~/.aws/credentials`.
    Profile(String),
    /// The AWS default credential chain (environment, profile files, web identity, EC2/ECS
    /// instance metadata). Only used when asked for explicitly.
    DefaultChain,
    /// Unsigned requests, for public buckets.
    Anonymous,
}

impl S3Credentials {
    /// A static key pair without a session token.
    pub fn static_keys(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        Self::Static {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }

    /// Adds a session token to static credentials (no effect on other kinds).
    pub fn with_session_token(self, token: impl Into<String>) -> Self {
        match self {
            Self::Static {
                access_key_id,
                secret_access_key,
                ..
            } => Self::Static {
                access_key_id,
                secret_access_key,
                session_token: Some(token.into()),
            },
            other => other,
        }
    }
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Static {
                access_key_id,
                session_token,
                ..
            } => f
                .debug_struct("Static")
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &"<redacted>")
                .field(
                    "session_token",
                    &session_token.as_ref().map(|_| "<redacted>"),
                )
                .finish(),
            Self::Profile(p) => f.debug_tuple("Profile").field(p).finish(),
            Self::DefaultChain => f.write_str("DefaultChain"),
            Self::Anonymous => f.write_str("Anonymous"),
        }
    }
}

/// Server-side encryption of stored objects.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum S3Encryption {
    /// SSE-S3: keys managed by S3 (`AES256`).
    S3Managed,
    /// SSE-KMS: with the given KMS key id or ARN or alias, or the AWS-managed `aws/s3` key.
    Kms {
        /// KMS key id, ARN or alias; `None` uses the AWS-managed key.
        key_id: Option<String>,
    },
}

/// How bucket names appear in request URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AddressingStyle {
    /// Virtual-hosted for AWS (no custom endpoint), path-style for a custom endpoint.
    #[default]
    Auto,
    /// `https://endpoint/bucket/key` (MinIO, most emulators and on-premises stores).
    Path,
    /// `https://bucket.endpoint/key` (AWS, and B2/OCI where documented).
    VirtualHost,
}

/// Configuration of an S3 (or S3-compatible) repository.
///
/// Its `Debug` never prints the secret key or session token.
#[derive(Clone)]
#[non_exhaustive]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (`""` for the root).
    pub prefix: String,
    /// Region; `us-east-1` when unset (the environment is never consulted).
    pub region: Option<String>,
    /// Custom endpoint (`https://s3.eu-central-003.backblazeb2.com`, `http://127.0.0.1:9000`);
    /// AWS's regional endpoint when unset.
    pub endpoint: Option<String>,
    /// Path-style or virtual-hosted requests.
    pub addressing: AddressingStyle,
    /// Credentials; `build` fails when unset.
    pub credentials: Option<S3Credentials>,
    /// Server-side encryption.
    pub encryption: Option<S3Encryption>,
    /// Storage class of new objects (`STANDARD_IA`, `GLACIER_IR`, ...).
    pub storage_class: Option<String>,
    /// Part sizes and concurrency.
    pub sizing: PartSizing,
    /// Request retries.
    pub retry: RetryOptions,
    /// Attempt time limits.
    pub timeouts: Timeouts,
    /// Whether the store enforces `If-None-Match: *` (create-only). AWS does; declare `false`
    /// for a compatible store that ignores it, and pgb checks existence first (best effort).
    pub create_new_enforced: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            prefix: String::new(),
            region: None,
            endpoint: None,
            addressing: AddressingStyle::Auto,
            credentials: None,
            encryption: None,
            storage_class: None,
            sizing: PartSizing::s3(),
            retry: RetryOptions::default(),
            timeouts: Timeouts::default(),
            create_new_enforced: true,
        }
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("addressing", &self.addressing)
            .field("credentials", &self.credentials)
            .field("encryption", &self.encryption)
            .field("storage_class", &self.storage_class)
            .field("sizing", &self.sizing)
            .field("retry", &self.retry)
            .field("timeouts", &self.timeouts)
            .field("create_new_enforced", &self.create_new_enforced)
            .finish()
    }
}

impl S3Config {
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

    /// Sets the region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets a custom endpoint.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sets path-style or virtual-hosted addressing.
    pub fn with_addressing(mut self, style: AddressingStyle) -> Self {
        self.addressing = style;
        self
    }

    /// Sets the credentials.
    pub fn with_credentials(mut self, credentials: S3Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Sets server-side encryption.
    pub fn with_encryption(mut self, encryption: S3Encryption) -> Self {
        self.encryption = Some(encryption);
        self
    }

    /// Sets the storage class of new objects.
    pub fn with_storage_class(mut self, class: impl Into<String>) -> Self {
        self.storage_class = Some(class.into());
        self
    }

    /// Sets the part size used when no size hint is given (clamped to 5 MiB..5 GiB).
    pub fn with_part_size(mut self, bytes: u64) -> Self {
        self.sizing = self.sizing.with_default_part(bytes);
        self
    }

    /// Sets the number of parts uploaded at once.
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.sizing = self.sizing.with_max_concurrency(n);
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

    /// Declares whether the store enforces create-only writes (`If-None-Match: *`).
    pub fn with_create_new_enforced(mut self, yes: bool) -> Self {
        self.create_new_enforced = yes;
        self
    }

    /// Builds the storage. No request is sent.
    ///
    /// # Errors
    /// `Config` for an empty or malformed bucket, an invalid prefix, missing or incomplete
    /// credentials, or a configuration OpenDAL rejects.
    pub fn build(&self) -> Result<S3Storage, StorageError> {
        let bucket = self.bucket.trim();
        if bucket.is_empty() || bucket.contains('/') {
            return Err(config_error(SCHEME, "bucket name is empty or contains '/'"));
        }
        let prefix = normalize_prefix(SCHEME, &self.prefix)?;
        let region = self.region.as_deref().unwrap_or("us-east-1");
        let mut b = S3::default()
            .bucket(bucket)
            .root(&root_for(&prefix))
            .region(region);
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
        let virtual_host = match self.addressing {
            AddressingStyle::Auto => endpoint.is_none(),
            AddressingStyle::Path => false,
            AddressingStyle::VirtualHost => true,
        };
        if virtual_host {
            b = b.enable_virtual_host_style();
        }
        let mut opts = AdapterOptions::new(SCHEME, location("s3", bucket, &prefix))
            .with_endpoint(
                endpoint
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com")),
            )
            .with_sizing(self.sizing)
            .with_retry(self.retry)
            .with_timeouts(self.timeouts)
            .with_capabilities(Capabilities::default().with_create_new(self.create_new_enforced));
        match &self.credentials {
            None => {
                return Err(config_error(
                    SCHEME,
                    "no S3 credentials: give an access key id and secret access key, a profile, \
                     or explicitly choose the default credential chain",
                ));
            }
            Some(S3Credentials::Static {
                access_key_id,
                secret_access_key,
                session_token,
            }) => {
                if access_key_id.is_empty() || secret_access_key.is_empty() {
                    return Err(config_error(
                        SCHEME,
                        "S3 access key id and secret access key must both be set",
                    ));
                }
                b = b
                    .access_key_id(access_key_id)
                    .secret_access_key(secret_access_key)
                    .disable_config_load()
                    .disable_ec2_metadata();
                opts = opts.with_secret(secret_access_key.clone());
                if let Some(t) = session_token {
                    b = b.session_token(t);
                    opts = opts.with_secret(t.clone());
                }
            }
            Some(S3Credentials::Profile(p)) => {
                if p.is_empty() {
                    return Err(config_error(SCHEME, "S3 profile name is empty"));
                }
                b = b.profile(p).disable_ec2_metadata();
            }
            Some(S3Credentials::DefaultChain) => {}
            Some(S3Credentials::Anonymous) => {
                b = b
                    .skip_signature()
                    .disable_config_load()
                    .disable_ec2_metadata();
            }
        }
        match &self.encryption {
            None => {}
            Some(S3Encryption::S3Managed) => b = b.server_side_encryption_with_s3_key(),
            Some(S3Encryption::Kms { key_id: None }) => {
                b = b.server_side_encryption_with_aws_managed_kms_key();
            }
            Some(S3Encryption::Kms { key_id: Some(k) }) => {
                b = b.server_side_encryption_with_customer_managed_kms_key(k);
            }
        }
        if let Some(class) = &self.storage_class {
            b = b.default_storage_class(class);
        }
        let op = Operator::new(b).map_err(|e| {
            config_error(SCHEME, format!("invalid S3 configuration: {}", e.message()))
        })?;
        tracing::debug!(location = %opts.location, region, virtual_host, "S3 storage configured");
        Ok(S3Storage(OpendalStorage::__from_operator(op, opts)))
    }
}

/// An S3 bucket (or a prefix of one) as a pgb [`Storage`](pgb_core::Storage).
#[derive(Debug, Clone)]
pub struct S3Storage(OpendalStorage);

impl S3Storage {
    /// Retries, download resumes and exhausted retry budgets so far (all clones together).
    pub fn stats(&self) -> StorageStats {
        self.0.stats()
    }

    /// The part size and concurrency a write with this size hint uses.
    pub fn upload_plan(&self, size_hint: Option<u64>) -> UploadPlan {
        self.0.upload_plan(size_hint)
    }
}

pgb_storage_opendal::forward_storage_to_inner!(S3Storage);

#[cfg(test)]
mod tests {
    use pgb_core::{Storage, StorageErrorKind};

    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN";

    fn config() -> S3Config {
        S3Config::new("bucket")
            .with_prefix("/a/b/")
            .with_endpoint("http://127.0.0.1:9")
            .with_credentials(
                S3Credentials::static_keys("AKIDEXAMPLE", SECRET).with_session_token(TOKEN),
            )
    }

    #[test]
    fn debug_never_shows_secrets() {
        let text = format!("{:?}", config());
        assert!(!text.contains(SECRET) && !text.contains(TOKEN), "{text}");
        assert!(
            text.contains("AKIDEXAMPLE"),
            "the key id is not secret: {text}"
        );
        let storage = config().build().expect("build");
        let text = format!("{storage:?}");
        assert!(!text.contains(SECRET) && !text.contains(TOKEN), "{text}");
    }

    #[test]
    fn missing_credentials_are_a_config_error() {
        let err = S3Config::new("b").build().expect_err("no credentials");
        assert_eq!(err.kind(), StorageErrorKind::Config);
        assert!(err.to_string().contains("no S3 credentials"), "{err}");
        let err = S3Config::new("b")
            .with_credentials(S3Credentials::static_keys("id", ""))
            .build()
            .expect_err("no secret");
        assert_eq!(err.kind(), StorageErrorKind::Config);
    }

    #[test]
    fn bad_bucket_and_prefix_are_config_errors() {
        for cfg in [
            config().with_prefix("a/../b"),
            S3Config {
                bucket: String::new(),
                ..config()
            },
            S3Config {
                bucket: "a/b".into(),
                ..config()
            },
            config().with_endpoint("127.0.0.1:9000"),
        ] {
            let err = cfg.build().expect_err("invalid");
            assert_eq!(err.kind(), StorageErrorKind::Config, "{err}");
        }
    }

    #[test]
    fn location_is_redacted_and_scoped() {
        let info = config().build().expect("build").info();
        assert_eq!(info.scheme, "s3");
        assert_eq!(info.location, "s3://bucket/a/b");
        assert!(info.capabilities.create_new);
        let info = config()
            .with_create_new_enforced(false)
            .build()
            .unwrap()
            .info();
        assert!(!info.capabilities.create_new);
    }

    #[test]
    fn part_size_keeps_large_dumps_under_10000_parts() {
        let storage = config().build().unwrap();
        const GIB: u64 = 1024 * 1024 * 1024;
        for hint in [GIB, 50 * GIB, 400 * GIB, 2048 * GIB, 5 * 1024 * GIB] {
            let plan = storage.upload_plan(Some(hint));
            assert!(hint.div_ceil(plan.part_size) < 10_000, "{hint}: {plan:?}");
            assert!(plan.part_size <= 5 * GIB);
        }
        let plan = storage.upload_plan(None);
        assert_eq!(plan.part_size, 32 * 1024 * 1024);
    }

    #[test]
    fn encryption_and_class_build() {
        for enc in [
            S3Encryption::S3Managed,
            S3Encryption::Kms { key_id: None },
            S3Encryption::Kms {
                key_id: Some("arn:aws:kms:eu-west-1:111122223333:key/abcd".into()),
            },
        ] {
            config()
                .with_encryption(enc)
                .with_storage_class("STANDARD_IA")
                .build()
                .expect("build");
        }
    }
}
