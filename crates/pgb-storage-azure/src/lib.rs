//! # pgb-storage-azure
//!
//! Azure Blob Storage as a pgb [`Storage`](pgb_core::Storage), on the shared OpenDAL adapter.
//!
//! [`AzureConfig`] is a typed configuration (no environment reading: the binary does that);
//! [`AzureConfig::build`] returns an [`AzureStorage`].
//!
//! ```
//! use pgb_storage_azure::{AzureConfig, AzureCredentials};
//!
//! let storage = AzureConfig::new("mystorageaccount", "backups")
//!     .with_prefix("prod/db1")
//!     .with_credentials(AzureCredentials::SasToken("sv=2022-11-02&ss=b&sig=...".into()))
//!     .build()?;
//! # let _ = storage;
//! # Ok::<(), pgb_core::StorageError>(())
//! ```
//!
//! Objects are block blobs: small ones go up in one `Put Blob`, larger ones as blocks (sized
//! from the size hint, at most 50,000 of them) committed by one `Put Block List`, so nothing
//! is visible before the commit; uncommitted blocks of an abandoned upload are discarded by
//! Azure after a week. Create-only writes send `If-None-Match: *`, which Azure (and Azurite)
//! enforce.

use std::fmt;

use opendal::Operator;
use opendal::services::Azblob;
use pgb_core::Capabilities;
use pgb_storage_opendal::{
    AdapterOptions, OpendalStorage, PartSizing, config_error, location, normalize_prefix, root_for,
};

pub use pgb_core::StorageError;
pub use pgb_storage_opendal::{RetryOptions, StorageStats, Timeouts, UploadPlan};

const SCHEME: &str = "az";

/// How pgb authenticates to Azure Blob Storage.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AzureCredentials {
    /// The storage account's shared key (`AZURE_STORAGE_KEY`); never printed.
    AccountKey(String),
    /// A shared access signature (`AZURE_STORAGE_SAS_TOKEN`), with or without the leading `?`;
    /// never printed.
    SasToken(String),
    /// A connection string (`AZURE_STORAGE_CONNECTION_STRING`) with the account, the key or a
    /// SAS, and optionally the endpoint; never printed.
    ConnectionString(String),
}

impl fmt::Debug for AzureCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AccountKey(_) => f.write_str("AccountKey(<redacted>)"),
            Self::SasToken(_) => f.write_str("SasToken(<redacted>)"),
            Self::ConnectionString(_) => f.write_str("ConnectionString(<redacted>)"),
        }
    }
}

/// Configuration of an Azure Blob repository. Its `Debug` never prints keys or tokens.
#[derive(Clone)]
#[non_exhaustive]
pub struct AzureConfig {
    /// Storage account name (may be empty with a connection string that names it).
    pub account: String,
    /// Container name.
    pub container: String,
    /// Key prefix inside the container (`""` for the root).
    pub prefix: String,
    /// Blob endpoint; `https://<account>.blob.core.windows.net` when unset. For Azurite:
    /// `http://127.0.0.1:10000/devstoreaccount1`.
    pub endpoint: Option<String>,
    /// Credentials; `build` fails when unset.
    pub credentials: Option<AzureCredentials>,
    /// Block sizes and concurrency.
    pub sizing: PartSizing,
    /// Request retries.
    pub retry: RetryOptions,
    /// Attempt time limits.
    pub timeouts: Timeouts,
}

impl Default for AzureConfig {
    fn default() -> Self {
        Self {
            account: String::new(),
            container: String::new(),
            prefix: String::new(),
            endpoint: None,
            credentials: None,
            sizing: PartSizing::azure(),
            retry: RetryOptions::default(),
            timeouts: Timeouts::default(),
        }
    }
}

