//! Text for `drill` and `check` (their JSON is the library's report as is).

use std::io::{self, Write};

use pgb_ops::{CheckReport, DrillEntry, DrillReport};

use super::text::fmt_time;

/// A duration as people write it: `0.4s`, `41.2s`, `3m05s`, `1h02m`.
fn secs(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        pgb_config::format_duration(std::time::Duration::from_secs(ms / 1000))
    }
}

/// A limit as it was written: `30m`, `26h`.
fn limit_secs(s: u64) -> String {
    pgb_config::format_duration(std::time::Duration::from_secs(s))
}

/// One drill: verdict, RTO/RPO, phases and checks.
pub(crate) fn drill(w: &mut dyn Write, r: &DrillReport) -> io::Result<()> {
    writeln!(
        w,
        "drill {} of {} ({}): {}",
        pgb_jobs::outcome_name(r.outcome),
        r.backup_id,
        r.database,
        r.cause.as_deref().unwrap_or("every check passed")
    )?;
    let limit = |v: Option<String>| v.map(|v| format!(" (max {v})")).unwrap_or_default();
    writeln!(
        w,
        "  RTO {}{}, RPO {}{}",
        secs(r.rto_ms),
        limit(r.max_rto_ms.map(|ms| limit_secs(ms / 1000))),
        limit_secs(r.rpo_s),
        limit(r.max_rpo_s.map(limit_secs))
    )?;
    let phases: Vec<String> = r
        .phases
        .iter()
        .map(|p| format!("{} {}", p.name, secs(p.millis)))
        .collect();
    writeln!(w, "  phases: {}", phases.join(", "))?;
    for c in &r.checks {
        let mark = match (c.passed, c.skipped) {
            (_, true) => "skip",
            (true, false) => "ok",
            (false, false) => "FAIL",
        };
        writeln!(w, "  {mark:<4} {}: {}", c.name, c.detail)?;
    }
    if let Some(m) = &r.migrations {
        super::migrations::report(w, m, "  ")?;
    }
    if let Some(p) = &r.pitr {
        super::pitr::drill(w, r, p)?;
    } else {
        let fate = if r.kept {
            "kept"
        } else if r.dropped {
            "dropped"
        } else {
            "NOT dropped (drop it by hand)"
        };
        writeln!(
            w,
            "  scratch database {} on {}: {fate}",
            r.scratch_database, r.target_server
        )?;
    }
    match (&r.recorded_as, &r.record_error) {
        (Some(k), _) => writeln!(w, "  recorded as {k}"),
        (None, Some(e)) => writeln!(w, "  NOT recorded: {e}"),
        _ => Ok(()),
    }
}

/// `pgb drill --history`: one line per record, oldest first.
pub(crate) fn drill_history(w: &mut dyn Write, entries: &[DrillEntry]) -> io::Result<()> {
    if entries.is_empty() {
        return writeln!(w, "no drills recorded");
    }
    writeln!(
        w,
        "{:<20} {:<24} {:<16} {:<15} {:>10} {:>8}",
        "STARTED (UTC)", "BACKUP", "DATABASE", "OUTCOME", "RTO", "RPO"
    )?;
    for e in entries {
        match &e.report {
            Some(r) => writeln!(
                w,
                "{:<20} {:<24} {:<16} {:<15} {:>10} {:>8}",
                fmt_time(r.started_at),
                r.backup_id,
                r.database,
                pgb_jobs::outcome_name(r.outcome),
                secs(r.rto_ms),
                limit_secs(r.rpo_s)
            )?,
            None => writeln!(
                w,
                "unusable record {}: {}",
                e.key,
                e.problem.as_deref().unwrap_or("-")
            )?,
        }
    }
    Ok(())
}

/// `pgb check`: the status line, then each set's findings.
pub(crate) fn check(w: &mut dyn Write, r: &CheckReport) -> io::Result<()> {
    writeln!(w, "{}: {}", r.status, r.summary())?;
    for f in &r.findings {
        writeln!(w, "  {}: {}", f.status, f.message)?;
    }
    for s in &r.sets {
        let newest = s.newest.as_ref().map_or("no backup".to_owned(), |n| {
            format!("newest {} ({} old)", n.id, limit_secs(n.age_s))
        });
        writeln!(w, "{} {}: {} backups, {newest}", s.status, s.set, s.backups)?;
        for f in &s.findings {
            writeln!(w, "  {}: {}", f.status, f.message)?;
        }
    }
    for c in &r.wal {
        let mut parts = vec![format!("{} physical backup(s)", c.physical_backups)];
        if let (Some(t), Some(rpo)) = (c.newest_commit, c.rpo_s) {
            parts.push(format!(
                "newest archived commit {} ({} old)",
                fmt_time(t),
                limit_secs(rpo)
            ));
        }
        if let (Some(n), Some(a)) = (&c.newest_segment, c.wal_age_s) {
            parts.push(format!("newest segment {n} stored {} ago", limit_secs(a)));
        }
        if let Some(t) = c.window_from {
            parts.push(format!("window from {}", fmt_time(t)));
        }
        writeln!(
            w,
            "{} WAL of cluster {}: {}",
            c.status,
            c.system_identifier,
            parts.join(", ")
        )?;
        for f in &c.findings {
            writeln!(w, "  {}: {}", f.status, f.message)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Durations read as people write them: no `300.000s`.
    #[test]
    fn durations_and_limits_are_written_as_people_write_them() {
        assert_eq!(secs(412), "0.4s");
        assert_eq!(secs(41_230), "41.2s");
        assert_eq!(secs(185_000), "3m5s");
        assert_eq!(limit_secs(300), "5m");
        assert_eq!(limit_secs(93_600), "1d2h");
    }
}
