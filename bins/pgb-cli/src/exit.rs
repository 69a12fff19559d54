//! Errors → exit codes and hints: a stable contract for cron, systemd and Kubernetes
//! (docs/exit-codes.md). The libraries state causes; the hints that name this binary's flags
//! are added here.

use pgb::{DumpErrorKind, Error, ErrorClass, KeyErrorKind, OpenError};

mod jobs;

/// Success.
pub(crate) const OK: i32 = 0;
/// The operation failed while running (pg_dump died, storage failed mid-upload, ...).
pub(crate) const FAILURE: i32 = 1;
/// Bad usage: unknown flag, invalid value, a secret on the command line, a bad policy.
pub(crate) const USAGE: i32 = 2;
/// The repository cannot be used: a local directory that does not exist, missing credentials,
/// no such bucket, no permission or a read-only file system, unreachable endpoint. (A malformed
/// URL is [`USAGE`].)
pub(crate) const REPOSITORY: i32 = 3;
/// The database cannot be used: unreachable, authentication failed, no such database, no
/// pg_dump/pg_restore new enough.
pub(crate) const DATABASE: i32 = 4;
/// A backup failed verification: checksum or size mismatch, corrupt or truncated data,
/// missing data object, unreadable or unknown-version manifest.
pub(crate) const INTEGRITY: i32 = 5;
/// Refused as unsafe: restore target not empty without --clean, CREATE DATABASE without
/// --allow-create.
pub(crate) const REFUSED: i32 = 6;
/// No such backup, or no backup at all.
pub(crate) const NOT_FOUND: i32 = 7;
/// `pgb run`: another run of the job holds its job lock.
pub(crate) const LOCKED: i32 = 8;
/// Encryption keys are missing, unreadable or wrong (no identity matched, wrong passphrase).
pub(crate) const KEY: i32 = 9;
/// `pgb drill`: a drill check failed (restore, tables, rows, smoke, verification).
pub(crate) const DRILL_CHECK_FAILED: i32 = 10;
/// `pgb drill`: every check passed, but RTO or RPO is over its limit.
pub(crate) const DRILL_LIMIT_EXCEEDED: i32 = 11;
/// `pgb restore --pgdata`: the recovery target lies before the end of every physical backup
/// that could serve it (PostgreSQL can only recover to a point after a base backup ended).
pub(crate) const TARGET_BEFORE_BACKUP: i32 = 12;
/// `pgb restore` and `pgb drill`: the migration check failed. The backup's migration head
/// does not fit the expected one (refused before anything was written, unless
/// `--allow-migration-mismatch`), the expected head could not be known
/// (`expected_migration_command` failed), or after the `post_restore` hook the database was
/// behind the expected head, dirty, or had a failed migration row.
pub(crate) const MIGRATION: i32 = 13;
/// `pgb restore --pgdata --preview`: the target is not in the archived WAL (after the newest
/// archived commit, after the end of the archive, a restore point or xid not found).
pub(crate) const TARGET_AFTER_ARCHIVE: i32 = 14;
/// `pgb restore --pgdata --preview`: a gap in the WAL archive lies between the backup and the
/// target (or the backup's own WAL is not all archived).
pub(crate) const WAL_GAP: i32 = 15;
/// `pgb restore --pgdata --preview`: the timeline asked for does not descend from the
/// backup's at the backup's position.
pub(crate) const TIMELINE: i32 = 16;
/// `pgb check`: UNKNOWN, the check could not run (a bad flag value, an unusable repository).
/// Its OK, WARNING and CRITICAL are 0, 1 and 2 (`pgb_ops::CheckStatus::code`).
pub(crate) const CHECK_UNKNOWN: i32 = 3;
/// Interrupted by SIGINT (128 + 2).
pub(crate) const SIGINT: i32 = 130;
/// `pgb wal fetch`: any failure other than "not in the archive" (1). PostgreSQL stops
/// recovery on a restore_command status above 125 instead of taking it for the end of the
/// archive, so a damaged or unreachable archive never makes a server promote early.
pub(crate) const WAL_FETCH_FATAL: i32 = 255;
/// Terminated by SIGTERM (128 + 15).
pub(crate) const SIGTERM: i32 = 143;

