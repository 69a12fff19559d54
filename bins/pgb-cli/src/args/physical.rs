//! Arguments of physical backups (`backup --physical`) and their restores into a data
//! directory (`restore --pgdata DIR`, to a point in time).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::exit::Failure;

/// `backup --physical`.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Physical backup")]
pub(crate) struct PhysicalBackupArgs {
    /// Take a physical base backup of the whole cluster (pg_basebackup: every database, the
    /// roles, the configuration) for point-in-time recovery, instead of a dump. Needs
    /// wal_level = replica, max_wal_senders > 0 and a role with REPLICATION.
    #[arg(long, conflicts_with_all = [
        "format", "all_databases", "files", "schemas", "exclude_schema", "tables",
        "exclude_table", "exclude_table_data", "pg_dump_option", "jobs", "spool_dir",
    ])]
    pub(crate) physical: bool,
    /// Where the backup's WAL goes: `archive` (the repository's WAL archive, fed by
    /// archive_command = 'pgb wal push %p ...'; the backup is committed once its WAL is
    /// there, and restores to any later point the archive reaches) or `included` (inside the
    /// backup: restores with no archive, to the end of the backup) [default: archive].
    #[arg(long, value_enum, requires = "physical")]
    pub(crate) wal: Option<WalArg>,
    /// With --wal archive: how long to wait for the backup's WAL to reach the archive before
    /// giving up (nothing is committed then) [default: 2m].
    #[arg(long, value_name = "DURATION", requires = "physical")]
    pub(crate) wal_wait: Option<String>,
    /// PostgreSQL 17+: only the blocks changed since the newest base backup of the cluster
    /// and timeline in the repository (pg_basebackup --incremental; needs summarize_wal =
    /// on). The first one, with none to build on, is full. A restore combines the chain.
    #[arg(long, requires = "physical")]
    pub(crate) incremental: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum WalArg {
    /// In the repository's WAL archive.
    Archive,
    /// Inside the backup.
    Included,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TargetActionArg {
    /// End recovery and accept writes (a new timeline).
    Promote,
    /// Stay read-only in recovery until pg_wal_replay_resume().
    Pause,
    /// Stop the server.
    Shutdown,
}

/// `restore --pgdata DIR` and its recovery target.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Physical restore (point in time)")]
#[command(group = clap::ArgGroup::new("recovery_target").multiple(false))]
pub(crate) struct PhysicalRestoreArgs {
    /// Restore a physical backup into this data directory (created 0700 if missing; a
    /// non-empty one is refused without --clean), with recovery.signal and the settings that
    /// make PostgreSQL recover from the archive (restore_command = 'pgb wal fetch ...') to
    /// the target, then start it with pg_ctl. `latest` is the newest backup that ended
    /// before the target.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["db", "database", "globals", "all", "files_to"])]
    pub(crate) pgdata: Option<PathBuf>,
    /// Recover to this moment: RFC 3339 (2026-05-01T14:30:00Z) or 'YYYY-MM-DD HH:MM:SS+ZONE';
    /// a time without a zone is refused.
    #[arg(
        long,
        value_name = "TIME",
        group = "recovery_target",
        requires = "pgdata"
    )]
    pub(crate) to_time: Option<String>,
    /// Recover to this WAL position (e.g. 0/3000148).
    #[arg(
        long,
        value_name = "LSN",
        group = "recovery_target",
        requires = "pgdata"
    )]
    pub(crate) to_lsn: Option<String>,
    /// Recover to this restore point (pg_create_restore_point).
    #[arg(
        long,
        value_name = "NAME",
        group = "recovery_target",
        requires = "pgdata"
    )]
    pub(crate) to_name: Option<String>,
    /// Recover to this transaction id.
    #[arg(
        long,
        value_name = "XID",
        group = "recovery_target",
        requires = "pgdata"
    )]
    pub(crate) to_xid: Option<u64>,
    /// Recover only until the backup is consistent (its end), nothing more.
    #[arg(long, group = "recovery_target", requires = "pgdata")]
    pub(crate) immediate: bool,
    /// Stop just before the target instead of after it (--to-time, --to-lsn, --to-xid).
    #[arg(long, requires = "pgdata")]
    pub(crate) exclusive: bool,
    /// The timeline to follow: N, latest or current [default: latest].
    #[arg(long, value_name = "N|latest|current", requires = "pgdata")]
    pub(crate) timeline: Option<String>,
    /// What the server does at the target [default: promote].
    #[arg(long, value_enum, requires = "pgdata")]
    pub(crate) target_action: Option<TargetActionArg>,
    /// Only backups of this cluster (its system identifier, as `pgb list --json` shows it);
    /// needed when the repository holds physical backups of several clusters.
    #[arg(long = "system-id", value_name = "ID", requires = "pgdata")]
    pub(crate) system_id: Option<u64>,
    /// Print the plan (which backup, its WAL range, the bytes to fetch, the data directory)
    /// and write nothing.
    #[arg(long, requires = "pgdata")]
    pub(crate) preview: bool,
}

impl From<WalArg> for pgb::physical::WalMode {
    fn from(w: WalArg) -> Self {
        match w {
            WalArg::Archive => Self::Archive,
            WalArg::Included => Self::Included,
        }
    }
}

impl From<TargetActionArg> for pgb::physical::TargetAction {
    fn from(a: TargetActionArg) -> Self {
        match a {
            TargetActionArg::Promote => Self::Promote,
            TargetActionArg::Pause => Self::Pause,
            TargetActionArg::Shutdown => Self::Shutdown,
        }
    }
}

impl PhysicalBackupArgs {
    /// `--wal-wait`, default 2m.
    pub(crate) fn wal_wait(&self) -> Result<std::time::Duration, Failure> {
        let wait = self.wal_wait.as_deref().unwrap_or("2m");
        pgb_config::parse_duration(wait).map_err(|e| Failure::usage(format!("--wal-wait: {e}")))
    }
}

impl PhysicalRestoreArgs {
    /// The recovery target flags, as the library's request (checked by its `settings`).
    pub(crate) fn target_request(&self) -> pgb::physical::TargetRequest {
        pgb::physical::TargetRequest {
            time: self.to_time.clone(),
            lsn: self.to_lsn.clone(),
            name: self.to_name.clone(),
            xid: self.to_xid,
            immediate: self.immediate,
            exclusive: self.exclusive,
            timeline: self.timeline.clone(),
            action: self
                .target_action
                .unwrap_or(TargetActionArg::Promote)
                .into(),
        }
    }

    /// The checked recovery settings; an invalid target is named by its flag.
    pub(crate) fn recovery(&self) -> Result<pgb::physical::RecoverySettings, Failure> {
        use pgb::physical::InvalidRecovery;
        self.target_request().settings().map_err(|e| {
            Failure::usage(match e {
                InvalidRecovery::Time(_) => format!("--to-time: {e}"),
                InvalidRecovery::Lsn(_) => format!("--to-lsn: {e}"),
                InvalidRecovery::Timeline(_) => format!("--timeline {e}"),
                _ => "--exclusive applies to --to-time, --to-lsn and --to-xid only".to_owned(),
            })
        })
    }
}
