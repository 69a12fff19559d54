//! `backup --physical` and `restore --pgdata`: flags → the library's base-backup dumper, and
//! the restore request with its checked recovery target and the `restore_command` the
//! restored server runs ([`WalFetchCommand`]: this binary's `wal fetch` with this repository
//! and key *files*, never a key).

use std::path::Path;

use pgb::physical::{PhysicalRestoreRequest, WalFetchCommand};
use pgb::postgres::PgBaseBackup;

use super::{Backup, Env};
use crate::args::{BackupArgs, RestoreArgs, WalArg};
use crate::exit::Failure;

/// `backup --physical`: compression, keys, labels and `--prune` as for any backup, and how
/// long a backup with its WAL in the archive waits for it (`--wal-wait`, default 2m).
pub(crate) fn backup(
    a: &BackupArgs,
    env: Env<'_>,
) -> Result<(PgBaseBackup, Backup, std::time::Duration), Failure> {
    let plain = super::backup(a, env)?;
    let wal_wait = a.physical.wal_wait()?;
    let dumper = PgBaseBackup::new(plain.dumper.conn().clone(), super::tools(&a.tools, env))
        .with_wal(a.physical.wal.unwrap_or(WalArg::Archive).into())
        .with_incremental(a.physical.incremental);
    Ok((dumper, plain, wal_wait))
}

/// A physical restore, resolved: the request (its `restore_command` is set once the plan
/// names the cluster: [`WalFetchCommand::line`]), and the secrets only the environment holds,
/// which the restored server's environment must provide (they are never written).
pub(crate) struct PhysicalRestore {
    pub(crate) request: PhysicalRestoreRequest,
    pub(crate) fetch: WalFetchCommand,
    pub(crate) env_secrets: Vec<&'static str>,
}

pub(crate) fn restore(
    a: &RestoreArgs,
    dir: &Path,
    env: Env<'_>,
) -> Result<PhysicalRestore, Failure> {
    a.check_kind()?;
    let settings = a.physical.recovery()?;
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| {
            Failure::usage(format!(
                "cannot tell where this pgb is, for restore_command: {e}"
            ))
        })?;
    let fetch = WalFetchCommand::new(exe, &super::repo_url(&a.repo, env))
        .with_allow_unauthenticated(a.keys.allow_unauthenticated);
    let (fetch, env_secrets) = a.keys.sources().wal_fetch(fetch, env);
    let mut request = PhysicalRestoreRequest::new(a.id.clone(), dir, settings)
        .with_system_identifier(a.physical.system_id)
        .with_clean(a.clean)
        .with_verify_first(!a.no_verify_first);
    if let Some(repo) = fetch.local_repository() {
        request = request.with_protected(repo, "the repository");
    }
    Ok(PhysicalRestore {
        request,
        fetch,
        env_secrets,
    })
}
