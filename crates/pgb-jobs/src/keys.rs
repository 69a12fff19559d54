//! Where keys come from, as one rule for every caller: a job's keys ([`KeySources::for_job`],
//! what [`crate::JobPlan`], the drills and checks of a job read) and a command's key flags
//! (the binary fills the same fields from its arguments) resolve through the same methods.
//!
//! The rule, for each key:
//! - passphrase: `passphrase_file` (one trailing newline dropped), else the variable
//!   `passphrase_env` names, else `PGB_PASSPHRASE` (set but empty: refused as empty, never a
//!   silently unencrypted backup);
//! - authentication key: an `auth_key_file` the caller gave (a flag), else the variable
//!   `auth_key_env` names, else `PGB_AUTH_KEY`, else an `auth_key_file` of the config file
//!   (the environment layer is above the file's);
//! - age identities: `identity_files`, else `PGB_IDENTITY_FILE` (`:`-separated);
//! - recipients: `recipients` plus the lines of `recipients_file` (`#` comments skipped).
//!
//! Departure from "libraries read nothing": the files named here (by the job or the caller)
//! are read here, so that every caller reads them alike. The environment is only looked up
//! through the caller's [`EnvLookup`]. No error carries a secret, only paths and names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pgb_config::ResolvedJob;
use pgb_core::{AuthKey, Decryption, Encryption};
use pgb_open::EnvLookup;

/// Why a key cannot be had. `Display` names the file or variable, never the secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeySourceError {
    /// A key file cannot be read.
    #[error("cannot read the {what} file {}: {source}", path.display())]
    Unreadable {
        /// What the file holds (`passphrase`, `authentication key`, `identity`, ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A job names a variable that is not set (for a backup: never written unencrypted).
    #[error("{key} names the variable {var}, which is not set: export it, or change {key}")]
    Unset {
        /// The job's key (`passphrase_env`, `auth_key_env`).
        key: &'static str,
        /// The variable.
        var: String,
    },
    /// The recipients file lists nobody.
    #[error("the recipients file {} lists no recipient", path.display())]
    NoRecipient {
        /// The file.
        path: PathBuf,
    },
    /// Recipients and a passphrase at once (age cannot mix them): a usage error.
    #[error("choose recipients or a passphrase, not both (age cannot mix them)")]
    RecipientsAndPassphrase,
    /// An identity file that holds no usable identity.
    #[error("{}: {source}", path.display())]
    Identity {
        /// The file.
        path: PathBuf,
        /// Why.
        source: pgb_core::KeyError,
    },
    /// A recipient, passphrase or authentication key that cannot be used.
    #[error(transparent)]
    Key(#[from] pgb_core::KeyError),
}

/// Where a job's or a command's keys come from: names of files and variables only, never a
/// secret. Resolve with [`KeySources::encryption`], [`KeySources::decryption`],
/// [`KeySources::authentication`] or [`KeySources::auth_key`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeySources {
    /// age recipients (public keys).
    pub recipients: Vec<String>,
    /// A file of recipients, one a line.
    pub recipients_file: Option<PathBuf>,
    /// A file holding the passphrase.
    pub passphrase_file: Option<PathBuf>,
    /// The variable holding the passphrase (else `PGB_PASSPHRASE`).
    pub passphrase_env: Option<String>,
    /// Files of age identities (else `PGB_IDENTITY_FILE`).
    pub identity_files: Vec<PathBuf>,
    /// A file holding the authentication key.
    pub auth_key_file: Option<PathBuf>,
    /// `auth_key_file` came from a config file: it ranks below `PGB_AUTH_KEY`.
    pub auth_key_file_is_fallback: bool,
    /// The variable holding the authentication key (before `PGB_AUTH_KEY`).
    pub auth_key_env: Option<String>,
    /// A variable named above (`passphrase_env`, `auth_key_env`) that is not set is
    /// skipped instead of an error (the standard variable applies then).
    pub lenient: bool,
}

impl KeySources {
    /// No source named: only the standard variables apply.
    pub fn new() -> Self {
        Self::default()
    }

    /// The keys a job names (its `auth_key_file` ranks below `PGB_AUTH_KEY` unless it came
    /// from a flag). A variable the job names must be set.
    pub fn for_job(job: &ResolvedJob) -> Self {
        let e = &job.encryption;
        Self {
            recipients: e.recipients.clone(),
            recipients_file: e.recipients_file.clone(),
            passphrase_file: e.passphrase_file.clone(),
            passphrase_env: e.passphrase_env.clone(),
            identity_files: e.identity_file.iter().cloned().collect(),
            auth_key_file: e.auth_key_file.clone(),
            auth_key_file_is_fallback: !matches!(
                job.provenance.get("auth_key_file"),
                Some(pgb_config::Source::Flag)
            ),
            auth_key_env: e.auth_key_env.clone(),
            lenient: false,
        }
    }

