//! PostgreSQL's own files in a base backup: `backup_label` (where recovery starts) and
//! `backup_manifest` (every file's size and checksum, and the WAL range the backup needs), as
//! `pg_basebackup` writes them.

use std::collections::HashMap;

use pgb_wal::{Lsn, TimelineId};
use sha2::{Digest, Sha256};

/// What `backup_label` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackupLabel {
    /// `START WAL LOCATION`.
    pub(crate) start_lsn: Lsn,
    /// `START TIMELINE`.
    pub(crate) timeline: TimelineId,
    /// `START TIME`, as written (`2026-12-05 03:31:52 UTC`).
    pub(crate) start_time: Option<String>,
}

/// A file PostgreSQL wrote that pgb cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct PgFileError(pub(crate) String);

impl BackupLabel {
    /// Parses `backup_label`.
    pub(crate) fn parse(text: &[u8]) -> Result<Self, PgFileError> {
        let text = String::from_utf8_lossy(text);
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).map(str::trim))
                .map(str::to_owned)
        };
        let start = field("START WAL LOCATION:")
            .ok_or_else(|| PgFileError("backup_label has no START WAL LOCATION".to_owned()))?;
        let start_lsn = start
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                PgFileError(format!(
                    "backup_label: unreadable START WAL LOCATION {start:?}"
                ))
            })?;
        let timeline = match field("START TIMELINE:") {
            Some(t) => t.parse().map_err(|_| {
                PgFileError(format!("backup_label: unreadable START TIMELINE {t:?}"))
            })?,
            None => 1,
        };
        Ok(Self {
            start_lsn,
            timeline,
            start_time: field("START TIME:"),
        })
    }
}

/// One `WAL-Ranges` entry: the WAL of `timeline` from `start` to `end` that a restore of the
/// backup must replay to be consistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalRange {
    pub(crate) timeline: TimelineId,
    pub(crate) start: Lsn,
    pub(crate) end: Lsn,
}

/// A file's entry in `backup_manifest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ManifestFile {
    pub(crate) size: u64,
    /// The checksum algorithm (`SHA256`, `CRC32C`, ... or none).
    pub(crate) algorithm: Option<String>,
    /// Hex.
    pub(crate) checksum: Option<String>,
}

/// `backup_manifest`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackupManifest {
    /// `System-Identifier` (PostgreSQL 17 and later).
    pub(crate) system_identifier: Option<u64>,
    /// Each file by its path (raw bytes: `Encoded-Path` is hex).
    pub(crate) files: HashMap<Vec<u8>, ManifestFile>,
    pub(crate) wal_ranges: Vec<WalRange>,
}

#[derive(serde::Deserialize)]
struct RawManifest {
    #[serde(rename = "PostgreSQL-Backup-Manifest-Version")]
    version: u32,
    #[serde(rename = "System-Identifier", default)]
    system_identifier: Option<u64>,
    #[serde(rename = "Files")]
    files: Vec<RawFile>,
    #[serde(rename = "WAL-Ranges", default)]
    wal_ranges: Vec<RawRange>,
    #[serde(rename = "Manifest-Checksum")]
    checksum: String,
}

#[derive(serde::Deserialize)]
struct RawFile {
    #[serde(rename = "Path", default)]
    path: Option<String>,
    #[serde(rename = "Encoded-Path", default)]
    encoded_path: Option<String>,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "Checksum-Algorithm", default)]
    algorithm: Option<String>,
    #[serde(rename = "Checksum", default)]
    checksum: Option<String>,
}

