//! Small helpers shared by the backend crates' configs.

use pgb_core::{ObjectKey, StorageError, StorageErrorKind};

/// A configuration error for `scheme`, as a one-line [`StorageError`] of kind `Config`.
pub fn config_error(scheme: &'static str, message: impl Into<String>) -> StorageError {
    StorageError::new(StorageErrorKind::Config, "configure", scheme, message)
}

/// Normalizes a key prefix: surrounding `/` removed; the rest must be a valid [`ObjectKey`]
/// (no empty, `.` or `..` segments). An empty prefix means the bucket's root.
///
/// # Errors
/// `Config` when the prefix is not a valid key.
pub fn normalize_prefix(scheme: &'static str, prefix: &str) -> Result<String, StorageError> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    ObjectKey::parse(trimmed)
        .map(|k| k.as_str().to_owned())
        .map_err(|e| config_error(scheme, format!("invalid prefix: {e}")))
}

/// `scheme://container/prefix`, for logs and [`pgb_core::StorageInfo`].
pub fn location(scheme: &str, container: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        format!("{scheme}://{container}")
    } else {
        format!("{scheme}://{container}/{prefix}")
    }
}

/// The OpenDAL `root` for a normalized prefix.
pub fn root_for(prefix: &str) -> String {
    format!("/{prefix}/").replace("//", "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(normalize_prefix("s3", "").unwrap(), "");
        assert_eq!(normalize_prefix("s3", "/a/b/").unwrap(), "a/b");
        assert!(normalize_prefix("s3", "a//b").is_err());
        assert!(normalize_prefix("s3", "a/../b").is_err());
        assert_eq!(root_for(""), "/");
        assert_eq!(root_for("a/b"), "/a/b/");
        assert_eq!(location("s3", "b", ""), "s3://b");
        assert_eq!(location("s3", "b", "p/q"), "s3://b/p/q");
    }
}
