//! What a command or a job takes from its host, one rule each, for a configured job
//! ([`crate::JobPlan`]) and for a command run from flags alone: the config file's job
//! resolved with the environment layer, the database and repository URLs with their
//! fallbacks, the repository opened with its storage limits, PostgreSQL tools, the spool
//! directory and the lock holder. A value the caller was given (a flag) comes first; the
//! environment ([`EnvLookup`]) and then the built-in defaults ([`pgb_config::defaults`])
//! fill the rest.

use std::path::{Path, PathBuf};

use pgb_config::{
    ConfigError, Environment, JobSettings, LoadedConfig, ResolvedJob, WholeServer, defaults,
};
use pgb_core::{Holder, Repository};
use pgb_open::EnvLookup;
use pgb_postgres::{
    ConnConfig, DumpOptions, InheritedEnv, PgArchiveCheck, PgCluster, PgDumpDirectory, ToolLocator,
};

/// The value of `name`, if set and not empty.
pub(crate) fn var(env: &dyn EnvLookup, name: &str) -> Option<String> {
    env.get(name).filter(|v| !v.is_empty())
}

/// The `:`-separated paths of variable `name` (`PGB_PG_BIN_DIR`, `PGB_IDENTITY_FILE`).
pub(crate) fn paths_var(env: &dyn EnvLookup, name: &str) -> Vec<PathBuf> {
    var(env, name)
        .map(|v| {
            v.split(':')
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Resolves job `name` of `config` with the environment layer of `env` (`PGB_*`) and
/// `flags` as the top layer: defaults < file < environment < flags, with provenance.
///
/// # Errors
/// As [`LoadedConfig::resolve`].
pub fn resolve_job(
    config: &LoadedConfig,
    name: &str,
    env: &dyn EnvLookup,
    flags: &JobSettings,
) -> Result<ResolvedJob, ConfigError> {
    let var = |k: &str| env.get(k);
    let environment = Environment {
        var: &var,
        is_executable: &pgb_config::is_executable,
    };
    config.resolve(name, &environment, flags)
}

/// Resolves job `name`, or every job of `config` when `None`, with the environment layer
/// and no flags.
///
/// # Errors
/// As [`LoadedConfig::resolve`]: the first invalid job.
pub fn resolve_jobs(
    config: &LoadedConfig,
    name: Option<&str>,
    env: &dyn EnvLookup,
) -> Result<Vec<ResolvedJob>, ConfigError> {
    let names: Vec<&str> = match name {
        Some(n) => vec![n],
        None => config.job_names().collect(),
    };
    names
        .into_iter()
        .map(|n| resolve_job(config, n, env, &JobSettings::default()))
        .collect()
}

/// The database URL: `given` (a flag or a job's `database`), else `DATABASE_URL`, else
/// libpq's `PG*` variables ([`defaults::DB`]).
pub fn database_url(given: Option<&str>, env: &dyn EnvLookup) -> String {
    given
        .map(str::to_owned)
        .or_else(|| var(env, "DATABASE_URL"))
        .unwrap_or_else(|| defaults::DB.to_owned())
}

/// Why a database URL cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Not a `postgres://` URL.
    #[error(transparent)]
    Invalid(#[from] pgb_postgres::InvalidUrl),
    /// A password in a URL given on the command line, where every user sees it (`ps`).
    #[error(
        "refusing a password on the command line (visible in the process list): put it in PGPASSWORD or a PGPASSFILE, or pass the URL in DATABASE_URL"
    )]
    PasswordInArgv,
}

/// Parses a database URL, the workspace's one rule for it: a URL from the command line
/// (`from_argv`) may not carry a password; one from the environment or a file may.
///
/// # Errors
/// [`UrlError`].
pub fn connection(url: &str, from_argv: bool) -> Result<ConnConfig, UrlError> {
    let conn = ConnConfig::parse(url)?;
    if from_argv && conn.has_password() {
        return Err(UrlError::PasswordInArgv);
    }
    Ok(conn)
}

/// The database to back up: the command line's URL `argv` (no password), else
/// [`database_url`]'s fallbacks.
///
/// # Errors
/// [`UrlError`].
pub fn database(argv: Option<&str>, env: &dyn EnvLookup) -> Result<ConnConfig, UrlError> {
    match argv {
        Some(url) => connection(url, true),
        None => connection(&database_url(None, env), false),
    }
}

/// The repository URL: `given` (a flag or a job's `repository`), else `PGB_REPO`, else
/// [`defaults::REPO`].
pub fn repository_url(given: Option<&str>, env: &dyn EnvLookup) -> String {
    given
        .map(str::to_owned)
        .or_else(|| var(env, "PGB_REPO"))
        .unwrap_or_else(|| defaults::REPO.to_owned())
}

/// Opens the repository at `url` with the object-store limits `storage` (unset ones:
/// `PGB_STORAGE_*`, else the storage's defaults). `create`: a local directory that does not
/// exist is created (as a backup does); otherwise it is an error, so a mistyped URL is never
/// taken for an empty repository.
///
/// # Errors
/// [`pgb_open::OpenError`].
pub fn open_repository(
    url: &str,
    storage: &pgb_config::StorageNetwork,
    env: &dyn EnvLookup,
    create: bool,
) -> Result<Repository, pgb_open::OpenError> {
    let o = crate::storage_options(storage).with_create(create);
    let repo = pgb_open::open_repository_with(url, env, &o)?;
    tracing::debug!(repo = %pgb_open::redact_url(url), create, "repository opened");
    Ok(repo)
}

/// Where PostgreSQL tools are searched: `bin_dirs` (a `--pg-bin-dir`), else
/// `PGB_PG_BIN_DIR` (`:`-separated), then the system directories, then `PATH`. The tools
/// inherit the libpq, locale and path variables of `env` ([`EnvLookup::vars`]) and nothing
/// else.
pub fn tools_in(bin_dirs: &[PathBuf], env: &dyn EnvLookup) -> ToolLocator {
    let dirs = if bin_dirs.is_empty() {
        paths_var(env, "PGB_PG_BIN_DIR")
    } else {
        bin_dirs.to_vec()
    };
    let locator = ToolLocator::new()
        .with_path(env.get("PATH").map(Into::into))
        .with_inherited_env(InheritedEnv::new(env.vars()));
    dirs.into_iter().fold(locator, ToolLocator::with_bin_dir)
}

/// The temporary directory: `TMPDIR`, else [`defaults::TMPDIR`].
pub fn temp_dir(env: &dyn EnvLookup) -> PathBuf {
    var(env, "TMPDIR").map_or_else(|| defaults::TMPDIR.into(), PathBuf::from)
}

/// Where dumps and tables of contents are spooled: `given` (a flag or a job's
/// `spool_dir`), else `PGB_SPOOL_DIR`, else [`temp_dir`].
pub fn spool_dir(given: Option<&Path>, env: &dyn EnvLookup) -> PathBuf {
    given
        .map(Path::to_path_buf)
        .or_else(|| var(env, "PGB_SPOOL_DIR").map(PathBuf::from))
        .unwrap_or_else(|| temp_dir(env))
}

/// The archive checker of a verify (no connection): `tools`, spooling where dumps spool.
pub fn archive_checker(tools: ToolLocator, env: &dyn EnvLookup) -> PgArchiveCheck {
    PgArchiveCheck::new(tools).with_spool_dir(spool_dir(None, env))
}

/// A new backup's options: `compression` (as the key `compression` or `--compression`
/// writes it), the labels and the encryption, and a spill file of
/// [`pgb_core::DEFAULT_SPILL_LIMIT`] in `spool` (where dumps spool: [`spool_dir`]) for the
/// input compression has not taken yet: one rule for a job and for flags.
///
/// # Errors
/// A compression that is not one.
pub fn backup_options(
    compression: &str,
    labels: &[String],
    encryption: Option<pgb_core::Encryption>,
    spool: &Path,
) -> Result<pgb_core::BackupOptions, pgb_core::InvalidCompression> {
    let compression: pgb_core::Compression = compression.parse()?;
    let options = labels
        .iter()
        .fold(pgb_core::BackupOptions::default(), |o, l| {
            o.with_label(l.clone())
        })
        .with_compression(compression)
        .with_spill(Some(pgb_core::SpillOptions::new(
            spool,
            pgb_core::DEFAULT_SPILL_LIMIT,
        )));
    Ok(match encryption {
        Some(e) => options.with_encryption(e),
        None => options,
    })
}

/// `PGPASSWORD`, for a hook on a database whose URL carries no password.
pub fn hook_password(env: &dyn EnvLookup) -> Option<crate::hooks::Password> {
    var(env, "PGPASSWORD").map(crate::hooks::Password::new)
}

impl crate::PostRestoreHook {
    /// The job's `post_restore` hook as a drill runs it ([`crate::PostRestoreHook::for_job`]):
    /// the hook environment of `env` ([`crate::hook_env`]) and `PGPASSWORD` for a scratch
    /// server whose URL has none. `None`: the job has no `post_restore`.
    pub fn from_env(job: &ResolvedJob, env: &dyn EnvLookup) -> Option<Self> {
        Self::for_job(job, crate::hook_env(env)).map(|h| h.with_password(hook_password(env)))
    }
}

impl crate::RestoredDatabase {
    /// The restored `database` for a `post_restore` hook: its URL (never with a password: a
    /// restore target comes from a flag) and `PGPASSWORD` from `env`.
    pub fn from_env(database: ConnConfig, env: &dyn EnvLookup) -> Self {
        Self {
            database,
            password: hook_password(env),
        }
    }
}

/// Who takes a job's lock: `HOSTNAME`, else the host name the caller read from its system
/// (`/etc/hostname`, trimmed), else `localhost`; and this process.
pub fn holder(env: &dyn EnvLookup, system_hostname: Option<&str>) -> Holder {
    let host = var(env, "HOSTNAME")
        .or_else(|| system_hostname.map(|h| h.trim().to_owned()))
        .unwrap_or_else(|| "localhost".to_owned());
    Holder {
        host,
        pid: std::process::id(),
    }
}

/// A drill's target server: the command line's URL `argv` (no password), else
/// `PGB_DRILL_TARGET` (a password allowed); `None` when neither is given.
///
/// # Errors
/// [`UrlError`].
pub fn drill_target(
    argv: Option<&str>,
    env: &dyn EnvLookup,
) -> Result<Option<ConnConfig>, UrlError> {
    match argv {
        Some(url) => connection(url, true).map(Some),
        None => var(env, "PGB_DRILL_TARGET")
            .map(|url| connection(&url, false))
            .transpose(),
    }
}

/// Role password hashes asked for in an unencrypted whole-server backup: refused, as the
/// globals would hold every role's hash in the clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("role passwords need an encrypted backup")]
pub struct RolePasswordsUnencrypted;

/// The whole-server dumper of a job's `[whole_server]` or `backup --all-databases`: the
/// server of `conn`, pg_dump's `selection` for every database, the databases `server`
/// chooses.
///
/// # Errors
/// [`RolePasswordsUnencrypted`] when `server` asks for role passwords and the backup is not
/// `encrypted`.
pub fn server_dumper(
    conn: ConnConfig,
    tools: ToolLocator,
    server: &WholeServer,
    selection: DumpOptions,
    encrypted: bool,
) -> Result<PgCluster, RolePasswordsUnencrypted> {
    if server.with_role_passwords && !encrypted {
        return Err(RolePasswordsUnencrypted);
    }
    Ok(PgCluster::new(conn, tools)
        .with_include(server.include.clone())
        .with_exclude(server.exclude.clone())
        .with_role_passwords(server.with_role_passwords)
        .with_options(selection))
}

/// The directory-format dumper (`pg_dump -Fd -j jobs` into a spool under `spool`) of a job
/// with `format = "directory"` or `backup --format directory`.
pub fn directory_dumper(
    conn: ConnConfig,
    tools: ToolLocator,
    jobs: u32,
    spool: &Path,
    selection: DumpOptions,
) -> PgDumpDirectory {
    PgDumpDirectory::new(conn, tools)
        .with_jobs(jobs)
        .with_spool_dir(spool)
        .with_options(selection)
}

/// A `gc` grace period that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GraceError {
    /// Not a duration of the one grammar (`s m h d w`).
    #[error("{0}")]
    Invalid(String),
    /// Longer than a calendar can count back.
    #[error("{given:?}: too long")]
    TooLong {
        /// The text given.
        given: String,
    },
}

