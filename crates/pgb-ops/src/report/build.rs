//! Gathering the report from the repository: one listing, the drill records, the verification
//! records beside each backup, a dry-run prune for retention and a listing of `wal/`.

use std::collections::{BTreeMap, BTreeSet};

use pgb_core::PruneAction;
use pgb_core::wal::{ClusterWindow, CommitTimes};
use pgb_core::{BackupId, Listing, Manifest, PruneOptions, PruneReport, Repository, layout};
use time::OffsetDateTime;

use super::{
    BackupRow, DrillRow, Level, NextPrune, Notice, PhysicalBackupRow, PhysicalSection,
    RecoverableWindow, Report, ReportOptions, RetentionRow, RetentionSummary, SetSection, Summary,
    Unusable, VerificationRow, WalRange, WindowGap, WindowRange, WindowTimeline, fmt,
};
use crate::drill::DrillReport;
use crate::record::{RecordError, open, read_record};
use crate::verified::{VerifiedBy, VerifiedRecord};

/// Builds the report of `repo` as `opts` asks, from the repository alone (no database).
///
/// Bad content never fails it: unusable backups and records, a repository with no backups and
/// a window that starts in the future are [`Notice`]s in the report.
///
/// # Errors
/// Only when the repository cannot be listed at all (the storage fails or is missing).
pub async fn report(repo: &Repository, opts: &ReportOptions) -> Result<Report, pgb_core::Error> {
    // Every read first; the report is then assembled without awaiting, so that no borrow of
    // the listing lives across an await (the daemon spawns this as a Send future).
    let listing = repo.list().await?;
    let drills = crate::record::drill_history(repo, opts.auth_key.as_ref()).await;
    let verifications = read_verifications(repo, &listing, opts).await;
    let retention = plan_retention(repo, &listing, opts).await;
    let wal = repo.storage().list(Some(&layout::wal_root())).await;
    // What `pgb list --windows` shows, with the newest commit of every range.
    let windows = repo
        .recoverable_windows(&listing, CommitTimes::Every)
        .await
        .map_err(|e| format!("cannot read the recoverable window: {e}"));
    Ok(assemble(
        opts,
        &listing,
        drills,
        verifications,
        retention,
        (wal, windows),
    ))
}

/// The listing of `wal/`.
type WalListing = Result<Vec<pgb_core::ObjectMeta>, pgb_core::StorageError>;

/// Read results of [`report`]'s steps.
type Verifications = (Result<Vec<VerifiedRecord>, RecordError>, Vec<Unusable>);

