//! Whole-server and directory-format backups and restores: arguments + environment → a
//! [`PgCluster`] or [`PgDumpDirectory`] on the connection and selection that `backup`
//! resolves for one database, and the library options.

use pgb::postgres::{ConnConfig, DumpOptions, PgCluster, PgDumpDirectory, PgRestore};

use super::{Backup, Env, conn, tools};
use crate::args::{BackupArgs, Format, RestoreArgs};
use crate::exit::Failure;

/// `backup --all-databases`: the server, keys, compression and `--prune` policy exactly as
/// for one database (the server of `--db`, else `DATABASE_URL`, else libpq's `PG*`).
pub(crate) fn cluster_backup(a: &BackupArgs, env: Env<'_>) -> Result<(PgCluster, Backup), Failure> {
    if a.format.is_some_and(|f| f != Format::Custom) {
        return Err(Failure::usage(
            "--all-databases dumps every database in the custom format; drop --format",
        ));
    }
    let single = super::backup(a, env)?;
    let c = &a.cluster;
    if c.with_role_passwords && single.options.encryption.is_none() {
        return Err(Failure::usage(
            "--with-role-passwords needs an encrypted backup: add --recipient, --recipients-file or --passphrase-file (or PGB_PASSPHRASE)",
        ));
    }
    let dumper = PgCluster::new(single.dumper.conn().clone(), tools(&a.tools, env))
        .with_include(c.include.clone())
        .with_exclude(c.exclude.clone())
        .with_role_passwords(c.with_role_passwords)
        .with_options(single.dumper.options().clone());
    Ok((dumper, single))
}

/// `backup --format directory [--jobs N] [--spool-dir DIR]`.
pub(crate) fn directory_backup(
    a: &BackupArgs,
    env: Env<'_>,
) -> Result<(PgDumpDirectory, Backup), Failure> {
    let single = super::backup(a, env)?;
    let jobs = a.directory.jobs.unwrap_or(1);
    if jobs == 0 {
        return Err(Failure::usage("--jobs must be at least 1"));
    }
    let dumper = PgDumpDirectory::new(single.dumper.conn().clone(), tools(&a.tools, env))
        .with_jobs(jobs)
        .with_spool_dir(pgb_jobs::spool_dir(a.directory.spool_dir.as_deref(), env))
        .with_options(single.dumper.options().clone());
    Ok((dumper, single))
}

/// What `restore` does with a whole-server backup.
pub(crate) enum ClusterRestore {
    /// `--database NAME --db URL`; the target also for a `post_restore` hook.
    Database(String, PgRestore, ConnConfig),
    /// `--globals --db URL`.
    Globals(PgCluster),
    /// `--all --server URL`.
    All(PgCluster),
}

pub(crate) fn cluster_restore(a: &RestoreArgs, env: Env<'_>) -> Result<ClusterRestore, Failure> {
    let c = &a.cluster;
    let locator = tools(&a.tools, env);
    let target = |what: &str| {
        let url = a.db.as_deref().ok_or_else(|| {
            Failure::usage(format!(
                "{what} needs a target: --db postgres://user@host:port/DB"
            ))
        })?;
        conn(url, true)
    };
    let spool = || pgb_jobs::spool_dir(a.spool_dir.as_deref(), env);
    Ok(if c.all {
        if a.db.is_some() {
            return Err(Failure::usage(
                "--all restores every database under its own name on --server; drop --db",
            ));
        }
        let server = conn(c.server.as_deref().unwrap_or_default(), true)?;
        ClusterRestore::All(PgCluster::new(server, locator).with_spool_dir(spool()))
    } else if c.globals {
        ClusterRestore::Globals(PgCluster::new(target("--globals")?, locator))
    } else {
        let to = target("--database")?;
        let restorer = PgRestore::new(to.clone(), locator, spool());
        ClusterRestore::Database(c.database.clone().unwrap_or_default(), restorer, to)
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
        .with_migrations(pgb_jobs::probe_migrations(
            &a.migrations.migrations,
            a.migrations.migrations_query.as_deref(),
        )?))
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
pub(crate) fn with_files(
    a: &BackupArgs,
    options: pgb::BackupOptions,
) -> Result<pgb::BackupOptions, Failure> {
    a.files.files.iter().try_fold(options, |o, dir| {
        let files =
            pgb::FilesDump::new(dir).map_err(|e| Failure::usage(format!("--files: {e}")))?;
        Ok(o.with_files(files))
    })
}
