//! Text output for people.

use std::collections::BTreeMap;
use std::io::{self, Write};

use pgb::retention::Plan;
use pgb::{
    BackupReport, Manifest, PruneAction, PruneReport, RestoreReport, StorageStats, VerifyOutcome,
};
use time::OffsetDateTime;

pub(crate) fn backup(w: &mut dyn Write, r: &BackupReport) -> io::Result<()> {
    let m = &r.manifest;
    writeln!(
        w,
        "backup {} of {} complete: {} stored ({} uncompressed, {}), {}",
        m.id,
        m.database,
        human(m.stored_size()),
        human(m.plain_size()),
        m.compression,
        m.dump().map_or_else(
            || format!("{} files", m.artifacts.len()),
            |a| format!("sha256 {}", a.stored_sha256)
        )
    )?;
    storage(w, &r.storage)
}

/// `storage: 3 retries, 1 downloads resumed` when the network needed any (at `-v` the
/// totals are logged either way).
pub(crate) fn storage(w: &mut dyn Write, s: &StorageStats) -> io::Result<()> {
    if *s == StorageStats::default() {
        return Ok(());
    }
    write!(w, "storage: {} retries", s.retries)?;
    if s.read_resumes > 0 {
        write!(w, ", {} downloads resumed", s.read_resumes)?;
    }
    if s.budget_exhausted > 0 {
        write!(w, ", {} retry budgets exhausted", s.budget_exhausted)?;
    }
    writeln!(w)
}

pub(crate) fn list(
    w: &mut dyn Write,
    rows: &[&Manifest],
    drills: &BTreeMap<pgb::BackupId, pgb_ops::DrillReport>,
    verified: &BTreeMap<pgb::BackupId, OffsetDateTime>,
    location: &str,
) -> io::Result<()> {
    if rows.is_empty() {
        return writeln!(w, "no backups in {location}");
    }
    // Migration heads: as wide as the widest (blank for a backup that recorded none).
    let heads: Vec<String> = rows.iter().map(|m| super::migrations::column(m)).collect();
    let mw = heads
        .iter()
        .map(|h| h.chars().count())
        .max()
        .unwrap_or(0)
        .max(9);
    writeln!(
        w,
        "{:<24} {:<16} {:<20} {:>10} {:>10} {:<7} {:<8} {:<15} {:<10} {:<3} {:>5} {:<mw$} LABELS",
        "ID",
        "DATABASE",
        "STARTED (UTC)",
        "STORED",
        "PLAIN",
        "FORMAT",
        "COMPRESS",
        "LAST DRILL",
        "VERIFIED",
        "ENC",
        "FILES",
        "MIGRATION"
    )?;
    for (m, head) in rows.iter().zip(&heads) {
        let drill = drills
            .get(&m.id)
            .map_or("-", |d| pgb_jobs::outcome_name(d.outcome));
        let verified_on = verified.get(&m.id).map_or_else(
            || "-".to_owned(),
            |t| {
                fmt_time(*t)
                    .split(' ')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            },
        );
        let files = m
            .artifacts
            .iter()
            .filter(|a| a.kind == pgb::ArtifactKind::Files)
            .count();
        writeln!(
            w,
            "{:<24} {:<16} {:<20} {:>10} {:>10} {:<7} {:<8} {:<15} {:<10} {:<3} {:>5} {head:<mw$} {}",
            m.id,
            super::cluster::database_label(m),
            fmt_time(m.started_at),
            human(m.stored_size()),
            human(m.plain_size()),
            m.format.to_string(),
            m.compression.to_string(),
            drill,
            verified_on,
            if m.encryption.is_some() { "yes" } else { "no" },
            files,
            if m.dump_options.is_empty() {
                m.labels.join(",")
            } else {
                format!("{} [{}]", m.labels.join(","), m.dump_options.join(" "))
            }
        )?;
        if let Some(inc) = m.physical.as_ref().and_then(|p| p.incremental.as_ref()) {
            writeln!(
                w,
                "{:<24} incremental on {} (a restore combines {} backup(s))",
                "",
                inc.parent,
                inc.chain.len() + 1
            )?;
        }
    }
    Ok(())
}

/// `ok <id>: ...` for each verified backup (failures are reported on stderr).
pub(crate) fn verify(w: &mut dyn Write, outcomes: &[VerifyOutcome]) -> io::Result<()> {
    for o in outcomes.iter().filter(|o| o.ok) {
        writeln!(
            w,
            "ok {}: {} stored, {} plain, {} archive entries",
            o.id,
            human(o.stored_size.unwrap_or_default()),
            human(o.plain_size.unwrap_or_default()),
            o.toc_entries.map_or("-".to_owned(), |n| n.to_string())
        )?;
        if let Some(s) = &o.storage {
            storage(w, s)?;
        }
    }
    Ok(())
}

