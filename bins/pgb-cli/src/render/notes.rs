//! Warnings and notes on stderr that accompany a report.

use pgb::{Listing, PruneReport, VerifyAllReport};

use super::note;

/// Unusable manifests and uncommitted folders found while listing.
pub(crate) fn listing_notes(listing: &Listing) {
    for bad in &listing.invalid {
        note(format_args!(
            "warning: backup {} is unusable and not listed: {}",
            bad.id, bad.problem
        ));
    }
    if !listing.leftovers.is_empty() {
        note(format_args!(
            "note: {} uncommitted backup folder(s) without a manifest (not backups; `pgb gc` removes them)",
            listing.leftovers.len()
        ));
    }
}

/// What a prune left alone.
pub(crate) fn prune_notes(report: &PruneReport) {
    for bad in &report.invalid {
        note(format_args!(
            "warning: backup {} has an unusable manifest; not counted, not deleted: {}",
            bad.id, bad.problem
        ));
    }
    if !report.in_progress.is_empty() {
        note(format_args!(
            "skipped {} in-progress backup(s): {}",
            report.in_progress.len(),
            report.in_progress.join(", ")
        ));
    }
}

/// `pgb: FAILED ...` for every backup that failed verification.
pub(crate) fn verify_failures(report: &VerifyAllReport) {
    for f in report.failures() {
        note(format_args!(
            "FAILED {}",
            f.error.as_deref().unwrap_or("verification failed")
        ));
    }
}
