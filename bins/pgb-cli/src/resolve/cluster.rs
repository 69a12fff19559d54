//! Whole-server and directory-format backups and restores: arguments + environment → a
//! [`PgCluster`] or [`PgDumpDirectory`] on the connection and selection that `backup`
//! resolves for one database, and the library options.

use pgb::postgres::{ConnConfig, DumpOptions, PgCluster, PgDumpDirectory, PgRestore};

use super::{Backup, Env, tools};
use crate::args::{BackupArgs, RestoreArgs};
use crate::exit::Failure;

/// `backup --all-databases`: the server, keys, compression and `--prune` policy exactly as
/// for one database (the server of `--db`, else `DATABASE_URL`, else libpq's `PG*`).
pub(crate) fn cluster_backup(a: &BackupArgs, env: Env<'_>) -> Result<(PgCluster, Backup), Failure> {
    let single = super::backup(a, env)?;
    let (conn, selection) = (
        single.dumper.conn().clone(),
        single.dumper.options().clone(),
    );
    let encrypted = single.options.encryption.is_some();
    let server = a.cluster.server();
    let dumper =
        pgb_jobs::server_dumper(conn, tools(&a.tools, env), &server, selection, encrypted)?;
    Ok((dumper, single))
}

/// `backup --format directory [--jobs N] [--spool-dir DIR]`.
pub(crate) fn directory_backup(
    a: &BackupArgs,
    env: Env<'_>,
) -> Result<(PgDumpDirectory, Backup), Failure> {
    let single = super::backup(a, env)?;
    let spool = pgb_jobs::spool_dir(a.directory.spool_dir.as_deref(), env);
    let (conn, selection) = (
        single.dumper.conn().clone(),
        single.dumper.options().clone(),
    );
    let jobs = a.directory.jobs.unwrap_or(1);
    let dumper = pgb_jobs::directory_dumper(conn, tools(&a.tools, env), jobs, &spool, selection);
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
    a.check_kind()?;
    let c = &a.cluster;
    let locator = tools(&a.tools, env);
    let target = |what: &str| {
        let url = a.db.as_deref().ok_or_else(|| {
            Failure::usage(format!(
                "{what} needs a target: --db postgres://user@host:port/DB"
            ))
        })?;
        Ok::<_, Failure>(pgb_jobs::connection(url, true)?)
    };
    let spool = || pgb_jobs::spool_dir(a.spool_dir.as_deref(), env);
    Ok(if c.all {
        let server = pgb_jobs::connection(c.server.as_deref().unwrap_or_default(), true)?;
        ClusterRestore::All(PgCluster::new(server, locator).with_spool_dir(spool()))
    } else if c.globals {
        ClusterRestore::Globals(PgCluster::new(target("--globals")?, locator))
    } else {
        let to = target("--database")?;
        let restorer = PgRestore::new(to.clone(), locator, spool());
        ClusterRestore::Database(c.database.clone().unwrap_or_default(), restorer, to)
    })
}

/// pg_dump's selection and pass-through options of `backup` ([`pgb_jobs::selection_options`],
/// as for a job), and the migration heads its preflight reads.
pub(crate) fn dump_options(a: &BackupArgs) -> Result<DumpOptions, Failure> {
    let m = &a.migrations;
    Ok(pgb_jobs::selection_options(&a.select.selection())
        .map_err(|e| Failure::usage(format!("--pg-dump-option: {e}")))?
        .with_migrations(pgb_jobs::probe_migrations(
            &m.migrations,
            m.migrations_query.as_deref(),
        )?))
}
