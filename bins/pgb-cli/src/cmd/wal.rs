//! `pgb wal push|fetch|verify`: the archive_command, the restore_command and the archive's
//! gap report. Flags win over `--job`, which wins over the environment.

use std::path::Path;

use pgb::Repository;
use pgb::wal::{WalError, WalFetchOptions, WalPushOptions};
use pgb_config::ResolvedJob;

use super::Ctx;
use crate::args::{EncryptArgs, JobArgs, WalCommand, WalFetchArgs, WalPushArgs, WalVerifyArgs};
use crate::exit::{self, Failure};
use crate::render::{self, Output};
use crate::resolve::{self, Env};

pub(super) async fn run(cmd: WalCommand, ctx: &Ctx<'_>) -> Result<(), Failure> {
    match cmd {
        WalCommand::Push(a) => super::wal_notify::push(a, ctx.env).await,
        WalCommand::Fetch(a) => fetch(a, ctx.env).await.map_err(|f| {
            // Everything but "not in the archive" must stop recovery (see exit::WAL_FETCH_FATAL).
            if f.code == exit::FAILURE {
                f
            } else {
                Failure::new(exit::WAL_FETCH_FATAL, f.message)
            }
        }),
        WalCommand::Verify(a) => verify(a, ctx.env).await,
        WalCommand::Stream(a) => super::wal_stream::run(a, ctx).await,
    }
}

pub(super) async fn push(a: WalPushArgs, env: Env<'_>) -> Result<(), Failure> {
    let job = job(&a.target.job, env)?;
    let (job_repo, opts) = match &job {
        Some(j) => {
            let (repo, opts) = pgb_jobs::job_wal_push(j, env)?;
            (Some(repo), opts)
        }
        None => (None, WalPushOptions::default()),
    };
    let repo = match job_repo {
        Some(r) if a.target.repo.repo.is_none() => r,
        _ => resolve::backup_repository(&a.target.repo, env)?,
    };
    let opts = push_flags(
        opts,
        a.compression.as_deref(),
        &a.encrypt,
        job.is_some(),
        env,
    )?;
    let system_id = match a.target.system_id {
        Some(id) => Some(id),
        None => control_file_system_id(Path::new("global/pg_control"))?,
    };
    let opts = opts.with_system_identifier(system_id);
    let wal = repo.wal();
    let name = a
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let pg_wal = a
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let ahead = a.parallel.unwrap_or(4).saturating_sub(1);
    let (pushed, _ahead) = tokio::join!(
        wal.push_file(&a.path, &opts),
        wal.push_ready_ahead(pg_wal, name, ahead, &opts)
    );
    let report = pushed.map_err(failure)?;
    if a.json {
        Output::json(true).emit(&report, |_| Ok(()))?;
    }
    Ok(())
}

async fn fetch(a: WalFetchArgs, env: Env<'_>) -> Result<(), Failure> {
    let repo = reading_repository(&a.target.repo, &a.target.job, &a.keys, env)?;
    let wal = repo.wal();
    let system_id = wal
        .choose_cluster(a.target.system_id)
        .await
        .map_err(failure)?;
    let opts = match a.spool {
        Some(dir) => WalFetchOptions::default().with_prefetch(dir, a.prefetch.unwrap_or(8)),
        None => WalFetchOptions::default(),
    };
    wal.fetch(system_id, &a.name, &a.path, &opts)
        .await
        .map(drop)
        .map_err(failure)
}

async fn verify(a: WalVerifyArgs, env: Env<'_>) -> Result<(), Failure> {
    let repo = reading_repository(&a.target.repo, &a.target.job, &a.keys, env)?;
    let wal = repo.wal();
    let system_id = wal
        .choose_cluster(a.target.system_id)
        .await
        .map_err(failure)?;
    // The kept base backups tell the holes a prune left between them from gaps.
    let listing = repo.list().await?;
    let backups: Vec<&pgb::Manifest> = listing.backups.iter().collect();
    let report = wal
        .verify(system_id, a.rehash, &backups)
        .await
        .map_err(failure)?;
    Output::json(a.json).emit(&report, |w| render::wal_verify_text(w, &report))?;
    let job = job(&a.target.job, env).ok().flatten();
    super::wal_notify::verify_gaps(job.as_ref(), env, &report).await;
    if report.is_whole() {
        Ok(())
    } else {
        Err(Failure::new(
            exit::INTEGRITY,
            format!(
                "the WAL archive of cluster {system_id} has {} gap(s) and {} damaged file(s): \
                 recovery cannot pass a gap; take a new base backup after the last gap",
                report.gaps().count(),
                report.damaged.len()
            ),
        ))
    }
}

/// The job of `--job`, if given.
pub(super) fn job(a: &JobArgs, env: Env<'_>) -> Result<Option<ResolvedJob>, Failure> {
    match &a.job {
        Some(name) => Ok(Some(resolve::config::job(a.config.as_deref(), name, env)?)),
        None => Ok(None),
    }
}

