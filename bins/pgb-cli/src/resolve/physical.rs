//! `backup --physical` and `restore --pgdata`: flags and environment → the library's
//! physical dumper, restore request and recovery settings; the `restore_command` the restored
//! server runs (this binary's `wal fetch` with this repository and key *files*, never a key).

use std::path::{Path, PathBuf};
use std::time::Duration;

use pgb::BackupOptions;
use pgb::physical::{
    RecoverySettings, RecoveryTarget, TargetAction, TimelineTarget, WalMode, parse_target_time,
};
use pgb::postgres::PgBaseBackup;
use pgb::retention::Policy;

use super::{Env, conn, defaults, var};
use crate::args::{BackupArgs, RestoreArgs, TargetActionArg, WalArg};
use crate::exit::Failure;

/// How long a backup with its WAL in the archive waits for it, by default.
const WAL_WAIT: &str = "2m";

/// Everything `backup --physical` needs, validated before anything runs.
pub(crate) struct PhysicalBackup {
    pub(crate) dumper: PgBaseBackup,
    pub(crate) options: BackupOptions,
    pub(crate) wal_wait: Duration,
    pub(crate) prune: Option<Policy>,
}

pub(crate) fn backup(a: &BackupArgs, env: Env<'_>) -> Result<PhysicalBackup, Failure> {
    // Compression, encryption, labels and --prune as for any backup.
    let plain = super::backup(a, env)?;
    let conn = match &a.db {
        Some(url) => conn(url, true)?,
        None => conn(
            &var(env, "DATABASE_URL").unwrap_or_else(|| defaults::DB.to_owned()),
            false,
        )?,
    };
    let wal = match a.physical.wal.unwrap_or(WalArg::Archive) {
        WalArg::Archive => WalMode::Archive,
        WalArg::Included => WalMode::Included,
    };
    let wait = a.physical.wal_wait.as_deref().unwrap_or(WAL_WAIT);
    let wal_wait =
        pgb_config::parse_duration(wait).map_err(|e| Failure::usage(format!("--wal-wait: {e}")))?;
    Ok(PhysicalBackup {
        dumper: PgBaseBackup::new(conn, super::tools(&a.tools, env))
            .with_wal(wal)
            .with_incremental(a.physical.incremental),
        options: plain.options,
        wal_wait,
        prune: plain.prune,
    })
}

/// A physical restore, resolved: the request for the library (its `restore_command` is
/// completed once the plan names the cluster) and what the restore_command needs.
pub(crate) struct PhysicalRestore {
    pub(crate) request: pgb::physical::PhysicalRestoreRequest,
    /// The repository URL as the restored server's `pgb wal fetch` opens it.
    repo: String,
    /// Key files for `wal fetch`, absolute.
    key_flags: Vec<(&'static str, PathBuf)>,
    allow_unauthenticated: bool,
    /// Secrets the restored server's environment must provide (they are never written).
    pub(crate) env_secrets: Vec<&'static str>,
}

/// The target, timeline and action of `restore --pgdata`.
fn settings(a: &RestoreArgs) -> Result<RecoverySettings, Failure> {
    let p = &a.physical;
    let target = if let Some(t) = &p.to_time {
        RecoveryTarget::Time(
            parse_target_time(t).map_err(|e| Failure::usage(format!("--to-time: {e}")))?,
        )
    } else if let Some(l) = &p.to_lsn {
        RecoveryTarget::Lsn(
            l.parse()
                .map_err(|e: pgb::physical::InvalidLsn| Failure::usage(format!("--to-lsn: {e}")))?,
        )
    } else if let Some(n) = &p.to_name {
        RecoveryTarget::Name(n.clone())
    } else if let Some(x) = p.to_xid {
        RecoveryTarget::Xid(x)
    } else if p.immediate {
        RecoveryTarget::Immediate
    } else {
        RecoveryTarget::EndOfArchive
    };
    if p.exclusive && !target.takes_inclusive() {
        return Err(Failure::usage(
            "--exclusive applies to --to-time, --to-lsn and --to-xid only",
        ));
    }
    let timeline = match p.timeline.as_deref() {
        None | Some("latest") => TimelineTarget::Latest,
        Some("current") => TimelineTarget::Current,
        Some(n) => TimelineTarget::Id(n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            Failure::usage(format!(
                "--timeline {n:?}: expected a timeline number, latest or current"
            ))
        })?),
    };
    let action = match p.target_action.unwrap_or(TargetActionArg::Promote) {
        TargetActionArg::Promote => TargetAction::Promote,
        TargetActionArg::Pause => TargetAction::Pause,
        TargetActionArg::Shutdown => TargetAction::Shutdown,
    };
    Ok(RecoverySettings::new(None, target)
        .with_exclusive(p.exclusive)
        .with_timeline(timeline)
        .with_action(action))
}

