//! Text for the recoverable window (`pgb list`) and the WAL part of `pgb prune`.

use std::io::{self, Write};

use pgb::wal::{ClusterWindow, RecoverableRange, TimelineWindow, WalRange, WalRetention};

use super::text::{fmt_time, human};

/// `2026-05-01 12:00:00 (backup ID) to 2026-05-02 10:00:01 (newest commit)`.
fn range(r: &RecoverableRange) -> String {
    let to = match (r.to_commit, &r.to_segment) {
        (Some(t), _) if r.reaches_end => format!("{} (newest commit)", fmt_time(t)),
        (Some(t), _) => format!("{} (last commit before the gap)", fmt_time(t)),
        (None, Some(s)) if r.reaches_end => format!("{} (end of {s})", r.to_lsn),
        (None, Some(s)) => format!("{} (end of {s}, then a gap)", r.to_lsn),
        (None, None) => format!("{} (the backup's own end only)", r.to_lsn),
    };
    format!(
        "{} (end of backup {}) to {to}",
        fmt_time(r.from_time),
        r.from_backup
    )
}

/// One timeline: its window, the ranges cut off before it, its gaps and broken backups.
fn timeline(w: &mut dyn Write, t: &TimelineWindow, indent: &str) -> io::Result<()> {
    let fork = t
        .forked_from
        .as_ref()
        .map(|f| format!(" (forked from {} at {})", f.parent, f.switch_point))
        .unwrap_or_default();
    match t.window() {
        Some(r) => writeln!(w, "{indent}timeline {}{fork}: {}", t.timeline, range(r))?,
        None if t.ranges.is_empty() => writeln!(
            w,
            "{indent}timeline {}{fork}: nothing recoverable (no usable base backup reaches it)",
            t.timeline
        )?,
        None => writeln!(
            w,
            "{indent}timeline {}{fork}: no window to the end of the archive",
            t.timeline
        )?,
    }
    let cut_off = t.ranges.len() - usize::from(t.window().is_some());
    for r in &t.ranges[..cut_off] {
        writeln!(w, "{indent}  also       {}", range(r))?;
    }
    for g in &t.gaps {
        let affects = if g.affects.is_empty() {
            String::new()
        } else {
            let ids: Vec<String> = g.affects.iter().map(ToString::to_string).collect();
            format!("; restores from {} stop before it", ids.join(", "))
        };
        writeln!(
            w,
            "{indent}  GAP        {} segment(s) missing, {}..{} (WAL {}..{}){affects}",
            g.gap.missing, g.gap.first_missing, g.gap.last_missing, g.gap.start, g.gap.end
        )?;
    }
    for u in &t.unrecoverable {
        writeln!(
            w,
            "{indent}  UNUSABLE   backup {}: its WAL from {} is not archived",
            u.backup, u.first_missing
        )?;
    }
    if let Some(p) = &t.history_problem {
        writeln!(w, "{indent}  note       {p}")?;
    }
    Ok(())
}

/// `pgb list`'s section: per cluster and timeline, what a restore can reach.
pub(crate) fn windows(w: &mut dyn Write, clusters: &[ClusterWindow]) -> io::Result<()> {
    for c in clusters {
        writeln!(
            w,
            "recoverable window of cluster {} ({} physical backup(s)):",
            c.system_identifier, c.backups
        )?;
        if let Some(n) = &c.newest_commit {
            writeln!(
                w,
                "  newest archived commit {} (in {})",
                fmt_time(n.at),
                n.segment
            )?;
        } else if let Some(p) = &c.commit_problem {
            writeln!(w, "  newest archived commit unknown: {p}")?;
        }
        for t in &c.timelines {
            timeline(w, t, "  ")?;
        }
        if !c.foreign.is_empty() {
            writeln!(
                w,
                "  note       {} object(s) that are not WAL files (left alone)",
                c.foreign.len()
            )?;
        }
    }
    Ok(())
}

fn wal_range(w: &mut dyn Write, verb: &str, r: &WalRange) -> io::Result<()> {
    let span = if r.first == r.last {
        r.first.clone()
    } else {
        format!("{}..{}", r.first, r.last)
    };
    let why = r
        .reason
        .as_deref()
        .map(|x| format!("  {x}"))
        .unwrap_or_default();
    writeln!(
        w,
        "  {verb:<7} timeline {} {span} ({} file(s), {}){why}",
        r.timeline,
        r.files,
        human(r.bytes)
    )
}

/// The windows of one side of a prune: one line per timeline.
fn summary(w: &mut dyn Write, label: &str, timelines: &[TimelineWindow]) -> io::Result<()> {
    for t in timelines {
        let what = match t.window() {
            Some(r) => range(r),
            None => "no window to the end of the archive".to_owned(),
        };
        let gaps = match t.gaps.len() {
            0 => String::new(),
            n => format!(", {n} gap(s) before it"),
        };
        writeln!(w, "  {label:<7} timeline {}: {what}{gaps}", t.timeline)?;
    }
    Ok(())
}

/// `pgb prune`'s WAL part: per cluster what is kept and why, what goes, the window before and
/// after.
pub(crate) fn prune_wal(w: &mut dyn Write, wal: &[WalRetention], dry_run: bool) -> io::Result<()> {
    for r in wal {
        let window = match (&r.window, r.window_wanted_from) {
            (Some(span), Some(from)) => {
                format!("recovery window {span}, from {}", fmt_time(from))
            }
            _ => "no window rule: from the oldest kept backup".to_owned(),
        };
        let from = r
            .keep_from
            .map(|l| format!(", everything from {l} kept"))
            .unwrap_or_default();
        let backup = r
            .window_backup
            .as_ref()
            .map(|b| format!(" (backup {b})"))
            .unwrap_or_default();
        writeln!(
            w,
            "WAL of cluster {}: {window}{backup}{from}",
            r.system_identifier
        )?;
        for k in &r.keep {
            wal_range(w, "keep", k)?;
        }
        let verb = if dry_run { "delete" } else { "deleted" };
        for d in &r.delete {
            wal_range(w, verb, d)?;
        }
        summary(w, "before", &r.before)?;
        summary(w, "after", &r.after)?;
        for o in &r.left_alone {
            writeln!(w, "  left alone (not a WAL file): {o}")?;
        }
        let bytes: u64 = r.delete.iter().map(|d| d.bytes).sum();
        if dry_run {
            writeln!(
                w,
                "  would delete {} WAL file(s), {}",
                r.to_delete(),
                human(bytes)
            )?;
        } else {
            writeln!(
                w,
                "  deleted {} WAL file(s), {}",
                r.deleted_files,
                human(r.deleted_bytes)
            )?;
        }
    }
    Ok(())
}
