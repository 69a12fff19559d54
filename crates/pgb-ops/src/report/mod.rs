//! The report: what a repository holds and proves, as data ([`Report`], the JSON of `pgb
//! report`), built from the repository alone ([`report`]) and rendered by pure functions to one
//! self-contained HTML page with inline SVG charts ([`html`]) or to Markdown for a runbook's
//! notes ([`markdown`]). The daemon's status page ([`status_html`]) is the same report with the
//! scheduler's view of the jobs on top.
//!
//! Nothing here fails on bad content: a repository with no backups, a record that cannot be
//! used, or a window that starts in the future gives a report that says so ([`Notice`]).

mod build;
mod fmt;
mod html;
mod markdown;
mod status;
mod svg;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use pgb_core::AuthKey;
use pgb_core::migration::MigrationHead;
use pgb_core::retention::RetentionPolicy;
use serde::Serialize;
use time::OffsetDateTime;

pub use build::report;
pub use html::html;
pub use markdown::markdown;
pub use status::{JobStatus, RunProgressSnapshot, StatusPage, status_html};

/// The version of the [`Report`] JSON: bumped when a field changes meaning or goes away
/// (fields are only ever added otherwise).
pub const REPORT_FORMAT_VERSION: u32 = 1;

/// What [`report`] covers and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReportOptions {
    /// "Now": the end of the window and the instant retention is evaluated at.
    pub now: OffsetDateTime,
    /// The window's start: backups, drills and verifications before it are counted but not
    /// shown. `None`: everything.
    pub since: Option<OffsetDateTime>,
    /// How the window was asked for (`90d`, `2026-01-01`), for the title.
    pub since_label: Option<String>,
    /// Only these retention sets ([`pgb_core::Manifest::retention_set`]); `None`: every set.
    pub sets: Option<BTreeSet<String>>,
    /// The retention policy the next prune applies; `None`: retention is not shown as planned.
    pub policy: Option<Arc<dyn RetentionPolicy>>,
    /// The policy as the operator wrote it (`--keep-daily 7 --keep-weekly 4`).
    pub policy_text: Option<String>,
    /// Authenticates manifests' evidence: drill and verification records.
    pub auth_key: Option<AuthKey>,
    /// The job the report is for, if any.
    pub job: Option<String>,
    /// The repository as people may see it (credentials removed by the caller).
    pub repository: String,
    /// The job's drill targets, used where a drill record carries none.
    pub targets: Targets,
}

impl ReportOptions {
    /// Everything in the repository `repository` (a display name), as of `now`.
    pub fn new(repository: impl Into<String>, now: OffsetDateTime) -> Self {
        Self {
            now,
            since: None,
            since_label: None,
            sets: None,
            policy: None,
            policy_text: None,
            auth_key: None,
            job: None,
            repository: repository.into(),
            targets: Targets::default(),
        }
    }

    /// Shows only what happened from `since` on; `label` is how it was asked for.
    pub fn with_since(mut self, since: OffsetDateTime, label: impl Into<String>) -> Self {
        self.since = Some(since);
        self.since_label = Some(label.into());
        self
    }

    /// Only these retention sets.
    pub fn with_sets(mut self, sets: impl IntoIterator<Item = String>) -> Self {
        self.sets = Some(sets.into_iter().collect());
        self
    }

    /// The policy the next prune applies, and how it was written.
    pub fn with_policy(
        mut self,
        policy: Arc<dyn RetentionPolicy>,
        text: impl Into<String>,
    ) -> Self {
        self.policy = Some(policy);
        self.policy_text = Some(text.into());
        self
    }

    /// Authenticates records.
    pub fn with_auth_key(mut self, key: Option<AuthKey>) -> Self {
        self.auth_key = key;
        self
    }

    /// Names the job.
    pub fn with_job(mut self, job: impl Into<String>) -> Self {
        self.job = Some(job.into());
        self
    }