#[derive(serde::Deserialize)]
struct RawRange {
    #[serde(rename = "Timeline")]
    timeline: TimelineId,
    #[serde(rename = "Start-LSN")]
    start: String,
    #[serde(rename = "End-LSN")]
    end: String,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl BackupManifest {
    /// Parses `backup_manifest` and checks its own checksum (`Manifest-Checksum`: sha256 of
    /// everything up to the line that holds it).
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, PgFileError> {
        let raw: RawManifest = serde_json::from_slice(bytes)
            .map_err(|e| PgFileError(format!("backup_manifest is unreadable: {e}")))?;
        if raw.version == 0 || raw.version > 2 {
            return Err(PgFileError(format!(
                "backup_manifest version {} is not one pgb reads (1 or 2)",
                raw.version
            )));
        }
        let marker = b"\"Manifest-Checksum\"";
        let at = bytes
            .windows(marker.len())
            .rposition(|w| w == marker)
            .ok_or_else(|| PgFileError("backup_manifest has no Manifest-Checksum".to_owned()))?;
        let line_start = bytes[..at]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |n| n + 1);
        let actual = crate::codec::hex(&Sha256::digest(&bytes[..line_start]));
        if !actual.eq_ignore_ascii_case(&raw.checksum) {
            return Err(PgFileError(format!(
                "backup_manifest is damaged: its checksum is {actual}, it says {}",
                raw.checksum
            )));
        }
        let mut files = HashMap::with_capacity(raw.files.len());
        for f in raw.files {
            let path = match (f.path, f.encoded_path) {
                (Some(p), _) => p.into_bytes(),
                (None, Some(e)) => unhex(&e).ok_or_else(|| {
                    PgFileError(format!("backup_manifest: unreadable Encoded-Path {e:?}"))
                })?,
                (None, None) => {
                    return Err(PgFileError(
                        "backup_manifest: a file without a path".to_owned(),
                    ));
                }
            };
            files.insert(
                path,
                ManifestFile {
                    size: f.size,
                    algorithm: f.algorithm,
                    checksum: f.checksum,
                },
            );
        }
        let wal_ranges = raw
            .wal_ranges
            .into_iter()
            .map(|r| {
                let lsn = |s: &str| {
                    s.parse::<Lsn>()
                        .map_err(|e| PgFileError(format!("backup_manifest WAL-Ranges: {e}")))
                };
                Ok(WalRange {
                    timeline: r.timeline,
                    start: lsn(&r.start)?,
                    end: lsn(&r.end)?,
                })
            })
            .collect::<Result<Vec<_>, PgFileError>>()?;
        if wal_ranges.is_empty() {
            return Err(PgFileError("backup_manifest has no WAL-Ranges".to_owned()));
        }
        Ok(Self {
            system_identifier: raw.system_identifier,
            files,
            wal_ranges,
        })
    }

    /// The first WAL position the backup needs.
    pub(crate) fn start(&self) -> WalRange {
        self.wal_ranges[0]
    }

    /// The last: the backup is consistent once replay reached `end`.
    pub(crate) fn stop(&self) -> WalRange {
        *self.wal_ranges.last().expect("parse refuses an empty list")
    }
}

/// A file found in the archive: its size and sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeenFile {
    pub(crate) size: u64,
    pub(crate) sha256: [u8; 32],
}

/// Paths `backup_manifest` does not describe, as `pg_verifybackup` ignores them: the manifest
/// itself and the WAL (`pg_wal/`, checked by its own checksums and by replay).
fn ignored(path: &[u8]) -> bool {
    path == b"backup_manifest" || path == b"pg_wal" || path.starts_with(b"pg_wal/")
}

