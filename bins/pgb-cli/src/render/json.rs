//! JSON output: one pretty-printed document per command.

use std::io::{self, Write};

use pgb::{ArchiveFormat, Manifest};
use serde::Serialize;
use time::OffsetDateTime;

pub(super) fn write<T: Serialize + ?Sized>(w: &mut dyn Write, value: &T) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, value).map_err(io::Error::from)?;
    writeln!(w)
}

/// One row of `pgb list --json`.
#[derive(Serialize)]
pub(crate) struct ListEntry<'a> {
    id: &'a str,
    database: &'a str,
    set: &'a str,
    server: &'a str,
    /// The source server's system identifier (text), `null` where the backup did not record
    /// it: `pgb list` groups backups by it.
    system_identifier: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    finished_at: OffsetDateTime,
    stored_size: u64,
    plain_size: u64,
    sha256: &'a str,
    plain_sha256: &'a str,
    artifacts: &'a [pgb::Artifact],
    /// pg_dump's selection and pass-through options.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    dump_options: &'a [String],
    /// For a whole-server backup: its databases and selection.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<&'a pgb::ClusterInfo>,
    /// Each database's migration heads when the backup started.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    migrations: &'a std::collections::BTreeMap<String, Vec<pgb::MigrationHead>>,
    /// For a physical base backup: its cluster, WAL positions and where its WAL lives.
    #[serde(skip_serializing_if = "Option::is_none")]
    physical: Option<&'a pgb::physical::PhysicalInfo>,
    format: ArchiveFormat,
    compression: String,
    labels: &'a [String],
    server_version: &'a str,
    pg_dump_version: &'a str,
    /// The newest usable drill record of this backup, if any.
    last_drill: Option<LastDrill>,
    /// When its newest passed verify or drill ran; `null` when it was never verified.
    #[serde(with = "time::serde::rfc3339::option")]
    verified_at: Option<OffsetDateTime>,
    /// Whether its stored objects are encrypted.
    encrypted: bool,
    /// How many files archives (`backup --files DIR`) it holds.
    files: usize,
}

/// The last drill of a backup, as `pgb list` shows it.
#[derive(Serialize)]
pub(crate) struct LastDrill {
    outcome: pgb_ops::DrillOutcome,
    #[serde(with = "time::serde::rfc3339")]
    started_at: OffsetDateTime,
    rto_ms: u64,
    rpo_s: u64,
}

impl From<&pgb_ops::DrillReport> for LastDrill {
    fn from(r: &pgb_ops::DrillReport) -> Self {
        Self {
            outcome: r.outcome,
            started_at: r.started_at,
            rto_ms: r.rto_ms,
            rpo_s: r.rpo_s,
        }
    }
}

impl ListEntry<'_> {
    /// Adds the backup's last drill.
    pub(crate) fn with_drill(mut self, d: Option<&pgb_ops::DrillReport>) -> Self {
        self.last_drill = d.map(LastDrill::from);
        self
    }

    /// Adds when the backup's newest passed verify or drill ran.
    pub(crate) fn with_verified(mut self, at: Option<OffsetDateTime>) -> Self {
        self.verified_at = at;
        self
    }
}

impl<'a> From<&'a Manifest> for ListEntry<'a> {
    fn from(m: &'a Manifest) -> Self {
        Self {
            id: m.id.as_str(),
            database: &m.database,
            set: &m.set,
            server: &m.server,
            system_identifier: m.system_identifier().map(|i| i.to_string()),
            started_at: m.started_at,
            finished_at: m.finished_at,
            stored_size: m.stored_size(),
            plain_size: m.plain_size(),
            sha256: m.dump().map_or("", |a| a.stored_sha256.as_str()),
            plain_sha256: m.dump().map_or("", |a| a.plain_sha256.as_str()),
            artifacts: &m.artifacts,
            dump_options: &m.dump_options,
            cluster: m.cluster.as_ref(),
            migrations: &m.migrations,
            physical: m.physical.as_ref(),
            format: m.format,
            compression: m.compression.to_string(),
            labels: &m.labels,
            server_version: &m.server_version,
            pg_dump_version: &m.pg_dump_version,
            last_drill: None,
            verified_at: None,
            encrypted: m.encryption.is_some(),
            files: m
                .artifacts
                .iter()
                .filter(|a| a.kind == pgb::ArtifactKind::Files)
                .count(),
        }
    }
}

/// `pgb restore --json`.
#[derive(Serialize)]
pub(crate) struct RestoreOut<'a> {
    pub(crate) backup: &'a str,
    pub(crate) database: &'a str,
    pub(crate) created: bool,
    pub(crate) seconds: f64,
    /// Stored objects downloaded by a table-level restore of a directory-format backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) objects_read: Option<u64>,
    /// The job's `post_restore` hook, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) post_restore: Option<&'a pgb_jobs::hooks::HookReport>,
    /// The migration heads: the backup's, before and after the hook, the verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) migrations: Option<&'a pgb_ops::MigrationReport>,
}

/// `pgb backup --prune --json`.
#[derive(Serialize)]
pub(crate) struct BackupOut<'a> {
    pub(crate) backup: &'a pgb::BackupReport,
    pub(crate) prune: &'a pgb::PruneReport,
}

/// `pgb gc --json`.
#[derive(Serialize)]
pub(crate) struct GcOut<'a> {
    dry_run: bool,
    older_than: &'a str,
    removed: Vec<GcEntry<'a>>,
    expired_leases: Vec<&'a str>,
    skipped: &'a [pgb::GcSkipped],
}

#[derive(Serialize)]
struct GcEntry<'a> {
    id: &'a str,
    objects: Vec<&'a str>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_modified: Option<OffsetDateTime>,
}

impl<'a> GcOut<'a> {
    pub(crate) fn new(report: &'a pgb::GcReport, older_than: &'a str) -> Self {
        Self {
            dry_run: report.dry_run,
            older_than,
            removed: report
                .leftovers
                .iter()
                .map(|l| GcEntry {
                    id: &l.id,
                    objects: l.keys.iter().map(pgb::ObjectKey::as_str).collect(),
                    last_modified: l.last_modified,
                })
                .collect(),
            expired_leases: report
                .expired_leases
                .iter()
                .map(pgb::ObjectKey::as_str)
                .collect(),
            skipped: &report.skipped,
        }
    }
}
