//! Backup ids, the manifest (the commit marker) and the repository key layout.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::codec::Compression;
use crate::dump::ArchiveFormat;
use crate::key::ObjectKey;

/// The newest manifest format this version reads. It writes 1 for unencrypted backups (so
/// that older readers can still use them) and 2 for encrypted ones (which older readers must
/// refuse rather than misread).
pub const MANIFEST_FORMAT_VERSION: u32 = 2;

/// A backup id: UTC start time in basic ISO 8601 plus a random suffix, e.g.
/// `20261121T183300Z-7f3a9c`. Sorting ids as text sorts them by time; the suffix makes two
/// backups started in the same second distinct.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

/// A string that is not a backup id.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid backup id {0:?}: expected YYYYMMDDTHHMMSSZ-xxxxxx")]
pub struct InvalidBackupId(String);

impl BackupId {
    /// A new id for a backup starting at `at`.
    pub fn generate(at: OffsetDateTime) -> Self {
        let at = at.to_offset(time::UtcOffset::UTC);
        let mut rnd = [0u8; 3];
        // A failing OS RNG is vanishingly rare; fall back to the clock's nanoseconds.
        if getrandom::fill(&mut rnd).is_err() {
            let n = at.nanosecond();
            rnd = [n as u8, (n >> 8) as u8, (n >> 16) as u8];
        }
        Self(format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{}",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            crate::codec::hex(&rnd)
        ))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for BackupId {
    type Err = InvalidBackupId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let ok = b.len() == 23
            && b[..8].iter().all(u8::is_ascii_digit)
            && b[8] == b'T'
            && b[9..15].iter().all(u8::is_ascii_digit)
            && b[15] == b'Z'
            && b[16] == b'-'
            && b[17..]
                .iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidBackupId(s.to_owned()))
        }
    }
}

impl TryFrom<String> for BackupId {
    type Error = InvalidBackupId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<BackupId> for String {
    fn from(id: BackupId) -> Self {
        id.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// The manifest: written last, create-only; a backup exists only once it is there.
///
/// Compatibility: readers refuse a `format_version` newer than [`MANIFEST_FORMAT_VERSION`];
/// unknown fields are ignored so that additive, optional fields need no version bump. A field
/// that changes how a backup must be read bumps the version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Manifest {
    /// Manifest format version.
    pub format_version: u32,
    /// The backup's id.
    pub id: BackupId,
    /// The pgb version that wrote it.
    pub pgb_version: String,
    /// The backup set: one database on one server (`host:port/database`), the unit of retention.
    pub set: String,
    /// The database dumped.
    pub database: String,
    /// The server, redacted (`host:port`).
    pub server: String,
    /// The server's version.
    pub server_version: String,
    /// The pg_dump version line.
    pub pg_dump_version: String,
    /// pg_dump's major version (the archive version a restorer must read).
    pub pg_dump_major: u32,
    /// Archive format.
    pub format: ArchiveFormat,
    /// Compression of the stored bytes.
    pub compression: Compression,
    /// Key of the data object, relative to the repository root.
    pub data_key: String,
    /// Size of the stored object.
    pub stored_size: u64,
    /// sha256 of the stored object (hex).
    pub stored_sha256: String,
    /// Size of the uncompressed dump.
    pub plain_size: u64,
    /// sha256 of the uncompressed dump (hex).
    pub plain_sha256: String,
    /// When pg_dump started (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When the data object was finished (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// Labels given at backup time (kept on request by retention).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Client-side encryption, if any (format version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crate::crypto::EncryptionInfo>,
    /// HMAC-SHA256 (hex) of this manifest serialized without this field, when authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl Manifest {
    /// The bytes the MAC covers: the manifest serialized without its `mac`.
    pub(crate) fn mac_input(&self) -> Vec<u8> {
        let mut m = self.clone();
        m.mac = None;
        serde_json::to_vec(&m).expect("manifest serializes")
    }

    /// The data object's key.
    ///
    /// # Errors
    /// If the manifest holds an invalid key (a corrupt or hostile manifest).
    pub fn data_key(&self) -> Result<ObjectKey, crate::key::InvalidKey> {
        ObjectKey::parse(&self.data_key)
    }

    /// Parses and version-checks a manifest.
    ///
    /// # Errors
    /// A description of why the manifest cannot be used.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Probe {
            format_version: u32,
        }
        let probe: Probe =
            serde_json::from_slice(bytes).map_err(|e| format!("not a pgb manifest: {e}"))?;
        if probe.format_version > MANIFEST_FORMAT_VERSION || probe.format_version == 0 {
            return Err(format!(
                "unknown manifest format version {} (this pgb reads up to {}); upgrade pgb",
                probe.format_version, MANIFEST_FORMAT_VERSION
            ));
        }
        serde_json::from_slice(bytes).map_err(|e| format!("invalid manifest: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_round_trip() {
        let a = BackupId::generate(time::macros::datetime!(2026-01-02 03:04:05 UTC));
        let b = BackupId::generate(time::macros::datetime!(2026-01-02 03:04:06 UTC));
        assert!(a < b);
        assert!(a.as_str().starts_with("20260102T030405Z-"));
        assert_eq!(a.as_str().parse::<BackupId>().unwrap(), a);
        assert!("../etc".parse::<BackupId>().is_err());
        assert!("20260102T030405Z-zzzzzz".parse::<BackupId>().is_err());
    }

    #[test]
    fn unknown_manifest_versions_are_refused() {
        let err = Manifest::from_json(br#"{"format_version": 99}"#).unwrap_err();
        assert!(err.contains("unknown manifest format version 99"), "{err}");
        assert!(
            Manifest::from_json(b"{")
                .unwrap_err()
                .contains("not a pgb manifest")
        );
    }
}
