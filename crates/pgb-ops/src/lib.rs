//! # pgb-ops
//!
//! Operations that prove backups, on top of [`pgb_core::Repository`] and the PostgreSQL
//! drivers of `pgb-postgres`:
//!
//! - [`drill`]: restore a backup into a scratch database on a target server, check it (clean
//!   restore, every table of the archive present, tables that held rows not empty, smoke SQL),
//!   run post-restore hooks, measure RTO per phase and RPO, and record the result in the
//!   repository as `drills/<backup-id>/<utc time>.json` (create-only, checksummed,
//!   authenticated with the repository's authentication key when given). The scratch database
//!   is dropped afterwards, also when a check fails and when the drill is cancelled.
//! - [`drill_pitr`]: a point-in-time recovery drill: a physical base backup restored into a
//!   scratch data directory, a temporary PostgreSQL of the backup's major version recovering
//!   from the WAL archive to a random second of the recoverable window (or a given one), the
//!   target checked as reached, tables, smoke SQL and optionally `amcheck` checked, recorded
//!   like a drill; the server is stopped and the directory removed, also when cancelled.
//! - [`MigrationExpectation`] / [`around_hook`]: the application's migration head around a
//!   restore: a backup that does not fit the expected head refused before anything is
//!   written, the restored database's heads read before and after its `post_restore` hook and
//!   checked (behind, dirty, a failed migration row), as a [`MigrationReport`] a drill records
//!   beside its RTO.
//! - [`check`]: freshness and size checks from the repository alone, as a [`CheckReport`]
//!   with the monitoring-plugin status (OK/WARNING/CRITICAL/UNKNOWN) and a Nagios line.
//! - [`record_verified`] / [`verified_ids`] / [`protect_newest_verified`]: verification
//!   evidence beside each backup, and the retention rule that never prunes the newest
//!   verified backup of a set.
//! - [`report()`]: what the repository holds and proves (sets, backups, drills with RTO/RPO
//!   against their targets, verifications, the next prune, the WAL archive) as a
//!   serializable [`Report`], rendered to self-contained HTML with SVG charts or to Markdown
//!   by the pure functions of [`report`](mod@report), also as the daemon's status page.
//! - [`metrics`]: the Prometheus text (format 0.0.4) of those reports, for `pgb check
//!   --textfile` and the daemon's `/metrics`, with an atomic textfile writer. It lives here
//!   because it is a rendering of this crate's reports and nothing else (it was the
//!   `pgb-metrics` crate, whose only dependency was this one).
//!
//! Like every pgb library it never prints, reads the environment or installs handlers.

mod after_commit;
mod archiver_check;
mod check;
mod drill;
pub mod metrics;
mod migrations;
mod record;
pub mod report;
mod toc;
mod verified;
mod wal_check;

pub use after_commit::{AfterCommit, AfterCommitError, AfterCommitReport, after_commit};
pub use archiver_check::{DEFAULT_MAX_READY, check_archiver};
pub use check::{
    BackupSummary, CheckOptions, CheckReport, CheckStatus, DrillSummary, Finding, SetReport, check,
    check_listed, nagios,
};
pub use drill::{
    BackupChoice, CheckResult, DrillError, DrillHook, DrillHookError, DrillOptions, DrillOutcome,
    DrillReport, Phase, PitrDrillOptions, PitrReport, PitrTarget, SmokeStatement, drill,
    drill_pitr, random_second,
};
pub use migrations::{MigrationExpectation, MigrationReport, around_hook};
pub use record::{DrillEntry, RecordError, drill_history, last_drills, record_drill};
pub use report::{Report, ReportOptions, report};
pub use toc::TocTable;
pub use verified::{
    Protected, VerifiedBy, VerifiedRecord, VerifyAllRecorded, newest_verified,
    protect_newest_verified, record_verified, verified_ids, verify_all_recorded,
};
pub use wal_check::{TimelineCheck, WalCheck};