    /// An authentication key file given by the caller (above every variable).
    #[must_use]
    pub fn with_auth_key_file(mut self, path: Option<&Path>) -> Self {
        self.auth_key_file = path.map(Path::to_path_buf);
        self.auth_key_file_is_fallback = false;
        self
    }

    /// Age identity files given by the caller (none: `PGB_IDENTITY_FILE`).
    #[must_use]
    pub fn with_identity_files(mut self, files: &[PathBuf]) -> Self {
        self.identity_files = files.to_vec();
        self
    }

    /// Unset variables named by the sources are skipped instead of refused.
    #[must_use]
    pub fn lenient(mut self) -> Self {
        self.lenient = true;
        self
    }

    fn named(
        &self,
        env: &dyn EnvLookup,
        key: &'static str,
        name: Option<&String>,
    ) -> Result<Option<String>, KeySourceError> {
        match name {
            None => Ok(None),
            Some(n) => match var(env, n) {
                Some(v) => Ok(Some(v)),
                None if self.lenient => Ok(None),
                None => Err(KeySourceError::Unset {
                    key,
                    var: n.clone(),
                }),
            },
        }
    }

    /// The passphrase, if any source gives one.
    ///
    /// # Errors
    /// [`KeySourceError`]: an unreadable file, an unset named variable.
    pub fn passphrase(&self, env: &dyn EnvLookup) -> Result<Option<String>, KeySourceError> {
        if let Some(path) = &self.passphrase_file {
            let p = read_secret(path, "passphrase")?;
            return Ok(Some(p.strip_suffix('\n').unwrap_or(&p).to_owned()));
        }
        let named = self.named(env, "passphrase_env", self.passphrase_env.as_ref())?;
        // Set but empty is a passphrase too (refused as empty): never silently unencrypted.
        Ok(named.or_else(|| env.get("PGB_PASSPHRASE")))
    }

    /// The authentication key's text (not parsed).
    fn auth_key_text(&self, env: &dyn EnvLookup) -> Result<Option<String>, KeySourceError> {
        let file = |p: &PathBuf| read_secret(p, "authentication key").map(Some);
        match &self.auth_key_file {
            Some(p) if !self.auth_key_file_is_fallback => return file(p),
            _ => {}
        }
        if let Some(k) = self.named(env, "auth_key_env", self.auth_key_env.as_ref())? {
            return Ok(Some(k));
        }
        match (env.get("PGB_AUTH_KEY"), &self.auth_key_file) {
            (Some(k), _) => Ok(Some(k)),
            (None, Some(p)) => file(p),
            (None, None) => Ok(None),
        }
    }

    /// The key that authenticates manifests and records.
    ///
    /// # Errors
    /// [`KeySourceError`]: an unreadable file, an unset named variable, not a key.
    pub fn auth_key(&self, env: &dyn EnvLookup) -> Result<Option<AuthKey>, KeySourceError> {
        Ok(self
            .auth_key_text(env)?
            .map(|t| t.parse::<AuthKey>())
            .transpose()?)
    }

    /// Encryption for a backup, validated completely before anything runs: recipients or a
    /// passphrase (never both), with the authentication key. `None`: no recipient and no
    /// passphrase (the authentication key is then not read).
    ///
    /// # Errors
    /// [`KeySourceError`].
    pub fn encryption(&self, env: &dyn EnvLookup) -> Result<Option<Encryption>, KeySourceError> {
        let mut recipients = self.recipients.clone();
        if let Some(path) = &self.recipients_file {
            let text = read_secret(path, "recipients")?;
            let before = recipients.len();
            recipients.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
            if recipients.len() == before {
                return Err(KeySourceError::NoRecipient { path: path.clone() });
            }
        }
        let enc = match (recipients.is_empty(), self.passphrase(env)?) {
            (false, Some(_)) => return Err(KeySourceError::RecipientsAndPassphrase),
            (false, None) => Encryption::to_recipients(&recipients)?,
            (true, Some(p)) => Encryption::with_passphrase(p)?,
            (true, None) => return Ok(None),
        };
        Ok(Some(match self.auth_key(env)? {
            Some(k) => enc.with_auth_key(k),
            None => enc,
        }))
    }

