//! Key flags → [`KeySources`] (the library's one rule, [`pgb_jobs::keys`]); the errors'
//! exit codes are `exit.rs`'s. A passphrase never comes from argv.

use std::path::{Path, PathBuf};

use pgb::{AuthKey, Decryption, Encryption};
use pgb_jobs::keys::KeySources;

use super::Env;
use crate::args::{EncryptArgs, KeyArgs};
use crate::exit::Failure;

pub(crate) const SECRET_FLAG: &str = "refusing --passphrase on the command line (visible in the process list): use PGB_PASSPHRASE or --passphrase-file";

/// The manifest authentication key: `--auth-key-file`, else `PGB_AUTH_KEY`.
pub(crate) fn auth_key(file: Option<&Path>, env: Env<'_>) -> Result<Option<AuthKey>, Failure> {
    Ok(KeySources::new().with_auth_key_file(file).auth_key(env)?)
}

/// What authenticates manifests for `list`, `prune`, `gc`, `check`: the authentication key
/// and `PGB_PASSPHRASE`.
pub(crate) fn authentication(file: Option<&Path>, env: Env<'_>) -> Result<Decryption, Failure> {
    Ok(KeySources::new()
        .with_auth_key_file(file)
        .authentication(env)?)
}

/// [`authentication`] plus the age identities that decrypt archived WAL.
pub(crate) fn wal_reading(
    file: Option<&Path>,
    identities: &[PathBuf],
    env: Env<'_>,
) -> Result<Decryption, Failure> {
    let s = KeySources::new()
        .with_auth_key_file(file)
        .with_identity_files(identities);
    Ok(s.identities(s.authentication(env)?, env)?)
}

/// Encryption for a backup, validated completely before anything runs.
pub(crate) fn encryption(a: &EncryptArgs, env: Env<'_>) -> Result<Option<Encryption>, Failure> {
    if a.passphrase.is_some() {
        return Err(Failure::usage(SECRET_FLAG));
    }
    match a.sources().encryption(env)? {
        None if a.auth_key_file.is_some() => Err(Failure::usage(
            "--auth-key-file authenticates encrypted backups: add --recipient or a passphrase",
        )),
        enc => Ok(enc),
    }
}

/// Keys for reading encrypted backups: identities, passphrase, authentication key.
pub(crate) fn decryption(a: &KeyArgs, env: Env<'_>) -> Result<Decryption, Failure> {
    if a.passphrase.is_some() {
        return Err(Failure::usage(SECRET_FLAG));
    }
    Ok(a.sources().decryption(env)?)
}