    /// The job's drill targets.
    pub fn with_targets(mut self, max_rto: Option<Duration>, max_rpo: Option<Duration>) -> Self {
        self.targets = Targets {
            max_rto_ms: max_rto.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            max_rpo_s: max_rpo.map(|d| d.as_secs()),
        };
        self
    }
}

/// Recovery targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Targets {
    /// Recovery time objective, milliseconds.
    pub max_rto_ms: Option<u64>,
    /// Recovery point objective, seconds.
    pub max_rpo_s: Option<u64>,
}

/// How serious a [`Notice`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Worth knowing.
    Info,
    /// Needs a look.
    Warning,
    /// Something is wrong or could not be read.
    Error,
}

/// One sentence the report leads with: no backups, unusable records, a window in the future.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// How serious.
    pub level: Level,
    /// One line.
    pub message: String,
}

/// The report: every backup set with its backups, drills, verifications and retention, the
/// last failure, and the physical backups and WAL archive.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// [`REPORT_FORMAT_VERSION`].
    pub format_version: u32,
    /// The pgb that built it.
    pub pgb_version: String,
    /// When it was built (the end of the window).
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    /// The repository (no credentials).
    pub repository: String,
    /// The job, if the report is for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The window's start; `None`: everything.
    #[serde(with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    /// How the window was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_label: Option<String>,
    /// What to know first, worst first.
    pub notices: Vec<Notice>,
    /// Counts over the window.
    pub summary: Summary,
    /// The newest drill that did not pass, with its cause.
    pub last_failure: Option<DrillRow>,
    /// One entry per retention set, by name.
    pub sets: Vec<SetSection>,
    /// Backups, drill and verification records that cannot be used, with the reason.
    pub unusable: Vec<Unusable>,
    /// Backups running now.
    pub in_progress: Vec<String>,
    /// The retention policy and when it was evaluated.
    pub retention: RetentionSummary,
    /// Physical backups and the WAL archive.
    pub physical: PhysicalSection,
}

/// Counts over the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Retention sets shown.
    pub sets: u64,
    /// Usable backups in the window.
    pub backups: u64,
    /// Usable backups in all.
    pub backups_total: u64,
    /// Stored bytes of every usable backup shown (in all).
    pub stored_bytes_total: u64,
    /// Drills in the window.
    pub drills: u64,
    /// Of which did not pass.
    pub drills_failed: u64,
    /// Passed verifications recorded in the window.
    pub verifications: u64,
    /// Unusable backups and records.
    pub unusable: u64,
    /// The newest usable backup's start.
    #[serde(with = "time::serde::rfc3339::option")]
    pub newest_backup_at: Option<OffsetDateTime>,
}

/// One retention set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SetSection {
    /// The retention set (`host:port/database`, plus the selection).
    pub set: String,
    /// Its database (`*`: a whole server).
    pub database: String,
    /// Its server (`host:port`).
    pub server: String,
    /// Usable backups in all (also before the window).
    pub backups_total: u64,
    /// The backups in the window, oldest first.
    pub backups: Vec<BackupRow>,
    /// The drills of its backups in the window, oldest first.
    pub drills: Vec<DrillRow>,
    /// The passed verifications recorded in the window, oldest first.
    pub verifications: Vec<VerificationRow>,
    /// What the next prune does to this set (with a policy).
    pub next_prune: Option<NextPrune>,
}

/// One backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BackupRow {
    /// Its id.
    pub id: String,
    /// pg_dump's start: the data is as of then.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// The last object finished.
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// How long it took, seconds.
    pub duration_s: u64,
    /// Stored bytes.
    pub stored_size: u64,
    /// Dump bytes.
    pub plain_size: u64,
    /// Archive format.
    pub format: String,
    /// Compression.
    pub compression: String,
    /// Whether it is encrypted.
    pub encrypted: bool,
    /// Its labels.
    pub labels: Vec<String>,
    /// Its newest passed verify or drill.
    #[serde(with = "time::serde::rfc3339::option")]
    pub verified_at: Option<OffsetDateTime>,
    /// Its last drill's outcome (`passed`, `check_failed`, `limit_exceeded`).
    pub last_drill: Option<String>,
    /// Whether the next prune keeps it, and by which rules (with a policy).
    pub retention: Option<RetentionRow>,
    /// The application's migration heads it recorded, by database, as in its manifest
    /// (empty: none recorded).
    pub migrations: BTreeMap<String, Vec<MigrationHead>>,
}

