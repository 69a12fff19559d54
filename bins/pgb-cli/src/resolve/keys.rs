//! Keys and secrets: from files and the environment, never from argv; errors never include a
//! secret.

use std::path::Path;

use pgb::{AuthKey, Decryption, Encryption};

use super::Env;
use crate::args::{EncryptArgs, KeyArgs};
use crate::exit::Failure;

pub(crate) const SECRET_FLAG: &str = "refusing --passphrase on the command line (visible in the process list): use PGB_PASSPHRASE or --passphrase-file";

/// Reads a secret from a file; errors never include its contents.
fn read_secret(path: &Path, what: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| {
        Failure::key(format!(
            "cannot read the {what} file {}: {e}",
            path.display()
        ))
    })
}

/// Writes a new secret file (0600), refusing to overwrite one.
pub(crate) fn write_secret_file(path: &Path, contents: &str) -> Result<(), Failure> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            Failure::key(format!(
                "cannot create {}: {e} (existing key files are never overwritten)",
                path.display()
            ))
        })?;
    f.write_all(contents.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Failure::key(format!("cannot write {}: {e}", path.display())))
}

/// The manifest authentication key: `--auth-key-file`, else `PGB_AUTH_KEY`.
pub(crate) fn auth_key(file: Option<&Path>, env: Env<'_>) -> Result<Option<AuthKey>, Failure> {
    let text = match (file, env.get("PGB_AUTH_KEY")) {
        (Some(path), _) => read_secret(path, "authentication key")?,
        (None, Some(v)) => v,
        (None, None) => return Ok(None),
    };
    text.parse()
        .map(Some)
        .map_err(|e: pgb::KeyError| Failure::key(e.to_string()))
}

/// The keys that authenticate manifests, for commands that only list (`list`, `prune`, `gc`,
/// `check`): the authentication key (`--auth-key-file`, else `PGB_AUTH_KEY`) and the
/// passphrase (`PGB_PASSPHRASE`). With either, a manifest that does not authenticate is
/// unusable: never counted, never `latest`.
pub(crate) fn authentication(file: Option<&Path>, env: Env<'_>) -> Result<Decryption, Failure> {
    let mut keys = Decryption::none();
    if let Some(k) = auth_key(file, env)? {
        keys = keys.with_auth_key(k);
    }
    if let Some(p) = passphrase(None, env)? {
        keys = keys
            .with_passphrase(p)
            .map_err(|e| Failure::key(e.to_string()))?;
    }
    Ok(keys)
}

/// The keys of a listing command that also reads archived WAL records (`list`'s window,
/// `check --max-rpo`): [`authentication`] plus the age identities (`--identity-file`, else
/// `PGB_IDENTITY_FILE`) that decrypt encrypted WAL.
pub(crate) fn wal_reading(
    file: Option<&Path>,
    identities: &[std::path::PathBuf],
    env: Env<'_>,
) -> Result<Decryption, Failure> {
    let mut keys = authentication(file, env)?;
    let files = if identities.is_empty() {
        super::paths(env, "PGB_IDENTITY_FILE")
    } else {
        identities.to_vec()
    };
    for path in &files {
        let text = read_secret(path, "identity")?;
        keys = keys
            .with_identity_file_contents(&text)
            .map_err(|e| Failure::key(format!("{}: {e}", path.display())))?;
    }
    Ok(keys)
}

/// The passphrase: `--passphrase-file` (one trailing newline dropped), else `PGB_PASSPHRASE`.
fn passphrase(file: Option<&Path>, env: Env<'_>) -> Result<Option<String>, Failure> {
    match (file, env.get("PGB_PASSPHRASE")) {
        (Some(path), _) => {
            let p = read_secret(path, "passphrase")?;
            Ok(Some(p.strip_suffix('\n').unwrap_or(&p).to_owned()))
        }
        (None, v) => Ok(v),
    }
}

/// Encryption for a backup, validated completely before anything runs.
pub(crate) fn encryption(a: &EncryptArgs, env: Env<'_>) -> Result<Option<Encryption>, Failure> {
    if a.passphrase.is_some() {
        return Err(Failure::usage(SECRET_FLAG));
    }
    let mut recipients = a.recipient.clone();
    if let Some(path) = &a.recipients_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::key(format!(
                "cannot read the recipients file {}: {e}",
                path.display()
            ))
        })?;
        let before = recipients.len();
        recipients.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
        if recipients.len() == before {
            return Err(Failure::key(format!(
                "the recipients file {} lists no recipient",
                path.display()
            )));
        }
    }
    let enc = match (
        recipients.is_empty(),
        passphrase(a.passphrase_file.as_deref(), env)?,
    ) {
        (false, Some(_)) => {
            return Err(Failure::usage(
                "choose recipients or a passphrase, not both (age cannot mix them)",
            ));
        }
        (false, None) => Encryption::to_recipients(&recipients),
        (true, Some(p)) => Encryption::with_passphrase(p),
        (true, None) if a.auth_key_file.is_some() => {
            return Err(Failure::usage(
                "--auth-key-file authenticates encrypted backups: add --recipient or a passphrase",
            ));
        }
        (true, None) => return Ok(None),
    }
    .map_err(|e| Failure::key(e.to_string()))?;
    Ok(Some(match auth_key(a.auth_key_file.as_deref(), env)? {
        Some(k) => enc.with_auth_key(k),
        None => enc,
    }))
}

/// Keys for reading encrypted backups: `--identity-file` (else `PGB_IDENTITY_FILE`), the
/// passphrase, the authentication key.
pub(crate) fn decryption(a: &KeyArgs, env: Env<'_>) -> Result<Decryption, Failure> {
    if a.passphrase.is_some() {
        return Err(Failure::usage(SECRET_FLAG));
    }
    let files = if a.identity_file.is_empty() {
        super::paths(env, "PGB_IDENTITY_FILE")
    } else {
        a.identity_file.clone()
    };
    let mut d = Decryption::none();
    for path in &files {
        let text = read_secret(path, "identity")?;
        d = d
            .with_identity_file_contents(&text)
            .map_err(|e| Failure::key(format!("{}: {e}", path.display())))?;
    }
    if let Some(p) = passphrase(a.passphrase_file.as_deref(), env)? {
        d = d
            .with_passphrase(p)
            .map_err(|e| Failure::key(e.to_string()))?;
    }
    if let Some(k) = auth_key(a.auth_key_file.as_deref(), env)? {
        d = d.with_auth_key(k);
    }
    Ok(d)
}
