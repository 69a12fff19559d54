//! Verifying every backup of a repository, one report for all of them.

use serde::Serialize;

use super::{Repository, VerifyReport};
use crate::dump::ArchiveChecker;
use crate::error::{Error, ErrorClass};
use crate::events::Progress;
use crate::manifest::BackupId;

/// The verification of one backup in a [`VerifyAllReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VerifyOutcome {
    /// The backup (the folder name, for an unusable manifest).
    pub id: String,
    /// Whether every check passed.
    pub ok: bool,
    /// Stored bytes read and hashed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_size: Option<u64>,
    /// Plaintext bytes decompressed and hashed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plain_size: Option<u64>,
    /// Archive table-of-contents entries, when an archive checker ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toc_entries: Option<u64>,
    /// What the network did during this verify (retries, resumed downloads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<crate::storage::StorageStats>,
    /// Why it failed (one line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The class of the failure.
    #[serde(skip)]
    pub class: Option<ErrorClass>,
}

/// What [`Repository::verify_all`] found: every complete backup verified, and every folder
/// whose manifest is unusable reported as failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VerifyAllReport {
    /// Unusable manifests first, then the complete backups oldest first.
    pub backups: Vec<VerifyOutcome>,
}

impl VerifyAllReport {
    /// The outcomes that failed.
    pub fn failures(&self) -> impl Iterator<Item = &VerifyOutcome> {
        self.backups.iter().filter(|b| !b.ok)
    }
}

impl From<&VerifyReport> for VerifyOutcome {
    fn from(r: &VerifyReport) -> Self {
        Self {
            id: r.id.to_string(),
            ok: true,
            stored_size: Some(r.stored_size),
            plain_size: Some(r.plain_size),
            toc_entries: r.toc_entries,
            storage: Some(r.storage),
            error: None,
            class: None,
        }
    }
}

impl Repository {
    /// Verifies every complete backup ([`Repository::verify`]), going on after a failure so that
    /// one report covers the whole repository. A folder with an unusable manifest counts as a
    /// failed backup.
    ///
    /// # Errors
    /// `NoBackups` if the repository holds neither a complete backup nor an unusable manifest;
    /// storage failures while listing. A failed verification is an outcome, not an error.
    pub async fn verify_all(
        &self,
        checker: Option<&dyn ArchiveChecker>,
        progress: &dyn Progress,
    ) -> Result<VerifyAllReport, Error> {
        let listing = self.list().await?;
        if listing.backups.is_empty() && listing.invalid.is_empty() {
            return Err(Error::NoBackups { database: None });
        }
        let mut backups: Vec<VerifyOutcome> = listing
            .invalid
            .into_iter()
            .map(|bad| VerifyOutcome {
                error: Some(format!("backup {}: {}", bad.id, bad.problem)),
                id: bad.id,
                ok: false,
                stored_size: None,
                plain_size: None,
                toc_entries: None,
                storage: None,
                class: Some(ErrorClass::Integrity),
            })
            .collect();
        for m in &listing.backups {
            let outcome = match self.verify(m, checker, progress).await {
                Ok(r) => VerifyOutcome::from(&r),
                Err(e) => {
                    tracing::error!(backup = %m.id, error = %e, "verification failed");
                    failed(&m.id, &e)
                }
            };
            backups.push(outcome);
        }
        Ok(VerifyAllReport { backups })
    }
}

fn failed(id: &BackupId, e: &Error) -> VerifyOutcome {
    VerifyOutcome {
        id: id.to_string(),
        ok: false,
        stored_size: None,
        plain_size: None,
        toc_entries: None,
        storage: None,
        error: Some(e.to_string()),
        class: Some(e.class()),
    }
}
