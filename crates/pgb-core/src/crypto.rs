//! Client-side encryption (age) and manifest authentication (HMAC-SHA256).
//!
//! Encryption runs in the pipeline after compression, so stored objects are standard age files
//! (`age -d` decrypts them). age has no sender authentication: anyone holding a recipient's
//! *public* key can produce a valid age file. The manifest is therefore authenticated with an
//! HMAC whose key an attacker with write access to the bucket does not have: derived from the
//! passphrase (scrypt) in passphrase mode, or an explicit authentication key in either mode.
//! See docs/security.md for the threat model.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;
use std::sync::Arc;

use age::secrecy::{ExposeSecret, SecretString};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::codec::{EncodeStage, OuterDecode, OuterStage};

/// Why keys or encryption settings are unusable. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct KeyError {
    kind: KeyErrorKind,
    message: String,
}

/// What is wrong with the keys, for callers that act on it (a CLI names its flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyErrorKind {
    /// A key, recipient or setting is malformed or empty.
    Invalid,
    /// The backup's manifest is authenticated with an authentication key, and none was given.
    MissingAuthKey,
    /// The backup is encrypted with a passphrase, and none was given.
    MissingPassphrase,
    /// The backup is encrypted, and no identity or passphrase was given.
    MissingIdentity,
    /// The keys given do not open the backup.
    WrongKey,
    /// The backup is not authenticated although keys expecting authentication were given.
    Unauthenticated,
    /// Something else (no randomness, an unsupported scheme).
    Other,
}

impl KeyError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Self::of(KeyErrorKind::Invalid, msg)
    }

    pub(crate) fn of(kind: KeyErrorKind, msg: impl Into<String>) -> Self {
        Self {
            kind,
            message: msg.into(),
        }
    }

    /// What is wrong.
    pub fn kind(&self) -> KeyErrorKind {
        self.kind
    }
}

/// A 32-byte secret that authenticates manifests. Written as 64 hex characters.
#[derive(Clone)]
pub struct AuthKey([u8; 32]);

impl AuthKey {
    /// A new random key.
    ///
    /// # Errors
    /// If the OS random number generator fails.
    pub fn generate() -> Result<Self, KeyError> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k)
            .map_err(|e| KeyError::of(KeyErrorKind::Other, format!("no OS randomness: {e}")))?;
        Ok(Self(k))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as 64 hex characters (for writing a key file).
    pub fn to_hex(&self) -> String {
        crate::codec::hex(&self.0)
    }
}

impl FromStr for AuthKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || {
            KeyError::new(
                "the authentication key must be 64 hex characters (pgb key generate writes one)",
            )
        };
        if s.len() != 64 {
            return Err(bad());
        }
        let mut k = [0u8; 32];
        for (i, byte) in k.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(k))
    }
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthKey(***)")
    }
}

/// What the manifest records about encryption (public information only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EncryptionInfo {
    /// `age-x25519` or `age-scrypt`.
    pub scheme: String,
    /// The X25519 recipients (public keys) the data was encrypted to.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// How the manifest is authenticated: `passphrase` (scrypt-derived key), `auth-key`, or
    /// `none` (recipients without an authentication key).
    pub authentication: String,
}

#[derive(Clone)]
enum Mode {
    Recipients(Vec<age::x25519::Recipient>),
    Passphrase(SecretString),
}

/// Encryption settings for backups. Construction validates everything, so a backup fails
/// closed before pg_dump starts.
#[derive(Clone)]
pub struct Encryption {
    mode: Mode,
    auth_key: Option<AuthKey>,
}

