//! Where everything lives in a repository: the one place that knows the key layout
//! (see docs/storage-layout.md).
//!
//! ```text
//! backups/<id>/manifest.json        the commit marker, written last and create-only
//! backups/<id>/<artifact>           data objects (e.g. data.dump.zst, data.dump.zst.age;
//!                                   for a whole server globals.sql.zst, db-001-shop.dump.zst;
//!                                   for a physical backup base.tar.zst)
//! backups/<id>/<artifact>.sha256    `sha256sum -c` sidecars
//! backups/<id>/verified/<utc time>.json  records of passed verifies (pgb-ops)
//! locks/<id>.json                   leases of running backups (gc never collects them)
//! locks/jobs/<job>.json             job locks (one run per job across hosts)
//! drills/<id>/<utc time>.json       restore-drill records
//! wal/<system id>/<TLI>/<WAL file>  archived WAL: segments, .partial, .backup and .history
//!                                   files under their own names (header line + body)
//! .pgb-probe-<random>               the write probe of a preflight
//! ```

use crate::codec::Compression;
use crate::dump::ArchiveFormat;
use crate::key::ObjectKey;
use crate::manifest::BackupId;

/// All backups live under this prefix, one folder per id.
pub const BACKUPS: &str = "backups";
/// The manifest's file name inside a backup folder.
pub const MANIFEST: &str = "manifest.json";
/// Leases and locks.
pub const LOCKS: &str = "locks";
/// Job locks, under [`LOCKS`].
pub const JOB_LOCKS: &str = "jobs";
/// Restore-drill records.
pub const DRILLS: &str = "drills";
/// The suffix of a `sha256sum -c` sidecar.
pub const SIDECAR_SUFFIX: &str = ".sha256";
/// The suffix of an age-encrypted object.
pub const AGE_SUFFIX: &str = ".age";
/// The WAL archive, one folder per cluster (system identifier), one per timeline inside.
pub const WAL: &str = "wal";
/// The prefix of write-probe objects.
pub const PROBE_PREFIX: &str = ".pgb-probe-";

/// The largest manifest or evidence record pgb reads (16 MiB): a bigger one is unusable with
/// that reason, so a hostile or broken object cannot make `list`, `check` or `prune` take
/// memory in proportion to its size. A manifest of 10,000 artifacts is about 5 MiB.
pub const MAX_METADATA_BYTES: u64 = 16 << 20;

fn key(s: &str) -> ObjectKey {
    ObjectKey::parse(s).expect("layout keys are valid")
}

/// `backups/`.
pub fn backups_prefix() -> ObjectKey {
    key(BACKUPS)
}

/// `backups/<id>`.
pub fn backup_dir(id: &BackupId) -> ObjectKey {
    backups_prefix()
        .join(id.as_str())
        .expect("ids are valid segments")
}

/// `backups/<id>/manifest.json`.
pub fn manifest_key(id: &BackupId) -> ObjectKey {
    backup_dir(id).join(MANIFEST).expect("static key")
}

/// The file name of a single-database dump artifact, e.g. `data.dump.zst` or, encrypted,
/// `data.dump.zst.age` (so a person restoring by hand sees that `age -d` comes first).
pub fn data_name(format: ArchiveFormat, compression: Compression, encrypted: bool) -> String {
    format!(
        "data.{}{}{}",
        format.extension(),
        compression.extension(),
        if encrypted { AGE_SUFFIX } else { "" }
    )
}

/// The file name of the globals artifact of a cluster backup, e.g. `globals.sql.zst.age`.
pub fn globals_name(compression: Compression, encrypted: bool) -> String {
    format!(
        "globals.sql{}{}",
        compression.extension(),
        if encrypted { AGE_SUFFIX } else { "" }
    )
}

/// The file name of database number `index` (from 1) of a cluster backup, e.g.
/// `db-001-shop.dump.zst`: the name is kept readable where it is plain ASCII (other characters
/// become `_`); the number keeps names that differ only there apart. The manifest maps each
/// file to its database.
pub fn database_name(
    index: usize,
    database: &str,
    compression: Compression,
    encrypted: bool,
) -> String {
    let readable: String = database
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "db-{index:03}-{readable}.{}{}{}",
        ArchiveFormat::Custom.extension(),
        compression.extension(),
        if encrypted { AGE_SUFFIX } else { "" }
    )
}

/// The path of file `file` of a directory-format dump within its backup folder, e.g.
/// `data.dir/toc.dat.zst`.
pub fn directory_file_name(file: &str, compression: Compression, encrypted: bool) -> String {
    format!(
        "data.dir/{file}{}{}",
        compression.extension(),
        if encrypted { AGE_SUFFIX } else { "" }
    )
}

/// The file name of a physical base backup's tar, e.g. `base.tar.zst` or `base.tar.zst.age`.
pub fn base_name(compression: Compression, encrypted: bool) -> String {
    format!(
        "{BASE_TAR}{}{}",
        compression.extension(),
        if encrypted { AGE_SUFFIX } else { "" }
    )
}

/// The name of a physical base backup's tar before compression.
pub const BASE_TAR: &str = "base.tar";

/// Whether `name` is one [`base_name`] gives (or its sidecar): `base.tar`, then `.gz` or
/// `.zst`, then `.age`, then `.sha256`, each optional.
fn is_base_name(name: &str) -> bool {
    let Some(mut rest) = name.strip_prefix(BASE_TAR) else {
        return false;
    };
    for suffix in [&[".gz", ".zst"][..], &[AGE_SUFFIX], &[SIDECAR_SUFFIX]] {
        if let Some(s) = suffix.iter().find(|s| rest.starts_with(**s)) {
            rest = &rest[s.len()..];
        }
    }
    rest.is_empty()
}