/// Compares the files of an archive with `backup_manifest`: every file it lists is there with
/// its size and (for SHA256 manifests) checksum, and nothing else is. Returns the files
/// checked, or the first difference.
pub(crate) fn compare(
    manifest: &BackupManifest,
    seen: &HashMap<Vec<u8>, SeenFile>,
) -> Result<u64, PgFileError> {
    let shown = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
    let mut checked = 0u64;
    let mut listed: Vec<(&Vec<u8>, &ManifestFile)> = manifest.files.iter().collect();
    listed.sort_by(|a, b| a.0.cmp(b.0));
    for (path, want) in listed {
        let Some(got) = seen.get(path) else {
            if ignored(path) {
                continue;
            }
            return Err(PgFileError(format!(
                "{} is listed in backup_manifest but missing from the archive",
                shown(path)
            )));
        };
        if got.size != want.size {
            return Err(PgFileError(format!(
                "{} is {} bytes, backup_manifest says {}",
                shown(path),
                got.size,
                want.size
            )));
        }
        if let (Some(alg), Some(sum)) = (&want.algorithm, &want.checksum)
            && alg.eq_ignore_ascii_case("SHA256")
        {
            let actual = crate::codec::hex(&got.sha256);
            if !actual.eq_ignore_ascii_case(sum) {
                return Err(PgFileError(format!(
                    "{} has sha256 {actual}, backup_manifest says {sum}",
                    shown(path)
                )));
            }
        }
        checked += 1;
    }
    let mut extra: Vec<&Vec<u8>> = seen
        .keys()
        .filter(|p| !manifest.files.contains_key(*p) && !ignored(p))
        .collect();
    extra.sort();
    if let Some(p) = extra.first() {
        return Err(PgFileError(format!(
            "{} is in the archive but not in backup_manifest",
            shown(p)
        )));
    }
    Ok(checked)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A manifest as PostgreSQL writes it, with its checksum.
    pub(crate) fn manifest_text(files: &[(&str, &[u8])], sysid: Option<u64>) -> Vec<u8> {
        use std::fmt::Write as _;
        let mut s = String::from("{ \"PostgreSQL-Backup-Manifest-Version\": ");
        match sysid {
            Some(id) => {
                let _ = writeln!(s, "2,\n\"System-Identifier\": {id},");
            }
            None => s.push_str("1,\n"),
        }
        s.push_str("\"Files\": [\n");
        let lines: Vec<String> = files
            .iter()
            .map(|(p, d)| {
                format!(
                    "{{ \"Path\": \"{p}\", \"Size\": {}, \"Last-Modified\": \"2026-12-05 03:31:52 GMT\", \"Checksum-Algorithm\": \"SHA256\", \"Checksum\": \"{}\" }}",
                    d.len(),
                    crate::codec::hex(&Sha256::digest(d))
                )
            })
            .collect();
        s.push_str(&lines.join(",\n"));
        s.push_str("\n],\n\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/2000028\", \"End-LSN\": \"0/2000120\" }\n],\n");
        let sum = crate::codec::hex(&Sha256::digest(s.as_bytes()));
        let _ = writeln!(s, "\"Manifest-Checksum\": \"{sum}\"}}");
        s.into_bytes()
    }

    #[test]
    fn parses_a_label() {
        let l = BackupLabel::parse(
            b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000080\nBACKUP METHOD: streamed\nSTART TIME: 2026-12-05 03:31:52 UTC\nSTART TIMELINE: 3\n",
        )
        .unwrap();
        assert_eq!(l.start_lsn, "0/2000028".parse().unwrap());
        assert_eq!(l.timeline, 3);
        assert_eq!(l.start_time.as_deref(), Some("2026-12-05 03:31:52 UTC"));
        assert!(BackupLabel::parse(b"nothing").is_err());
    }

    #[test]
    fn parses_a_manifest_and_compares_files() {
        let text = manifest_text(
            &[("PG_VERSION", b"17\n"), ("global/pg_control", &[1u8; 64])],
            Some(77),
        );
        let m = BackupManifest::parse(&text).unwrap();
        assert_eq!(m.system_identifier, Some(77));
        assert_eq!(m.stop().end, "0/2000120".parse().unwrap());
        let seen = |files: &[(&str, &[u8])]| {
            files
                .iter()
                .map(|(p, d)| {
                    (
                        p.as_bytes().to_vec(),
                        SeenFile {
                            size: d.len() as u64,
                            sha256: Sha256::digest(d).into(),
                        },
                    )
                })
                .collect::<HashMap<_, _>>()
        };
        let ok = seen(&[
            ("PG_VERSION", b"17\n"),
            ("global/pg_control", &[1u8; 64]),
            ("pg_wal/000000010000000000000002", b"wal"),
            ("backup_manifest", b"x"),
        ]);
        assert_eq!(compare(&m, &ok).unwrap(), 2);
        let changed = seen(&[("PG_VERSION", b"16\n"), ("global/pg_control", &[1u8; 64])]);
        assert!(
            compare(&m, &changed)
                .unwrap_err()
                .0
                .contains("PG_VERSION has sha256")
        );
        let missing = seen(&[("PG_VERSION", b"17\n")]);
        assert!(compare(&m, &missing).unwrap_err().0.contains("missing"));
        let extra = seen(&[
            ("PG_VERSION", b"17\n"),
            ("global/pg_control", &[1u8; 64]),
            ("x", b""),
        ]);
        assert!(
            compare(&m, &extra)
                .unwrap_err()
                .0
                .contains("not in backup_manifest")
        );
        let mut damaged = text.clone();
        let i = damaged.iter().position(|b| *b == b'7').unwrap();
        damaged[i] = b'8';
        assert!(
            BackupManifest::parse(&damaged)
                .unwrap_err()
                .0
                .contains("damaged")
        );
    }
}
