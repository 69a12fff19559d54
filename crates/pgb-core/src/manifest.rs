//! Backup ids, the manifest (the commit marker) and the repository key layout.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::codec::Compression;
use crate::dump::ArchiveFormat;
use crate::key::ObjectKey;

/// The manifest format this version writes, and the newest it reads. Version 3 lists the
/// backup's objects as artifacts and authenticates the JSON as written; versions 1
/// (unencrypted) and 2 (encrypted) described one data object at the top level.
pub const MANIFEST_FORMAT_VERSION: u32 = 3;

/// The `database` of a cluster backup's manifest (and the last part of its set).
pub const CLUSTER_DATABASE: &str = "*";

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

/// One stored object of a backup: a dump, the globals, a files archive, or one file of a
/// directory-format dump. Every artifact of a backup commits or fails with its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Artifact {
    /// Its name within the backup (`data` for a single-database dump).
    pub name: String,
    /// What it holds.
    pub kind: ArtifactKind,
    /// Its key, relative to the repository root.
    pub key: String,
    /// Compression of the stored bytes.
    pub compression: Compression,
    /// Whether the stored bytes are age-encrypted (after compression).
    pub encrypted: bool,
    /// Size of the stored object.
    pub stored_size: u64,
    /// sha256 of the stored object (hex).
    pub stored_sha256: String,
    /// Size of the plaintext (uncompressed, decrypted) content.
    pub plain_size: u64,
    /// sha256 of the plaintext (hex).
    pub plain_sha256: String,
}

impl Artifact {
    /// The artifact's key.
    ///
    /// # Errors
    /// If the manifest holds an invalid key (a corrupt or hostile manifest).
    pub fn key(&self) -> Result<ObjectKey, crate::key::InvalidKey> {
        ObjectKey::parse(&self.key)
    }
}

/// What an [`Artifact`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ArtifactKind {
    /// A pg_dump archive (custom or plain format, per the manifest's `format`). In a cluster
    /// backup its name is the database's.
    Dump,
    /// `pg_dumpall --globals-only`: roles, memberships, role settings and tablespaces, as SQL.
    Globals,
    /// One file of a directory-format dump (`toc.dat` or a table's data), named as pg_dump
    /// named it.
    DirectoryFile,
    /// A tar archive of a directory beside the database (`backup --files DIR`), named after
    /// the directory as given.
    Files,
    /// A physical base backup of a whole cluster: PostgreSQL's tar of the data directory
    /// (`pg_basebackup -Ft`) with `backup_label` and `backup_manifest` inside, named `base`.
    BaseTar,
}

/// What a backup of a whole server (`backup --all-databases`) covered.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClusterInfo {
    /// The databases dumped, one [`ArtifactKind::Dump`] artifact each, sorted by name.
    pub databases: Vec<String>,
    /// Every connectable non-template database on the server when the backup started (the
    /// selection is `databases`): a later backup tells a database that is gone from one that
    /// was excluded.
    pub server_databases: Vec<String>,
    /// The include globs of the selection (empty: every database).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// The exclude globs of the selection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Whether the globals hold role passwords (hashes); such backups are always encrypted.
    pub role_passwords: bool,
    /// Each dumped database's owner (a whole-server restore with `keep_owner` gives it back).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub owners: std::collections::BTreeMap<String, String>,
}

impl ClusterInfo {
    /// Describes a cluster backup's selection.
    pub fn new(databases: Vec<String>, server_databases: Vec<String>) -> Self {
        Self {
            databases,
            server_databases,
            ..Self::default()
        }
    }

    /// Records the include and exclude globs.
    pub fn with_selection(mut self, include: Vec<String>, exclude: Vec<String>) -> Self {
        self.include = include;
        self.exclude = exclude;
        self
    }

    /// Records whether role passwords are included.
    pub fn with_role_passwords(mut self, yes: bool) -> Self {
        self.role_passwords = yes;
        self
    }