    /// The keys that authenticate manifests, for what only lists: the authentication key and
    /// the passphrase. With either, a manifest that does not authenticate is unusable.
    ///
    /// # Errors
    /// [`KeySourceError`].
    pub fn authentication(&self, env: &dyn EnvLookup) -> Result<Decryption, KeySourceError> {
        let mut keys = Decryption::none();
        if let Some(k) = self.auth_key(env)? {
            keys = keys.with_auth_key(k);
        }
        if let Some(p) = self.passphrase(env)? {
            keys = keys.with_passphrase(p)?;
        }
        Ok(keys)
    }

    /// The keys that read backups (and encrypted WAL): the identities, the passphrase, the
    /// authentication key.
    ///
    /// # Errors
    /// [`KeySourceError`].
    pub fn decryption(&self, env: &dyn EnvLookup) -> Result<Decryption, KeySourceError> {
        let mut d = self.identities(Decryption::none(), env)?;
        if let Some(p) = self.passphrase(env)? {
            d = d.with_passphrase(p)?;
        }
        Ok(match self.auth_key(env)? {
            Some(k) => d.with_auth_key(k),
            None => d,
        })
    }

    /// `keys` plus the age identities (`identity_files`, else `PGB_IDENTITY_FILE`).
    ///
    /// # Errors
    /// [`KeySourceError`]: an unreadable identity file, one with no identity.
    pub fn identities(
        &self,
        keys: Decryption,
        env: &dyn EnvLookup,
    ) -> Result<Decryption, KeySourceError> {
        let files = self.identity_files_or(env);
        files.iter().try_fold(keys, |keys, path| {
            let text = read_secret(path, "identity")?;
            keys.with_identity_file_contents(&text)
                .map_err(|source| KeySourceError::Identity {
                    path: path.clone(),
                    source,
                })
        })
    }

    /// The key files a `restore_command` (`pgb wal fetch`) is given: the identity files
    /// (else `PGB_IDENTITY_FILE`'s), `--auth-key-file`, `--passphrase-file`; and the
    /// secrets only the environment holds (`PGB_AUTH_KEY`, `PGB_PASSPHRASE` without a file),
    /// which the restored server's environment must provide: they are never written.
    pub fn wal_fetch(
        &self,
        cmd: pgb_core::physical::WalFetchCommand,
        env: &dyn EnvLookup,
    ) -> (pgb_core::physical::WalFetchCommand, Vec<&'static str>) {
        let ids = self.identity_files_or(env);
        let mut cmd = ids
            .iter()
            .fold(cmd, |c, f| c.with_key_file("--identity-file", f));
        let mut env_secrets = Vec::new();
        for (file, option, name) in [
            (&self.auth_key_file, "--auth-key-file", "PGB_AUTH_KEY"),
            (&self.passphrase_file, "--passphrase-file", "PGB_PASSPHRASE"),
        ] {
            match file {
                Some(f) => cmd = cmd.with_key_file(option, f),
                None if var(env, name).is_some() => env_secrets.push(name),
                None => {}
            }
        }
        (cmd, env_secrets)
    }

    /// The passphrase and authentication key these sources give, under the standard names
    /// `PGB_PASSPHRASE` and `PGB_AUTH_KEY`, for a caller that layers a job's keys under its
    /// own (the job's keys then read as if exported under the standard names). A named
    /// variable that is not set is left out when [`KeySources::lenient`].
    ///
    /// # Errors
    /// [`KeySourceError`]: an unreadable file, an unset named variable (not lenient).
    pub fn standard_vars(
        &self,
        env: &dyn EnvLookup,
    ) -> Result<BTreeMap<&'static str, String>, KeySourceError> {
        let mut vars = BTreeMap::new();
        if let Some(p) = self.passphrase(env)? {
            vars.insert("PGB_PASSPHRASE", p);
        }
        if let Some(k) = self.auth_key_text(env)? {
            vars.insert("PGB_AUTH_KEY", k.trim().to_owned());
        }
        Ok(vars)
    }
}

/// The environment `base` with a job's keys under the standard names
/// ([`KeySources::standard_vars`]): what every command with `--job` resolves with, so its
/// own key flags still win. Listing ([`EnvLookup::vars`]) gives `base`'s alone: the keys are
/// for pgb, never for the tools it runs.
pub struct KeyEnv<'a, E: EnvLookup + ?Sized> {
    base: &'a E,
    vars: BTreeMap<&'static str, String>,
}

impl<'a, E: EnvLookup + ?Sized> KeyEnv<'a, E> {
    /// `base` with the keys of `sources` over it.
    ///
    /// # Errors
    /// As [`KeySources::standard_vars`].
    pub fn new(base: &'a E, sources: &KeySources) -> Result<Self, KeySourceError> {
        let vars = sources.standard_vars(&|name: &str| base.get(name))?;
        Ok(Self { base, vars })
    }

