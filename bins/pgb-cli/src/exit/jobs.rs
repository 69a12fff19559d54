//! The errors of `pgb_jobs` (keys, URLs, notifications, migrations, plans) as exit codes,
//! with the hints that name this binary's flags.

use super::*;

impl From<pgb_jobs::keys::KeySourceError> for Failure {
    /// Recipients beside a passphrase is a usage error, any other key error exit 9.
    fn from(e: pgb_jobs::keys::KeySourceError) -> Self {
        match e {
            pgb_jobs::keys::KeySourceError::RecipientsAndPassphrase => Self::usage(e.to_string()),
            e => Self::key(e.to_string()),
        }
    }
}

impl From<pgb_jobs::keys::SecretFileError> for Failure {
    fn from(e: pgb_jobs::keys::SecretFileError) -> Self {
        Self::key(e.to_string())
    }
}

impl From<pgb_jobs::RolePasswordsUnencrypted> for Failure {
    /// Named by this binary's flags: which ones encrypt.
    fn from(_: pgb_jobs::RolePasswordsUnencrypted) -> Self {
        Self::usage(
            "--with-role-passwords needs an encrypted backup: add --recipient, --recipients-file or --passphrase-file (or PGB_PASSPHRASE)",
        )
    }
}

impl From<pgb_jobs::GraceError> for Failure {
    /// Named by this binary's flag.
    fn from(e: pgb_jobs::GraceError) -> Self {
        Self::usage(format!("--older-than: {e}"))
    }
}

impl From<pgb_jobs::UrlError> for Failure {
    /// A database URL that is not one, or a password on the command line: a usage error.
    fn from(e: pgb_jobs::UrlError) -> Self {
        Self::usage(e.to_string())
    }
}

impl From<pgb_jobs::NotifyError> for Failure {
    /// A bad URL is a usage error (never echoing it); a client that cannot be built exit 1;
    /// a job's `[notify]` as the job's other values.
    fn from(e: pgb_jobs::NotifyError) -> Self {
        match e {
            e @ pgb_jobs::NotifyError::Url { .. } => Self::usage(e.to_string()),
            pgb_jobs::NotifyError::Job(e) => e.into(),
            e => Self::new(FAILURE, e.to_string()),
        }
    }
}

impl From<pgb_jobs::ProbeError> for Failure {
    /// Named by the flag that gave it.
    fn from(e: pgb_jobs::ProbeError) -> Self {
        let flag = match e {
            pgb_jobs::ProbeError::EmptyQuery => "--migrations-query",
            _ => "--migrations",
        };
        Self::usage(format!("{flag}: {e}"))
    }
}

impl From<pgb_jobs::ExpectationError> for Failure {
    /// A job's expected head that cannot be known is exit 13, before anything is restored.
    fn from(e: pgb_jobs::ExpectationError) -> Self {
        match e {
            pgb_jobs::ExpectationError::NothingExpected => Self::usage(
                "--allow-migration-mismatch goes with --expect-migration (or a job's expected_migration)",
            ),
            e => Self::new(MIGRATION, format!("{e}; nothing was restored")),
        }
    }
}

impl From<pgb_jobs::PlanError> for Failure {
    /// A job that cannot be planned: a bad value is exit 2, a missing or bad key 9, the
    /// repository as when opened by a flag.
    fn from(e: pgb_jobs::PlanError) -> Self {
        use pgb_jobs::PlanError;
        match e {
            PlanError::Open(o) => o.into(),
            PlanError::Config(c) => c.into(),
            e @ PlanError::Key { .. } => Self::key(e.to_string()),
            e => Self::usage(e.to_string()),
        }
    }
}