impl fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureConfig")
            .field("account", &self.account)
            .field("container", &self.container)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.credentials)
            .field("sizing", &self.sizing)
            .field("retry", &self.retry)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl AzureConfig {
    /// A configuration for `container` in storage `account`, with defaults.
    pub fn new(account: impl Into<String>, container: impl Into<String>) -> Self {
        Self {
            account: account.into(),
            container: container.into(),
            ..Self::default()
        }
    }

    /// Sets the key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the blob endpoint.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sets the credentials.
    pub fn with_credentials(mut self, credentials: AzureCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Sets the block size used when no size hint is given.
    pub fn with_block_size(mut self, bytes: u64) -> Self {
        self.sizing = self.sizing.with_default_part(bytes);
        self
    }

    /// Sets the number of blocks uploaded at once.
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

    /// Builds the storage. No request is sent.
    ///
    /// # Errors
    /// `Config` for an empty container or account, an invalid prefix, missing credentials, a
    /// malformed connection string, or a configuration OpenDAL rejects.
    pub fn build(&self) -> Result<AzureStorage, StorageError> {
        let container = self.container.trim();
        if container.is_empty() || container.contains('/') {
            return Err(config_error(
                SCHEME,
                "container name is empty or contains '/'",
            ));
        }
        let prefix = normalize_prefix(SCHEME, &self.prefix)?;
        let account = self.account.trim();
        let mut opts = AdapterOptions::new(SCHEME, location("az", container, &prefix))
            .with_sizing(self.sizing)
            .with_retry(self.retry)
            .with_timeouts(self.timeouts)
            .with_capabilities(Capabilities::default());

        let mut b = match &self.credentials {
            None => {
                return Err(config_error(
                    SCHEME,
                    "no Azure credentials: give an account key, a SAS token or a connection string",
                ));
            }
            Some(AzureCredentials::ConnectionString(conn)) => {
                opts = opts.with_secret(conn.clone());
                for part in conn.split(';') {
                    if let Some((k, v)) = part.split_once('=')
                        && matches!(
                            k.trim().to_ascii_lowercase().as_str(),
                            "accountkey" | "sharedaccesssignature"
                        )
                    {
                        opts = opts.with_secret(v.trim().to_owned());
                    }
                }
                Azblob::from_connection_string(conn).map_err(|e| {
                    config_error(
                        SCHEME,
                        format!("invalid Azure connection string: {}", e.message()),
                    )
                })?
            }
            Some(AzureCredentials::AccountKey(key)) => {
                if account.is_empty() || key.trim().is_empty() {
                    return Err(config_error(
                        SCHEME,
                        "an account key needs the storage account name and a non-empty key",
                    ));
                }
                opts = opts.with_secret(key.clone());
                Azblob::default()
                    .account_name(account)
                    .account_key(key.trim())
            }
            Some(AzureCredentials::SasToken(sas)) => {
                let sas = sas.trim().trim_start_matches('?');
                if account.is_empty() && self.endpoint.is_none() || sas.is_empty() {
                    return Err(config_error(
                        SCHEME,
                        "a SAS token needs the storage account name (or an endpoint) and a non-empty token",
                    ));
                }
                opts = opts.with_secret(sas.to_owned());
                let mut b = Azblob::default().sas_token(sas);
                if !account.is_empty() {
                    b = b.account_name(account);
                }
                b
            }
        };
        b = b.container(container).root(&root_for(&prefix));
        let endpoint = match self.endpoint.as_deref().map(|e| e.trim_end_matches('/')) {
            Some(e) if !(e.starts_with("http://") || e.starts_with("https://")) => {
                return Err(config_error(
                    SCHEME,
                    "endpoint must start with http:// or https://",
                ));
            }
            Some(e) => Some(e.to_owned()),
            None if !account.is_empty() => Some(format!("https://{account}.blob.core.windows.net")),
            // A connection string carries its own endpoint.
            None => None,
        };
        if let Some(e) = &endpoint {
            b = b.endpoint(e);
            opts = opts.with_endpoint(e.clone());
        }
        let op = Operator::new(b).map_err(|e| {
            config_error(
                SCHEME,
                format!("invalid Azure configuration: {}", e.message()),
            )
        })?;
        tracing::debug!(location = %opts.location, "Azure Blob storage configured");
        Ok(AzureStorage(OpendalStorage::__from_operator(op, opts)))
    }
}

/// An Azure Blob container (or a prefix of one) as a pgb [`Storage`](pgb_core::Storage).
#[derive(Debug, Clone)]
pub struct AzureStorage(OpendalStorage);

impl AzureStorage {
    /// Retries, download resumes and exhausted retry budgets so far (all clones together).
    pub fn stats(&self) -> StorageStats {
        self.0.stats()
    }

    /// The block size and concurrency a write with this size hint uses.
    pub fn upload_plan(&self, size_hint: Option<u64>) -> UploadPlan {
        self.0.upload_plan(size_hint)
    }
}

pgb_storage_opendal::forward_storage_to_inner!(AzureStorage);

#[cfg(test)]
mod tests {
    use pgb_core::{Storage, StorageErrorKind};

    use super::*;

    const KEY: &str = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS1ub3QtcmVhbA==";
    const SIG: &str = "sig=AbCdEfSECRETSIGNATURE%3D";

    #[test]
    fn debug_never_shows_secrets() {
        for creds in [
            AzureCredentials::AccountKey(KEY.into()),
            AzureCredentials::SasToken(format!("sv=2022-11-02&{SIG}")),
            AzureCredentials::ConnectionString(format!(
                "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};EndpointSuffix=core.windows.net"
            )),
        ] {
            let cfg = AzureConfig::new("acct", "c").with_credentials(creds);
            let text = format!("{cfg:?}");
            assert!(
                !text.contains(KEY) && !text.contains("SECRETSIGNATURE"),
                "{text}"
            );
            let storage = cfg.build().expect("build");
            let text = format!("{storage:?}");
            assert!(
                !text.contains(KEY) && !text.contains("SECRETSIGNATURE"),
                "{text}"
            );
        }
    }

    #[test]
    fn missing_credentials_are_a_config_error() {
        let err = AzureConfig::new("acct", "c")
            .build()
            .expect_err("no credentials");
        assert_eq!(err.kind(), StorageErrorKind::Config);
        assert!(err.to_string().contains("no Azure credentials"), "{err}");
        let err = AzureConfig::new("", "c")
            .with_credentials(AzureCredentials::AccountKey(KEY.into()))
            .build()
            .expect_err("no account");
        assert_eq!(err.kind(), StorageErrorKind::Config);
        assert!(!err.to_string().contains(KEY));
    }

    #[test]
    fn location_and_capabilities() {
        let info = AzureConfig::new("acct", "c")
            .with_prefix("x/y")
            .with_credentials(AzureCredentials::AccountKey(KEY.into()))
            .build()
            .expect("build")
            .info();
        assert_eq!(info.scheme, "az");
        assert_eq!(info.location, "az://c/x/y");
        assert!(info.capabilities.create_new);
    }

    #[test]
    fn block_sizes_stay_under_50000_blocks() {
        let storage = AzureConfig::new("acct", "c")
            .with_credentials(AzureCredentials::AccountKey(KEY.into()))
            .build()
            .unwrap();
        const GIB: u64 = 1024 * 1024 * 1024;
        for hint in [GIB, 1024 * GIB, 10 * 1024 * GIB] {
            let plan = storage.upload_plan(Some(hint));
            assert!(hint.div_ceil(plan.part_size) < 50_000, "{plan:?}");
        }
    }
}