/// A failure ready to report: one line (cause, then the hint), an exit code, and maybe a
/// tool's stderr tail.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: i32,
    pub(crate) message: String,
    pub(crate) detail: Option<String>,
}

impl Failure {
    pub(crate) fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(USAGE, message)
    }

    pub(crate) fn key(message: impl Into<String>) -> Self {
        Self::new(KEY, message)
    }

    /// An exit code whose report was already printed on stdout (`pgb check`): nothing more on
    /// stderr.
    pub(crate) fn silent(code: i32) -> Self {
        Self::new(code, String::new())
    }

    /// Appends `hint` to the message, unless the message already names its flag.
    fn with_hint(mut self, hint: Option<String>) -> Self {
        if let Some(h) = hint {
            self.message = format!("{}; {h}", self.message);
        }
        self
    }

    /// The interruption by a signal (130 or 143).
    pub(crate) fn interrupted(code: i32) -> Self {
        let sig = if code == SIGINT { "SIGINT" } else { "SIGTERM" };
        Self::new(
            code,
            format!("interrupted by {sig}; nothing was committed by the interrupted operation"),
        )
    }

    /// The lines to print on stderr.
    pub(crate) fn report(&self) -> String {
        let mut text = format!("pgb: error: {}", self.message);
        for line in self.detail.iter().flat_map(|d| d.lines()) {
            text.push_str("\n  ");
            text.push_str(line);
        }
        text
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let hint = hint(&e);
        Self {
            code: code(&e),
            message: e.to_string(),
            detail: e.stderr_tail().map(str::to_owned),
        }
        .with_hint(hint)
    }
}

impl From<pgb_config::ConfigError> for Failure {
    /// A config file that cannot be used is a usage error: one line naming the file, line,
    /// job and key.
    fn from(e: pgb_config::ConfigError) -> Self {
        Self::usage(e.to_string())
    }
}

impl From<pgb_jobs::RunError> for Failure {
    /// A held job lock is exit 8 (its message names the holder and the expiry).
    fn from(e: pgb_jobs::RunError) -> Self {
        use pgb::JobLockError;
        use pgb_jobs::RunError;
        match e {
            RunError::Pgb(e) => e.into(),
            RunError::Evidence(e) => e.into(),
            RunError::Lock(l @ JobLockError::Held { .. }) => Self::new(LOCKED, l.to_string()),
            RunError::Lock(l @ JobLockError::InvalidJob(_)) => Self::usage(l.to_string()),
            RunError::Lock(l) => Self::new(REPOSITORY, l.to_string()),
            other => Self::new(FAILURE, other.to_string()),
        }
    }
}

impl From<pgb_jobs::daemon::ScheduleError> for Failure {
    /// The daemon's entries: a job's repository or keys as `pgb run`'s, its drill records
    /// as a repository error, a `drill.schedule` that is not cron a usage error.
    fn from(e: pgb_jobs::daemon::ScheduleError) -> Self {
        use pgb_jobs::daemon::ScheduleError as S;
        match e {
            S::Plan(e) => e.into(),
            S::Repository(e) => e.into(),
            S::Record(e) => e.into(),
            e => Self::usage(e.to_string()),
        }
    }
}

impl From<OpenError> for Failure {
    fn from(e: OpenError) -> Self {
        let (code, hint) = match e {
            OpenError::InvalidUrl { .. } | OpenError::UnknownScheme { .. } => {
                (USAGE, Some("check --repo (or PGB_REPO)".to_owned()))
            }
            OpenError::NotCompiled { .. } => (USAGE, None),
            OpenError::NotFound { .. } => (
                REPOSITORY,
                Some(
                    "check --repo (or PGB_REPO); only a backup creates a new repository".to_owned(),
                ),
            ),
            _ => (REPOSITORY, None),
        };
        Self::new(code, e.to_string()).with_hint(hint)
    }
}

