//! Text of physical backups, restore plans (`--preview`) and restores.

use std::io::{self, Write};

use pgb::BackupReport;
use pgb::physical::{PhysicalRestorePlan, PhysicalRestoreReport, RecoveryTarget, TargetDir};

use super::text::{fmt_time, human, storage};

/// `physical backup <id> of system <id> complete: ...`.
pub(crate) fn backup(w: &mut dyn Write, r: &BackupReport) -> io::Result<()> {
    let m = &r.manifest;
    let Some(p) = &m.physical else {
        return super::text::backup(w, r);
    };
    writeln!(
        w,
        "physical backup {} of system {} (PostgreSQL {}) complete: {} stored ({} uncompressed, {}), {} files",
        m.id,
        p.system_identifier,
        m.server_version,
        human(m.stored_size()),
        human(m.plain_size()),
        m.compression,
        p.files
    )?;
    if let Some(inc) = &p.incremental {
        writeln!(
            w,
            "incremental on {} (a restore combines {} backup(s): {})",
            inc.parent,
            inc.chain.len() + 1,
            inc.chain
                .iter()
                .chain(std::iter::once(&m.id))
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" + ")
        )?;
    }
    writeln!(
        w,
        "WAL {} to {} on timeline {} ({}), consistent from {}",
        p.start_wal_file,
        p.stop_wal_file,
        p.stop_timeline,
        match p.wal {
            pgb::physical::WalMode::Included => "included in the backup",
            _ => "in the archive",
        },
        p.stop_lsn
    )?;
    storage(w, &r.storage)
}

fn target_line(p: &PhysicalRestorePlan) -> String {
    let mut s = p.target.to_string();
    if p.exclusive {
        s.push_str(" (exclusive)");
    }
    format!(
        "{s}, timeline {}, then {}",
        p.timeline_target,
        match p.target {
            RecoveryTarget::EndOfArchive => "promote".to_owned(),
            _ => p.action.to_string(),
        }
    )
}

/// `restore --preview`: the plan, nothing written.
pub(crate) fn plan(w: &mut dyn Write, p: &PhysicalRestorePlan) -> io::Result<()> {
    writeln!(w, "restore plan (nothing written):")?;
    writeln!(
        w,
        "  backup       {} of system {} (PostgreSQL {}), ended {}",
        p.backup,
        p.system_identifier,
        p.server_version,
        fmt_time(p.backup_stop_time)
    )?;
    writeln!(
        w,
        "  WAL          from {} (LSN {}), consistent at {} (LSN {}){}",
        p.wal_from,
        p.start_lsn,
        p.wal_consistent_at,
        p.stop_lsn,
        match p.wal {
            pgb::physical::WalMode::Included => "; included in the backup",
            _ => "; from the archive",
        }
    )?;
    if !p.chain.is_empty() {
        writeln!(
            w,
            "  incremental  combines {} + {} (pg_combinebackup)",
            p.chain
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" + "),
            p.backup
        )?;
    }
    writeln!(w, "  target       {}", target_line(p))?;
    writeln!(
        w,
        "  fetch        {} ({} written)",
        human(p.fetch_bytes),
        human(p.plain_bytes)
    )?;
    writeln!(
        w,
        "  data dir     {} ({})",
        p.data_dir.display(),
        match p.dir {
            TargetDir::Missing => "to be created".to_owned(),
            TargetDir::Empty => "empty".to_owned(),
            TargetDir::Replaced { entries } => format!("{entries} entries to be replaced"),
            _ => "?".to_owned(),
        }
    )?;
    if let Some(cmd) = &p.restore_command {
        writeln!(w, "  restore_command = {}", pgb::physical::quote_conf(cmd))?;
    }
    Ok(())
}

/// After a restore: what was written and how to start it.
pub(crate) fn restored(
    w: &mut dyn Write,
    r: &PhysicalRestoreReport,
    seconds: f64,
) -> io::Result<()> {
    let p = &r.plan;
    writeln!(
        w,
        "restored backup {} into {} in {seconds:.1}s: {} entries, {} written, {} files checked against backup_manifest",
        p.backup,
        p.data_dir.display(),
        r.entries,
        human(r.bytes),
        r.files_checked
    )?;
    writeln!(
        w,
        "recovery: {}; start it with PostgreSQL {}: pg_ctl -D {} start",
        target_line(p),
        p.server_version
            .split('.')
            .next()
            .unwrap_or(&p.server_version),
        p.data_dir.display()
    )?;
    storage(w, &r.storage)
}
