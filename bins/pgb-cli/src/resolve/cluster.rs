//! Resolution of whole-server backups and restores: arguments + environment → a
//! [`PgCluster`] and the library options.

use std::path::PathBuf;

use pgb::postgres::{ConnConfig, DumpOptions, PgCluster, PgDumpDirectory, PgRestore};
use pgb::retention::Policy;
use pgb::{BackupOptions, RestoreOptions};

use super::{Env, conn, defaults, temp_dir, tools, var};
use crate::args::{BackupArgs, Format, RestoreArgs};
use crate::exit::Failure;

/// Everything `backup --all-databases` needs, validated before anything runs.
pub(crate) struct ClusterBackup {
    pub(crate) dumper: PgCluster,
    pub(crate) options: BackupOptions,
    pub(crate) prune: Option<Policy>,
}

/// `backup --all-databases`: the server of `--db` (else `DATABASE_URL`, else libpq's `PG*`).
pub(crate) fn cluster_backup(a: &BackupArgs, env: Env<'_>) -> Result<ClusterBackup, Failure> {
    if a.format.is_some_and(|f| f != Format::Custom) {
        return Err(Failure::usage(
            "--all-databases dumps every database in the custom format; drop --format",
        ));
    }
    // Options, keys, compression and the prune policy exactly as for one database.
    let single = super::backup(a, env)?;
    let c = &a.cluster;
    if c.with_role_passwords && single.options.encryption.is_none() {
        return Err(Failure::usage(
            "--with-role-passwords needs an encrypted backup: add --recipient, --recipients-file or --passphrase-file (or PGB_PASSPHRASE)",
        ));
    }
    let server = match &a.db {
        Some(url) => conn(url, true)?,
        None => conn(
            &var(env, "DATABASE_URL").unwrap_or_else(|| defaults::DB.to_owned()),
            false,
        )?,
    };
    Ok(ClusterBackup {
        dumper: PgCluster::new(server, tools(&a.tools, env))
            .with_include(c.include.clone())
            .with_exclude(c.exclude.clone())
            .with_role_passwords(c.with_role_passwords)
            .with_options(dump_options(a)?),
        options: single.options,
        prune: single.prune,
    })
}

/// What `restore` does with a whole-server backup.
pub(crate) enum ClusterRestore {
    /// `--database NAME --db URL`.
    Database {
        name: String,
        restorer: PgRestore,
        /// The target, for a `post_restore` hook.
        target: ConnConfig,
    },
    /// `--globals --db URL`.
    Globals(PgCluster),
    /// `--all --server URL`.
    All(PgCluster),
}

fn spool(a: &RestoreArgs, env: Env<'_>) -> PathBuf {
    a.spool_dir
        .clone()
        .or_else(|| var(env, "PGB_SPOOL_DIR").map(PathBuf::from))
        .unwrap_or_else(|| temp_dir(env))
}

fn target(a: &RestoreArgs, what: &str) -> Result<ConnConfig, Failure> {
    let url = a.db.as_deref().ok_or_else(|| {
        Failure::usage(format!(
            "{what} needs a target: --db postgres://user@host:port/DB"
        ))
    })?;
    conn(url, true)
}

pub(crate) fn cluster_restore(a: &RestoreArgs, env: Env<'_>) -> Result<ClusterRestore, Failure> {
    let c = &a.cluster;
    let locator = tools(&a.tools, env);
    if c.all {
        if a.db.is_some() {
            return Err(Failure::usage(
                "--all restores every database under its own name on --server; drop --db",
            ));
        }
        let url = c.server.as_deref().unwrap_or_default();
        return Ok(ClusterRestore::All(
            PgCluster::new(conn(url, true)?, locator).with_spool_dir(spool(a, env)),
        ));
    }
    if c.globals {
        return Ok(ClusterRestore::Globals(PgCluster::new(
            target(a, "--globals")?,
            locator,
        )));
    }
    let name = c.database.clone().unwrap_or_default();
    let conn = target(a, "--database")?;
    Ok(ClusterRestore::Database {
        restorer: PgRestore::new(conn.clone(), locator, spool(a, env)),
        name,
        target: conn,
    })
}

