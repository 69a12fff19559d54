//! Exit codes: a stable contract for cron, systemd and Kubernetes (docs/exit-codes.md).

use pgb_core::{Error, ErrorClass, KeyErrorKind};

/// Success.
pub(crate) const OK: i32 = 0;
/// The operation failed while running (pg_dump died, storage failed mid-upload, ...).
pub(crate) const FAILURE: i32 = 1;
/// Bad usage: unknown flag, invalid value, a secret on the command line, a bad policy.
pub(crate) const USAGE: i32 = 2;
/// The repository cannot be used: bad URL, missing credentials, no such bucket, no permission,
/// unreachable endpoint.
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
/// Another pgb operation holds the repository lock.
pub(crate) const LOCKED: i32 = 8;
/// Encryption keys are missing, unreadable or wrong (no identity matched, wrong passphrase).
pub(crate) const KEY: i32 = 9;
/// Interrupted by SIGINT (128 + 2).
pub(crate) const SIGINT: i32 = 130;
/// Terminated by SIGTERM (128 + 15).
pub(crate) const SIGTERM: i32 = 143;

/// The exit code of a library error.
pub(crate) fn of(e: &Error) -> i32 {
    match e.class() {
        ErrorClass::Repository => REPOSITORY,
        ErrorClass::Database => DATABASE,
        ErrorClass::Integrity => INTEGRITY,
        ErrorClass::Refused => REFUSED,
        ErrorClass::NotFound => NOT_FOUND,
        ErrorClass::Locked => LOCKED,
        ErrorClass::Key => KEY,
        _ => FAILURE,
    }
}

/// What the user can do about `e`, naming this binary's flags (the libraries' errors state
/// the cause only, since embedders and the daemon have no flags).
pub(crate) fn hint(e: &Error) -> Option<&'static str> {
    match e {
        Error::Key { source, .. } => match source.kind() {
            KeyErrorKind::MissingAuthKey => Some("pass --auth-key-file or set PGB_AUTH_KEY"),
            KeyErrorKind::MissingPassphrase => Some("set PGB_PASSPHRASE or pass --passphrase-file"),
            KeyErrorKind::MissingIdentity => {
                Some("pass --identity-file, --passphrase-file or set PGB_PASSPHRASE")
            }
            KeyErrorKind::Unauthenticated => Some("pass --allow-unauthenticated to accept it"),
            _ => None,
        },
        Error::BackupNotFound(_) => Some("run `pgb list` to see the backups"),
        _ => None,
    }
}
