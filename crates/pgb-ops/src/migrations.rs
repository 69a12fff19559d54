//! Migration heads around a restore: the check before anything is written (a backup newer
//! than the head the application expects is refused, an older one when nothing would migrate
//! it), then the restored database's heads read before and after its `post_restore` hook and
//! checked against the expected head. `pgb restore` and [`crate::drill`] both go through here;
//! a drill records the [`MigrationReport`] beside its RTO.

use std::future::Future;

use pgb_core::migration::{check_backup, check_reached};
use pgb_core::{MigrationHead, MigrationProblem, MigrationTarget};
use pgb_postgres::{ConnConfig, MigrationProbe, SqlClient};
use serde::{Deserialize, Serialize};

/// What a restore must reach, and how heads are read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationExpectation {
    /// The head the application expects (`--expect-migration`, `expected_migration`, or the
    /// output of `expected_migration_command`); `None`: heads are only reported.
    pub target: Option<MigrationTarget>,
    /// Restore a backup whose head does not fit the target anyway (the check after the hook
    /// still applies).
    pub allow_mismatch: bool,
    /// Which heads to read from the restored database (the job's frameworks and query).
    pub probe: MigrationProbe,
}

impl MigrationExpectation {
    /// Heads are read and reported; nothing is expected.
    pub fn new() -> Self {
        Self::default()
    }

    /// Expects `target`.
    pub fn with_target(mut self, target: Option<MigrationTarget>) -> Self {
        self.target = target;
        self
    }

    /// Sets `allow_mismatch`.
    pub fn with_allow_mismatch(mut self, allow: bool) -> Self {
        self.allow_mismatch = allow;
        self
    }

    /// Sets the probe.
    pub fn with_probe(mut self, probe: MigrationProbe) -> Self {
        self.probe = probe;
        self
    }

    /// Whether backup `backup` (its recorded `heads`) may be restored, before anything is
    /// written: see [`check_backup`]; `migrates`: a `post_restore` hook will run. Always `Ok`
    /// without a target or with `allow_mismatch`.
    ///
    /// # Errors
    /// [`MigrationProblem::BackupNewer`] or [`MigrationProblem::BackupOlder`], both heads named.
    pub fn check_backup(
        &self,
        backup: &str,
        heads: &[MigrationHead],
        migrates: bool,
    ) -> Result<(), MigrationProblem> {
        match &self.target {
            Some(t) if !self.allow_mismatch => check_backup(backup, heads, t, migrates),
            _ => Ok(()),
        }
    }
}

/// A restored database's migration heads: as the backup recorded them, before the
/// `post_restore` hook and after it, and the verdict against the expected head.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MigrationReport {
    /// The head expected (`[framework:]head`), when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// The heads the backup's manifest recorded.
    #[serde(default)]
    pub backup: Vec<MigrationHead>,
    /// The restored database's heads before the `post_restore` hook.
    #[serde(default)]
    pub before: Vec<MigrationHead>,
    /// Its heads after the hook; `None` when no hook ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<MigrationHead>>,
    /// Whether the database reached the expected head (clean, not dirty); `None` when nothing
    /// was expected and no hook ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<bool>,
    /// Why not, one line (a failed migration quoted from the framework's own row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Heads that could not be read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl MigrationReport {
    /// A report of a restore refused before it began: the expectation and the backup's heads.
    pub fn refused(
        expected: &MigrationTarget,
        backup: &[MigrationHead],
        problem: &MigrationProblem,
    ) -> Self {
        Self {
            expected: Some(expected.to_string()),
            backup: backup.to_vec(),
            passed: Some(false),
            problem: Some(problem.to_string()),
            ..Self::default()
        }
    }

    /// The heads the database ended with: after the hook, else before it.
    pub fn last(&self) -> &[MigrationHead] {
        self.after.as_deref().unwrap_or(&self.before)
    }

    /// Whether there is anything to report: a head anywhere, an expectation, a warning.
    pub fn is_empty(&self) -> bool {
        self.expected.is_none()
            && self.backup.is_empty()
            && self.before.is_empty()
            && self.after.as_ref().is_none_or(Vec::is_empty)
            && self.warnings.is_empty()
    }
}

/// Reads the heads of the restored database `db`, runs `hook` (the `post_restore` hook, when
/// there is one), reads them again and checks them: against the expected head when there is
/// one ([`check_reached`]: behind, dirty or a failed migration row fails), else, when a hook
/// ran, for a failed or dirty migration it left behind. Returns the hook's output and the
/// report; reading heads never fails (what cannot be read is a warning).
pub async fn around_hook<T>(
    client: &SqlClient,
    db: &ConnConfig,
    backup: &[MigrationHead],
    expect: &MigrationExpectation,
    hook: Option<impl Future<Output = T>>,
) -> (Option<T>, MigrationReport) {
    let before = client.migration_heads(db, &expect.probe).await;
    let mut report = MigrationReport {
        expected: expect.target.as_ref().map(ToString::to_string),
        backup: backup.to_vec(),
        before: before.heads,
        warnings: before.warnings,
        ..MigrationReport::default()
    };
    let ran = match hook {
        Some(h) => {
            let out = h.await;
            let after = client.migration_heads(db, &expect.probe).await;
            report.after = Some(after.heads);
            report.warnings.extend(after.warnings);
            Some(out)
        }
        None => None,
    };
    let problem = match &expect.target {
        Some(t) => check_reached(report.last(), t).err(),
        None if ran.is_some() => report.last().iter().find_map(MigrationHead::trouble),
        None => None,
    };
    if expect.target.is_some() || ran.is_some() {
        report.passed = Some(problem.is_none());
    }
    report.problem = problem.map(|p| p.to_string());
    (ran, report)
}

#[cfg(test)]
mod tests {
    use pgb_core::MigrationFramework;

    use super::*;

    #[test]
    fn the_backup_check_is_off_without_a_target_or_with_allow_mismatch() {
        let heads = [MigrationHead::new(MigrationFramework::Flyway, "3")];
        let e = MigrationExpectation::new();
        assert!(e.check_backup("b", &heads, false).is_ok());
        let e = e.with_target(Some("2".parse().unwrap()));
        assert!(e.check_backup("b", &heads, true).is_err());
        assert!(
            e.with_allow_mismatch(true)
                .check_backup("b", &heads, true)
                .is_ok()
        );
    }

    #[test]
    fn a_report_knows_its_last_heads() {
        let h = |v: &str| MigrationHead::new(MigrationFramework::Flyway, v);
        let mut r = MigrationReport {
            before: vec![h("1")],
            ..MigrationReport::default()
        };
        assert_eq!(r.last()[0].head, "1");
        r.after = Some(vec![h("2")]);
        assert_eq!(r.last()[0].head, "2");
        assert!(!r.is_empty());
        assert!(MigrationReport::default().is_empty());
    }
}
