//! Reports of whole-server backups and restores.

use std::io::{self, Write};

use pgb::{ClusterBackup, ClusterRestoreReport, GlobalsReport, Manifest};
use serde::Serialize;

use super::text::human;

/// `backup --all-databases`: one line for the backup, one per artifact.
pub(crate) fn backup(w: &mut dyn Write, b: &ClusterBackup) -> io::Result<()> {
    let m = &b.backup.manifest;
    let n = m.cluster.as_ref().map_or(0, |c| c.databases.len());
    writeln!(
        w,
        "backup {} of {} ({n} databases and globals) complete: {} stored ({} uncompressed, {})",
        m.id,
        m.server,
        human(m.stored_size()),
        human(m.plain_size()),
        m.compression,
    )?;
    for a in &m.artifacts {
        writeln!(
            w,
            "  {:<8} {:<24} {:>10}  sha256 {}",
            format!("{:?}", a.kind).to_lowercase(),
            a.name,
            human(a.stored_size),
            a.stored_sha256
        )?;
    }
    Ok(())
}

/// Warnings about a committed whole-server backup, on stderr.
pub(crate) fn notes(b: &ClusterBackup) {
    for d in &b.gone {
        super::note(format!(
            "warning: database {d} was in the previous backup of {} but is no longer on the server",
            b.backup.manifest.server
        ));
    }
}

/// The database column of `list`: `*` and how many databases a whole-server backup holds.
pub(crate) fn database_label(m: &Manifest) -> String {
    match &m.cluster {
        Some(c) => format!("*({})", c.databases.len()),
        None => m.database.clone(),
    }
}

/// `restore --globals`: the summary line.
pub(crate) fn globals(w: &mut dyn Write, r: &GlobalsReport) -> io::Result<()> {
    writeln!(
        w,
        "globals: {} created, {} existed, {} failed ({} other statements applied{})",
        r.created,
        r.existed,
        r.failed(),
        r.applied,
        if r.skipped > 0 {
            format!(", {} skipped", r.skipped)
        } else {
            String::new()
        }
    )
}

/// Failed globals statements, on stderr.
pub(crate) fn globals_failures(r: &GlobalsReport) {
    for f in &r.failures {
        super::note(format!(
            "globals statement failed: {}: {}",
            f.statement, f.error
        ));
    }
}

/// `restore --all`.
pub(crate) fn restore_all(
    w: &mut dyn Write,
    m: &Manifest,
    r: &ClusterRestoreReport,
    seconds: f64,
) -> io::Result<()> {
    globals(w, &r.globals)?;
    for d in &r.databases {
        writeln!(
            w,
            "restored database {}{}",
            d.database,
            if d.created { " (created)" } else { "" }
        )?;
    }
    writeln!(
        w,
        "restored backup {} ({} databases and globals of {}) in {seconds:.1}s",
        m.id,
        r.databases.len(),
        m.server
    )
}

/// `restore --all --json`.
#[derive(Serialize)]
pub(crate) struct RestoreAllOut<'a> {
    pub(crate) backup: &'a str,
    #[serde(flatten)]
    pub(crate) report: &'a ClusterRestoreReport,
    pub(crate) seconds: f64,
}

/// The summary of `restore --files-to`: one line per archive restored.
pub(crate) fn files_restored(
    w: &mut dyn Write,
    m: &Manifest,
    done: &[pgb::FilesRestored],
) -> io::Result<()> {
    for r in done {
        writeln!(
            w,
            "restored the files of backup {} ({}) into {}",
            m.id,
            r.source,
            r.destination.display()
        )?;
    }
    Ok(())
}

/// How many names a files restore warning shows before "and N more".
const NAMED: usize = 10;

/// `a, b, c and 7 more`.
fn named<T>(list: &pgb::Listed<T>, show: impl Fn(&T) -> String) -> String {
    let mut text = list
        .shown
        .iter()
        .take(NAMED)
        .map(show)
        .collect::<Vec<_>>()
        .join(", ");
    let rest = list.total - list.shown.len().min(NAMED) as u64;
    if rest > 0 {
        text = format!("{text} and {rest} more");
    }
    text
}

/// What a files restore changed or left out, on stderr: dropped mode bits, refused entries,
/// special files, stale staging folders removed.
pub(crate) fn files_notes(done: &[pgb::FilesRestored]) {
    use super::note;
    for r in done {
        let dest = r.destination.display();
        for p in &r.stale_removed {
            note(format_args!(
                "note: removed {}, the staging folder of an earlier files restore into {dest} that was killed",
                p.display()
            ));
        }
        if !r.modes_changed.is_empty() {
            note(format_args!(
                "warning: {} file(s) in {dest} restored without their setuid, setgid, sticky or world-writable bits (pass --keep-modes to keep them): {}",
                r.modes_changed.total,
                named(&r.modes_changed, |c| format!(
                    "{} {:04o} -> {:04o}",
                    if c.path == "." {
                        "(the directory itself)"
                    } else {
                        &c.path
                    },
                    c.archived,
                    c.restored
                ))
            ));
        }
        if !r.refused.is_empty() {
            note(format_args!(
                "warning: {} archive entr{} not restored, as {} would land outside {dest}: {}",
                r.refused.total,
                if r.refused.total == 1 { "y" } else { "ies" },
                if r.refused.total == 1 { "it" } else { "they" },
                named(&r.refused, |e| format!("{} ({})", e.path, e.reason))
            ));
        }
        if !r.special_skipped.is_empty() {
            note(format_args!(
                "warning: {} device node(s) or FIFO(s) not recreated in {dest}: {}",
                r.special_skipped.total,
                named(&r.special_skipped, Clone::clone)
            ));
        }
        for w in &r.warnings {
            note(format_args!("warning: {w}"));
        }
    }
}