/// `path` made absolute (the server runs restore_command in its data directory).
fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    })
}

pub(crate) fn restore(
    a: &RestoreArgs,
    dir: &Path,
    env: Env<'_>,
) -> Result<PhysicalRestore, Failure> {
    if a.select.table.len() + a.select.schema.len() > 0 || a.jobs.is_some() {
        return Err(Failure::usage(
            "--table, --schema and --jobs apply to dumps, not to a physical restore (--pgdata)",
        ));
    }
    let settings = settings(a)?;
    let url = super::repo_url(&a.repo, env);
    // A local repository: absolute, as the restored server's working directory is its own.
    let (repo, local) = match url.strip_prefix("file://") {
        Some(path) => (
            format!("file://{}", absolute(Path::new(path)).display()),
            true,
        ),
        None if !url.contains("://") => (absolute(Path::new(&url)).display().to_string(), true),
        None => (url.clone(), false),
    };
    let mut request = pgb::physical::PhysicalRestoreRequest::new(a.id.clone(), dir, settings)
        .with_system_identifier(a.physical.system_id)
        .with_clean(a.clean)
        .with_verify_first(!a.no_verify_first);
    if local {
        let path = repo.strip_prefix("file://").unwrap_or(&repo);
        request = request.with_protected(path, "the repository");
    }
    let k = &a.keys;
    let identities = if k.identity_file.is_empty() {
        super::paths(env, "PGB_IDENTITY_FILE")
    } else {
        k.identity_file.clone()
    };
    let mut key_flags: Vec<(&'static str, PathBuf)> = identities
        .iter()
        .map(|f| ("--identity-file", absolute(f)))
        .collect();
    let mut env_secrets = Vec::new();
    match &k.auth_key_file {
        Some(f) => key_flags.push(("--auth-key-file", absolute(f))),
        None if var(env, "PGB_AUTH_KEY").is_some() => env_secrets.push("PGB_AUTH_KEY"),
        None => {}
    }
    match &k.passphrase_file {
        Some(f) => key_flags.push(("--passphrase-file", absolute(f))),
        None if var(env, "PGB_PASSPHRASE").is_some() => env_secrets.push("PGB_PASSPHRASE"),
        None => {}
    }
    Ok(PhysicalRestore {
        request,
        repo,
        key_flags,
        allow_unauthenticated: k.allow_unauthenticated,
        env_secrets,
    })
}

/// A word for `sh -c` (PostgreSQL runs restore_command through the shell): as is when it
/// holds only safe characters, else in single quotes.
fn shell_word(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@".contains(&b));
    if safe {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A literal in restore_command: `%` doubled (PostgreSQL expands `%f`, `%p`, `%r`, `%%`).
fn literal(s: &str) -> String {
    shell_word(s).replace('%', "%%")
}

impl PhysicalRestore {
    /// The restore_command for the cluster `system_id` restored into `data_dir`:
    /// `<this pgb> wal fetch %f %p --repo URL --system-id ID [key files] --spool DIR/pgb_spool`.
    pub(crate) fn restore_command(
        &self,
        system_id: u64,
        data_dir: &Path,
    ) -> Result<String, Failure> {
        let exe = std::env::current_exe()
            .and_then(std::fs::canonicalize)
            .map_err(|e| {
                Failure::usage(format!(
                    "cannot tell where this pgb is, for restore_command: {e}"
                ))
            })?;
        let mut cmd = format!(
            "{} wal fetch %f %p --repo {} --system-id {system_id}",
            literal(&exe.display().to_string()),
            literal(&self.repo)
        );
        for (flag, path) in &self.key_flags {
            cmd.push(' ');
            cmd.push_str(flag);
            cmd.push(' ');
            cmd.push_str(&literal(&path.display().to_string()));
        }
        if self.allow_unauthenticated {
            cmd.push_str(" --allow-unauthenticated");
        }
        let spool = data_dir.join("pgb_spool");
        cmd.push_str(" --spool ");
        cmd.push_str(&literal(&spool.display().to_string()));
        Ok(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_command_words_are_quoted_for_the_shell_and_percent_signs_doubled() {
        assert_eq!(shell_word("/usr/bin/pgb"), "/usr/bin/pgb");
        assert_eq!(shell_word("/my repo/it's"), r"'/my repo/it'\''s'");
        assert_eq!(literal("/backups/100%"), "'/backups/100%%'");
        assert_eq!(literal("s3://bucket/prefix"), "s3://bucket/prefix");
    }
}
