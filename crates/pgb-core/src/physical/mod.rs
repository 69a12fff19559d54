//! Physical backups: a cluster's data directory as PostgreSQL's base backup (a tar stream with
//! its `backup_label` and `backup_manifest`), taken through the same pipeline as dumps, and
//! restored into a data directory with the settings that make PostgreSQL recover from the WAL
//! archive to a target.
//!
//! - [`PhysicalDumper`]: the contract of a base-backup source (implemented by
//!   `pgb_postgres::PgBaseBackup` with `pg_basebackup`); its preflight reports the cluster
//!   ([`PhysicalSource`]).
//! - [`PhysicalInfo`]: the manifest's `physical` section.
//! - [`RecoveryTarget`], [`RecoverySettings`]: what a restored server recovers to, written as
//!   `recovery.signal` and `postgresql.auto.conf` lines; [`TargetRequest`]: a target as
//!   given, checked into settings; [`WalFetchCommand`]: the `restore_command` line.
//! - [`PhysicalRestorePlan`]: which backup a restore uses and the WAL it needs (what
//!   `--preview` shows), from [`Repository::plan_physical_restore`](crate::Repository::plan_physical_restore).

mod capture;
mod check;
mod extract;
pub(crate) mod incremental;
pub(crate) mod pgfiles;
pub(crate) mod plan;
mod recovery;
mod spec;
pub(crate) mod tar;

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::dump::{DumpError, DumpSource, PreparedDump};

pub(crate) use capture::FollowedDump;
pub(crate) use check::BaseTarCheck;
pub(crate) use extract::{Extractor, empty_dir, prepare_target};
pub use incremental::{BackupCombiner, Incremental, IncrementalParent};
/// WAL positions and timelines, from `pgb-wal`.
pub use pgb_wal::{InvalidLsn, Lsn, TimelineId};
pub use plan::{PhysicalRestorePlan, PhysicalRestoreReport, PhysicalRestoreRequest, TargetDir};
pub use recovery::{
    InvalidTarget, RecoverySettings, RecoveryTarget, TargetAction, TimelineTarget,
    parse_target_time, quote_conf,
};
pub use spec::{InvalidRecovery, TargetRequest, WalFetchCommand};

/// Where a physical backup's WAL lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum WalMode {
    /// In the repository's WAL archive (`wal/<system id>/...`, pushed by `archive_command`):
    /// the backup is committed only once every segment from its start to its stop is there,
    /// and it can be recovered to any later point the archive reaches.
    #[default]
    Archive,
    /// Inside the base backup itself (`pg_wal/` of the tar, `pg_basebackup -X fetch`): it
    /// restores with no archive, to the end of the backup only.
    Included,
}

impl fmt::Display for WalMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Archive => "archive",
            Self::Included => "included",
        })
    }
}

/// A system identifier as JSON text: 64-bit numbers lose digits in JSON readers that use
/// doubles (JavaScript, jq), and this one names the cluster.
pub(crate) mod sysid_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The manifest's `physical` section: what a base backup holds and what its restore needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PhysicalInfo {
    /// The cluster's system identifier (`pg_control_system()`, fixed at `initdb`), in
    /// decimal: the backup's set, and the folder of its WAL (`wal/<system id>/`).
    #[serde(with = "sysid_text")]
    pub system_identifier: u64,
    /// The timeline the backup started on (`backup_label`'s `START TIMELINE`).
    pub timeline: TimelineId,
    /// Where replay starts (`backup_manifest`'s first `WAL-Ranges` entry).
    pub start_lsn: Lsn,
    /// The timeline the backup ended on (the same unless the server was promoted meanwhile).
    pub stop_timeline: TimelineId,
    /// Where the restored cluster becomes consistent: recovery targets before it are not
    /// reachable from this backup.
    pub stop_lsn: Lsn,
    /// The WAL segment size, bytes (`wal_segment_size`).
    pub wal_segment_size: u64,
    /// Where the backup's WAL lives.
    pub wal: WalMode,
    /// The first WAL segment the restore needs.
    pub start_wal_file: String,
    /// The segment holding the stop position.
    pub stop_wal_file: String,
    /// When the backup's stream ended (after PostgreSQL's `pg_backup_stop`): a recovery
    /// target time must be later (PostgreSQL cannot recover to a moment while the backup ran).
    #[serde(with = "time::serde::rfc3339")]
    pub stop_time: OffsetDateTime,
    /// sha256 (hex) of the backup's `backup_manifest` file.
    pub backup_manifest_sha256: String,
    /// Files `backup_manifest` lists.
    pub files: u64,
    /// The server's major version: a restore needs the PostgreSQL of this major.
    pub server_major: u32,
    /// An incremental backup (PostgreSQL 17+, `pg_basebackup --incremental`): its parent and
    /// the chain a restore combines (`pg_combinebackup`). Absent for a full backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<Incremental>,
}

