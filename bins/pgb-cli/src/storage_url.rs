//! Repository URLs → storage backends. The binary reads the environment and passes what it
//! read here; the storage crates only ever see typed configs.

use std::sync::Arc;

use pgb_core::Storage;

/// Looks up an environment variable (the binary passes `std::env::var`; tests pass a map).
pub(crate) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Why a repository URL cannot be opened. One line, never containing a secret.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UrlError {
    /// The URL is malformed or names an unknown scheme.
    #[error("invalid repository URL {url}: {reason}")]
    Invalid { url: String, reason: String },
    /// The backend refused its configuration (e.g. missing credentials).
    #[error("repository {url}: {reason}")]
    Config { url: String, reason: String },
}

/// Opens the storage a repository URL names: `file:///path` (or a plain path),
/// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`.
pub(crate) fn open_storage(url: &str, env: EnvLookup<'_>) -> Result<Arc<dyn Storage>, UrlError> {
    let _ = env;
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(UrlError::Invalid {
                url: url.to_owned(),
                reason: "file URLs need an absolute path: file:///var/backups/pgb".to_owned(),
            });
        }
        return open_local(url, path);
    }
    match url.split_once("://") {
        None => {
            let abs = std::path::absolute(url).map_err(|e| UrlError::Invalid {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
            open_local(url, &abs.to_string_lossy())
        }
        Some((scheme, _)) => Err(UrlError::Invalid {
            url: redact_url(url),
            reason: format!("unknown scheme {scheme:?}: use file://, s3://, gs:// or az://"),
        }),
    }
}

fn open_local(url: &str, path: &str) -> Result<Arc<dyn Storage>, UrlError> {
    pgb_storage_local::FsStorage::open(path)
        .map(|s| Arc::new(s) as Arc<dyn Storage>)
        .map_err(|e| UrlError::Config {
            url: url.to_owned(),
            reason: e.to_string(),
        })
}

/// A URL safe to print: any `user:password@` part is replaced.
pub(crate) fn redact_url(url: &str) -> String {
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