fn assemble(
    opts: &ReportOptions,
    listing: &Listing,
    drills: Result<Vec<crate::record::DrillEntry>, RecordError>,
    (verifications, unusable_verifications): Verifications,
    (prune, retention_error): (Option<PruneReport>, Option<String>),
    (wal, cluster_windows): (WalListing, Result<Vec<ClusterWindow>, String>),
) -> Report {
    let mut notices = Vec::new();
    let mut unusable: Vec<Unusable> = listing
        .invalid
        .iter()
        .map(|i| Unusable {
            kind: "backup".into(),
            name: i.id.clone(),
            problem: i.problem.clone(),
        })
        .collect();
    let manifests: Vec<&Manifest> = listing
        .backups
        .iter()
        .filter(|m| !is_physical(m) && wanted(opts, &m.retention_set()))
        .collect();
    let set_of: BTreeMap<&BackupId, String> = manifests
        .iter()
        .map(|m| (&m.id, m.retention_set()))
        .collect();

    let drills = match drills {
        Ok(h) => h,
        Err(e) => {
            notices.push(error(format!("cannot read the drill records: {e}")));
            Vec::new()
        }
    };
    let mut drill_reports: Vec<&DrillReport> = Vec::new();
    for d in &drills {
        match (&d.report, &d.problem) {
            (Some(r), _) => drill_reports.push(r),
            (None, problem) => unusable.push(Unusable {
                kind: "drill".into(),
                name: d.key.clone(),
                problem: problem.clone().unwrap_or_default(),
            }),
        }
    }
    unusable.extend(unusable_verifications);
    let verifications = match verifications {
        Ok(v) => v,
        Err(e) => {
            notices.push(error(format!("cannot read the verification records: {e}")));
            Vec::new()
        }
    };

    let in_window = |t: OffsetDateTime| opts.since.is_none_or(|s| t >= s) && t <= opts.now;

    let mut sets: BTreeMap<String, SetSection> = BTreeMap::new();
    for m in &manifests {
        let set = m.retention_set();
        let section = sets.entry(set.clone()).or_insert_with(|| SetSection {
            set,
            database: m.database.clone(),
            server: m.server.clone(),
            backups_total: 0,
            backups: Vec::new(),
            drills: Vec::new(),
            verifications: Vec::new(),
            next_prune: None,
        });
        section.backups_total += 1;
        if in_window(m.started_at) {
            section.backups.push(backup_row(
                m,
                &drill_reports,
                &verifications,
                prune.as_ref(),
            ));
        }
    }
    for r in &drill_reports {
        let Some(set) = set_of.get(&r.backup_id) else {
            continue;
        };
        if in_window(r.started_at)
            && let Some(s) = sets.get_mut(set)
        {
            s.drills.push(drill_row(r, set, opts));
        }
    }
    for v in &verifications {
        if in_window(v.verified_at)
            && let Some(s) = set_of.get(&v.backup_id).and_then(|set| sets.get_mut(set))
        {
            s.verifications.push(VerificationRow {
                backup_id: v.backup_id.to_string(),
                verified_at: v.verified_at,
                by: match v.by {
                    VerifiedBy::Drill => "drill".into(),
                    _ => "verify".into(),
                },
                stored_size: v.stored_size,
                toc_entries: v.toc_entries,
            });
        }
    }
    if let Some(p) = &prune {
        for ps in &p.sets {
            if let Some(s) = sets.get_mut(&ps.set) {
                s.next_prune = Some(NextPrune {
                    keep: ps.with_action(PruneAction::Keep).count() as u64,
                    remove: ps
                        .with_action(PruneAction::Remove)
                        .map(|d| d.id.to_string())
                        .collect(),
                });
            }
        }
    }
    for s in sets.values_mut() {
        s.verifications.sort_by_key(|v| v.verified_at);
    }
    let sets: Vec<SetSection> = sets.into_values().collect();

    let physical = physical(listing, wal, cluster_windows);
    let last_failure = sets
        .iter()
        .flat_map(|s| s.drills.iter())
        .filter(|d| !d.passed)
        .max_by_key(|d| d.started_at)
        .cloned();
    let summary = summary(&sets, &manifests, &unusable);
    notices.extend(window_notices(opts, listing, &manifests, &summary));
    notices.extend(set_notices(&sets));
    if !unusable.is_empty() {
        notices.push(Notice {
            level: Level::Warning,
            message: format!(
                "{} backup(s) or record(s) cannot be used (altered, corrupt, unauthenticated or \
                 incomplete): see \"Unusable\"",
                unusable.len()
            ),
        });
    }
    if !listing.leftovers.is_empty() {
        notices.push(Notice {
            level: Level::Info,
            message: format!(
                "{} leftover(s) of backups that never committed: `pgb gc` removes them",
                listing.leftovers.len()
            ),
        });
    }
    if let Some(e) = &retention_error {
        notices.push(error(format!("retention could not be planned: {e}")));
    }
    notices.sort_by_key(|n| std::cmp::Reverse(n.level));
    let retention = RetentionSummary {
        policy: opts.policy_text.clone(),
        evaluated_at: opts.now,
        removals: prune.as_ref().map_or(0, |p| p.removals().count() as u64),
        error: retention_error,
    };
    Report {
        format_version: super::REPORT_FORMAT_VERSION,
        pgb_version: env!("CARGO_PKG_VERSION").to_owned(),
        generated_at: opts.now,
        repository: opts.repository.clone(),
        job: opts.job.clone(),
        since: opts.since,
        since_label: opts.since_label.clone(),
        notices,
        summary,
        last_failure,
        sets,
        unusable,
        in_progress: listing.in_progress.clone(),
        retention,
        physical,
    }
}

/// Whether the report covers retention set `set`.
fn wanted(opts: &ReportOptions, set: &str) -> bool {
    opts.sets.as_ref().is_none_or(|s| s.contains(set))
}

fn error(message: String) -> Notice {
    Notice {
        level: Level::Error,
        message,
    }
}

/// Every verification record beside the backups shown; unusable ones are listed.
async fn read_verifications(
    repo: &Repository,
    listing: &Listing,
    opts: &ReportOptions,
) -> Verifications {
    let mut unusable = Vec::new();
    let read = read_verifications_into(repo, listing, opts, &mut unusable).await;
    (read, unusable)
}

