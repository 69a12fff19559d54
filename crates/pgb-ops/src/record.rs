//! Evidence records in the repository: a small JSON envelope, written create-only, carrying
//! the sha256 of its body and, with an authentication key, an HMAC-SHA256 of it.
//!
//! ```json
//! {"format_version": 1, "kind": "drill", "body": { ... }, "sha256": "...", "mac": "..."}
//! ```
//!
//! The seal covers the body **as written**: the stored `body` is parsed keeping every field,
//! known to this version or not, in the order written, and serialized compactly (no
//! whitespace); the sha256 and the MAC are taken over those bytes. A record written by a newer
//! pgb that added a field therefore reads as valid here (the field is checked, then ignored),
//! while a change to any field, or a field added afterwards, reads as altered.
//!
//! This is the rule every pgb has written by: a writer serializes its typed body compactly,
//! seals those bytes and stores the same body pretty-printed, so the compact form of the body
//! as written is exactly the bytes it sealed. Until records were read by this rule, readers
//! instead re-serialized the body as they understood it, which reproduces the sealed bytes only
//! when the record has no field unknown to the reader; records of those versions need no
//! fallback here, and records written by this version still read as valid there as long as
//! they carry no field those versions lack.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use pgb_core::layout::{self, MAX_METADATA_BYTES};
use pgb_core::{
    AuthKey, BackupId, ObjectKey, ObjectMeta, Repository, StorageError, StorageErrorKind,
    StorageExt, WriteOptions,
};
use serde::de::{DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::drill::DrillReport;

const RECORD_VERSION: u32 = 1;

/// A record could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The storage failed.
    #[error("{0}")]
    Storage(#[from] StorageError),
    /// A record is corrupt, altered, too large or of an unknown version.
    #[error("record {key}: {problem}")]
    Invalid {
        /// The record's key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// The envelope as written.
#[derive(Serialize)]
struct Envelope<'a, T> {
    format_version: u32,
    kind: &'a str,
    body: &'a T,
    sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
}

/// The envelope as read: the body is kept as written. Fields a newer pgb may add beside
/// `body` are ignored (they are not sealed; what a record asserts lives in its body).
#[derive(Deserialize)]
struct StoredEnvelope {
    format_version: u32,
    kind: String,
    body: Written,
    sha256: String,
    #[serde(default)]
    mac: Option<String>,
}

/// A JSON value as written: objects keep every field in the order written (serde_json's
/// `Value` would sort them), so serializing it compactly gives the JSON as written without
/// its whitespace. Numbers and strings go through serde_json's own types, as in `Value`.
#[derive(Debug)]
enum Written {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Written>),
    Object(Vec<(String, Written)>),
}

impl Serialize for Written {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => s.serialize_unit(),
            Self::Bool(b) => s.serialize_bool(*b),
            Self::Number(n) => n.serialize(s),
            Self::String(v) => s.serialize_str(v),
            Self::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Self::Object(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Written {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Written;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Written, E> {
                Ok(Written::Null)
            }
            fn visit_none<E>(self) -> Result<Written, E> {
                Ok(Written::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Written, D::Error> {
                Written::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Written, E> {
                Ok(Written::Bool(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Written, E> {
                Ok(Written::Number(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Written, E> {
                Ok(Written::Number(v.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Written, E> {
                serde_json::Number::from_f64(v)
                    .map(Written::Number)
                    .ok_or_else(|| E::custom("a number JSON cannot hold"))
            }
            fn visit_str<E>(self, v: &str) -> Result<Written, E> {
                Ok(Written::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Written, E> {
                Ok(Written::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Written, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element()? {
                    items.push(item);
                }
                Ok(Written::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Written, A::Error> {
                let mut fields = Vec::new();
                while let Some(field) = a.next_entry()? {
                    fields.push(field);
                }
                Ok(Written::Object(fields))
            }
        }
        d.deserialize_any(V)
    }
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

/// Serializes `body` into an envelope (pretty JSON, so people can read the evidence). The seal
/// covers the compact form of the body, which is the compact form of the body as written.
pub(crate) fn seal<T: Serialize>(kind: &str, body: &T, key: Option<&AuthKey>) -> Vec<u8> {
    let sealed = serde_json::to_vec(body).expect("records serialize");
    let env = Envelope {
        format_version: RECORD_VERSION,
        kind,
        body,
        sha256: hex(&Sha256::digest(&sealed)),
        mac: key.map(|k| mac_of(k, kind, &sealed)),
    };
    let mut out = serde_json::to_vec_pretty(&env).expect("records serialize");
    out.push(b'\n');
    out
}

/// Parses and checks an envelope: the checksum and MAC over the body as written, then the
/// body as this version understands it (fields it does not know are ignored, after they were
/// checked). Returns the body and whether it was authenticated.
pub(crate) fn open<T: DeserializeOwned>(
    key_name: &str,
    kind: &str,
    bytes: &[u8],
    auth: Option<&AuthKey>,
) -> Result<(T, bool), RecordError> {
    let bad = |problem: String| RecordError::Invalid {
        key: key_name.to_owned(),
        problem,
    };
    let env: StoredEnvelope =
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
    let sealed = serde_json::to_vec(&env.body).expect("JSON values serialize");
    if hex(&Sha256::digest(&sealed)) != env.sha256 {
        return Err(bad(
            "checksum mismatch: the record was altered or corrupted".to_owned(),
        ));
    }
    let authenticated = match (auth, &env.mac) {
        (Some(k), Some(mac)) => {
            // Both sides are hex of a fixed-size MAC; compare without early exit.
            let want = mac_of(k, kind, &sealed);
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
    let body = serde_json::from_slice(&sealed)
        .map_err(|e| bad(format!("this pgb cannot read the {kind} record: {e}")))?;
    Ok((body, authenticated))
}

/// Reads the record `meta` lists, with bounded memory. `Ok(None)`: it was deleted since the
/// listing. A record over [`MAX_METADATA_BYTES`] is invalid and is not read: by its listed
/// size when the listing shows it, else the read stops at the limit.
pub(crate) async fn read_record(
    repo: &Repository,
    meta: &ObjectMeta,
) -> Result<Option<Bytes>, RecordError> {
    let too_large = |size: String| RecordError::Invalid {
        key: meta.key.as_str().to_owned(),
        problem: format!(
            "record is {size}, over the {} MiB limit for records; not read",
            MAX_METADATA_BYTES >> 20
        ),
    };
    if meta.size > MAX_METADATA_BYTES {
        return Err(too_large(format!("{} bytes", meta.size)));
    }
    match repo
        .storage()
        .get_bytes_limited(&meta.key, MAX_METADATA_BYTES)
        .await
    {
        Ok(Some(b)) => Ok(Some(b)),
        Ok(None) => Err(too_large("larger than listed".to_owned())),
        Err(e) if e.kind() == StorageErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
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
        "{}/{}",
        layout::drill_dir(&report.backup_id),
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
    /// Why the record cannot be used (altered, corrupt, too large, unknown version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Every drill record in the repository, oldest first (by drill start, then key). Records that
/// fail their checksum or authentication, or are over [`MAX_METADATA_BYTES`], are listed with
/// their problem, never trusted.
///
/// # Errors
/// Storage failures while listing or reading.
pub async fn drill_history(
    repo: &Repository,
    auth: Option<&AuthKey>,
) -> Result<Vec<DrillEntry>, RecordError> {
    let mut metas = repo.storage().list(Some(&layout::drills_prefix())).await?;
    metas.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    let mut out = Vec::new();
    for meta in metas {
        if !meta.key.as_str().ends_with(".json") {
            continue;
        }
        let key = meta.key.as_str().to_owned();
        let opened = match read_record(repo, &meta).await {
            Ok(Some(bytes)) => open::<DrillReport>(&key, "drill", &bytes, auth),
            Ok(None) => continue,
            Err(e @ RecordError::Storage(_)) => return Err(e),
            Err(invalid) => Err(invalid),
        };
        match opened {
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

    /// What a newer pgb whose `Body` gained fields writes.
    #[derive(Serialize)]
    struct NewerBody {
        a: u64,
        added: Vec<String>,
        b: String,
        nested: BTreeMap<String, f64>,
    }

    #[test]
    fn fields_this_version_does_not_know_are_sealed_as_written() {
        let key: AuthKey = "11".repeat(32).parse().unwrap();
        let newer = NewerBody {
            a: 7,
            added: vec!["z".into(), "é \"q\"".into()],
            b: "x".into(),
            nested: BTreeMap::from([("r".to_owned(), 0.25)]),
        };
        let bytes = seal("t", &newer, Some(&key));
        let (back, auth) = open::<Body>("k", "t", &bytes, Some(&key)).unwrap();
        assert_eq!(
            back,
            Body {
                a: 7,
                b: "x".into()
            }
        );
        assert!(auth);

        // The unknown fields are covered: changing one is an alteration.
        let text = String::from_utf8(bytes).unwrap();
        let altered = text.replace("0.25", "0.5");
        let err = open::<Body>("k", "t", altered.as_bytes(), None).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");

        // So is a field added to a record after it was sealed.
        let body = Body {
            a: 7,
            b: "x".into(),
        };
        let text = String::from_utf8(seal("t", &body, None)).unwrap();
        let injected = text.replace("\"a\": 7", "\"a\": 7, \"injected\": true");
        let err = open::<Body>("k", "t", injected.as_bytes(), None).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        // Whitespace is not part of the seal.
        let compact = text.replace('\n', "").replace("  ", "");
        assert!(open::<Body>("k", "t", compact.as_bytes(), None).is_ok());
    }

    #[tokio::test]
    async fn a_record_larger_than_listed_is_read_only_up_to_the_limit() {
        let repo = Repository::new(std::sync::Arc::new(pgb_core::MemoryStorage::new()));
        let key = ObjectKey::parse("drills/x/big.json").unwrap();
        let big = vec![b' '; (MAX_METADATA_BYTES + 1) as usize];
        repo.storage()
            .put(&key, big.into(), WriteOptions::default())
            .await
            .unwrap();
        // A stale listing (the object was replaced after it was listed) shows a small size.
        let stale = ObjectMeta::new(key.clone(), 100, None);
        let err = read_record(&repo, &stale).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("larger than listed, over the 16 MiB limit"),
            "{err}"
        );
        let listed = &repo.storage().list(None).await.unwrap()[0];
        let err = read_record(&repo, listed).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("record is 16777217 bytes, over the 16 MiB limit"),
            "{err}"
        );
    }
}
