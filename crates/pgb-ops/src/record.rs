//! Evidence records in the repository: a small JSON envelope, written create-only, carrying
//! the sha256 of its body and, with an authentication key, an HMAC-SHA256 of it.
//!
//! ```json
//! {"format_version": 1, "kind": "drill", "body": { ... }, "sha256": "...", "mac": "..."}
//! ```
//!
//! The checksum covers the body as this crate serializes it (every number in a record is an
//! integer, so parsing and re-serializing reproduces the bytes exactly).

use std::collections::BTreeMap;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use pgb_core::{
    AuthKey, BackupId, ObjectKey, Repository, StorageError, StorageErrorKind, StorageExt,
    WriteOptions,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::drill::DrillReport;

/// Drill records live under this prefix: `drills/<backup-id>/<utc time>.json`.
pub(crate) const DRILLS: &str = "drills";

const RECORD_VERSION: u32 = 1;

/// A record could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The storage failed.
    #[error("{0}")]
    Storage(#[from] StorageError),
    /// A record is corrupt, altered or of an unknown version.
    #[error("record {key}: {problem}")]
    Invalid {
        /// The record's key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    format_version: u32,
    kind: String,
    body: T,
    sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac_of(key: &AuthKey, kind: &str, body: &[u8]) -> String {
    let raw = key.to_hex();
    let key_bytes: Vec<u8> = (0..raw.len() / 2)
        .filter_map(|i| u8::from_str_radix(&raw[2 * i..2 * i + 2], 16).ok())
        .collect();
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key_bytes).expect("any key length");
    // Domain separation: a record's MAC can never pass for a manifest's or another kind's.
    m.update(b"pgb-record\0");
    m.update(kind.as_bytes());
    m.update(b"\0");
    m.update(body);
    hex(&m.finalize().into_bytes())
}

/// Serializes `body` into an envelope (pretty JSON, so people can read the evidence).
pub(crate) fn seal<T: Serialize>(kind: &str, body: &T, key: Option<&AuthKey>) -> Vec<u8> {
    let canonical = serde_json::to_vec(body).expect("records serialize");
    let env = Envelope {
        format_version: RECORD_VERSION,
        kind: kind.to_owned(),
        body,
        sha256: hex(&Sha256::digest(&canonical)),
        mac: key.map(|k| mac_of(k, kind, &canonical)),
    };
    let mut out = serde_json::to_vec_pretty(&env).expect("records serialize");
    out.push(b'\n');
    out
}

/// Parses and checks an envelope. Returns the body and whether it was authenticated.
pub(crate) fn open<T: Serialize + DeserializeOwned>(
    key_name: &str,
    kind: &str,
    bytes: &[u8],
    auth: Option<&AuthKey>,
) -> Result<(T, bool), RecordError> {
    let bad = |problem: String| RecordError::Invalid {
        key: key_name.to_owned(),
        problem,
    };
    let env: Envelope<T> =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not a pgb record: {e}")))?;
    if env.format_version != RECORD_VERSION {
        return Err(bad(format!(
            "unknown record format version {}; upgrade pgb",
            env.format_version
        )));
    }
    if env.kind != kind {
        return Err(bad(format!(
            "a {} record where a {kind} record belongs",
            env.kind
        )));
    }
    let canonical = serde_json::to_vec(&env.body).expect("records serialize");
    if hex(&Sha256::digest(&canonical)) != env.sha256 {
        return Err(bad(
            "checksum mismatch: the record was altered or corrupted".to_owned(),
        ));
    }
    let authenticated = match (auth, &env.mac) {
        (Some(k), Some(mac)) => {
            // Both sides are hex of a fixed-size MAC; compare without early exit.
            let want = mac_of(k, kind, &canonical);
            let same = want.len() == mac.len()
                && want
                    .bytes()
                    .zip(mac.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0;
            if !same {
                return Err(bad(
                    "authentication failed: the record was altered, or the key is wrong".to_owned(),
                ));
            }
            true
        }
        (Some(_), None) => {
            return Err(bad(
                "record is not authenticated although an authentication key was given".to_owned(),
            ));
        }
        (None, _) => false,
    };
    Ok((env.body, authenticated))
}

/// A compact UTC time for object names: `20261130T024500Z`.
pub(crate) fn compact_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Writes `bytes` create-only under `base` + `.json`; when that name is taken (two records in
/// the same second) a numeric suffix is added.
pub(crate) async fn put_create_only(
    repo: &Repository,
    base: &str,
    bytes: Vec<u8>,
) -> Result<ObjectKey, RecordError> {
    let bytes = Bytes::from(bytes);
    for n in 0..100u32 {
        let name = if n == 0 {
            format!("{base}.json")
        } else {
            format!("{base}-{n}.json")
        };
        let key = ObjectKey::parse(&name).map_err(|e| RecordError::Invalid {
            key: name.clone(),
            problem: e.to_string(),
        })?;
        match repo
            .storage()
            .put(&key, bytes.clone(), WriteOptions::create_new())
            .await
        {
            Ok(_) => return Ok(key),
            Err(e) if e.kind() == StorageErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(RecordError::Invalid {
        key: format!("{base}.json"),
        problem: "100 records with the same name".to_owned(),
    })
}

/// Stores a drill's report as `drills/<backup-id>/<utc time>.json`, create-only, with its
/// sha256 and, when `auth` is given, an HMAC. Returns the key written.
///
/// # Errors
/// Storage failures.
pub async fn record_drill(
    repo: &Repository,
    report: &DrillReport,
    auth: Option<&AuthKey>,
) -> Result<ObjectKey, RecordError> {
    let base = format!(
        "{DRILLS}/{}/{}",
        report.backup_id,
        compact_time(report.started_at)
    );
    put_create_only(repo, &base, seal("drill", report, auth)).await
}

/// One drill record read back.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct DrillEntry {
    /// Its key in the repository.
    pub key: String,
    /// The report; `None` when the record could not be used (see `problem`).
    pub report: Option<DrillReport>,
    /// Whether its HMAC was checked with the authentication key.
    pub authenticated: bool,
    /// Why the record cannot be used (altered, corrupt, unknown version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Every drill record in the repository, oldest first (by drill start, then key). Records that
/// fail their checksum or authentication are listed with their problem, never trusted.
///
/// # Errors
/// Storage failures while listing or reading.
pub async fn drill_history(
    repo: &Repository,
    auth: Option<&AuthKey>,
) -> Result<Vec<DrillEntry>, RecordError> {
    let prefix = ObjectKey::parse(DRILLS).expect("static key");
    let mut metas = repo.storage().list(Some(&prefix)).await?;
    metas.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    let mut out = Vec::new();
    for meta in metas {
        if !meta.key.as_str().ends_with(".json") {
            continue;
        }
        let bytes = match repo.storage().get_bytes(&meta.key).await {
            Ok(b) => b,
            Err(e) if e.kind() == StorageErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let key = meta.key.as_str().to_owned();
        match open::<DrillReport>(&key, "drill", &bytes, auth) {
            Ok((report, authenticated)) => {
                // A record moved under another backup's folder is not evidence for it.
                let folder_ok = key
                    .split('/')
                    .nth(1)
                    .is_some_and(|id| id == report.backup_id.as_str());
                out.push(DrillEntry {
                    key,
                    problem: (!folder_ok)
                        .then(|| "record lives in another backup's folder".to_owned()),
                    report: folder_ok.then_some(report),
                    authenticated,
                });
            }
            Err(e) => out.push(DrillEntry {
                problem: Some(e.to_string()),
                key,
                report: None,
                authenticated: false,
            }),
        }
    }
    out.sort_by(|a, b| {
        let ta = a.report.as_ref().map(|r| r.started_at);
        let tb = b.report.as_ref().map(|r| r.started_at);
        (ta, &a.key).cmp(&(tb, &b.key))
    });
    Ok(out)
}

/// The newest usable drill of each backup.
///
/// # Errors
/// As [`drill_history`].
pub async fn last_drills(
    repo: &Repository,
    auth: Option<&AuthKey>,
) -> Result<BTreeMap<BackupId, DrillReport>, RecordError> {
    let mut map = BTreeMap::new();
    for entry in drill_history(repo, auth).await? {
        if let Some(r) = entry.report {
            map.insert(r.backup_id.clone(), r);
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Body {
        a: u64,
        b: String,
    }

    #[test]
    fn sealed_records_open_and_detect_tampering() {
        let body = Body {
            a: 7,
            b: "x".into(),
        };
        let key: AuthKey = "11".repeat(32).parse().unwrap();
        let bytes = seal("t", &body, Some(&key));
        let (back, auth) = open::<Body>("k", "t", &bytes, Some(&key)).unwrap();
        assert_eq!(back, body);
        assert!(auth);
        // Without the key the checksum is still checked.
        assert!(!open::<Body>("k", "t", &bytes, None).unwrap().1);

        let text = String::from_utf8(bytes.clone()).unwrap();
        let altered = text.replace("\"a\": 7", "\"a\": 8");
        let err = open::<Body>("k", "t", altered.as_bytes(), None).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");

        let other: AuthKey = "22".repeat(32).parse().unwrap();
        let err = open::<Body>("k", "t", &bytes, Some(&other)).unwrap_err();
        assert!(err.to_string().contains("authentication failed"), "{err}");

        let unsigned = seal("t", &body, None);
        let err = open::<Body>("k", "t", &unsigned, Some(&key)).unwrap_err();
        assert!(err.to_string().contains("not authenticated"), "{err}");

        let err = open::<Body>("k", "other", &bytes, None).unwrap_err();
        assert!(err.to_string().contains("a t record"), "{err}");
    }
}