/// How old an unreferenced object must be before `gc` deletes it: `older_than` in the one
/// duration grammar (`24h`, `7d`, `2w`), else [`defaults::GC_OLDER_THAN`].
///
/// # Errors
/// [`GraceError`].
pub fn gc_grace(older_than: Option<&str>) -> Result<time::Duration, GraceError> {
    let given = older_than.unwrap_or(defaults::GC_OLDER_THAN);
    let d = pgb_config::parse_duration(given).map_err(GraceError::Invalid)?;
    time::Duration::try_from(d).map_err(|_| GraceError::TooLong {
        given: given.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn what_was_given_beats_the_environment_which_beats_the_default() {
        let e = env(&[
            ("PGB_REPO", "/from/env"),
            ("DATABASE_URL", "postgres://e/db"),
        ]);
        assert_eq!(repository_url(None, &env(&[])), "pgb-backups");
        assert_eq!(repository_url(None, &e), "/from/env");
        assert_eq!(repository_url(Some("/flag"), &e), "/flag");
        assert_eq!(
            repository_url(None, &env(&[("PGB_REPO", "")])),
            "pgb-backups"
        );
        assert_eq!(database_url(None, &env(&[])), "postgres://");
        assert_eq!(database_url(None, &e), "postgres://e/db");
        assert_eq!(database_url(Some("postgres://f/db"), &e), "postgres://f/db");
    }

    #[test]
    fn a_password_is_refused_from_argv_and_accepted_from_the_environment() {
        assert!(matches!(
            connection("postgres://u:pw@h/db", true),
            Err(UrlError::PasswordInArgv)
        ));
        assert!(connection("postgres://u:pw@h/db", false).is_ok());
        assert!(connection("postgres://u@h/db", true).is_ok());
        assert!(matches!(
            connection("mysql://h", true),
            Err(UrlError::Invalid(_))
        ));
        let e = env(&[("DATABASE_URL", "postgres://u:pw@h/db")]);
        assert!(database(None, &e).unwrap().has_password());
        assert!(database(Some("postgres://u:pw@h/db"), &e).is_err());
    }

    #[test]
    fn spool_temp_and_holder_fall_back_in_order() {
        let e = env(&[("TMPDIR", "/var/tmp"), ("PGB_SPOOL_DIR", "/spool")]);
        assert_eq!(temp_dir(&e), PathBuf::from("/var/tmp"));
        assert_eq!(temp_dir(&env(&[])), PathBuf::from("/tmp"));
        assert_eq!(spool_dir(None, &e), PathBuf::from("/spool"));
        assert_eq!(spool_dir(Some(Path::new("/f")), &e), PathBuf::from("/f"));
        assert_eq!(
            spool_dir(None, &env(&[("TMPDIR", "/t")])),
            PathBuf::from("/t")
        );
        assert_eq!(holder(&env(&[]), Some("box\n")).host, "box");
        assert_eq!(holder(&env(&[("HOSTNAME", "h")]), Some("box")).host, "h");
        assert_eq!(holder(&env(&[]), None).host, "localhost");
    }

    #[test]
    fn jobs_resolve_with_the_environment_layer() {
        let cfg = LoadedConfig::parse(
            "[jobs.a]\nrepository = \"/r\"\n[jobs.b]\nrepository = \"/s\"\n",
            Path::new("pgb.toml"),
        )
        .unwrap();
        let e = env(&[("PGB_KEEP_DAILY", "3")]);
        let all = resolve_jobs(&cfg, None, &e).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[0].provenance["keep_daily"].to_string(),
            "env PGB_KEEP_DAILY"
        );
        let flags = JobSettings {
            repository: Some("/flag".to_owned()),
            ..JobSettings::default()
        };
        let j = resolve_job(&cfg, "b", &e, &flags).unwrap();
        assert_eq!(j.repository, "/flag");
        assert_eq!(j.provenance["repository"].to_string(), "flag");
        assert!(resolve_jobs(&cfg, Some("c"), &e).is_err());
    }

    #[test]
    fn a_drill_target_from_argv_carries_no_password_and_role_passwords_need_encryption() {
        let e = env(&[("PGB_DRILL_TARGET", "postgres://u:pw@db/postgres")]);
        assert!(drill_target(None, &e).unwrap().is_some());
        assert!(drill_target(None, &env(&[])).unwrap().is_none());
        assert!(matches!(
            drill_target(Some("postgres://u:pw@db/postgres"), &e),
            Err(UrlError::PasswordInArgv)
        ));
        let conn = connection("postgres://u@db/postgres", true).unwrap();
        let server = WholeServer {
            include: vec![],
            exclude: vec![],
            with_role_passwords: true,
        };
        let tools = ToolLocator::new();
        let unencrypted = server_dumper(
            conn.clone(),
            tools.clone(),
            &server,
            DumpOptions::default(),
            false,
        );
        assert_eq!(unencrypted.err(), Some(RolePasswordsUnencrypted));
        assert!(server_dumper(conn, tools, &server, DumpOptions::default(), true).is_ok());
    }

    #[test]
    fn gc_grace_is_a_day_by_default_and_takes_the_one_duration_grammar() {
        assert_eq!(gc_grace(None).unwrap(), time::Duration::hours(24));
        assert_eq!(gc_grace(Some("3m")).unwrap(), time::Duration::minutes(3));
        assert_eq!(gc_grace(Some("0s")).unwrap(), time::Duration::ZERO);
        assert!(matches!(gc_grace(Some("3mo")), Err(GraceError::Invalid(_))));
    }
}