/// The next prune's decision about one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionRow {
    /// Whether it stays.
    pub keep: bool,
    /// The rules that keep it (`daily #1`, `newest backup of the set`); empty for a removal.
    pub kept_by: Vec<String>,
}

/// What the next prune does to a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextPrune {
    /// Backups it keeps.
    pub keep: u64,
    /// Backups it removes (ids, newest first), also those before the window.
    pub remove: Vec<String>,
}

/// One drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DrillRow {
    /// The backup restored.
    pub backup_id: String,
    /// Its retention set.
    pub set: String,
    /// When the drill started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// `passed`, `check_failed` or `limit_exceeded`.
    pub outcome: String,
    /// Whether it passed.
    pub passed: bool,
    /// The first failed check or exceeded limit.
    pub cause: Option<String>,
    /// Recovery time, milliseconds.
    pub rto_ms: u64,
    /// Recovery point, seconds.
    pub rpo_s: u64,
    /// The RTO target it was held to (the record's, else the job's).
    pub max_rto_ms: Option<u64>,
    /// The RPO target it was held to.
    pub max_rpo_s: Option<u64>,
    /// The server it restored on.
    pub target_server: String,
    /// The record's key.
    pub key: String,
    /// The migration heads the record carries: the backup's, before and after the
    /// `post_restore` hook, the expected head and the verdict (`None`: nothing recorded).
    pub migrations: Option<crate::MigrationReport>,
}

/// One passed verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VerificationRow {
    /// The backup.
    pub backup_id: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub verified_at: OffsetDateTime,
    /// `verify` or `drill`.
    pub by: String,
    /// Stored bytes read and hashed.
    pub stored_size: u64,
    /// Table-of-contents entries checked.
    pub toc_entries: Option<u64>,
}

/// A backup or record that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unusable {
    /// `backup`, `drill` or `verification`.
    pub kind: String,
    /// The backup id or the record's key.
    pub name: String,
    /// Why.
    pub problem: String,
}

/// The policy behind the retention columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionSummary {
    /// The policy as written; `None`: none given (nothing planned).
    pub policy: Option<String>,
    /// When it was evaluated.
    #[serde(with = "time::serde::rfc3339")]
    pub evaluated_at: OffsetDateTime,
    /// Backups the next prune removes, over every set shown.
    pub removals: u64,
    /// Why no plan could be made, if so.
    pub error: Option<String>,
}

/// Physical backups and the WAL archive: what the repository holds of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PhysicalSection {
    /// Physical base backups (`backup --physical`), oldest first.
    pub backups: Vec<PhysicalBackupRow>,
    /// Archived WAL, per cluster and timeline.
    pub wal: Vec<WalRange>,
    /// Per cluster: from when to when a point-in-time restore can reach, as far as the
    /// repository tells.
    pub windows: Vec<RecoverableWindow>,
    /// Why the archive could not be read, if so.
    pub error: Option<String>,
}

/// One physical base backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PhysicalBackupRow {
    /// Its id.
    pub id: String,
    /// Its cluster (the system identifier: a physical backup's set).
    pub system_identifier: String,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it ended: the earliest moment a restore from it can reach.
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// Stored bytes.
    pub stored_size: u64,
}