async fn read_verifications_into(
    repo: &Repository,
    listing: &Listing,
    opts: &ReportOptions,
    unusable: &mut Vec<Unusable>,
) -> Result<Vec<VerifiedRecord>, RecordError> {
    let mut out = Vec::new();
    for m in &listing.backups {
        if is_physical(m) || !wanted(opts, &m.retention_set()) {
            continue;
        }
        for meta in listing.evidence.get(&m.id).into_iter().flatten() {
            let key = meta.key.as_str();
            let opened = match read_record(repo, meta).await {
                Ok(Some(bytes)) => {
                    open::<VerifiedRecord>(key, "verified", &bytes, opts.auth_key.as_ref())
                }
                Ok(None) => continue,
                Err(e @ RecordError::Storage(_)) => return Err(e),
                Err(invalid) => Err(invalid),
            };
            match opened {
                Ok((rec, _)) if rec.backup_id == m.id => out.push(rec),
                Ok(_) => unusable.push(Unusable {
                    kind: "verification".into(),
                    name: key.to_owned(),
                    problem: "record names another backup".into(),
                }),
                Err(e) => unusable.push(Unusable {
                    kind: "verification".into(),
                    name: key.to_owned(),
                    problem: e.to_string(),
                }),
            }
        }
    }
    Ok(out)
}

/// The next prune, planned as `pgb prune --dry-run` plans it (newest verified backup kept).
async fn plan_retention(
    repo: &Repository,
    listing: &Listing,
    opts: &ReportOptions,
) -> (Option<PruneReport>, Option<String>) {
    let Some(policy) = &opts.policy else {
        return (None, None);
    };
    let verified = match crate::verified_ids(repo, listing, opts.auth_key.as_ref()).await {
        Ok(v) => v,
        Err(e) => return (None, Some(e.to_string())),
    };
    let mut po = PruneOptions::default()
        .with_dry_run(true)
        .with_now(opts.now)
        .with_verified(verified);
    if let Some(sets) = &opts.sets {
        po = po.with_sets(sets.iter().cloned());
    }
    match repo.prune(policy.as_ref(), &po).await {
        Ok(p) => (Some(p), None),
        Err(e) => (None, Some(e.to_string())),
    }
}

fn backup_row(
    m: &Manifest,
    drills: &[&DrillReport],
    verifications: &[VerifiedRecord],
    prune: Option<&PruneReport>,
) -> BackupRow {
    let last_drill = drills
        .iter()
        .filter(|d| d.backup_id == m.id)
        .max_by_key(|d| d.started_at);
    let verified_at = verifications
        .iter()
        .filter(|v| v.backup_id == m.id)
        .map(|v| v.verified_at)
        .chain(
            drills
                .iter()
                .filter(|d| d.backup_id == m.id && d.passed())
                .map(|d| d.started_at),
        )
        .max();
    let retention = prune.and_then(|p| {
        let d = p
            .sets
            .iter()
            .flat_map(|s| s.decisions.iter())
            .find(|d| d.id == m.id)?;
        let mut kept_by: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
        if d.newest_guard {
            kept_by.push("newest backup of the set".into());
        }
        if d.verified_guard {
            kept_by.push("newest verified backup of the set".into());
        }
        if !d.parent_of.is_empty() {
            let of: Vec<String> = d.parent_of.iter().map(ToString::to_string).collect();
            kept_by.push(format!("parent of kept incremental {}", of.join(", ")));
        }
        Some(RetentionRow {
            keep: d.action == PruneAction::Keep,
            kept_by,
        })
    });
    BackupRow {
        id: m.id.to_string(),
        started_at: m.started_at,
        finished_at: m.finished_at,
        duration_s: u64::try_from((m.finished_at - m.started_at).whole_seconds()).unwrap_or(0),
        stored_size: m.stored_size(),
        plain_size: m.plain_size(),
        format: m.format.to_string(),
        compression: m.compression.to_string(),
        encrypted: m.encryption.is_some(),
        labels: m.labels.clone(),
        verified_at,
        last_drill: last_drill.map(|d| fmt::outcome(d.outcome).to_owned()),
        retention,
        migrations: m.migrations.clone(),
    }
}