impl fmt::Debug for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.mode {
            Mode::Recipients(r) => format!("recipients({})", r.len()),
            Mode::Passphrase(_) => "passphrase(***)".to_owned(),
        };
        f.debug_struct("Encryption")
            .field("mode", &mode)
            .field("auth_key", &self.auth_key.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Encryption {
    /// Encrypts to X25519 recipients (`age1...`), e.g. an operations key and an offline escrow
    /// key.
    ///
    /// # Errors
    /// No recipient, or one that is not a valid `age1...` public key.
    pub fn to_recipients<S: AsRef<str>>(
        recipients: impl IntoIterator<Item = S>,
    ) -> Result<Self, KeyError> {
        let mut parsed = Vec::new();
        for (n, r) in recipients.into_iter().enumerate() {
            let r = r.as_ref().trim();
            // Never echo the value: a secret key pasted by mistake must not reach the logs.
            parsed.push(age::x25519::Recipient::from_str(r).map_err(|_| {
                let hint = if r.starts_with("AGE-SECRET-KEY-") {
                    "it is a secret key: pass its public key (age1...), and keep the secret key off the command line"
                } else {
                    "expected an X25519 public key starting with age1"
                };
                KeyError::new(format!("recipient #{} is not a valid age recipient: {hint}", n + 1))
            })?);
        }
        if parsed.is_empty() {
            return Err(KeyError::new("encryption requested but no recipient given"));
        }
        Ok(Self {
            mode: Mode::Recipients(parsed),
            auth_key: None,
        })
    }

    /// Encrypts with a passphrase (age's scrypt recipient); the manifest is authenticated with
    /// a key derived from it.
    ///
    /// # Errors
    /// An empty (or whitespace-only) passphrase.
    pub fn with_passphrase(passphrase: String) -> Result<Self, KeyError> {
        if passphrase.trim().is_empty() {
            return Err(KeyError::new("the encryption passphrase is empty"));
        }
        Ok(Self {
            mode: Mode::Passphrase(SecretString::from(passphrase)),
            auth_key: None,
        })
    }

    /// Authenticates manifests with this key (recommended with recipients).
    pub fn with_auth_key(mut self, key: AuthKey) -> Self {
        self.auth_key = Some(key);
        self
    }

    /// Whether this encrypts with a passphrase (age scrypt: a key derivation per object).
    pub(crate) fn is_passphrase(&self) -> bool {
        matches!(self.mode, Mode::Passphrase(_))
    }

    /// The explicit authentication key, if any.
    pub(crate) fn auth_key(&self) -> Option<&AuthKey> {
        self.auth_key.as_ref()
    }

    pub(crate) fn info(&self) -> EncryptionInfo {
        let (scheme, recipients) = match &self.mode {
            Mode::Recipients(r) => ("age-x25519", r.iter().map(ToString::to_string).collect()),
            Mode::Passphrase(_) => ("age-scrypt", Vec::new()),
        };
        let authentication = match (&self.auth_key, &self.mode) {
            (Some(_), _) => "auth-key",
            (None, Mode::Passphrase(_)) => "passphrase",
            (None, Mode::Recipients(_)) => "none",
        };
        EncryptionInfo {
            scheme: scheme.to_owned(),
            recipients,
            authentication: authentication.to_owned(),
        }
    }

    pub(crate) fn mac_key(&self, salt: &str) -> Result<Option<[u8; 32]>, KeyError> {
        match (&self.auth_key, &self.mode) {
            (Some(k), _) => Ok(Some(k.0)),
            (None, Mode::Passphrase(p)) => derive_from_passphrase(p, salt).map(Some),
            (None, Mode::Recipients(_)) => Ok(None),
        }
    }

    /// The pipeline stage that encrypts compressed bytes.
    pub(crate) fn stage(&self) -> OuterStage {
        let mode = self.mode.clone();
        Box::new(move |inner: Box<dyn EncodeStage>| {
            let encryptor = match &mode {
                Mode::Recipients(rs) => {
                    age::Encryptor::with_recipients(rs.iter().map(|r| r as &dyn age::Recipient))
                        .map_err(|e| io::Error::other(format!("age: {e}")))?
                }
                Mode::Passphrase(p) => age::Encryptor::with_user_passphrase(p.clone()),
            };
            let w = encryptor.wrap_output(inner)?;
            Ok(Box::new(AgeStage(w)) as Box<dyn EncodeStage>)
        })
    }
}

struct AgeStage(age::stream::StreamWriter<Box<dyn EncodeStage>>);

impl io::Write for AgeStage {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl EncodeStage for AgeStage {
    fn finish_stage(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.finish_stage()
    }
}

fn derive_from_passphrase(p: &SecretString, salt: &str) -> Result<[u8; 32], KeyError> {
    // log2(N) = 15: ~100 ms, comparable to age's own scrypt cost, so the MAC is no cheaper an
    // oracle for guessing the passphrase than the age header already is.
    let params = scrypt::Params::new(15, 8, 1, 32).map_err(|e| KeyError::new(e.to_string()))?;
    let mut out = [0u8; 32];
    let salt = format!("pgb manifest authentication v1 {salt}");
    scrypt::scrypt(
        p.expose_secret().as_bytes(),
        salt.as_bytes(),
        &params,
        &mut out,
    )
    .map_err(|e| KeyError::new(e.to_string()))?;
    Ok(out)
}

/// Keys for reading encrypted backups: identity files and/or a passphrase, and the
/// authentication key if backups were written with one.
#[derive(Default)]
pub struct Decryption {
    identities: Vec<Arc<dyn age::Identity + Send + Sync>>,
    passphrase: Option<SecretString>,
    auth_key: Option<AuthKey>,
}

impl fmt::Debug for Decryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decryption")
            .field("identities", &self.identities.len())
            .field("passphrase", &self.passphrase.as_ref().map(|_| "***"))
            .field("auth_key", &self.auth_key.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Decryption {
    /// No keys (unencrypted backups only).
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds the identities of an age identity file's contents (`AGE-SECRET-KEY-1...` lines).
    ///
    /// # Errors
    /// Unparseable contents or no identity in them.
    pub fn with_identity_file_contents(mut self, contents: &str) -> Result<Self, KeyError> {
        let file = age::IdentityFile::from_buffer(contents.as_bytes())
            .map_err(|_| KeyError::new("the identity file is not an age identity file"))?;
        let ids = file
            .into_identities()
            .map_err(|_| KeyError::new("the identity file holds an unsupported identity"))?;
        if ids.is_empty() {
            return Err(KeyError::new("the identity file holds no identity"));
        }
        self.identities.extend(ids.into_iter().map(Arc::from));
        Ok(self)
    }

    /// Adds a passphrase.
    ///
    /// # Errors
    /// An empty passphrase.
    pub fn with_passphrase(mut self, passphrase: String) -> Result<Self, KeyError> {
        if passphrase.trim().is_empty() {
            return Err(KeyError::new("the passphrase is empty"));
        }
        self.passphrase = Some(SecretString::from(passphrase));
        Ok(self)
    }

    /// Adds the authentication key.
    pub fn with_auth_key(mut self, key: AuthKey) -> Self {
        self.auth_key = Some(key);
        self
    }

    /// Whether any decryption key was given.
    pub fn has_keys(&self) -> bool {
        !self.identities.is_empty() || self.passphrase.is_some()
    }

    /// The authentication key, if one was given.
    pub(crate) fn auth_key(&self) -> Option<&AuthKey> {
        self.auth_key.as_ref()
    }

    /// Whether the caller gave a secret that makes it expect authenticated manifests.
    pub(crate) fn expects_authentication(&self) -> bool {
        self.passphrase.is_some() || self.auth_key.is_some()
    }

    pub(crate) fn mac_key(
        &self,
        info: &EncryptionInfo,
        salt: &str,
    ) -> Result<Option<[u8; 32]>, KeyError> {
        match info.authentication.as_str() {
            "auth-key" => match &self.auth_key {
                Some(k) => Ok(Some(k.0)),
                None => Err(KeyError::of(
                    KeyErrorKind::MissingAuthKey,
                    "this backup's manifest is authenticated with an authentication key, and none was given",
                )),
            },
            "passphrase" => match &self.passphrase {
                Some(p) => derive_from_passphrase(p, salt).map(Some),
                None => Err(KeyError::of(
                    KeyErrorKind::MissingPassphrase,
                    "this backup is encrypted with a passphrase, and none was given",
                )),
            },
            "none" => Ok(None),
            other => Err(KeyError::of(
                KeyErrorKind::Other,
                format!("unknown manifest authentication {other:?}; a newer pgb wrote it"),
            )),
        }
    }

    /// Checks that these keys open an age header (the first bytes of an object).
    pub(crate) fn check_header(&self, header: &[u8]) -> Result<(), KeyError> {
        if !self.has_keys() {
            return Err(KeyError::of(
                KeyErrorKind::MissingIdentity,
                "this backup is encrypted, and no identity or passphrase was given",
            ));
        }
        let d = age::Decryptor::new(header)
            .map_err(|e| KeyError::new(format!("not an age file: {e}")))?;
        with_identities(&self.identities, self.passphrase.as_ref(), |ids| {
            d.decrypt(ids).map(|_| ())
        })
        .map_err(describe_decrypt_error)
    }

    /// The pipeline stage that decrypts stored bytes, owning (shared) copies of the keys.
    pub(crate) fn stage(&self) -> OuterDecode {
        let identities = self.identities.clone();
        let passphrase = self.passphrase.clone();
        Box::new(move |input: Box<dyn Read + Send>| {
            let d = age::Decryptor::new(input).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("not an age file: {e}"))
            })?;
            let r = with_identities(&identities, passphrase.as_ref(), |ids| d.decrypt(ids))
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        describe_decrypt_error(e).to_string(),
                    )
                })?;
            Ok(Box::new(r) as Box<dyn Read + Send>)
        })
    }
}