/// The options of a restore from a whole-server backup.
pub(crate) fn cluster_restore_options(a: &RestoreArgs) -> RestoreOptions {
    RestoreOptions::new()
        .with_clean(a.clean)
        .with_jobs(a.jobs.unwrap_or(defaults::JOBS))
        .with_allow_create(a.allow_create)
        .with_verify_first(!a.no_verify_first)
        .with_keep_owner(a.keep_owner)
        .with_keep_privileges(a.keep_privileges)
        .with_tables(a.select.table.clone())
        .with_schemas(a.select.schema.clone())
}

/// Everything `backup --format directory` needs, validated before anything runs.
pub(crate) struct DirectoryBackup {
    pub(crate) dumper: PgDumpDirectory,
    pub(crate) jobs: usize,
    pub(crate) options: BackupOptions,
    pub(crate) prune: Option<Policy>,
}

/// `backup --format directory [--jobs N] [--spool-dir DIR]`.
pub(crate) fn directory_backup(a: &BackupArgs, env: Env<'_>) -> Result<DirectoryBackup, Failure> {
    let single = super::backup(a, env)?;
    let jobs = a.directory.jobs.unwrap_or(1);
    if jobs == 0 {
        return Err(Failure::usage("--jobs must be at least 1"));
    }
    let db = match &a.db {
        Some(url) => conn(url, true)?,
        None => conn(
            &var(env, "DATABASE_URL").unwrap_or_else(|| defaults::DB.to_owned()),
            false,
        )?,
    };
    let spool = a
        .directory
        .spool_dir
        .clone()
        .or_else(|| var(env, "PGB_SPOOL_DIR").map(PathBuf::from))
        .unwrap_or_else(|| temp_dir(env));
    Ok(DirectoryBackup {
        dumper: PgDumpDirectory::new(db, tools(&a.tools, env))
            .with_jobs(jobs)
            .with_spool_dir(spool)
            .with_options(dump_options(a)?),
        jobs: jobs as usize,
        options: single.options,
        prune: single.prune,
    })
}

/// pg_dump's selection and pass-through options of `backup`, and the migration heads its
/// preflight reads.
pub(crate) fn dump_options(a: &BackupArgs) -> Result<DumpOptions, Failure> {
    let s = &a.select;
    Ok(DumpOptions::new()
        .with_schemas(&s.schemas)
        .with_exclude_schemas(&s.exclude_schema)
        .with_tables(&s.tables)
        .with_exclude_tables(&s.exclude_table)
        .with_exclude_table_data(&s.exclude_table_data)
        .with_extra(&s.pg_dump_option)
        .map_err(|e| Failure::usage(format!("--pg-dump-option: {e}")))?
        .with_migrations(super::migrations::probe(&a.migrations)?))
}

/// Flags that only one kind of backup takes.
pub(crate) fn check_backup_flags(a: &BackupArgs) -> Result<(), Failure> {
    let directory = a.format == Some(Format::Directory);
    if !directory && (a.directory.jobs.is_some() || a.directory.spool_dir.is_some()) {
        return Err(Failure::usage(
            "--jobs and --spool-dir of backup need --format directory",
        ));
    }
    Ok(())
}

/// Adds the `--files` directories to the backup options, each checked to be a directory.
pub(crate) fn with_files(a: &BackupArgs, options: BackupOptions) -> Result<BackupOptions, Failure> {
    a.files.files.iter().try_fold(options, |o, dir| {
        let files =
            pgb::FilesDump::new(dir).map_err(|e| Failure::usage(format!("--files: {e}")))?;
        Ok(o.with_files(files))
    })
}
