//! Migration heads in text: the `MIGRATION` column of `pgb list`, and the heads around a
//! restore's or drill's `post_restore` hook.

use std::io::{self, Write};

use pgb::{Manifest, MigrationHead};
use pgb_ops::MigrationReport;

/// The `MIGRATION` column of backup `m`: its heads (`prisma:20240501_init`, several
/// comma-separated; for a whole server `db=framework:head` per database), empty when it
/// recorded none.
pub(crate) fn column(m: &Manifest) -> String {
    if m.cluster.is_none() {
        return heads(m.migrations_of(&m.database));
    }
    m.migrations
        .iter()
        .map(|(db, h)| format!("{db}={}", heads(h)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Heads as one value (`prisma:20240501_init, flyway:3`), empty for none.
fn heads(h: &[MigrationHead]) -> String {
    pgb_jobs::migration_labels(h)
}

fn or_none(h: &[MigrationHead]) -> String {
    if h.is_empty() {
        "none".to_owned()
    } else {
        heads(h)
    }
}

/// The heads around a restore's `post_restore` hook, and the verdict (nothing when there is
/// nothing to report).
pub(crate) fn report(w: &mut dyn Write, r: &MigrationReport, indent: &str) -> io::Result<()> {
    if r.is_empty() {
        return Ok(());
    }
    let verdict = match (&r.passed, &r.problem, &r.expected) {
        (Some(false), Some(p), _) => format!(": FAILED: {p}"),
        (Some(true), _, Some(e)) => format!(": reached the expected {e}"),
        (Some(true), _, None) => ": clean".to_owned(),
        _ => String::new(),
    };
    writeln!(w, "{indent}migrations{verdict}")?;
    writeln!(w, "{indent}  backup:              {}", or_none(&r.backup))?;
    writeln!(w, "{indent}  before post_restore: {}", or_none(&r.before))?;
    match &r.after {
        Some(after) => writeln!(w, "{indent}  after post_restore:  {}", or_none(after))?,
        None => writeln!(w, "{indent}  after post_restore:  (no post_restore hook)")?,
    }
    for warning in &r.warnings {
        writeln!(w, "{indent}  warning: {warning}")?;
    }
    Ok(())
}
