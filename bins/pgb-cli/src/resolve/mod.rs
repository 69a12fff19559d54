//! Resolution: arguments + the [`Env`] lookup `main` passes down → typed library options.
//! Precedence, lowest first: [`defaults`], the job of `--job` ([`job`]), flags. The rules are
//! the libraries' (`pgb_jobs`: URLs, repositories, tools, spool; `pgb_config`: layering and
//! parsing); this module hands them the flags and maps their errors to exit codes.

mod cluster;
pub(crate) mod config;
pub(crate) mod job;
mod keys;
pub(crate) mod migrations;
pub(crate) mod physical;
pub(crate) mod pitr;

use pgb::postgres::{PgDump, PgRestore, ToolLocator};
use pgb::retention::Policy;
use pgb::{BackupOptions, EnvLookup, Repository};
pub(crate) use pgb_config::defaults;

use crate::args::{BackupArgs, Format, RepoArgs, RestoreArgs, ToolArgs};
use crate::exit::Failure;

pub(crate) mod ops;
mod policy;
mod report;

pub(crate) use cluster::{
    ClusterRestore, cluster_backup, cluster_restore, directory_backup, dump_options,
};
pub(crate) use keys::{SECRET_FLAG, auth_key, authentication, decryption, encryption, wal_reading};
pub(crate) use ops::{check, check_server, drill};
pub(crate) use policy::policy;
pub(crate) use report::report_options;

/// The environment lookup `main` passes down.
pub(crate) type Env<'a> = &'a (dyn EnvLookup + Sync);

/// The same lookup, owned and shareable: what `main` snapshots and the daemon's runs keep.
pub(crate) type SharedEnv = std::sync::Arc<dyn EnvLookup + Send + Sync>;

/// The repository URL: `--repo` (or the job's), else `PGB_REPO`, else `./pgb-backups`.
pub(crate) fn repo_url(a: &RepoArgs, env: Env<'_>) -> String {
    pgb_jobs::repository_url(a.repo.as_deref(), env)
}

/// Opens an existing repository: a local directory that does not exist is an error (exit 3).
pub(crate) fn repository(a: &RepoArgs, env: Env<'_>) -> Result<Repository, Failure> {
    open(a, env, false)
}

/// Opens the repository a backup writes to, creating a local directory not there yet.
pub(crate) fn backup_repository(a: &RepoArgs, env: Env<'_>) -> Result<Repository, Failure> {
    open(a, env, true)
}

fn open(a: &RepoArgs, env: Env<'_>, create: bool) -> Result<Repository, Failure> {
    let url = repo_url(a, env);
    Ok(pgb_jobs::open_repository(&url, &a.storage()?, env, create)?)
}

/// Opens the repository for a command that lists it, with the keys that authenticate its
/// manifests ([`authentication`]).
pub(crate) fn listed_repository(
    a: &RepoArgs,
    auth_key_file: Option<&std::path::Path>,
    env: Env<'_>,
) -> Result<Repository, Failure> {
    Ok(repository(a, env)?.with_decryption(authentication(auth_key_file, env)?))
}

/// PostgreSQL tools: `--pg-bin-dir`, else [`pgb_jobs::tools_in`]'s search.
pub(crate) fn tools(a: &ToolArgs, env: Env<'_>) -> ToolLocator {
    pgb_jobs::tools_in(&a.pg_bin_dirs, env)
}

/// Everything `backup` needs, validated before anything runs.
pub(crate) struct Backup {
    pub(crate) dumper: PgDump,
    pub(crate) options: BackupOptions,
    /// The policy of `--prune`.
    pub(crate) prune: Option<Policy>,
}

pub(crate) fn backup(a: &BackupArgs, env: Env<'_>) -> Result<Backup, Failure> {
    a.check_kind()?;
    // Fail closed, before anything else runs: bad keys never reach pg_dump.
    let encryption = encryption(&a.encrypt, env)?;
    let compression = a.compression.as_deref().unwrap_or(defaults::COMPRESSION);
    let spool = pgb_jobs::spool_dir(a.directory.spool_dir.as_deref(), env);
    let options = pgb_jobs::backup_options(compression, &a.label, encryption, &spool)
        .map_err(|e| Failure::usage(e.to_string()))?
        .with_verify_upload(a.verify_upload);
    let prune = match (a.prune, policy(&a.policy)?) {
        (true, None) => {
            return Err(Failure::usage(
                "--prune needs a retention policy, e.g. --keep-daily 7 --keep-weekly 4",
            ));
        }
        (true, p) => p,
        (false, _) => None,
    };
    let conn = pgb_jobs::database(a.db.as_deref(), env)?;
    Ok(Backup {
        dumper: PgDump::new(conn, tools(&a.tools, env))
            .with_format(a.format.unwrap_or(Format::Custom).archive())
            .with_options(dump_options(a)?),
        options: a.files.add_to(options)?,
        prune,
    })
}

/// The restorer of `restore` into `--db` (its target is also the `post_restore` hook's).
pub(crate) fn restorer(a: &RestoreArgs, env: Env<'_>) -> Result<PgRestore, Failure> {
    let url = a.db.as_deref().ok_or_else(|| {
        Failure::usage("restore needs a target database: --db postgres://user@host:port/NEW_DB")
    })?;
    let spool = pgb_jobs::spool_dir(a.spool_dir.as_deref(), env);
    Ok(PgRestore::new(
        pgb_jobs::connection(url, true)?,
        tools(&a.tools, env),
        spool,
    ))
}
