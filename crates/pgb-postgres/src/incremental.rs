//! Incremental base backups (PostgreSQL 17+): the server's checks before
//! `pg_basebackup --incremental`, and `pg_combinebackup` as a [`BackupCombiner`].
//!
//! An incremental backup needs the server's WAL summaries (`summarize_wal = on`) from the
//! parent's start to now: PostgreSQL reads them to find the blocks changed since. Without
//! them pg_basebackup fails only after it started (or, with summaries removed by
//! `wal_summary_keep_time`, cannot run at all), so pgb asks first and refuses with one line.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use pgb_core::physical::{BackupCombiner, IncrementalParent, Lsn};
use pgb_core::{DumpError, DumpErrorKind};

use crate::conn::ConnConfig;
use crate::process::{self, Pipes, ToolProcess};
use crate::sql;
use crate::tools::{Tool, ToolLocator};

/// The first major version with incremental base backups.
pub(crate) const MIN_MAJOR: u32 = 17;

fn refused(what: String) -> DumpError {
    DumpError::new(DumpErrorKind::NotConfigured, what)
}

/// Checks that server `server` (PostgreSQL `major`, reached by `conn`) can take an
/// incremental backup on top of `parent`: PostgreSQL 17+, `summarize_wal = on`, and WAL
/// summaries on the parent's timeline covering everything from its start to what the
/// summarizer wrote. Without a parent, only the first two.
pub(crate) async fn check(
    psql: &Tool,
    conn: &ConnConfig,
    server: &str,
    major: u32,
    parent: Option<&IncrementalParent>,
) -> Result<(), DumpError> {
    if major < MIN_MAJOR {
        return Err(refused(format!(
            "server {server} is PostgreSQL {major}: incremental base backups need PostgreSQL {MIN_MAJOR} or newer (take a full one: pgb backup --physical without --incremental)"
        )));
    }
    let rows = sql::query_rows(
        psql,
        conn,
        "select current_setting('summarize_wal'), s.summarized_tli, s.summarized_lsn \
         from pg_get_wal_summarizer_state() s;",
        &[],
    )
    .await?;
    let row = rows.into_iter().next().unwrap_or_default();
    let unexpected = || {
        DumpError::new(
            DumpErrorKind::Connection,
            format!("server {server}: unexpected reply about WAL summaries: {row:?}"),
        )
    };
    let [summarize, _tli, _summarized] =
        <[String; 3]>::try_from(row.clone()).map_err(|_| unexpected())?;
    if summarize != "on" {
        return Err(refused(format!(
            "server {server} has summarize_wal = {summarize}: incremental base backups need summarize_wal = on (ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf()), then a full backup to build on"
        )));
    }
    let Some(parent) = parent else {
        return Ok(());
    };
    let ranges = sql::query_rows(
        psql,
        conn,
        &format!(
            "select start_lsn, end_lsn from pg_available_wal_summaries() \
             where tli = {} order by start_lsn;",
            parent.timeline
        ),
        &[],
    )
    .await?;
    let mut ranges: Vec<(Lsn, Lsn)> = ranges
        .iter()
        .filter_map(|r| {
            Some((
                r.first()?.trim().parse().ok()?,
                r.get(1)?.trim().parse().ok()?,
            ))
        })
        .collect();
    ranges.sort();
    // Summary files from the parent's start on, without a hole, up to the last one written;
    // the summarizer continues from there in memory (the server waits for it to reach the
    // new backup's start). Files that begin after the parent's start: summarize_wal was
    // off when it started, or wal_summary_keep_time removed them.
    let first = ranges.first().map(|r| r.0);
    let last = ranges.iter().map(|r| r.1).max().unwrap_or(parent.start_lsn);
    let gap = match first {
        Some(f) if f <= parent.start_lsn => coverage_gap(&ranges, parent.start_lsn, last),
        _ => Some(parent.start_lsn),
    };
    match gap {
        None => Ok(()),
        Some(at) if at == parent.start_lsn => Err(refused(format!(
            "server {server} has no WAL summary of {at} on timeline {}, where parent backup {} started (summarize_wal was off then, or wal_summary_keep_time removed it): take a full backup (pgb backup --physical without --incremental)",
            parent.timeline, parent.id
        ))),
        Some(at) => Err(refused(format!(
            "server {server} has a gap in its WAL summaries at {at} on timeline {} since parent backup {} started at {} (summarize_wal was off for a while): take a full backup (pgb backup --physical without --incremental)",
            parent.timeline, parent.id, parent.start_lsn
        ))),
    }
}

/// The first position from `from` up to `to` that no summary in `ranges` (sorted, each
/// `[start, end)`) covers; `None` when they cover it all. `to` at or before `from` (the
/// summarizer has not reached the parent's start yet) is covered: the server waits for it.
pub(crate) fn coverage_gap(ranges: &[(Lsn, Lsn)], from: Lsn, to: Lsn) -> Option<Lsn> {
    let mut pos = from;
    for (start, end) in ranges {
        if pos >= to {
            break;
        }
        if *end <= pos {
            continue;
        }
        if *start > pos {
            return Some(pos);
        }
        pos = *end;
    }
    (pos < to).then_some(pos)
}

/// `pg_combinebackup` of the backups' major version, found by a [`ToolLocator`].
#[derive(Debug, Clone)]
pub struct PgCombineBackup {
    locator: ToolLocator,
}

impl PgCombineBackup {
    /// Combines with the `pg_combinebackup` `locator` finds.
    pub fn new(locator: ToolLocator) -> Self {
        Self { locator }
    }
}

#[async_trait]
impl BackupCombiner for PgCombineBackup {
    async fn combine(
        &self,
        inputs: &[PathBuf],
        output: &Path,
        major: u32,
    ) -> Result<(), DumpError> {
        let all = self.locator.find_all("pg_combinebackup").await;
        let Some(tool) = all.iter().find(|t| t.major == major).cloned() else {
            let found: Vec<String> = all.iter().map(|t| t.major.to_string()).collect();
            return Err(DumpError::new(
                if all.is_empty() {
                    DumpErrorKind::ToolNotFound
                } else {
                    DumpErrorKind::VersionMismatch
                },
                format!(
                    "restoring an incremental backup of PostgreSQL {major} needs pg_combinebackup {major} (found: {}); install PostgreSQL {major}'s client tools or pass --pg-bin-dir",
                    if found.is_empty() { "none".to_owned() } else { found.join(", ") }
                ),
            )
            .with_program("pg_combinebackup"));
        };
        tracing::info!(path = %tool.path.display(), backups = inputs.len(), "pg_combinebackup");
        let mut cmd = process::command(&tool, None);
        cmd.arg("-o").arg(output).args(inputs);
        ToolProcess::spawn(cmd, "pg_combinebackup", Pipes::NONE)?
            .wait()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(n: u64) -> Lsn {
        Lsn(n)
    }

    #[test]
    fn summaries_must_cover_from_the_parents_start_to_the_summarizer() {
        let r = [(l(10), l(20)), (l(20), l(35)), (l(40), l(50))];
        assert_eq!(coverage_gap(&r, l(12), l(30)), None);
        assert_eq!(coverage_gap(&r, l(12), l(35)), None);
        assert_eq!(coverage_gap(&r, l(12), l(45)), Some(l(35)));
        assert_eq!(coverage_gap(&r, l(5), l(30)), Some(l(5)));
        assert_eq!(coverage_gap(&[], l(5), l(30)), Some(l(5)));
        assert_eq!(coverage_gap(&[], l(30), l(30)), None);
    }
}
