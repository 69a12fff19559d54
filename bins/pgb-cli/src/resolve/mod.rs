//! Resolution: arguments + environment → typed library options, with every default applied
//! here and nowhere else. Precedence, lowest first: [`defaults`], the job of `--job` (itself
//! defaults < file < environment, [`job`]), flags.
//!
//! The environment arrives as an [`Env`] lookup that `main` passes down; nothing here reads the
//! process environment itself, so every rule is testable with a map.

mod cluster;
pub(crate) mod config;
pub(crate) mod job;
mod keys;
pub(crate) mod migrations;
pub(crate) mod physical;
pub(crate) mod pitr;

use std::path::PathBuf;

use pgb::postgres::{ConnConfig, InheritedEnv, PgArchiveCheck, PgDump, PgRestore, ToolLocator};
use pgb::retention::Policy;
use pgb::{ArchiveFormat, BackupOptions, Compression, EnvLookup, Repository, RestoreOptions};

use crate::args::{BackupArgs, Format, RepoArgs, RestoreArgs, ToolArgs};
use crate::exit::Failure;

mod notify;
pub(crate) mod ops;
mod policy;
mod report;

pub(crate) use cluster::{
    ClusterRestore, cluster_backup, cluster_restore, cluster_restore_options, directory_backup,
    dump_options,
};
pub(crate) use keys::{
    SECRET_FLAG, auth_key, authentication, decryption, encryption, wal_reading, write_secret_file,
};
pub(crate) use notify::notifier_for;
pub(crate) use ops::{check, check_server, drill, verified};
pub(crate) use policy::{grace, policy};
pub(crate) use report::report_options;

/// The environment lookup `main` passes down.
pub(crate) type Env<'a> = &'a (dyn EnvLookup + Sync);

/// The same lookup, owned and shareable: what `main` snapshots and the daemon's runs keep.
pub(crate) type SharedEnv = std::sync::Arc<dyn EnvLookup + Send + Sync>;

/// Built-in defaults: the bottom layer.
pub(crate) mod defaults {
    /// Repository when neither `--repo` nor `PGB_REPO` is given.
    pub(crate) const REPO: &str = "pgb-backups";
    /// Database when neither `--db` nor `DATABASE_URL` is given: libpq's `PG*` variables.
    pub(crate) const DB: &str = "postgres://";
    /// Compression of new backups.
    pub(crate) const COMPRESSION: &str = "zstd";
    /// Parallel restore jobs.
    pub(crate) const JOBS: u32 = 1;
    /// Grace period of `gc`.
    pub(crate) const GC_OLDER_THAN: &str = "24h";
    /// Runs `schedule explain` prints.
    pub(crate) const SCHEDULE_COUNT: usize = 10;
    /// Temp directory when `TMPDIR` is not set.
    pub(crate) const TMPDIR: &str = "/tmp";
}

/// The value of `name`, if set and not empty.
pub(super) fn var(env: Env<'_>, name: &str) -> Option<String> {
    env.get(name).filter(|v| !v.is_empty())
}