    /// Records the databases' owners.
    pub fn with_owners(mut self, owners: std::collections::BTreeMap<String, String>) -> Self {
        self.owners = owners;
        self
    }
}

/// The name of a retention set (see [`Manifest::retention_set`]): `set` alone for a full
/// backup, else `set` followed by the selection, e.g. `db:5432/* include=shop*` or
/// `db:5432/shop --schema=app`. A job computes its own set with this before any backup exists.
pub fn retention_set(
    set: &str,
    include: &[String],
    exclude: &[String],
    dump_options: &[String],
) -> String {
    let mut name = set.to_owned();
    if !include.is_empty() {
        name.push_str(" include=");
        name.push_str(&include.join(","));
    }
    if !exclude.is_empty() {
        name.push_str(" exclude=");
        name.push_str(&exclude.join(","));
    }
    for o in dump_options {
        name.push(' ');
        name.push_str(o);
    }
    name
}

/// The manifest: written last, create-only; a backup exists only once it is there.
///
/// Compatibility: readers refuse a `format_version` newer than [`MANIFEST_FORMAT_VERSION`];
/// unknown fields are kept and authenticated, so additive, optional fields need no version
/// bump: the MAC of a version-3 manifest covers the JSON exactly as written (every field,
/// known or not, minus `mac`), not a re-serialisation of what this version understood.
/// Versions 1 and 2 (one data object described at the top level) are still read.
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
    /// Archive format of the dump.
    pub format: ArchiveFormat,
    /// Compression of the stored bytes.
    pub compression: Compression,
    /// When pg_dump started (UTC): the data is as of this moment (the snapshot).
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When the last artifact was finished (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// Labels given at backup time (kept on request by retention).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Client-side encryption, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crate::crypto::EncryptionInfo>,
    /// The stored objects, each with its sizes and digests.
    pub artifacts: Vec<Artifact>,
    /// Each table's estimated row count when the backup started, so that a restore drill can
    /// tell a table that held rows from one that was empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub table_estimates: Vec<crate::dump::TableEstimate>,
    /// pg_dump's selection and pass-through options (`--schema=app`,
    /// `--exclude-table-data=audit`); empty: the whole database.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dump_options: Vec<String>,
    /// For a backup of a whole server: the databases it covers (then `database` is `*` and
    /// the artifacts are the globals and one dump per database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    /// Each database's migration heads when the backup started (read moments before its
    /// pg_dump began), by database name: one entry for a single database, one per database of
    /// a whole server that had any. Empty: none found (or a pgb that did not record them).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub migrations: std::collections::BTreeMap<String, Vec<crate::migration::MigrationHead>>,
    /// For a physical base backup (`format` is `physical`, one `base_tar` artifact): the
    /// cluster, its WAL positions and where its WAL lives. Its set is the system identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical: Option<crate::physical::PhysicalInfo>,
    /// The source server's system identifier (`pg_control_system()`), in decimal, when the
    /// backup read it (logical backups since this field exists; a physical backup's is in
    /// [`Manifest::physical`] too): see [`Manifest::system_identifier`].
    #[serde(
        default,
        rename = "system_identifier",
        skip_serializing_if = "Option::is_none",
        with = "sysid_opt"
    )]
    pub source_system_identifier: Option<u64>,
    /// HMAC-SHA256 (hex) of the manifest without this field, when authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The bytes the MAC covers, fixed when the manifest was written or read.
    #[serde(skip)]
    authenticated: Vec<u8>,
}

/// Manifest versions 1 and 2: one data object described at the top level. Field order is
/// that of the pgb that wrote them: their MAC covers this struct re-serialised.
#[derive(Serialize, Deserialize)]
struct ManifestV2 {
    format_version: u32,
    id: BackupId,
    pgb_version: String,
    set: String,
    database: String,
    server: String,
    server_version: String,
    pg_dump_version: String,
    pg_dump_major: u32,
    format: ArchiveFormat,
    compression: Compression,
    data_key: String,
    stored_size: u64,
    stored_sha256: String,
    plain_size: u64,
    plain_sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    finished_at: OffsetDateTime,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encryption: Option<crate::crypto::EncryptionInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
}