impl From<pgb_ops::DrillError> for Failure {
    fn from(e: pgb_ops::DrillError) -> Self {
        use pgb_ops::DrillError as D;
        match e {
            D::Repository(e) => e.into(),
            D::Target(d) => {
                let hint = dump_hint(&d);
                Self {
                    code: DATABASE,
                    message: format!("drill target: {d}"),
                    detail: d.stderr_tail().map(str::to_owned),
                }
                .with_hint(hint.map(|h| h.replace("--pg-bin-dir", "--pg-bin-dir or --target")))
            }
            D::SameAsSource { .. } => Self::new(REFUSED, e.to_string()).with_hint(Some(
                "point --target at another server or database".to_owned(),
            )),
            D::Cancelled => Self::new(FAILURE, e.to_string()),
            D::OutsideWindow { before: true, .. } => Self::new(TARGET_BEFORE_BACKUP, e.to_string()),
            D::OutsideWindow { .. } | D::NoWindow(_) => {
                Self::new(TARGET_AFTER_ARCHIVE, e.to_string())
            }
            D::Unreachable { ref reach, .. } => {
                use pgb::wal::Reach;
                let code = match reach {
                    Reach::BackupWalMissing { .. } | Reach::InGap { .. } => WAL_GAP,
                    Reach::TimelineDoesNotLead { .. } => TIMELINE,
                    _ => TARGET_AFTER_ARCHIVE,
                };
                Self::new(code, e.to_string())
            }
            other => Self::usage(other.to_string()),
        }
    }
}

impl From<pgb_ops::RecordError> for Failure {
    fn from(e: pgb_ops::RecordError) -> Self {
        Self::new(REPOSITORY, e.to_string())
    }
}

/// The exit code of a library error.
pub(crate) fn code(e: &Error) -> i32 {
    if matches!(e, Error::TargetBeforeBackup { .. }) {
        return TARGET_BEFORE_BACKUP;
    }
    match e.class() {
        ErrorClass::Repository => REPOSITORY,
        ErrorClass::Database => DATABASE,
        ErrorClass::Integrity => INTEGRITY,
        ErrorClass::Refused => REFUSED,
        ErrorClass::NotFound => NOT_FOUND,
        ErrorClass::Locked => LOCKED,
        ErrorClass::Key => KEY,
        ErrorClass::Invalid => USAGE,
        _ => FAILURE,
    }
}

/// What to do next, in this binary's terms.
/// What the user can do about a library error, naming this binary's flags (the libraries state
/// only the cause, since embedders and the daemon have no flags).
fn hint(e: &Error) -> Option<String> {
    let fixed = |s: &str| Some(s.to_owned());
    match e {
        Error::Key { source, .. } => match source.kind() {
            KeyErrorKind::MissingAuthKey => fixed("pass --auth-key-file or set PGB_AUTH_KEY"),
            KeyErrorKind::MissingPassphrase => {
                fixed("set PGB_PASSPHRASE or pass --passphrase-file")
            }
            KeyErrorKind::MissingIdentity => {
                fixed("pass --identity-file, --passphrase-file or set PGB_PASSPHRASE")
            }
            KeyErrorKind::Unauthenticated => fixed("pass --allow-unauthenticated to accept it"),
            _ => None,
        },
        Error::BackupNotFound(_) => fixed("run `pgb list` to see the backups"),
        Error::WalNotArchived { .. } => fixed(
            "check archive_command (`pgb wal push %p` into this repository) and pg_stat_archiver, or give it more time with --wal-wait",
        ),
        Error::TargetBeforeBackup { .. } => fixed(
            "choose a later target, or keep older physical backups (`pgb list` shows when each ended)",
        ),
        Error::NoPhysicalBackup { .. } => fixed("take one with `pgb backup --physical`"),
        Error::Invalid(pgb::Mismatch::Physical { .. }) => {
            fixed("restore it into a data directory with --pgdata DIR")
        }
        Error::Invalid(pgb::Mismatch::NotPhysical { .. }) => {
            fixed("restore it into a database with --db URL")
        }
        Error::Invalid(pgb::Mismatch::SeveralClusters { .. }) => fixed("pass --system-id ID"),
        Error::Dump(d) if d.kind() == DumpErrorKind::NotConfigured => {
            fixed("see docs/pitr.md for the server settings a physical backup needs")
        }
        Error::Dump(d) if d.kind() == DumpErrorKind::DirectoryNotEmpty => {
            fixed("restore into an empty directory, or pass --clean to replace its content")
        }
        Error::Invalid(pgb::Mismatch::WholeServerNeedsChoice { .. }) => {
            fixed("pass --database NAME (with --db), --globals (with --db) or --all --server URL")
        }
        Error::Dump(d) => dump_hint(d),
        _ => None,
    }
}