/// The file name of files archive number `index` (from 1), e.g. `files-1.tar.zst`.
pub fn files_name(index: usize, compression: Compression, encrypted: bool) -> String {
    format!(
        "files-{index}.tar{}{}",
        compression.extension(),
        if encrypted { AGE_SUFFIX } else { "" }
    )
}

/// `<key>.sha256`, the sidecar of an object.
pub fn sidecar_key(object: &ObjectKey) -> ObjectKey {
    key(&format!("{object}{SIDECAR_SUFFIX}"))
}

/// Whether a key is a sidecar.
pub fn is_sidecar(object: &ObjectKey) -> bool {
    object.file_name().ends_with(SIDECAR_SUFFIX)
}

/// Whether `rel`, a path inside a backup folder, is a name pgb writes there: the manifest,
/// `data.*`, `data.dir/<file>`, `globals.sql*`, `db-NNN-*`, `files-N.tar*`, `base.tar*`, their `.sha256`
/// sidecars, and `verified/<time>.json` records. `gc` deletes a folder only if every object
/// in it passes this test (a repository is untrusted input; others may write there).
pub fn is_backup_object(rel: &str) -> bool {
    let mut parts = rel.split('/');
    let (Some(first), second, third) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let plain_name = |n: &str| !n.is_empty() && !n.starts_with('.') && !n.contains('\\');
    match (first, second, third) {
        ("data.dir", Some(file), None) => plain_name(file),
        ("verified", Some(record), None) => plain_name(record) && record.ends_with(".json"),
        (name, None, None) => {
            name == MANIFEST
                || name.starts_with("data.")
                || name.starts_with("globals.sql")
                || is_base_name(name)
                || name.strip_prefix("db-").is_some_and(|r| {
                    r.len() > 4
                        && r.as_bytes()[..3].iter().all(u8::is_ascii_digit)
                        && r.as_bytes()[3] == b'-'
                })
                || name.strip_prefix("files-").is_some_and(|r| {
                    r.split_once(".tar").is_some_and(|(n, _)| {
                        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
                    })
                })
        }
        _ => false,
    }
}

/// `locks/`.
pub fn locks_prefix() -> ObjectKey {
    key(LOCKS)
}

/// `locks/<id>.json`, the lease of a running backup.
pub fn lease_key(id: &str) -> ObjectKey {
    locks_prefix()
        .join(&format!("{id}.json"))
        .expect("ids are valid segments")
}

/// `locks/jobs/`.
pub fn job_locks_prefix() -> ObjectKey {
    locks_prefix().join(JOB_LOCKS).expect("static key")
}

/// `locks/jobs/<job>.json`.
///
/// # Errors
/// If the job name is not a valid key segment.
pub fn job_lock_key(job: &str) -> Result<ObjectKey, crate::key::InvalidKey> {
    job_locks_prefix().join(&format!("{job}.json"))
}

/// `drills/`.
pub fn drills_prefix() -> ObjectKey {
    key(DRILLS)
}

/// `drills/<id>`.
pub fn drill_dir(id: &BackupId) -> ObjectKey {
    drills_prefix()
        .join(id.as_str())
        .expect("ids are valid segments")
}

/// `.pgb-probe-<suffix>`.
pub fn probe_key(suffix: &str) -> ObjectKey {
    key(&format!("{PROBE_PREFIX}{suffix}"))
}

/// The folder of a backup's verification records, inside the backup's folder.
pub const VERIFIED: &str = "verified";

/// `backups/<id>/verified`: the records of passed verifies of a backup
/// (`verified/<utc time>.json`, written by pgb-ops), deleted with the backup.
pub fn verified_prefix(id: &BackupId) -> ObjectKey {
    backup_dir(id).join(VERIFIED).expect("static key")
}

/// `wal/`.
pub fn wal_root() -> ObjectKey {
    key(WAL)
}

/// `wal/<system id>`: the archive of one cluster (its system identifier, in decimal as
/// `pg_controldata` prints it).
pub fn wal_prefix(system_identifier: u64) -> ObjectKey {
    wal_root()
        .join(&system_identifier.to_string())
        .expect("digits are a valid segment")
}

/// `wal/<system id>/<TLI>`: one timeline's segments, partial segments and backup history
/// files, and its timeline history file.
pub fn wal_timeline_prefix(system_identifier: u64, timeline: pgb_wal::TimelineId) -> ObjectKey {
    wal_prefix(system_identifier)
        .join(&format!("{timeline:08X}"))
        .expect("hex digits are a valid segment")
}

/// `wal/<system id>/<TLI>/<name>`: where an archived WAL file lives, under the name
/// PostgreSQL gave it, so that fetching it is one GET with no listing.
pub fn wal_key(system_identifier: u64, file: &pgb_wal::WalFileName) -> ObjectKey {
    wal_timeline_prefix(system_identifier, file.timeline())
        .join(file.as_str())
        .expect("WAL file names are valid segments")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_tars_are_backup_objects_and_nothing_like_them_is() {
        for c in ["none", "gzip", "zstd"] {
            let c: Compression = c.parse().unwrap();
            for enc in [false, true] {
                let name = base_name(c, enc);
                assert!(is_backup_object(&name), "{name}");
                assert!(
                    is_backup_object(&format!("{name}{SIDECAR_SUFFIX}")),
                    "{name}"
                );
            }
        }
        assert_eq!(base_name("zstd".parse().unwrap(), true), "base.tar.zst.age");
        for other in [
            "base.tar.zst.age.sha256.x",
            "base.tar.lz4",
            "base.tarball",
            "base.tar.age.zst",
            "base",
            "base.tar/x",
            "pg_wal.tar",
        ] {
            assert!(!is_backup_object(other), "{other}");
        }
    }
}
