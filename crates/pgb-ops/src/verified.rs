//! Verification evidence beside each backup, and the retention rule built on it.
//!
//! A passed `verify` is recorded as `backups/<id>/verified/<utc time>.json` (create-only,
//! checksummed, authenticated with the authentication key when given): inside the backup's
//! folder, so it is deleted together with the backup and never outlives it. A passed drill
//! (`drills/<id>/...`) counts as verified too.

use std::collections::BTreeSet;

use pgb_core::retention::Plan;
use pgb_core::{
    ArchiveChecker, AuthKey, BackupId, Listing, Manifest, ObjectKey, Progress, Repository,
    VerifyAllReport, VerifyReport, layout,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::record::{RecordError, compact_time, open, put_create_only, read_record, seal};

/// What verified a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum VerifiedBy {
    /// `pgb verify` (or `backup --verify`): checksums, decompression, table of contents.
    Verify,
    /// A restore drill that passed.
    Drill,
}

/// The evidence that a backup was verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VerifiedRecord {
    /// The backup.
    pub backup_id: BackupId,
    /// Its set.
    pub set: String,
    /// How.
    pub by: VerifiedBy,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub verified_at: OffsetDateTime,
    /// Stored bytes read and hashed.
    pub stored_size: u64,
    /// Plaintext bytes decompressed and hashed.
    pub plain_size: u64,
    /// Archive table-of-contents entries, when an archive checker ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toc_entries: Option<u64>,
    /// The pgb version.
    pub pgb_version: String,
}

/// Records a passed verify of `m` beside the backup. Returns the key written.
///
/// # Errors
/// Storage failures.
pub async fn record_verified(
    repo: &Repository,
    m: &Manifest,
    report: &VerifyReport,
    at: OffsetDateTime,
    auth: Option<&AuthKey>,
) -> Result<ObjectKey, RecordError> {
    let sizes = (report.stored_size, report.plain_size, report.toc_entries);
    record(repo, m, sizes, at, auth).await
}

async fn record(
    repo: &Repository,
    m: &Manifest,
    (stored_size, plain_size, toc_entries): (u64, u64, Option<u64>),
    at: OffsetDateTime,
    auth: Option<&AuthKey>,
) -> Result<ObjectKey, RecordError> {
    let rec = VerifiedRecord {
        backup_id: m.id.clone(),
        set: m.set.clone(),
        by: VerifiedBy::Verify,
        verified_at: at,
        stored_size,
        plain_size,
        toc_entries,
        pgb_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let base = format!("{}/{}", layout::verified_prefix(&m.id), compact_time(at));
    put_create_only(repo, &base, seal("verified", &rec, auth)).await
}

/// What [`verify_all_recorded`] did: the verification of every backup, and the evidence it
/// recorded for each one that passed.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct VerifyAllRecorded {
    /// Every backup's outcome (as [`Repository::verify_all`]).
    pub report: VerifyAllReport,
    /// The keys of the verification records written, one per passed backup.
    pub recorded: Vec<String>,
    /// Passed backups whose record could not be written: `<id>: <cause>` (the verify itself
    /// passed; prune will not count them as verified).
    pub not_recorded: Vec<String>,
}

/// Verifies every backup of the repository ([`Repository::verify_all`]) and records each
/// passed verify beside its backup, as [`record_verified`] does for one, so prune's
/// newest-verified rule sees them.
///
/// # Errors
/// As [`Repository::verify_all`] (a failed verification is an outcome). Recording failures are
/// reported in [`VerifyAllRecorded::not_recorded`], never as an error.
pub async fn verify_all_recorded(
    repo: &Repository,
    checker: Option<&dyn ArchiveChecker>,
    progress: &dyn Progress,
    at: OffsetDateTime,
    auth: Option<&AuthKey>,
) -> Result<VerifyAllRecorded, pgb_core::Error> {
    let report = repo.verify_all(checker, progress).await?;
    let listing = repo.list().await?;
    let mut recorded = Vec::new();
    let mut not_recorded = Vec::new();
    for o in report.backups.iter().filter(|o| o.ok) {
        let Some(m) = listing.backups.iter().find(|m| m.id.as_str() == o.id) else {
            // Deleted (pruned elsewhere) since it was verified: nothing to record beside.
            continue;
        };
        let sizes = (
            o.stored_size.unwrap_or(0),
            o.plain_size.unwrap_or(0),
            o.toc_entries,
        );
        match record(repo, m, sizes, at, auth).await {
            Ok(key) => recorded.push(key.as_str().to_owned()),
            Err(e) => not_recorded.push(format!("{}: {e}", m.id)),
        }
    }
    Ok(VerifyAllRecorded {
        report,
        recorded,
        not_recorded,
    })
}

/// The ids of backups with valid verification evidence: a verify record beside the backup,
/// or a passed drill. Records that fail their checksum or authentication, or are over
/// [`pgb_core::layout::MAX_METADATA_BYTES`], do not count.
///
/// # Errors
/// Storage failures.
pub async fn verified_ids(
    repo: &Repository,
    listing: &Listing,
    auth: Option<&AuthKey>,
) -> Result<BTreeSet<BackupId>, RecordError> {
    let mut out = BTreeSet::new();
    // The records are in the listing already: one GET per record read, no LIST per backup.
    for m in &listing.backups {
        for meta in listing.evidence.get(&m.id).into_iter().flatten() {
            let opened = match read_record(repo, meta).await {
                Ok(Some(bytes)) => {
                    open::<VerifiedRecord>(meta.key.as_str(), "verified", &bytes, auth)
                }
                Ok(None) => continue,
                Err(e @ RecordError::Storage(_)) => return Err(e),
                Err(invalid) => Err(invalid),
            };
            match opened {
                Ok((rec, _)) if rec.backup_id == m.id => {
                    out.insert(m.id.clone());
                    break;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "ignoring unusable verification record"),
            }
        }
    }
    for entry in crate::record::drill_history(repo, auth).await? {
        if let Some(r) = entry.report
            && r.passed()
            && listing.backups.iter().any(|m| m.id == r.backup_id)
        {
            out.insert(r.backup_id);
        }
    }
    Ok(out)
}

/// The newest verified complete backup of `set`.
pub fn newest_verified<'a>(
    listing: &'a Listing,
    set: &str,
    verified: &BTreeSet<BackupId>,
) -> Option<&'a Manifest> {
    listing
        .backups
        .iter()
        .filter(|m| m.set == set && verified.contains(&m.id))
        .max_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)))
}

/// A backup kept by the verified-backup rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Protected {
    /// The backup.
    pub id: String,
    /// The reason, for the dry run: `newest verified backup of the set`.
    pub reason: String,
}

/// Adjusts a retention plan for one set so that the newest verified backup of the set is never
/// removed (besides the newest complete one, which prune keeps anyway). Returns the backup it
/// took out of `plan.remove`, with the reason to show in the dry run; `None` when the plan
/// already kept it or the set has no verified backup.
///
/// `set_backups` are the set's manifests; `verified` comes from [`verified_ids`].
pub fn protect_newest_verified(
    plan: &mut Plan,
    set_backups: &[&Manifest],
    verified: &BTreeSet<BackupId>,
) -> Option<Protected> {
    let newest = set_backups
        .iter()
        .filter(|m| verified.contains(&m.id))
        .max_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)))?;
    let pos = plan.remove.iter().position(|id| id == newest.id.as_str())?;
    let id = plan.remove.remove(pos);
    Some(Protected {
        id,
        reason: "newest verified backup of the set".to_owned(),
    })
}