    /// `base` alone.
    pub fn plain(base: &'a E) -> Self {
        Self {
            base,
            vars: BTreeMap::new(),
        }
    }
}

/// Names only: the values are secrets.
impl<E: EnvLookup + ?Sized> std::fmt::Debug for KeyEnv<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEnv")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<E: EnvLookup + ?Sized> EnvLookup for KeyEnv<'_, E> {
    fn get(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned().or_else(|| self.base.get(name))
    }

    fn vars(&self) -> Vec<(String, String)> {
        self.base.vars()
    }
}

use crate::host::var;

impl KeySources {
    /// The identity files given, else `PGB_IDENTITY_FILE`'s (`:`-separated).
    fn identity_files_or(&self, env: &dyn EnvLookup) -> Vec<PathBuf> {
        if self.identity_files.is_empty() {
            crate::host::paths_var(env, "PGB_IDENTITY_FILE")
        } else {
            self.identity_files.clone()
        }
    }
}

/// Reads a secret file; the error never includes its contents.
pub(crate) fn read_secret(path: &Path, what: &'static str) -> Result<String, KeySourceError> {
    std::fs::read_to_string(path).map_err(|source| KeySourceError::Unreadable {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Why a new key file was not written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretFileError {
    /// It exists (key files are never overwritten) or cannot be created.
    #[error("cannot create {}: {source} (existing key files are never overwritten)", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Created but not written completely.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Writes a new secret file (mode 0600, synced), refusing to overwrite one.
///
/// # Errors
/// [`SecretFileError`].
pub fn write_secret_file(path: &Path, contents: &str) -> Result<(), SecretFileError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| SecretFileError::Create {
            path: path.to_path_buf(),
            source,
        })?;
    f.write_all(contents.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|source| SecretFileError::Write {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const OTHER: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A caller's file beats `PGB_AUTH_KEY`; a config file's ranks below it.
    #[test]
    fn the_authentication_key_follows_one_rule() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(dir.path(), "auth", &format!("{KEY}\n"));
        let e = env(&[("PGB_AUTH_KEY", OTHER), ("SHOP_AUTH", KEY)]);
        let hex = |k: Option<AuthKey>| k.map(|k| k.to_hex());
        let flag = KeySources::new().with_auth_key_file(Some(&f));
        assert_eq!(hex(flag.auth_key(&e).unwrap()).as_deref(), Some(KEY));
        let mut job = KeySources::new();
        job.auth_key_file = Some(f.clone());
        job.auth_key_file_is_fallback = true;
        assert_eq!(hex(job.auth_key(&e).unwrap()).as_deref(), Some(OTHER));
        assert_eq!(hex(job.auth_key(&env(&[])).unwrap()).as_deref(), Some(KEY));
        job.auth_key_env = Some("SHOP_AUTH".to_owned());
        assert_eq!(hex(job.auth_key(&e).unwrap()).as_deref(), Some(KEY));
        let unset = job.auth_key(&env(&[])).unwrap_err();
        assert_eq!(
            unset.to_string(),
            "auth_key_env names the variable SHOP_AUTH, which is not set: export it, or change auth_key_env"
        );
        assert!(job.clone().lenient().auth_key(&env(&[])).unwrap().is_some());
        let bad = KeySources::new().auth_key(&env(&[("PGB_AUTH_KEY", "s3cret")]));
        assert!(!bad.unwrap_err().to_string().contains("s3cret"));
    }

    #[test]
    fn passphrase_and_recipients_are_validated_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = KeySources::new();
        s.passphrase_file = Some(file(dir.path(), "pass", "from-file\n"));
        assert_eq!(
            s.passphrase(&env(&[("PGB_PASSPHRASE", "env")]))
                .unwrap()
                .as_deref(),
            Some("from-file")
        );
        let mut named = KeySources::new();
        named.passphrase_env = Some("SHOP_PASSPHRASE".to_owned());
        let e = env(&[("SHOP_PASSPHRASE", "s3cret"), ("PGB_PASSPHRASE", "other")]);
        assert_eq!(named.passphrase(&e).unwrap().as_deref(), Some("s3cret"));
        let vars = named.standard_vars(&e).unwrap();
        assert_eq!(
            vars.get("PGB_PASSPHRASE").map(String::as_str),
            Some("s3cret")
        );
        let lenient = named.clone().lenient();
        let only_std = env(&[("PGB_PASSPHRASE", "other")]);
        assert_eq!(
            lenient.passphrase(&only_std).unwrap().as_deref(),
            Some("other")
        );
        assert!(matches!(
            named.passphrase(&only_std),
            Err(KeySourceError::Unset { .. })
        ));

        let mut both = KeySources::new();
        both.recipients = vec!["age1xyz".to_owned()];
        let e = env(&[("PGB_PASSPHRASE", "p")]);
        assert!(matches!(
            both.encryption(&e),
            Err(KeySourceError::RecipientsAndPassphrase)
        ));
        let mut empty = KeySources::new();
        empty.recipients_file = Some(file(dir.path(), "recipients", "# nobody\n\n"));
        let err = empty.encryption(&env(&[])).unwrap_err();
        assert!(err.to_string().contains("lists no recipient"), "{err}");
        assert!(KeySources::new().encryption(&env(&[])).unwrap().is_none());
        let empty_pass = KeySources::new().encryption(&env(&[("PGB_PASSPHRASE", "")]));
        assert!(
            matches!(empty_pass, Err(KeySourceError::Key(_))),
            "fails closed"
        );
        assert!(KeySources::new().encryption(&e).unwrap().is_some());
        let mut missing = KeySources::new();
        missing.identity_files = vec![dir.path().join("absent")];
        let err = missing.decryption(&env(&[])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read the identity file "),
            "{err}"
        );
    }

    #[test]
    fn a_job_names_its_sources_and_the_key_env_shows_them_under_the_standard_names() {
        let cfg = pgb_config::LoadedConfig::parse(
            "[jobs.shop]\nrepository = \"/r\"\npassphrase_env = \"SHOP_PASSPHRASE\"\n",
            Path::new("pgb.toml"),
        )
        .unwrap();
        let e = env(&[("SHOP_PASSPHRASE", "s3cret"), ("PATH", "/bin")]);
        let var = |k: &str| e.get(k).cloned();
        let environment = pgb_config::Environment {
            var: &var,
            is_executable: &pgb_config::is_executable,
        };
        let job = cfg
            .resolve("shop", &environment, &pgb_config::JobSettings::default())
            .unwrap();
        let s = KeySources::for_job(&job);
        assert_eq!(s.passphrase_env.as_deref(), Some("SHOP_PASSPHRASE"));
        let k = KeyEnv::new(&e, &s).unwrap();
        assert_eq!(k.get("PGB_PASSPHRASE").as_deref(), Some("s3cret"));
        assert_eq!(k.get("PATH").as_deref(), Some("/bin"));
        assert!(!k.vars().iter().any(|(n, _)| n == "PGB_PASSPHRASE"));
        assert!(!format!("{k:?}").contains("s3cret"));
    }

    #[test]
    fn a_secret_file_is_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        write_secret_file(&p, "secret\n").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let e = write_secret_file(&p, "other").unwrap_err();
        assert!(e.to_string().contains("never overwritten"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "secret\n");
    }

    /// `wal fetch` gets key files, never keys: flags first, else `PGB_IDENTITY_FILE`'s files;
    /// a secret only the environment holds is named for the server's environment.
    #[test]
    fn wal_fetch_gets_key_files_and_names_environment_secrets() {
        let cmd = pgb_core::physical::WalFetchCommand::new("/usr/bin/pgb", "/r");
        let e = env(&[
            ("PGB_IDENTITY_FILE", "/k/a.txt::/k/b.txt"),
            ("PGB_AUTH_KEY", KEY),
            ("PGB_PASSPHRASE", "pass"),
        ]);
        let (c, secrets) = KeySources::new().wal_fetch(cmd.clone(), &e);
        let line = c.line(7, Path::new("/data"));
        assert!(
            line.contains("--identity-file /k/a.txt --identity-file /k/b.txt"),
            "{line}"
        );
        assert!(!line.contains(KEY) && !line.contains("pass"), "{line}");
        assert_eq!(secrets, ["PGB_AUTH_KEY", "PGB_PASSPHRASE"]);
        let mut s = KeySources::new()
            .with_identity_files(&["/f/id.txt".into()])
            .with_auth_key_file(Some(Path::new("/f/auth")));
        s.passphrase_file = Some("/f/pass".into());
        let (c, secrets) = s.wal_fetch(cmd, &e);
        let line = c.line(7, Path::new("/data"));
        assert!(!line.contains("/k/a.txt"), "the flags win: {line}");
        for part in [
            "--identity-file /f/id.txt",
            "--auth-key-file /f/auth",
            "--passphrase-file /f/pass",
        ] {
            assert!(line.contains(part), "{part}: {line}");
        }
        assert!(secrets.is_empty());
    }
}