fn drill_row(r: &DrillReport, set: &str, opts: &ReportOptions) -> DrillRow {
    DrillRow {
        backup_id: r.backup_id.to_string(),
        set: set.to_owned(),
        started_at: r.started_at,
        outcome: fmt::outcome(r.outcome).to_owned(),
        passed: r.passed(),
        // A failed migration check is the cause (a record that names none still has one).
        cause: r.cause.clone().or_else(|| {
            let m = r.migrations.as_ref().filter(|m| m.passed == Some(false))?;
            Some(format!(
                "migrations: {}",
                m.problem
                    .as_deref()
                    .unwrap_or("the expected head was not reached")
            ))
        }),
        rto_ms: r.rto_ms,
        rpo_s: r.rpo_s,
        max_rto_ms: r.max_rto_ms.or(opts.targets.max_rto_ms),
        max_rpo_s: r.max_rpo_s.or(opts.targets.max_rpo_s),
        target_server: r.target_server.clone(),
        key: r.recorded_as.clone().unwrap_or_default(),
        migrations: r.migrations.clone(),
    }
}

fn summary(sets: &[SetSection], manifests: &[&Manifest], unusable: &[Unusable]) -> Summary {
    Summary {
        sets: sets.len() as u64,
        backups: sets.iter().map(|s| s.backups.len() as u64).sum(),
        backups_total: manifests.len() as u64,
        stored_bytes_total: manifests.iter().map(|m| m.stored_size()).sum(),
        drills: sets.iter().map(|s| s.drills.len() as u64).sum(),
        drills_failed: sets
            .iter()
            .flat_map(|s| s.drills.iter())
            .filter(|d| !d.passed)
            .count() as u64,
        verifications: sets.iter().map(|s| s.verifications.len() as u64).sum(),
        unusable: unusable.len() as u64,
        newest_backup_at: manifests.iter().map(|m| m.started_at).max(),
    }
}

fn window_notices(
    opts: &ReportOptions,
    listing: &Listing,
    manifests: &[&Manifest],
    summary: &Summary,
) -> Vec<Notice> {
    let mut out = Vec::new();
    if let Some(since) = opts.since
        && since > opts.now
    {
        out.push(Notice {
            level: Level::Warning,
            message: format!(
                "the window starts in the future ({}, now {}): nothing can fall in it",
                fmt::time(since),
                fmt::time(opts.now)
            ),
        });
    }
    if manifests.is_empty() {
        let logical = listing.backups.iter().filter(|m| !is_physical(m)).count();
        match opts.sets.as_ref() {
            _ if listing.backups.is_empty() => {
                out.push(error("no usable backups in this repository".to_owned()));
            }
            Some(sets)
                if !listing
                    .backups
                    .iter()
                    .any(|m| is_physical(m) && sets.contains(&m.retention_set())) =>
            {
                out.push(error(format!(
                    "no usable backups of {} in this repository ({logical} of other sets)",
                    sets.iter().cloned().collect::<Vec<_>>().join(", "),
                )));
            }
            // Base backups alone: the physical section tells them and their window.
            _ => {}
        }
    } else if summary.backups == 0 {
        out.push(Notice {
            level: Level::Warning,
            message: format!(
                "no backup in the window; {} older one(s) exist",
                summary.backups_total
            ),
        });
    }
    out
}

fn set_notices(sets: &[SetSection]) -> Vec<Notice> {
    let mut out = Vec::new();
    for s in sets {
        match s.drills.last() {
            Some(d) if !d.passed => out.push(error(format!(
                "{}: the last drill ({}) did not pass: {}",
                s.set,
                fmt::time(d.started_at),
                d.cause.as_deref().unwrap_or(&d.outcome)
            ))),
            Some(_) => {}
            None => out.push(Notice {
                level: Level::Warning,
                message: format!(
                    "{}: no restore drill in the window: its backups are not proven to restore",
                    s.set
                ),
            }),
        }
    }
    out
}

/// Whether `m` is a physical base backup (`backup --physical`: format `physical`, its set the
/// cluster's system identifier). Told by the format's name, so that this reads the
/// repositories of a pgb that has them.
fn is_physical(m: &Manifest) -> bool {
    m.format.to_string() == "physical"
}

