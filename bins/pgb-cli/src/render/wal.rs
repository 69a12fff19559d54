//! Text of `pgb wal verify`.

use std::io::{self, Write};

use pgb::wal::WalVerifyReport;

/// One line per timeline, then one per gap, damaged file and foreign object.
pub(crate) fn verify(w: &mut dyn Write, r: &WalVerifyReport) -> io::Result<()> {
    writeln!(
        w,
        "cluster {} (segments of {} MiB)",
        r.system_identifier,
        r.segment_size >> 20
    )?;
    if r.timelines.is_empty() {
        writeln!(w, "  no WAL archived")?;
    }
    for t in &r.timelines {
        writeln!(
            w,
            "  timeline {}: {} segment(s) {}..{}{}{}{}",
            t.timeline,
            t.segments,
            t.first.as_deref().unwrap_or("-"),
            t.last.as_deref().unwrap_or("-"),
            if t.partial > 0 {
                format!(", {} partial", t.partial)
            } else {
                String::new()
            },
            if t.timeline > 1 && !t.history {
                ", history file MISSING"
            } else {
                ""
            },
            if t.gaps.is_empty() {
                String::new()
            } else {
                format!(", {} GAP(S)", t.gaps.len())
            }
        )?;
        if let Some(f) = &t.forked_from {
            writeln!(
                w,
                "    forked from timeline {} at {} ({})",
                f.parent, f.switch_point, f.reason
            )?;
        }
        for g in &t.gaps {
            writeln!(
                w,
                "    gap: {} segment(s) missing, {}..{} (WAL {}..{})",
                g.missing, g.first_missing, g.last_missing, g.start, g.end
            )?;
        }
    }
    if r.rehashed > 0 {
        writeln!(
            w,
            "  re-checked {} file(s), {} damaged",
            r.rehashed,
            r.damaged.len()
        )?;
    }
    for d in &r.damaged {
        writeln!(w, "  DAMAGED {d}")?;
    }
    for f in &r.foreign {
        writeln!(w, "  not pgb's (left alone): {f}")?;
    }
    Ok(())
}