/// The repository to read WAL from, with its keys: flags, else the job's.
fn reading_repository(
    repo: &crate::args::RepoArgs,
    job_args: &JobArgs,
    keys: &crate::args::KeyArgs,
    env: Env<'_>,
) -> Result<Repository, Failure> {
    let job = job(job_args, env)?;
    let flags_name_keys = !keys.identity_file.is_empty()
        || keys.passphrase_file.is_some()
        || keys.auth_key_file.is_some();
    let decryption = match &job {
        Some(j) if !flags_name_keys => pgb_jobs::job_decryption(j, env)?,
        _ => resolve::decryption(keys, env)?,
    };
    let repo = match &job {
        Some(j) if repo.repo.is_none() => pgb_jobs::job_repository(j, env, false)?,
        _ => resolve::repository(repo, env)?,
    };
    Ok(repo.with_decryption(decryption))
}

/// The system identifier in `path` (global/pg_control: its first 8 bytes), when archive_command
/// runs in a data directory; `None` elsewhere.
pub(super) fn control_file_system_id(path: &Path) -> Result<Option<u64>, Failure> {
    match std::fs::read(path) {
        Ok(bytes) => pgb::wal::system_identifier_from_pg_control(&bytes)
            .map(Some)
            .map_err(|e| Failure::new(exit::FAILURE, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::new(
            exit::FAILURE,
            format!("{}: {e}", path.display()),
        )),
    }
}

/// The exit code of a WAL failure (push: always below 126, so PostgreSQL retries).
/// `--compression` and the key flags of `wal push` and `wal stream` over the job's push
/// options: the flags win; keys come from the flags alone when they name any (or without a
/// job), so a job's recipients never mix with a flag's.
pub(super) fn push_flags(
    mut push: WalPushOptions,
    compression: Option<&str>,
    encrypt: &EncryptArgs,
    from_job: bool,
    env: Env<'_>,
) -> Result<WalPushOptions, Failure> {
    if let Some(c) = compression {
        push =
            push.with_compression(c.parse().map_err(|e: pgb::InvalidCompression| {
                Failure::usage(format!("--compression: {e}"))
            })?);
    }
    let flags_name_keys = !encrypt.recipient.is_empty()
        || encrypt.recipients_file.is_some()
        || encrypt.passphrase_file.is_some()
        || encrypt.auth_key_file.is_some();
    if !from_job || flags_name_keys {
        push = push
            .with_encryption(resolve::encryption(encrypt, env)?)
            .with_auth_key(resolve::auth_key(encrypt.auth_key_file.as_deref(), env)?);
    }
    Ok(push)
}

pub(super) fn failure(e: WalError) -> Failure {
    let code = match e {
        WalError::Storage(s) => return Failure::from(pgb::Error::Storage(s)),
        WalError::NotFound { .. } | WalError::Io { .. } => exit::FAILURE,
        WalError::NotWalFile(_)
        | WalError::BadSegment { .. }
        | WalError::UnknownCluster { .. }
        | WalError::AmbiguousCluster { .. }
        | WalError::PassphraseEncryption => exit::USAGE,
        WalError::OtherCluster { .. } | WalError::Conflict { .. } => exit::REFUSED,
        WalError::Corrupt { .. } => exit::INTEGRITY,
        WalError::Unauthenticated { .. } | WalError::Key(_) => exit::KEY,
        _ => exit::FAILURE,
    };
    Failure::new(code, e.to_string())
}

/// The exit code of `restore --preview`'s WAL check: 0 when the target is reachable, else one
/// per reason, with what to do.
pub(super) fn verdict(r: &pgb::wal::WalReach) -> Result<(), Failure> {
    use pgb::wal::Reach;
    let (code, message) = match &r.reach {
        Reach::Reachable => return Ok(()),
        Reach::AfterLastCommit { .. } | Reach::AfterArchiveEnd | Reach::NotInArchive => (
            exit::TARGET_AFTER_ARCHIVE,
            "the target is not in the archived WAL: restore to the end of the archive (no \
             target) or to an earlier target; on a quiet server set archive_timeout so the last \
             commits reach the archive",
        ),
        Reach::BackupWalMissing { .. } | Reach::InGap { .. } => (
            exit::WAL_GAP,
            "a gap in the WAL archive lies before the target (pgb wal verify lists gaps): restore \
             to a target before it, or from a base backup taken after it",
        ),
        Reach::TimelineDoesNotLead { .. } => (
            exit::TIMELINE,
            "the timeline does not lead to the target from this backup: pass --timeline current \
             or the timeline that does, or choose a backup of that timeline",
        ),
        _ => (exit::TARGET_AFTER_ARCHIVE, "the target cannot be reached"),
    };
    Err(Failure::new(code, format!("--preview: {message}")))
}