impl ManifestV2 {
    fn into_manifest(mut self) -> Manifest {
        let mac = self.mac.take();
        let authenticated = serde_json::to_vec(&self).expect("manifest serializes");
        Manifest {
            format_version: self.format_version,
            artifacts: vec![Artifact {
                name: "data".to_owned(),
                kind: ArtifactKind::Dump,
                key: self.data_key,
                compression: self.compression,
                encrypted: self.encryption.is_some(),
                stored_size: self.stored_size,
                stored_sha256: self.stored_sha256,
                plain_size: self.plain_size,
                plain_sha256: self.plain_sha256,
            }],
            id: self.id,
            pgb_version: self.pgb_version,
            set: self.set,
            database: self.database,
            server: self.server,
            server_version: self.server_version,
            pg_dump_version: self.pg_dump_version,
            pg_dump_major: self.pg_dump_major,
            format: self.format,
            compression: self.compression,
            started_at: self.started_at,
            finished_at: self.finished_at,
            labels: self.labels,
            encryption: self.encryption,
            table_estimates: Vec::new(),
            dump_options: Vec::new(),
            cluster: None,
            migrations: std::collections::BTreeMap::new(),
            physical: None,
            source_system_identifier: None,
            mac,
            authenticated,
        }
    }
}

/// The canonical bytes of a JSON object without its `mac`: every other field, as parsed.
fn canonical_without_mac(mut value: serde_json::Value) -> Vec<u8> {
    if let Some(obj) = value.as_object_mut() {
        obj.remove("mac");
    }
    serde_json::to_vec(&value).expect("JSON values serialize")
}

/// An optional system identifier as decimal text (JSON numbers lose precision past 2^53).
mod sysid_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)]
    pub(super) fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| t.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A manifest that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestProblem {
    /// Not JSON, or not a pgb manifest.
    #[error("not a pgb manifest: {0}")]
    NotAManifest(String),
    /// Written by a newer pgb with an incompatible format.
    #[error(
        "unknown manifest format version {found} (this pgb reads up to {supported}); upgrade pgb"
    )]
    UnknownVersion {
        /// The manifest's version.
        found: u32,
        /// The newest this pgb reads.
        supported: u32,
    },
    /// A field is missing or malformed.
    #[error("invalid manifest: {0}")]
    Invalid(String),
}

