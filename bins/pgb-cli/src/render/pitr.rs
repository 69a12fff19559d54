//! Text for a point-in-time recovery drill's own lines (`pgb drill --physical`).

use std::io::{self, Write};

use pgb_ops::{DrillReport, PitrReport};

use super::text::fmt_time;

/// The target and window, what recovery reached, the WAL fetched, and the scratch server's
/// and directory's fate.
pub(super) fn drill(w: &mut dyn Write, r: &DrillReport, p: &PitrReport) -> io::Result<()> {
    writeln!(
        w,
        "  target {} ({} second of the window {} to {}, timeline {}, PostgreSQL {})",
        fmt_time(p.target_time),
        if p.target == "random" {
            "a random"
        } else {
            "the given"
        },
        fmt_time(p.window_from),
        fmt_time(p.window_to),
        p.timeline,
        p.server_major
    )?;
    writeln!(
        w,
        "  last replayed commit {}; {} WAL segment(s), {} bytes fetched",
        p.replayed_to.map_or_else(|| "none".to_owned(), fmt_time),
        p.wal_segments,
        p.wal_bytes
    )?;
    let fate = if r.dropped {
        "stopped and removed"
    } else {
        "NOT removed (stop it with pg_ctl and remove it by hand)"
    };
    writeln!(
        w,
        "  scratch server {} in {}: {fate}",
        r.target_server, r.scratch_database
    )
}