impl PhysicalInfo {
    /// The segments from the start to the stop position, in order: what a restore replays
    /// before the cluster is consistent. The last is the segment holding the byte before the
    /// stop position (as `pg_backup_stop` waits for it). Segments are named on the start
    /// timeline, the last on the stop timeline.
    pub fn required_segments(&self) -> Vec<pgb_wal::WalFileName> {
        segments(
            self.timeline,
            self.start_lsn,
            self.stop_timeline,
            self.stop_lsn,
            self.wal_segment_size,
        )
    }
}

/// The segments from `start` (on `start_tli`) to the one holding the byte before `stop`.
pub(crate) fn segments(
    start_tli: TimelineId,
    start: Lsn,
    stop_tli: TimelineId,
    stop: Lsn,
    size: u64,
) -> Vec<pgb_wal::WalFileName> {
    let first = start.segment(size);
    let last = Lsn(stop.0.saturating_sub(1)).segment(size).max(first);
    (first..=last)
        .map(|n| {
            let tli = if n == last { stop_tli } else { start_tli };
            pgb_wal::WalFileName::segment(tli, n, size)
        })
        .collect()
}

/// What a [`PhysicalDumper`]'s preflight found about the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PhysicalSource {
    /// The server, versions and base-backup tool, as for a dump (format `physical`).
    pub dump: DumpSource,
    /// The system identifier (`IDENTIFY_SYSTEM`, `pg_control_system()`).
    pub system_identifier: u64,
    /// The server's current timeline.
    pub timeline: TimelineId,
    /// `wal_segment_size`, bytes.
    pub wal_segment_size: u64,
    /// The server's major version.
    pub server_major: u32,
    /// Where the backup's WAL goes.
    pub wal: WalMode,
}

impl PhysicalSource {
    /// Describes a cluster as preflight found it.
    pub fn new(
        dump: DumpSource,
        system_identifier: u64,
        timeline: TimelineId,
        wal_segment_size: u64,
        server_major: u32,
        wal: WalMode,
    ) -> Self {
        Self {
            dump,
            system_identifier,
            timeline,
            wal_segment_size,
            server_major,
            wal,
        }
    }
}

/// A base backup that passed preflight: the tar stream of the data directory (with
/// `backup_label` and PostgreSQL's `backup_manifest` inside), and what preflight found.
#[async_trait]
pub trait PreparedPhysical: PreparedDump {
    /// The cluster.
    fn physical(&self) -> &PhysicalSource;

    /// Makes this an incremental backup (asked for with [`PhysicalDumper::incremental`]):
    /// checks that the server can take one (PostgreSQL 17+, `summarize_wal = on`) and, with a
    /// `parent`, that its WAL summaries cover everything since the parent's start; then the
    /// stream is an incremental backup on top of the parent (no parent: a full one, the first
    /// of a chain). Refuses with one line naming the cause
    /// ([`DumpErrorKind::NotConfigured`](crate::DumpErrorKind::NotConfigured)).
    ///
    /// # Errors
    /// `NotConfigured` (the default: this source cannot take incremental backups).
    async fn incremental(
        self: Box<Self>,
        parent: Option<IncrementalParent>,
    ) -> Result<Box<dyn PreparedPhysical>, DumpError> {
        let _ = parent;
        Err(DumpError::new(
            crate::DumpErrorKind::NotConfigured,
            format!(
                "server {} cannot take incremental base backups with this tool",
                self.physical().dump.server
            ),
        ))
    }
}

/// Produces a physical base backup of a whole cluster as one tar stream.
///
/// # Contract
///
/// As [`Dumper`](crate::Dumper): [`PhysicalDumper::prepare`] checks everything it can before
/// anything runs (the tool, the connection, the role's `REPLICATION`, `wal_level`,
/// `max_wal_senders`, with [`WalMode::Archive`] `archive_mode`, tablespaces it cannot
/// stream) and refuses with one line naming the cause ([`DumpErrorKind::NotConfigured`]
/// for a setting or attribute); the stream it starts is the tar, ending only when the tool
/// succeeded, and must carry `backup_label` and `backup_manifest` (with SHA256 checksums).
///
/// [`DumpErrorKind::NotConfigured`]: crate::DumpErrorKind::NotConfigured
#[async_trait]
pub trait PhysicalDumper: fmt::Debug + Send + Sync + 'static {
    /// Where the backup's WAL goes.
    fn wal(&self) -> WalMode;

    /// Whether an incremental backup is asked for: the repository then finds the parent (the
    /// newest usable base backup of the cluster and timeline) and calls
    /// [`PreparedPhysical::incremental`].
    fn incremental(&self) -> bool {
        false
    }

    /// Preflight.
    ///
    /// # Errors
    /// `ToolNotFound`, `VersionMismatch`, `Unreachable`, `AuthFailed`, `Connection`,
    /// `NotConfigured`.
    async fn prepare(&self) -> Result<Box<dyn PreparedPhysical>, DumpError>;
}
