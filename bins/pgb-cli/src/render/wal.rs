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
        for g in &t.pruned {
            writeln!(
                w,
                "    pruned: {} segment(s), {}..{} (WAL {}..{}): between kept base backups, \
                 needed by none",
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

/// `restore --preview` as JSON: the plan's fields and the WAL check beside them.
#[derive(Debug, serde::Serialize)]
pub(crate) struct PreviewOut<'a> {
    #[serde(flatten)]
    pub(crate) plan: &'a pgb::physical::PhysicalRestorePlan,
    pub(crate) wal: &'a pgb::wal::WalReach,
    /// A logical dump of the same server taken at or before a time target, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) logical: Option<&'a LogicalFit>,
}

/// A logical dump that also fits a time target: restoring it into a database is cheaper than
/// a point-in-time recovery, losing what happened between the dump and the target.
#[derive(Debug, serde::Serialize)]
pub(crate) struct LogicalFit {
    pub(crate) backup_id: String,
    /// The dump's snapshot: its data is as of this moment.
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) started_at: time::OffsetDateTime,
    pub(crate) set: String,
    pub(crate) database: String,
    /// How to restore it (`...` stands for the target database's URL).
    pub(crate) command: String,
}

impl LogicalFit {
    pub(crate) fn new(m: &pgb::Manifest) -> Self {
        Self {
            backup_id: m.id.to_string(),
            started_at: m.started_at,
            set: m.set.clone(),
            database: m.database.clone(),
            command: format!("pgb restore {} --db ...", m.id),
        }
    }

    /// `a logical dump from <time> also fits: pgb restore <id> --db ...`.
    pub(crate) fn line(&self) -> String {
        format!(
            "a logical dump from {} ({}) also fits: {}",
            super::text::fmt_time(self.started_at),
            self.set,
            self.command
        )
    }
}

/// The WAL part of `restore --preview`: the path, what would be fetched, the verdict.
pub(crate) fn reach(w: &mut dyn Write, r: &pgb::wal::WalReach) -> io::Result<()> {
    use pgb::wal::Reach;
    let path: Vec<String> = r
        .path
        .iter()
        .map(|s| match s.to {
            Some(to) => format!("timeline {} from {} to {to}", s.timeline, s.from),
            None => format!("timeline {} from {}", s.timeline, s.from),
        })
        .collect();
    writeln!(w, "  replay       {}", path.join(", then "))?;
    writeln!(
        w,
        "  archive      {} segment(s), {} stored, reachable to LSN {}{}",
        r.segments,
        super::human(r.stored_bytes),
        r.reachable_end,
        r.last_commit
            .map(|c| format!(", newest commit {}", super::text::fmt_time(c)))
            .unwrap_or_default()
    )?;
    let verdict = match &r.reach {
        Reach::Reachable => match r.found_at {
            Some(at) => format!("REACHABLE (found at LSN {at})"),
            None => "REACHABLE".to_owned(),
        },
        Reach::BackupWalMissing { first_missing } => format!(
            "UNREACHABLE: the backup's own WAL is not all archived ({first_missing} is missing)"
        ),
        Reach::AfterLastCommit { last_commit } => format!(
            "UNREACHABLE: the target is after the newest archived commit ({}): PostgreSQL would stop with \"recovery ended before configured recovery target was reached\"",
            last_commit.map_or_else(|| "none found".to_owned(), super::text::fmt_time)
        ),
        Reach::AfterArchiveEnd => {
            "UNREACHABLE: the target is after the end of the archived WAL".to_owned()
        }
        Reach::InGap {
            first_missing,
            resumes_at,
        } => format!(
            "UNREACHABLE: the WAL stops at a gap ({first_missing} is missing; the archive resumes at {resumes_at})"
        ),
        Reach::TimelineDoesNotLead { timeline, reason } => {
            format!("UNREACHABLE: timeline {timeline} does not lead there: {reason}")
        }
        Reach::NotInArchive => "UNREACHABLE: the target is not in the reachable WAL".to_owned(),
        _ => "UNREACHABLE".to_owned(),
    };
    writeln!(w, "  verdict      {verdict}")
}
