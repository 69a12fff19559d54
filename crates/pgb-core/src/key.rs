//! Validated object keys.

use std::fmt;

/// A validated, `/`-separated relative object key.
///
/// No leading or trailing `/`, no empty, `.` or `..` segments, no NUL, `\` or `:`
/// (so a key is always a safe relative path on a local filesystem too).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ObjectKey(String);

/// A key that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid object key {key:?}: {reason}")]
pub struct InvalidKey {
    key: String,
    reason: &'static str,
}

impl ObjectKey {
    /// Parses and validates a key.
    ///
    /// # Errors
    /// [`InvalidKey`] when the key is empty or has a forbidden segment or character.
    pub fn parse(key: &str) -> Result<Self, InvalidKey> {
        let bad = |reason| InvalidKey {
            key: key.to_owned(),
            reason,
        };
        if key.is_empty() {
            return Err(bad("empty key"));
        }
        if key.contains(['\0', '\\', ':']) {
            return Err(bad("contains NUL, '\\' or ':'"));
        }
        for seg in key.split('/') {
            match seg {
                "" => return Err(bad("empty segment (leading, trailing or double '/')")),
                "." | ".." => return Err(bad("'.' or '..' segment")),
                _ => {}
            }
        }
        Ok(Self(key.to_owned()))
    }

    /// Appends one or more segments (`a` + `b/c` = `a/b/c`).
    ///
    /// # Errors
    /// [`InvalidKey`] when `suffix` is not itself a valid key.
    pub fn join(&self, suffix: &str) -> Result<Self, InvalidKey> {
        let suffix = Self::parse(suffix)?;
        Ok(Self(format!("{}/{}", self.0, suffix.0)))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// Whether `self` is `prefix` or lies under it, segment-wise (`a/b` is under `a`, not under `a/b2`... nor `a/bc` under `a/b`).
    pub fn starts_with(&self, prefix: &ObjectKey) -> bool {
        self.0 == prefix.0
            || (self.0.starts_with(&prefix.0)
                && self.0.as_bytes().get(prefix.0.len()) == Some(&b'/'))
    }

    /// The key relative to `prefix`, if it lies strictly under it.
    pub fn strip_prefix(&self, prefix: &ObjectKey) -> Option<&str> {
        self.0
            .strip_prefix(&prefix.0)
            .and_then(|rest| rest.strip_prefix('/'))
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unsafe_keys() {
        for k in ["", "/a", "a/", "a//b", "a/../b", "./a", "a:b", "a\\b"] {
            assert!(ObjectKey::parse(k).is_err(), "{k:?} must be rejected");
        }
        assert!(ObjectKey::parse("backups/2026 x/ü.json").is_ok());
    }

    #[test]
    fn prefix_is_segment_wise() {
        let ab = ObjectKey::parse("a/b").unwrap();
        assert!(ObjectKey::parse("a/b/c").unwrap().starts_with(&ab));
        assert!(ObjectKey::parse("a/b").unwrap().starts_with(&ab));
        assert!(!ObjectKey::parse("a/bc").unwrap().starts_with(&ab));
        assert_eq!(
            ObjectKey::parse("a/b/c/d").unwrap().strip_prefix(&ab),
            Some("c/d")
        );
        assert_eq!(ObjectKey::parse("a/bc").unwrap().strip_prefix(&ab), None);
    }
}