fn dump_hint(d: &pgb::DumpError) -> Option<String> {
    Some(match d.kind() {
        DumpErrorKind::ToolNotFound => {
            "install the PostgreSQL client tools, or point --pg-bin-dir at them".to_owned()
        }
        DumpErrorKind::VersionMismatch => match d.versions() {
            Some((required, _)) => format!(
                "install PostgreSQL {required} client tools (or newer) and point --pg-bin-dir at them"
            ),
            None => {
                "install newer PostgreSQL client tools and point --pg-bin-dir at them".to_owned()
            }
        },
        DumpErrorKind::AuthFailed => {
            "set PGPASSWORD or PGPASSFILE (never the command line), or fix the user".to_owned()
        }
        DumpErrorKind::DatabaseNotFound => {
            "check the name in the URL (pgb restore creates a missing target, pgb backup cannot)"
                .to_owned()
        }
        DumpErrorKind::Unreachable => {
            "check host and port, and that PostgreSQL is running".to_owned()
        }
        DumpErrorKind::TargetNotEmpty => {
            "restore into a new database, or pass --clean to replace its objects".to_owned()
        }
        DumpErrorKind::Refused => "restore into a new database".to_owned(),
        DumpErrorKind::CreatesDatabase => "pass --allow-create to restore it anyway".to_owned(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use pgb::DumpError;

    use super::*;

    #[test]
    fn hints_name_the_flag() {
        let plain = Failure::from(Error::Dump(DumpError::new(
            DumpErrorKind::TargetNotEmpty,
            "target database shop already has 3 tables, views or sequences",
        )));
        assert_eq!(plain.code, REFUSED);
        assert!(
            plain
                .message
                .ends_with("pass --clean to replace its objects"),
            "{}",
            plain.message
        );
    }

    #[test]
    fn every_class_has_its_documented_code() {
        let refused = Error::Dump(pgb::DumpError::new(DumpErrorKind::DirectoryNotEmpty, "x"));
        assert_eq!(code(&refused), REFUSED);
        let held = pgb::JobLockError::InvalidJob("x/y".to_owned());
        assert_eq!(code(&Error::Locked(Box::new(held))), LOCKED);
        let choice = pgb::Mismatch::NoGlobals {
            id: "20260101T000000Z-abcdef".parse().unwrap(),
        };
        assert_eq!(code(&Error::Invalid(choice)), USAGE);
        assert_eq!(code(&Error::BackupNotFound("x".to_owned())), NOT_FOUND);
        assert_eq!(
            code(&Error::Policy(pgb::retention::RetentionError::NoRule)),
            USAGE
        );
        assert_eq!(code(&Error::Cancelled), FAILURE);
    }
}
