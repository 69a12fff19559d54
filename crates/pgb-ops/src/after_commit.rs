//! The one step after a backup committed, shared by `pgb backup`, `pgb run`, the daemon and
//! embedders: verify (when asked) and record the passed verify beside the backup, then prune
//! the backup's own retention set with the newest-verified guard.
//!
//! One place, so that no caller can prune without the guard or prune another job's backups:
//! the prune is limited to [`Manifest::retention_set`] of the backup just made (two jobs
//! sharing a repository each keep their own), and the backups that verify or drill records
//! prove good are passed as [`PruneOptions::with_verified`].

use pgb_core::{
    ArchiveChecker, AuthKey, Error, Manifest, Progress, PruneOptions, PruneReport, Repository,
    RetentionPolicy, VerifyReport,
};
use serde::Serialize;
use time::OffsetDateTime;

use crate::record::RecordError;
use crate::verified::{record_verified, verified_ids};

/// What to do once a backup committed.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct AfterCommit<'a> {
    /// Verify the backup (download, decrypt, decompress, hash; the archive checker if any)
    /// and record the passed verify.
    pub verify: bool,
    /// Reads the archive's table of contents while verifying.
    pub checker: Option<&'a dyn ArchiveChecker>,
    /// Authenticates the verify record, and the records prune's guard reads.
    pub auth_key: Option<&'a AuthKey>,
    /// Prune the backup's retention set with this policy.
    pub retention: Option<&'a dyn RetentionPolicy>,
}

impl<'a> AfterCommit<'a> {
    /// Nothing after the commit.
    pub fn new() -> Self {
        Self {
            verify: false,
            checker: None,
            auth_key: None,
            retention: None,
        }
    }

    /// Verifies (with `checker`, when given) and records the passed verify.
    #[must_use]
    pub fn with_verify(mut self, checker: Option<&'a dyn ArchiveChecker>) -> Self {
        self.verify = true;
        self.checker = checker;
        self
    }

    /// The authentication key of verify records.
    #[must_use]
    pub fn with_auth_key(mut self, key: Option<&'a AuthKey>) -> Self {
        self.auth_key = key;
        self
    }

    /// Prunes the backup's retention set with `policy`.
    #[must_use]
    pub fn with_retention(mut self, policy: Option<&'a dyn RetentionPolicy>) -> Self {
        self.retention = policy;
        self
    }
}

impl Default for AfterCommit<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for AfterCommit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfterCommit")
            .field("verify", &self.verify)
            .field("auth_key", &self.auth_key.map(|_| "***"))
            .field("retention", &self.retention.is_some())
            .finish_non_exhaustive()
    }
}

/// What [`after_commit`] did; filled step by step, so a failure still shows what ran.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct AfterCommitReport {
    /// The verification of the new backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyReport>,
    /// Why the passed verify could not be recorded (the step still succeeds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_not_recorded: Option<String>,
    /// The prune of the backup's retention set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneReport>,
}

/// Why the step after a commit failed (the backup itself is committed).
#[derive(Debug, thiserror::Error)]
pub enum AfterCommitError {
    /// The verify failed, or the prune could not list or delete.
    #[error(transparent)]
    Pgb(#[from] Error),
    /// The verify records that guard prune could not be read.
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// Runs the steps of `steps` for the committed backup `m`, filling `report` as it goes.
///
/// # Errors
/// A failed verify (nothing is pruned then), or a prune that could not read the evidence,
/// list or delete. A verify record that cannot be written is reported, not an error.
pub async fn after_commit(
    repo: &Repository,
    m: &Manifest,
    steps: &AfterCommit<'_>,
    progress: &dyn Progress,
    report: &mut AfterCommitReport,
) -> Result<(), AfterCommitError> {
    if steps.verify {
        let verified = repo.verify(m, steps.checker, progress).await?;
        let at = OffsetDateTime::now_utc();
        if let Err(e) = record_verified(repo, m, &verified, at, steps.auth_key).await {
            tracing::warn!(backup = %m.id, error = %e, "the verify was not recorded");
            report.verify_not_recorded = Some(e.to_string());
        }
        report.verify = Some(verified);
    }
    let Some(policy) = steps.retention else {
        return Ok(());
    };
    let listing = repo.list().await?;
    let verified = verified_ids(repo, &listing, steps.auth_key).await?;
    let opts = PruneOptions::default()
        .with_verified(verified)
        .with_sets([m.retention_set()]);
    report.prune = Some(repo.prune(policy, &opts).await?);
    Ok(())
}