/// Runs `f` with every identity: those from files, then the passphrase's.
fn with_identities<T>(
    identities: &[Arc<dyn age::Identity + Send + Sync>],
    passphrase: Option<&SecretString>,
    f: impl FnOnce(&mut dyn Iterator<Item = &dyn age::Identity>) -> T,
) -> T {
    let scrypt = passphrase.map(|p| {
        let mut id = age::scrypt::Identity::new(p.clone());
        // Refuse absurd work factors: a hostile header could make us spin for hours.
        id.set_max_work_factor(22);
        id
    });
    let mut all = identities
        .iter()
        .map(|i| i.as_ref() as &dyn age::Identity)
        .chain(scrypt.iter().map(|i| i as &dyn age::Identity));
    f(&mut all)
}

fn describe_decrypt_error(e: age::DecryptError) -> KeyError {
    match e {
        age::DecryptError::NoMatchingKeys => KeyError::of(
            KeyErrorKind::WrongKey,
            "no identity matched: wrong identity file or key for this backup",
        ),
        age::DecryptError::DecryptionFailed => KeyError::of(
            KeyErrorKind::WrongKey,
            "decryption failed: wrong passphrase, or the data is corrupt",
        ),
        age::DecryptError::ExcessiveWork { required, target } => KeyError::new(format!(
            "the backup's scrypt work factor ({required}) exceeds the limit ({target}); refusing"
        )),
        other => KeyError::of(KeyErrorKind::Other, format!("cannot decrypt: {other}")),
    }
}

/// HMAC-SHA256 of `bytes` as hex.
pub(crate) fn mac_hex(key: &[u8; 32], bytes: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    m.update(bytes);
    crate::codec::hex(&m.finalize().into_bytes())
}

/// Constant-time check of an HMAC-SHA256 given as hex.
pub(crate) fn mac_verify(key: &[u8; 32], bytes: &[u8], expected_hex: &str) -> bool {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    m.update(bytes);
    let Some(expected) = unhex(expected_hex) else {
        return false;
    };
    m.verify_slice(&expected).is_ok()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// A new age X25519 identity: the contents of an identity file (secret) and its recipient
/// (public key, `age1...`).
pub fn generate_identity() -> (String, String) {
    let id = age::x25519::Identity::generate();
    let recipient = id.to_public().to_string();
    let file = format!(
        "# created by pgb key generate\n# public key: {recipient}\n{}\n",
        id.to_string().expose_secret()
    );
    (file, recipient)
}