/// Physical base backups, the WAL archive under `wal/<system id>/<timeline>/`, and each
/// cluster's recoverable window.
fn physical(
    listing: &Listing,
    wal: WalListing,
    cluster_windows: Result<Vec<ClusterWindow>, String>,
) -> PhysicalSection {
    let backups: Vec<PhysicalBackupRow> = listing
        .backups
        .iter()
        .filter(|m| is_physical(m))
        .map(|m| PhysicalBackupRow {
            id: m.id.to_string(),
            system_identifier: m.set.clone(),
            started_at: m.started_at,
            finished_at: m.finished_at,
            stored_size: m.stored_size(),
        })
        .collect();
    let metas = match wal {
        Ok(m) => m,
        Err(e) => {
            return PhysicalSection {
                backups,
                error: Some(format!("cannot list the WAL archive: {e}")),
                ..PhysicalSection::default()
            };
        }
    };
    let mut by_timeline: BTreeMap<(String, String), Vec<&pgb_core::ObjectMeta>> = BTreeMap::new();
    for m in &metas {
        let mut parts = m.key.as_str().split('/').skip(1);
        if let (Some(sys), Some(tli), Some(_)) = (parts.next(), parts.next(), parts.next()) {
            by_timeline
                .entry((sys.to_owned(), tli.to_owned()))
                .or_default()
                .push(m);
        }
    }
    let wal: Vec<WalRange> = by_timeline
        .into_iter()
        .map(|((sys, tli), files)| wal_range(sys, tli, &files))
        .collect();
    let mut windows = windows(&backups, &wal);
    match cluster_windows {
        Ok(cw) => {
            for w in &mut windows {
                if let Some(c) = cw
                    .iter()
                    .find(|c| c.system_identifier.to_string() == w.system_identifier)
                {
                    w.timelines = timelines(c, &backups);
                    w.problem = c.commit_problem.clone();
                }
            }
        }
        Err(e) => {
            for w in &mut windows {
                w.problem = Some(e.clone());
            }
        }
    }
    PhysicalSection {
        backups,
        wal,
        windows,
        error: None,
    }
}

/// Each cluster's recoverable window, from its base backups and its archived WAL.
fn windows(backups: &[PhysicalBackupRow], wal: &[WalRange]) -> Vec<RecoverableWindow> {
    let clusters: BTreeSet<&str> = backups
        .iter()
        .map(|b| b.system_identifier.as_str())
        .chain(wal.iter().map(|w| w.system_identifier.as_str()))
        .collect();
    clusters
        .into_iter()
        .map(|sys| {
            let mine = || backups.iter().filter(move |b| b.system_identifier == sys);
            let archived = || wal.iter().filter(move |w| w.system_identifier == sys);
            RecoverableWindow {
                system_identifier: sys.to_owned(),
                from: mine().map(|b| b.finished_at).min(),
                to: archived()
                    .filter_map(|w| w.newest_at)
                    .max()
                    .or_else(|| mine().map(|b| b.finished_at).max()),
                gaps: archived().map(|w| w.gaps.len() as u64).sum(),
                timelines: Vec::new(),
                problem: None,
            }
        })
        .collect()
}

/// The timelines of `pgb list --windows` (pgb_core's [`ClusterWindow`]) as the report carries
/// them: each range with its times, each gap between the range it cuts and the next one.
fn timelines(c: &ClusterWindow, backups: &[PhysicalBackupRow]) -> Vec<WindowTimeline> {
    let ended = |id: &BackupId| {
        backups
            .iter()
            .find(|b| b.id == id.as_str())
            .map(|b| b.finished_at)
    };
    let stored = c.newest_segment.as_ref().and_then(|s| s.stored_at);
    c.timelines
        .iter()
        .map(|t| {
            let ranges: Vec<WindowRange> = t
                .ranges
                .iter()
                .map(|r| {
                    let newest_backup = r.backups.iter().filter_map(&ended).max();
                    let at_least = newest_backup.unwrap_or(r.from_time).max(r.from_time);
                    let (to, to_source) = match (r.to_commit, stored) {
                        (Some(t), _) => (t.max(r.from_time), "commit"),
                        (None, Some(s)) if r.reaches_end && s >= at_least => (s, "archived"),
                        _ => (at_least, "backup"),
                    };
                    WindowRange {
                        from: r.from_time,
                        to,
                        to_source: to_source.to_owned(),
                        from_backup: r.from_backup.to_string(),
                        backups: r.backups.iter().map(ToString::to_string).collect(),
                        from_lsn: r.from_lsn.to_string(),
                        to_lsn: r.to_lsn.to_string(),
                        reaches_end: r.reaches_end,
                    }
                })
                .collect();
            let gaps = t
                .gaps
                .iter()
                .map(|g| {
                    // The range it cuts holds the backups it affects; the next range starts
                    // after it.
                    let cut = ranges.iter().position(|r| {
                        !r.reaches_end
                            && r.backups
                                .iter()
                                .any(|b| g.affects.iter().any(|a| a.as_str() == b))
                    });
                    let after = cut.map(|i| ranges[i].to);
                    let until = match cut {
                        Some(i) => ranges.get(i + 1).map(|r| r.from),
                        None => None,
                    };
                    WindowGap {
                        first_missing: g.gap.first_missing.clone(),
                        last_missing: g.gap.last_missing.clone(),
                        missing: g.gap.missing,
                        start_lsn: g.gap.start.to_string(),
                        end_lsn: g.gap.end.to_string(),
                        affects: g.affects.iter().map(ToString::to_string).collect(),
                        after,
                        until,
                    }
                })
                .collect();
            WindowTimeline {
                timeline: format!("{:08X}", t.timeline),
                ranges,
                gaps,
                unrecoverable: t
                    .unrecoverable
                    .iter()
                    .map(|u| u.backup.to_string())
                    .collect(),
            }
        })
        .collect()
}