/// `:`-separated paths from `name`.
fn paths(env: Env<'_>, name: &str) -> Vec<PathBuf> {
    var(env, name)
        .map(|v| {
            v.split(':')
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The repository URL: `--repo`, else `PGB_REPO`, else `./pgb-backups`.
pub(crate) fn repo_url(a: &RepoArgs, env: Env<'_>) -> String {
    a.repo
        .clone()
        .or_else(|| var(env, "PGB_REPO"))
        .unwrap_or_else(|| defaults::REPO.to_owned())
}

/// Object-store retries and time limits: the flags (or a job's settings, which already hold
/// its file, environment and flag layers), else `PGB_STORAGE_*` (read by the facade), else the
/// storage's defaults.
pub(crate) fn storage_options(a: &RepoArgs) -> Result<pgb::StorageOptions, Failure> {
    if let Some(s) = &a.from_job {
        return Ok(pgb_jobs::storage_options(s));
    }
    let duration =
        |flag: &str, v: &Option<String>| -> Result<Option<std::time::Duration>, Failure> {
            let Some(v) = v else { return Ok(None) };
            match pgb_config::parse_duration(v) {
                Ok(d) if d >= std::time::Duration::from_secs(1) => Ok(Some(d)),
                Ok(_) => Err(Failure::usage(format!("--{flag} must be at least 1s"))),
                Err(e) => Err(Failure::usage(format!("--{flag}: {e}"))),
            }
        };
    let mut o = pgb::StorageOptions::new();
    if let Some(n) = a.retries {
        o = o.with_retries(n);
    }
    if let Some(d) = duration("retry-budget", &a.retry_budget)? {
        o = o.with_retry_budget(d);
    }
    if let Some(d) = duration("request-timeout", &a.request_timeout)? {
        o = o.with_request_timeout(d);
    }
    if let Some(d) = duration("io-timeout", &a.io_timeout)? {
        o = o.with_io_timeout(d);
    }
    Ok(o)
}

/// Opens an existing repository (storage settings from the flags and the environment). It
/// creates nothing: a local directory that does not exist is an error (exit 3), so a mistyped
/// `--repo` is never taken for an empty repository.
pub(crate) fn repository(a: &RepoArgs, env: Env<'_>) -> Result<Repository, Failure> {
    open(a, env, false)
}

/// Opens the repository a backup writes to (`backup`, `run`, the daemon's jobs), creating a
/// local directory that does not exist yet.
pub(crate) fn backup_repository(a: &RepoArgs, env: Env<'_>) -> Result<Repository, Failure> {
    open(a, env, true)
}

fn open(a: &RepoArgs, env: Env<'_>, create: bool) -> Result<Repository, Failure> {
    let url = repo_url(a, env);
    let opts = storage_options(a)?.with_create(create);
    let repo = pgb::open_repository_with(&url, env, &opts)?;
    tracing::debug!(repo = %pgb::redact_url(&url), create, "repository opened");
    Ok(repo)
}

/// Opens the repository for a command that lists it (`list`, `prune`, `gc`, `check`), with the
/// keys that authenticate its manifests ([`authentication`]).
pub(crate) fn listed_repository(
    a: &RepoArgs,
    auth_key_file: Option<&std::path::Path>,
    env: Env<'_>,
) -> Result<Repository, Failure> {
    Ok(repository(a, env)?.with_decryption(authentication(auth_key_file, env)?))
}

/// Where PostgreSQL tools are searched: `--pg-bin-dir` (else `PGB_PG_BIN_DIR`), the system
/// directories, then `PATH`. The tools inherit the libpq, locale and path variables of `env`
/// (the process environment `main` snapshots) and nothing else.
pub(crate) fn tools(a: &ToolArgs, env: Env<'_>) -> ToolLocator {
    let dirs = if a.pg_bin_dirs.is_empty() {
        paths(env, "PGB_PG_BIN_DIR")
    } else {
        a.pg_bin_dirs.clone()
    };
    let locator = ToolLocator::new()
        .with_path(env.get("PATH").map(Into::into))
        .with_inherited_env(InheritedEnv::new(env.vars()));
    dirs.into_iter().fold(locator, ToolLocator::with_bin_dir)
}

/// The temp directory: `TMPDIR`, else `/tmp`.
pub(crate) fn temp_dir(env: Env<'_>) -> PathBuf {
    var(env, "TMPDIR").map_or_else(|| defaults::TMPDIR.into(), PathBuf::from)
}

/// A database URL. A password is accepted only from the environment, never from a flag: argv
/// is visible to every user in `ps`.
pub(super) fn conn(url: &str, from_flag: bool) -> Result<ConnConfig, Failure> {
    let conn = ConnConfig::parse(url).map_err(|e| Failure::usage(e.to_string()))?;
    if from_flag && conn.has_password() {
        return Err(Failure::usage(
            "refusing a password on the command line (visible in the process list): put it in PGPASSWORD or a PGPASSFILE, or pass the URL in DATABASE_URL",
        ));
    }
    Ok(conn)
}

/// Everything `backup` needs, validated before anything runs.
pub(crate) struct Backup {
    pub(crate) dumper: PgDump,
    pub(crate) options: BackupOptions,
    /// The policy of `--prune`.
    pub(crate) prune: Option<Policy>,
}

pub(crate) fn backup(a: &BackupArgs, env: Env<'_>) -> Result<Backup, Failure> {
    cluster::check_backup_flags(a)?;
    // Fail closed, before anything else runs: bad keys never reach pg_dump.
    let encryption = encryption(&a.encrypt, env)?;
    let compression: Compression = a
        .compression
        .as_deref()
        .unwrap_or(defaults::COMPRESSION)
        .parse()
        .map_err(|e: pgb::InvalidCompression| Failure::usage(e.to_string()))?;
    let prune = match (a.prune, policy(&a.policy)?) {
        (true, None) => {
            return Err(Failure::usage(
                "--prune needs a retention policy, e.g. --keep-daily 7 --keep-weekly 4",
            ));
        }
        (true, p) => p,
        (false, _) => None,
    };
    let conn = match &a.db {
        Some(url) => conn(url, true)?,
        None => conn(
            &var(env, "DATABASE_URL").unwrap_or_else(|| defaults::DB.to_owned()),
            false,
        )?,
    };
    let format = match a.format.unwrap_or(Format::Custom) {
        Format::Custom => ArchiveFormat::Custom,
        Format::Plain => ArchiveFormat::Plain,
        Format::Directory => ArchiveFormat::Directory,
    };
    let mut options = a
        .label
        .iter()
        .fold(BackupOptions::default(), |o, l| o.with_label(l.clone()))
        .with_compression(compression)
        .with_verify_upload(a.verify_upload);
    if let Some(e) = encryption {
        options = options.with_encryption(e);
    }
    let options = cluster::with_files(a, options)?;
    Ok(Backup {
        dumper: PgDump::new(conn, tools(&a.tools, env))
            .with_format(format)
            .with_options(dump_options(a)?),
        options,
        prune,
    })
}

/// The target and options of `restore`, except what the backup itself decides.
pub(crate) struct Restore {
    pub(crate) restorer: PgRestore,
    pub(crate) jobs: u32,
    /// The target, for a `post_restore` hook.
    pub(crate) target: ConnConfig,
}

pub(crate) fn restore(a: &RestoreArgs, env: Env<'_>) -> Result<Restore, Failure> {
    let url = a.db.as_deref().ok_or_else(|| {
        Failure::usage("restore needs a target database: --db postgres://user@host:port/NEW_DB")
    })?;
    let spool = a
        .spool_dir
        .clone()
        .or_else(|| var(env, "PGB_SPOOL_DIR").map(PathBuf::from))
        .unwrap_or_else(|| temp_dir(env));
    let target = conn(url, true)?;
    Ok(Restore {
        restorer: PgRestore::new(target.clone(), tools(&a.tools, env), spool),
        jobs: a.jobs.unwrap_or(defaults::JOBS),
        target,
    })
}

/// Restore options for a backup of `format` written by pg_dump `major`.
pub(crate) fn restore_options(a: &RestoreArgs, r: &Restore, m: &pgb::Manifest) -> RestoreOptions {
    let _ = m; // the library derives the archive's format and version from the manifest
    RestoreOptions::new()
        .with_clean(a.clean)
        .with_jobs(r.jobs)
        .with_allow_create(a.allow_create)
        .with_verify_first(!a.no_verify_first)
        .with_keep_owner(a.keep_owner)
        .with_keep_privileges(a.keep_privileges)
        .with_tables(a.select.table.clone())
        .with_schemas(a.select.schema.clone())
}

/// An archive checker for `verify` (no connection: it only reads archives).
pub(crate) fn checker(a: &ToolArgs, env: Env<'_>) -> PgArchiveCheck {
    // A directory-format verify spools the table of contents where backups spool, not /tmp.
    let spool = var(env, "PGB_SPOOL_DIR").map_or_else(|| temp_dir(env), PathBuf::from);
    PgArchiveCheck::new(tools(a, env)).with_spool_dir(spool)
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
    fn flags_beat_the_environment_which_beats_the_default() {
        let none = RepoArgs::default();
        let flag = RepoArgs {
            repo: Some("/from/flag".to_owned()),
            ..RepoArgs::default()
        };
        assert_eq!(repo_url(&none, &env(&[])), "pgb-backups");
        let e = env(&[("PGB_REPO", "/from/env")]);
        assert_eq!(repo_url(&none, &e), "/from/env");
        assert_eq!(repo_url(&flag, &e), "/from/flag");
        assert_eq!(repo_url(&none, &env(&[("PGB_REPO", "")])), "pgb-backups");
    }

    #[test]
    fn storage_flags_become_typed_options() {
        let a = RepoArgs {
            retries: Some(7),
            retry_budget: Some("10m".to_owned()),
            io_timeout: Some("90s".to_owned()),
            ..RepoArgs::default()
        };
        let o = storage_options(&a).unwrap();
        assert_eq!(o.retries, Some(7));
        assert_eq!(o.retry_budget, Some(std::time::Duration::from_secs(600)));
        assert_eq!(
            o.request_timeout, None,
            "not given: PGB_STORAGE_* or the default"
        );
        assert_eq!(o.io_timeout, Some(std::time::Duration::from_secs(90)));
        for bad in ["0s", "soon"] {
            let a = RepoArgs {
                request_timeout: Some(bad.to_owned()),
                ..RepoArgs::default()
            };
            let e = storage_options(&a).unwrap_err();
            assert!(
                e.code == 2 && e.message.contains("--request-timeout"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn a_password_is_refused_from_a_flag_and_accepted_from_the_environment() {
        assert_eq!(conn("postgres://u:pw@h/db", true).unwrap_err().code, 2);
        assert!(conn("postgres://u:pw@h/db", false).is_ok());
        assert!(conn("postgres://u@h/db", true).is_ok());
    }

    #[test]
    fn pg_bin_dirs_come_from_flags_or_the_environment() {
        let e = env(&[("TMPDIR", "/var/tmp"), ("PGB_SPOOL_DIR", "/spool")]);
        assert_eq!(temp_dir(&e), PathBuf::from("/var/tmp"));
        assert_eq!(temp_dir(&env(&[])), PathBuf::from("/tmp"));
        assert_eq!(
            paths(&env(&[("PGB_PG_BIN_DIR", "/a::/b")]), "PGB_PG_BIN_DIR"),
            [PathBuf::from("/a"), PathBuf::from("/b")]
        );
    }
}