impl Manifest {
    /// A new (version 3) manifest for a backup; [`Manifest::seal`] fixes its authenticated bytes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_v3(
        id: BackupId,
        source: &crate::dump::DumpSource,
        compression: Compression,
        started_at: OffsetDateTime,
        finished_at: OffsetDateTime,
        labels: Vec<String>,
        encryption: Option<crate::crypto::EncryptionInfo>,
        artifacts: Vec<Artifact>,
    ) -> Self {
        Self {
            format_version: MANIFEST_FORMAT_VERSION,
            id,
            pgb_version: env!("CARGO_PKG_VERSION").to_owned(),
            set: format!("{}/{}", source.server, source.database),
            database: source.database.clone(),
            server: source.server.clone(),
            server_version: source.server_version.clone(),
            pg_dump_version: source.tool_version.clone(),
            pg_dump_major: source.tool_major,
            format: source.format,
            compression,
            started_at,
            finished_at,
            labels,
            encryption,
            artifacts,
            table_estimates: source.table_estimates.clone(),
            dump_options: source.options.clone(),
            cluster: None,
            migrations: if source.migrations.is_empty() {
                std::collections::BTreeMap::new()
            } else {
                [(source.database.clone(), source.migrations.clone())].into()
            },
            physical: None,
            source_system_identifier: source.system_identifier,
            mac: None,
            authenticated: Vec::new(),
        }
    }

    /// A new (version 3) manifest for a physical base backup: format `physical`, set the
    /// system identifier (the cluster, whatever address reached it), database `*`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_physical(
        id: BackupId,
        source: &crate::dump::DumpSource,
        physical: crate::physical::PhysicalInfo,
        compression: Compression,
        started_at: OffsetDateTime,
        finished_at: OffsetDateTime,
        labels: Vec<String>,
        encryption: Option<crate::crypto::EncryptionInfo>,
        artifacts: Vec<Artifact>,
    ) -> Self {
        let mut m = Self::new_v3(
            id,
            source,
            compression,
            started_at,
            finished_at,
            labels,
            encryption,
            artifacts,
        );
        m.database = CLUSTER_DATABASE.to_owned();
        m.set = physical.system_identifier.to_string();
        m.format = crate::dump::ArchiveFormat::Physical;
        m.table_estimates = Vec::new();
        m.migrations = std::collections::BTreeMap::new();
        m.source_system_identifier = Some(physical.system_identifier);
        m.physical = Some(physical);
        m
    }

    /// A new (version 3) manifest for a backup of a whole server: set `<server>/*`, database
    /// `*`, no table estimates.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_cluster(
        id: BackupId,
        source: &crate::dump::DumpSource,
        cluster: ClusterInfo,
        compression: Compression,
        started_at: OffsetDateTime,
        finished_at: OffsetDateTime,
        labels: Vec<String>,
        encryption: Option<crate::crypto::EncryptionInfo>,
        artifacts: Vec<Artifact>,
    ) -> Self {
        let mut m = Self::new_v3(
            id,
            source,
            compression,
            started_at,
            finished_at,
            labels,
            encryption,
            artifacts,
        );
        m.database = CLUSTER_DATABASE.to_owned();
        m.set = format!("{}/{CLUSTER_DATABASE}", source.server);
        m.format = crate::dump::ArchiveFormat::Custom;
        m.table_estimates = Vec::new();
        m.cluster = Some(cluster);
        m
    }

    /// The retention set this backup belongs to: its [`Manifest::set`] plus, when the backup
    /// was made with a selection, that selection (a whole server's `include`/`exclude`, a
    /// database's pg_dump options). A backup of part of a server or database is a different
    /// set from a full one, so pruning one never removes the other.
    pub fn retention_set(&self) -> String {
        let (include, exclude) = self
            .cluster
            .as_ref()
            .map_or((&[][..], &[][..]), |c| (&c.include[..], &c.exclude[..]));
        retention_set(&self.set, include, exclude, &self.dump_options)
    }

    /// Whether this is a backup of a whole server (`backup --all-databases`).
    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// The system identifier of the server this backup came from: a physical backup's
    /// cluster, or what a logical backup recorded (`None` for backups written before pgb
    /// recorded it, or where the role could not read `pg_control_system()`).
    pub fn system_identifier(&self) -> Option<u64> {
        self.physical
            .as_ref()
            .map(|p| p.system_identifier)
            .or(self.source_system_identifier)
    }

    /// Whether this is a physical base backup (`backup --physical`).
    pub fn is_physical(&self) -> bool {
        self.physical.is_some()
    }

    /// The dump of `database` in a cluster backup.
    pub fn dump_of(&self, database: &str) -> Option<&Artifact> {
        self.cluster.as_ref()?;
        self.artifacts
            .iter()
            .find(|a| a.kind == ArtifactKind::Dump && a.name == database)
    }

    /// The migration heads recorded for `database` (empty when none were).
    pub fn migrations_of(&self, database: &str) -> &[crate::migration::MigrationHead] {
        self.migrations.get(database).map_or(&[], Vec::as_slice)
    }

    /// The globals of a cluster backup.
    pub fn globals(&self) -> Option<&Artifact> {
        self.artifacts
            .iter()
            .find(|a| a.kind == ArtifactKind::Globals)
    }

    /// Fixes the bytes the MAC covers, signs them with `mac_key` when given, and returns the
    /// JSON to store.
    pub(crate) fn seal(&mut self, mac_key: Option<&[u8; 32]>) -> Vec<u8> {
        self.mac = None;
        let value = serde_json::to_value(&*self).expect("manifest serializes");
        self.authenticated = canonical_without_mac(value);
        self.mac = mac_key.map(|k| crate::crypto::mac_hex(k, &self.authenticated));
        serde_json::to_vec_pretty(&*self).expect("manifest serializes")
    }

    /// The bytes the MAC covers.
    pub(crate) fn mac_input(&self) -> &[u8] {
        &self.authenticated
    }

    /// The dump artifact of a single-database backup (the first dump).
    pub fn dump(&self) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.kind == ArtifactKind::Dump)
    }

    /// Total size of the stored objects.
    pub fn stored_size(&self) -> u64 {
        self.artifacts.iter().map(|a| a.stored_size).sum()
    }

    /// Total size of the plaintext content.
    pub fn plain_size(&self) -> u64 {
        self.artifacts.iter().map(|a| a.plain_size).sum()
    }

    /// Parses and version-checks a manifest.
    ///
    /// # Errors
    /// Why the manifest cannot be used.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestProblem> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| ManifestProblem::NotAManifest(e.to_string()))?;
        let version = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| ManifestProblem::NotAManifest("no format_version".to_owned()))?;
        let version = u32::try_from(version).unwrap_or(u32::MAX);
        if version > MANIFEST_FORMAT_VERSION || version == 0 {
            return Err(ManifestProblem::UnknownVersion {
                found: version,
                supported: MANIFEST_FORMAT_VERSION,
            });
        }
        let invalid = |e: serde_json::Error| ManifestProblem::Invalid(e.to_string());
        if version < 3 {
            let legacy: ManifestV2 = serde_json::from_value(value).map_err(invalid)?;
            return Ok(legacy.into_manifest());
        }
        let mut m: Self = serde_json::from_value(value.clone()).map_err(invalid)?;
        if m.artifacts.is_empty() {
            return Err(ManifestProblem::Invalid("no artifacts".to_owned()));
        }
        m.authenticated = canonical_without_mac(value);
        Ok(m)
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
    fn the_system_identifier_is_optional_text() {
        let source = crate::dump::DumpSource::new(
            "app",
            "db:5432",
            "17.2",
            "pg_dump (PostgreSQL) 17.2",
            17,
            ArchiveFormat::Custom,
        );
        let at = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        let artifact = Artifact {
            name: "data".to_owned(),
            kind: ArtifactKind::Dump,
            key: "backups/x/data.dump.zst".to_owned(),
            compression: Compression::None,
            encrypted: false,
            stored_size: 1,
            stored_sha256: String::new(),
            plain_size: 1,
            plain_sha256: String::new(),
        };
        let mut m = Manifest::new_v3(
            BackupId::generate(at),
            &source,
            Compression::None,
            at,
            at,
            Vec::new(),
            None,
            vec![artifact],
        );
        assert_eq!(m.system_identifier(), None);
        let old = m.seal(None);
        assert!(!String::from_utf8_lossy(&old).contains("system_identifier"));
        assert_eq!(Manifest::from_json(&old).unwrap().system_identifier(), None);
        m.source_system_identifier = Some(7_715_676_619_206_705_732);
        let json = m.seal(None);
        let text = String::from_utf8_lossy(&json);
        assert!(
            text.contains(r#""system_identifier": "7715676619206705732""#),
            "{text}"
        );
        let back = Manifest::from_json(&json).unwrap();
        assert_eq!(back.system_identifier(), Some(7_715_676_619_206_705_732));
    }

    #[test]
    fn unknown_manifest_versions_are_refused() {
        let err = Manifest::from_json(br#"{"format_version": 99}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown manifest format version 99"),
            "{err}"
        );
        assert!(
            Manifest::from_json(b"{")
                .unwrap_err()
                .to_string()
                .contains("not a pgb manifest")
        );
    }
}