/// A segment file's (log, segment) from its name (`TTTTTTTTLLLLLLLLSSSSSSSS`, maybe with a
/// compression or encryption suffix).
fn segment(name: &str) -> Option<(u32, u32)> {
    let stem = name.split('.').next()?;
    if stem.len() != 24 || !stem.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((
        u32::from_str_radix(&stem[8..16], 16).ok()?,
        u32::from_str_radix(&stem[16..24], 16).ok()?,
    ))
}

fn wal_range(
    system_identifier: String,
    timeline: String,
    files: &[&pgb_core::ObjectMeta],
) -> WalRange {
    let mut segs: BTreeSet<((u32, u32), String)> = BTreeSet::new();
    let mut other = 0u64;
    for f in files {
        let name = f.key.as_str().rsplit('/').next().unwrap_or_default();
        match segment(name) {
            Some(s) => {
                segs.insert((s, name.split('.').next().unwrap_or(name).to_owned()));
            }
            None => other += 1,
        }
    }
    // Consecutive segments: the next in the same log, or the first of the next log (the
    // segments per log depend on the segment size, so a missing last segment of a log is not
    // told apart from a log's end).
    let mut gaps = Vec::new();
    let mut prev: Option<&((u32, u32), String)> = None;
    for s in &segs {
        if let Some(p) = prev {
            let ((pl, ps), (l, sg)) = (p.0, s.0);
            let next = (l == pl && sg == ps + 1) || (l == pl + 1 && sg == 0);
            if !next {
                gaps.push((p.1.clone(), s.1.clone()));
            }
        }
        prev = Some(s);
    }
    WalRange {
        system_identifier,
        timeline,
        segments: segs.len() as u64,
        other_files: other,
        stored_bytes: files.iter().map(|f| f.size).sum(),
        first: segs.first().map(|s| s.1.clone()),
        last: segs.last().map(|s| s.1.clone()),
        newest_at: files.iter().filter_map(|f| f.last_modified).max(),
        gaps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_segments_and_their_gaps() {
        assert_eq!(segment("000000010000000A000000FF"), Some((10, 255)));
        assert_eq!(segment("000000010000000A000000FF.zst.age"), Some((10, 255)));
        assert_eq!(segment("00000002.history"), None);
        let meta = |n: &str| {
            pgb_core::ObjectMeta::new(
                pgb_core::ObjectKey::parse(&format!("wal/7/00000001/{n}")).unwrap(),
                10,
                None,
            )
        };
        let files = [
            meta("000000010000000000000001"),
            meta("000000010000000000000002.zst"),
            meta("000000010000000000000005"),
            meta("000000010000000100000000"),
            meta("00000001.history"),
        ];
        let refs: Vec<&pgb_core::ObjectMeta> = files.iter().collect();
        let r = wal_range("7".into(), "00000001".into(), &refs);
        assert_eq!(r.segments, 4);
        assert_eq!(r.other_files, 1);
        assert_eq!(r.first.as_deref(), Some("000000010000000000000001"));
        assert_eq!(r.last.as_deref(), Some("000000010000000100000000"));
        assert_eq!(
            r.gaps,
            vec![(
                "000000010000000000000002".to_owned(),
                "000000010000000000000005".to_owned()
            )]
        );
    }
}