/// What a point-in-time restore of one cluster can reach: from the end of its oldest base
/// backup to its newest archived WAL, unless a gap in the archive cuts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RecoverableWindow {
    /// The cluster.
    pub system_identifier: String,
    /// The end of the oldest base backup; `None`: no base backup (WAL alone restores nothing).
    #[serde(with = "time::serde::rfc3339::option")]
    pub from: Option<OffsetDateTime>,
    /// When the newest WAL file was archived, where the storage tells; else the newest base
    /// backup's end.
    #[serde(with = "time::serde::rfc3339::option")]
    pub to: Option<OffsetDateTime>,
    /// Gaps in the cluster's WAL archive: a target after a gap needs a base backup taken
    /// after it.
    pub gaps: u64,
    /// Per timeline, what a restore reaches and the gaps that cut it, as `pgb list --windows`
    /// finds them (the chart of the window draws exactly these).
    pub timelines: Vec<WindowTimeline>,
    /// Why times are missing or the window could not be read from the archive, if so.
    pub problem: Option<String>,
}

/// One timeline of a cluster's recoverable window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WindowTimeline {
    /// The timeline (hex, as in WAL file names).
    pub timeline: String,
    /// Stretches of time a restore reaches, oldest first; the last one with `reaches_end` is
    /// the window to "now", earlier ones end at a gap.
    pub ranges: Vec<WindowRange>,
    /// Missing WAL after the start of the oldest base backup that replays into this timeline.
    pub gaps: Vec<WindowGap>,
    /// Base backups that cannot be restored at all (their own WAL is missing).
    pub unrecoverable: Vec<String>,
}

/// A stretch of time a restore reaches: from the end of a base backup to where the archived
/// WAL stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WindowRange {
    /// The end of its oldest base backup: the earliest target.
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    /// The latest target, as far as known (see `to_source`).
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    /// Where `to` comes from: `commit` (the newest commit in its WAL), `archived` (when its
    /// newest WAL was stored: no commit could be read) or `backup` (the end of its newest base
    /// backup: at least that far).
    pub to_source: String,
    /// The oldest base backup restoring into it.
    pub from_backup: String,
    /// Every base backup restoring into it, oldest end first.
    pub backups: Vec<String>,
    /// Where its oldest base backup is consistent: the earliest target position.
    pub from_lsn: String,
    /// The end of the WAL replay reaches.
    pub to_lsn: String,
    /// Whether it reaches the end of the archive (else a gap cuts it).
    pub reaches_end: bool,
}

/// Missing WAL: recovery cannot pass it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WindowGap {
    /// The first missing segment.
    pub first_missing: String,
    /// The last missing segment.
    pub last_missing: String,
    /// How many segments are missing.
    pub missing: u64,
    /// The WAL positions without WAL, from `start_lsn` to `end_lsn` (exclusive).
    pub start_lsn: String,
    /// See `start_lsn`.
    pub end_lsn: String,
    /// Base backups whose restores stop before it.
    pub affects: Vec<String>,
    /// The latest time reached before it: the `to` of the range it cuts (`None`: no range).
    #[serde(with = "time::serde::rfc3339::option")]
    pub after: Option<OffsetDateTime>,
    /// The earliest time reached after it: the `from` of the next range (`None`: no base
    /// backup after it, nothing after it is reachable).
    #[serde(with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
}

/// The archived WAL of one timeline of one cluster: its span and its gaps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WalRange {
    /// The cluster's system identifier.
    pub system_identifier: String,
    /// The timeline (hex, as in WAL file names).
    pub timeline: String,
    /// WAL segment files archived.
    pub segments: u64,
    /// Other files (history, backup labels, partial segments).
    pub other_files: u64,
    /// Stored bytes.
    pub stored_bytes: u64,
    /// The first segment archived.
    pub first: Option<String>,
    /// The last segment archived.
    pub last: Option<String>,
    /// When the newest file was archived, where the storage tells.
    #[serde(with = "time::serde::rfc3339::option")]
    pub newest_at: Option<OffsetDateTime>,
    /// Missing stretches: `(last segment before, first segment after)`.
    pub gaps: Vec<(String, String)>,
}

impl Report {
    /// Every drill shown, over all sets, oldest first.
    pub fn drills(&self) -> impl Iterator<Item = &DrillRow> {
        self.sets.iter().flat_map(|s| s.drills.iter())
    }
}