/// `restored backup ID (DB of TIME) into ...`; for one database (`from`) of a whole-server
/// backup: `restored database DB of backup ID (whole server HOST:PORT of TIME) into ...`.
pub(crate) fn restore(
    w: &mut dyn Write,
    m: &Manifest,
    from: Option<&str>,
    r: &RestoreReport,
    seconds: f64,
) -> io::Result<()> {
    let (what, source) = match (&m.cluster, from) {
        (Some(_), Some(db)) => (
            format!("database {db} of "),
            format!("whole server {}", m.server),
        ),
        (Some(_), None) => (String::new(), format!("whole server {}", m.server)),
        (None, _) => (String::new(), m.database.clone()),
    };
    writeln!(
        w,
        "restored {what}backup {} ({source} of {}) into {}{} in {seconds:.1}s{}",
        m.id,
        fmt_time(m.started_at),
        r.database,
        if r.created { " (created)" } else { "" },
        r.objects_read.map_or_else(String::new, |n| format!(
            " ({n} of {} stored objects read)",
            m.artifacts.len()
        )),
    )?;
    storage(w, &r.storage)
}

/// Per set: a summary line, then every backup newest first with its decision and reasons.
pub(crate) fn prune(w: &mut dyn Write, report: &PruneReport) -> io::Result<()> {
    let dry = if report.dry_run { " (dry run)" } else { "" };
    for set in &report.sets {
        writeln!(
            w,
            "set {}: keep {}, remove {}{dry}",
            set.set,
            set.with_action(PruneAction::Keep).count(),
            set.with_action(PruneAction::Remove).count(),
        )?;
        for d in &set.decisions {
            let what = match d.action {
                PruneAction::Remove => "remove  no rule keeps it".to_owned(),
                _ if d.verified_guard => {
                    "keep    newest verified (the policy would remove it)".to_owned()
                }
                _ if d.newest_guard => {
                    "keep    newest backup of its set (the policy would remove it)".to_owned()
                }
                _ if !d.parent_of.is_empty() && d.reasons.is_empty() => {
                    let of: Vec<String> = d.parent_of.iter().map(ToString::to_string).collect();
                    format!(
                        "keep    parent of kept incremental {} (the policy would remove it)",
                        of.join(", ")
                    )
                }
                _ if d.window_guard => {
                    "keep    the recovery window starts after it ended (the policy would remove it)"
                        .to_owned()
                }
                _ => {
                    let reasons: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
                    format!("keep    {}", reasons.join(", "))
                }
            };
            writeln!(w, "{:<24} {:<20} {what}", d.id, fmt_time(d.started_at))?;
        }
    }
    super::window::prune_wal(w, &report.wal, report.dry_run)?;
    if !report.dry_run {
        writeln!(w, "pruned {} backup(s)", report.deleted())?;
    }
    Ok(())
}

pub(crate) fn gc(w: &mut dyn Write, report: &pgb::GcReport, older_than: &str) -> io::Result<()> {
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for l in &report.leftovers {
        writeln!(
            w,
            "{verb} {} ({} object(s) of an uncommitted backup)",
            l.id,
            l.keys.len()
        )?;
        for k in &l.keys {
            writeln!(w, "  {k}")?;
        }
    }
    for k in &report.expired_leases {
        writeln!(w, "{verb} {k} (the expired lease of a backup that ended)")?;
    }
    for s in &report.skipped {
        writeln!(w, "left {}: {}", s.path, s.reason)?;
    }
    writeln!(
        w,
        "gc: {verb} {} leftover folder(s) and {} expired lease(s) older than {older_than}; {} left alone",
        report.leftovers.len(),
        report.expired_leases.len(),
        report.skipped.len()
    )
}

/// A retention plan, newest first.
pub(crate) fn plan(
    w: &mut dyn Write,
    plan: &Plan,
    times: &BTreeMap<String, OffsetDateTime>,
) -> io::Result<()> {
    let mut rows: Vec<(OffsetDateTime, &str, String)> = Vec::new();
    for k in &plan.keep {
        let reasons: Vec<String> = k.reasons.iter().map(ToString::to_string).collect();
        rows.push((
            times[&k.id],
            &k.id,
            format!("keep    {}", reasons.join(", ")),
        ));
    }
    for r in &plan.remove {
        rows.push((times[r], r, "remove  no rule keeps it".to_owned()));
    }
    rows.sort_by(|a, b| (b.0, b.1).cmp(&(a.0, a.1)));
    for (t, id, what) in rows {
        writeln!(w, "{id:<24} {:<20} {what}", fmt_time(t))?;
    }
    Ok(())
}

pub(crate) fn fmt_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub(crate) fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_human() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(5 << 30), "5.0 GiB");
    }
}
