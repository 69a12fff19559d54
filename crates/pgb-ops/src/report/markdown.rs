//! The report as Markdown, for a runbook's notes or a ticket: the same sections as the HTML,
//! tables instead of charts.

use std::fmt::Write as _;

use super::fmt::{self, md};
use super::{Level, RecoverableWindow, Report};

/// The report as Markdown (GitHub-flavoured tables).
pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {}\n", md(&super::html::title(r)));
    let window = match (&r.since, &r.since_label) {
        (Some(s), Some(l)) => format!("since {} ({l})", fmt::time(*s)),
        (Some(s), None) => format!("since {}", fmt::time(*s)),
        _ => "everything recorded".to_owned(),
    };
    let _ = writeln!(
        o,
        "Repository `{}`, {}, generated {} by pgb {}.\n",
        r.repository,
        md(&window),
        fmt::time(r.generated_at),
        r.pgb_version
    );
    o.push_str("## What needs attention\n\n");
    if r.notices.is_empty() {
        o.push_str("Nothing: every set has recent backups and its last drill passed.\n");
    }
    for n in &r.notices {
        let lvl = match n.level {
            Level::Error => "**ERROR**",
            Level::Warning => "**WARNING**",
            Level::Info => "info",
        };
        let _ = writeln!(o, "- {lvl}: {}", md(&n.message));
    }
    let s = &r.summary;
    let _ = writeln!(
        o,
        "\n## Summary\n\n| Backup sets | Backups (window / all) | Stored in all | Newest backup | Drills (failed) | Verifications | Unusable |\n|---|---|---|---|---|---|---|\n| {} | {} / {} | {} | {} | {} ({}) | {} | {} |",
        s.sets,
        s.backups,
        s.backups_total,
        fmt::bytes(s.stored_bytes_total),
        s.newest_backup_at.map_or("none".to_owned(), fmt::time),
        s.drills,
        s.drills_failed,
        s.verifications,
        s.unusable
    );
    o.push_str("\n## Last failure\n\n");
    match &r.last_failure {
        None => o.push_str("No drill failed in the window.\n"),
        Some(d) => {
            let _ = writeln!(
                o,
                "**FAILED** drill of backup `{}` ({}) on {}: {}. Cause: {}",
                d.backup_id,
                md(&d.set),
                fmt::time(d.started_at),
                fmt::outcome_words(&d.outcome),
                md(d.cause.as_deref().unwrap_or("not recorded"))
            );
        }
    }
    for set in &r.sets {
        let _ = writeln!(
            o,
            "\n## Set `{}`\n\n{} backup(s) in the window, {} in all.\n\n### Backups\n",
            set.set,
            set.backups.len(),
            set.backups_total
        );
        if set.backups.is_empty() {
            o.push_str("No backup in the window.\n");
        } else {
            // The migration column only where a backup of the set recorded a head.
            let heads = set.backups.iter().any(|b| !b.migrations.is_empty());
            let _ = writeln!(
                o,
                "| Started | Id | Stored | Dump | Duration | {}Verified | Last drill | Next prune |\n|---|---|---:|---:|---:|{}---|---|---|",
                if heads { "Migration | " } else { "" },
                if heads { "---|" } else { "" }
            );
            for b in &set.backups {
                let migration = if heads {
                    let label = fmt::heads(&b.migrations, &set.database);
                    if label.is_empty() {
                        "none | ".to_owned()
                    } else {
                        format!("`{}` | ", md(&label))
                    }
                } else {
                    String::new()
                };
                let prune = match &b.retention {
                    None => "not planned".to_owned(),
                    Some(x) if x.keep => format!("keep: {}", x.kept_by.join(", ")),
                    Some(_) => "**remove**".to_owned(),
                };
                let _ = writeln!(
                    o,
                    "| {} | `{}` | {} | {} | {} | {migration}{} | {} | {} |",
                    fmt::time(b.started_at),
                    b.id,
                    fmt::bytes(b.stored_size),
                    fmt::bytes(b.plain_size),
                    fmt::secs(b.duration_s),
                    b.verified_at.map_or("no".to_owned(), fmt::time),
                    match b.last_drill.as_deref() {
                        None => "none".to_owned(),
                        Some("passed") => "passed".to_owned(),
                        Some(x) => format!("**FAILED** ({})", fmt::outcome_words(x)),
                    },
                    md(&prune)
                );
            }
        }
        o.push_str("\n### Restore drills\n\n");
        if set.drills.is_empty() {
            o.push_str("No drill in the window: these backups are not proven to restore.\n");
        } else {
            o.push_str("| Started | Backup | Outcome | RTO | RTO target | RPO | RPO target | Cause, migrations |\n|---|---|---|---:|---:|---:|---:|---|\n");
            for d in &set.drills {
                let _ = writeln!(
                    o,
                    "| {} | `{}` | {} | {} | {} | {} | {} | {} |",
                    fmt::time(d.started_at),
                    d.backup_id,
                    if d.passed {
                        "passed".to_owned()
                    } else {
                        format!("**FAILED**: {}", fmt::outcome_words(&d.outcome))
                    },
                    fmt::millis(d.rto_ms),
                    d.max_rto_ms.map_or("none".to_owned(), fmt::millis),
                    fmt::secs(d.rpo_s),
                    d.max_rpo_s.map_or("none".to_owned(), fmt::secs),
                    md(&[
                        d.cause.clone().unwrap_or_default(),
                        d.migrations
                            .as_ref()
                            .map(fmt::drill_migrations)
                            .unwrap_or_default()
                    ]
                    .into_iter()
                    .filter(|c| !c.is_empty())
                    .collect::<Vec<_>>()
                    .join("; "))
                );
            }
        }
        o.push_str("\n### Verifications\n\n");
        if set.verifications.is_empty() {
            o.push_str("No verification recorded in the window.\n");
        } else {
            o.push_str("| When | Backup | By | Read |\n|---|---|---|---:|\n");
            for v in &set.verifications {
                let _ = writeln!(
                    o,
                    "| {} | `{}` | {} | {} |",
                    fmt::time(v.verified_at),
                    v.backup_id,
                    v.by,
                    fmt::bytes(v.stored_size)
                );
            }
        }
    }
    o.push_str("\n## Retention\n\n");
    match (&r.retention.policy, &r.retention.error) {
        (_, Some(e)) => {
            let _ = writeln!(o, "Retention could not be planned: {}", md(e));
        }
        (None, None) => {
            o.push_str("No retention policy given: what the next prune does is not shown.\n")
        }
        (Some(p), None) => {
            let _ = writeln!(
                o,
                "Policy `{p}`: the next prune removes {} backup(s).\n",
                r.retention.removals
            );
            for s in &r.sets {
                if let Some(n) = &s.next_prune {
                    let _ = writeln!(
                        o,
                        "- `{}`: keeps {}, removes {}",
                        s.set,
                        n.keep,
                        if n.remove.is_empty() {
                            "nothing".to_owned()
                        } else {
                            n.remove
                                .iter()
                                .map(|i| format!("`{i}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    );
                }
            }
        }
    }
    o.push_str("\n## Unusable\n\n");
    if r.unusable.is_empty() {
        o.push_str("Every backup and record in the repository can be used.\n");
    }
    for u in &r.unusable {
        let _ = writeln!(o, "- {} `{}`: {}", u.kind, u.name, md(&u.problem));
    }
    o.push_str("\n## Physical backups and recoverable window\n\n");
    if r.physical.backups.is_empty() {
        o.push_str("No physical backups in this repository.\n");
    }
    for p in &r.physical.backups {
        let _ = writeln!(
            o,
            "- base backup `{}` of cluster {}: {} to {}, {}",
            p.id,
            p.system_identifier,
            fmt::time(p.started_at),
            fmt::time(p.finished_at),
            fmt::bytes(p.stored_size)
        );
    }
    for w in &r.physical.windows {
        let _ = writeln!(
            o,
            "- cluster {} recovers {}{}",
            w.system_identifier,
            match (w.from, w.to) {
                (Some(f), Some(t)) => format!("from {} to {}", fmt::time(f), fmt::time(t)),
                _ => "nothing (WAL archived, no base backup)".to_owned(),
            },
            if w.gaps > 0 {
                format!(", {} gap(s) in its WAL archive", w.gaps)
            } else {
                String::new()
            }
        );
        recoverable(&mut o, w);
    }
    if let Some(e) = &r.physical.error {
        let _ = writeln!(o, "{}", md(e));
    }
    for w in &r.physical.wal {
        let _ = writeln!(
            o,
            "- WAL of cluster {} timeline {}: {} segment(s) `{}` to `{}`, {}",
            w.system_identifier,
            w.timeline,
            w.segments,
            w.first.as_deref().unwrap_or(""),
            w.last.as_deref().unwrap_or(""),
            if w.gaps.is_empty() {
                "no gap".to_owned()
            } else {
                format!("{} gap(s)", w.gaps.len())
            }
        );
    }
    o
}

/// A cluster's recoverable window per timeline: its ranges and the gaps between them.
fn recoverable(o: &mut String, w: &RecoverableWindow) {
    for t in &w.timelines {
        for r in &t.ranges {
            let _ = writeln!(
                o,
                "  - timeline {}: recoverable from {} to {}{} (base backups {})",
                t.timeline,
                fmt::time(r.from),
                fmt::time(r.to),
                match (r.reaches_end, r.to_source.as_str()) {
                    (false, _) => ", then a **gap**",
                    (true, "commit") => " (newest commit)",
                    (true, "archived") => " (newest WAL archived)",
                    _ => " (at least)",
                },
                r.backups
                    .iter()
                    .map(|i| format!("`{i}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for g in &t.gaps {
            let _ = writeln!(
                o,
                "  - timeline {}: **GAP** of {} segment(s), `{}` to `{}` (WAL {} to {}){}",
                t.timeline,
                g.missing,
                g.first_missing,
                g.last_missing,
                g.start_lsn,
                g.end_lsn,
                match (g.after, g.until) {
                    (Some(a), Some(u)) =>
                        format!(": nothing between {} and {}", fmt::time(a), fmt::time(u)),
                    (Some(a), None) => format!(": nothing after {}", fmt::time(a)),
                    _ => String::new(),
                }
            );
        }
        for u in &t.unrecoverable {
            let _ = writeln!(
                o,
                "  - timeline {}: base backup `{u}` is **unusable**: its own WAL is not archived",
                t.timeline
            );
        }
    }
    if let Some(p) = &w.problem {
        let _ = writeln!(o, "  - note: {}", md(p));
    }
}
