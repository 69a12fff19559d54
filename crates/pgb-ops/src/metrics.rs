//! Prometheus text exposition (format 0.0.4) of pgb's state, rendered from the reports of
//! `pgb-ops` ([`CheckReport`], [`DrillReport`]), and an atomic textfile writer for
//! node_exporter's textfile collector.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `pgb_backup_last_success_timestamp_seconds` | gauge | set, database, pgb_job |
//! | `pgb_backup_last_duration_seconds` | gauge | set, database, pgb_job |
//! | `pgb_backup_last_size_bytes` | gauge | set, database, pgb_job |
//! | `pgb_backups` | gauge | set, database, pgb_job |
//! | `pgb_backup_max_age_seconds` | gauge | set, database, pgb_job |
//! | `pgb_drill_last_success_timestamp_seconds` | gauge | set, database, pgb_job |
//! | `pgb_drill_last_rto_seconds` | gauge | set, database, pgb_job |
//! | `pgb_drill_last_rpo_seconds` | gauge | set, database, pgb_job |
//! | `pgb_check_status` | gauge (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) | pgb_job |
//! | `pgb_wal_last_commit_timestamp_seconds` | gauge (read with `--max-rpo`) | system_identifier, pgb_job |
//! | `pgb_wal_rpo_seconds` | gauge (read with `--max-rpo`) | system_identifier, pgb_job |
//! | `pgb_wal_max_rpo_seconds` | gauge | system_identifier, pgb_job |
//! | `pgb_wal_last_segment_timestamp_seconds` | gauge | system_identifier, pgb_job |
//! | `pgb_wal_max_age_seconds` | gauge | system_identifier, pgb_job |
//! | `pgb_wal_window_start_timestamp_seconds` | gauge | system_identifier, pgb_job |
//! | `pgb_wal_gaps_after_newest_backup` | gauge | system_identifier, pgb_job |
//! | `pgb_wal_check_status` | gauge (0 OK .. 3 UNKNOWN) | system_identifier, pgb_job |
//! | `pgb_wal_timeline_window_start_timestamp_seconds` | gauge | system_identifier, timeline, pgb_job |
//! | `pgb_wal_timeline_window_end_timestamp_seconds` | gauge | system_identifier, timeline, pgb_job |
//! | `pgb_wal_timeline_gaps` | gauge | system_identifier, timeline, pgb_job |
//! | `pgb_pitr_drill_last_success_timestamp_seconds` | gauge | system_identifier, pgb_job |
//! | `pgb_pitr_drill_last_passed` | gauge (1 passed, 0 not) | system_identifier, pgb_job |
//! | `pgb_pitr_drill_last_rto_seconds` | gauge | system_identifier, pgb_job |
//! | `pgb_pitr_drill_last_rpo_seconds` | gauge | system_identifier, pgb_job |
//!
//! Backup ids are never labels (each would be a new time series). The job's label is
//! `pgb_job`, not `job`: `job` and `instance` are the labels Prometheus gives every scraped
//! series (the scrape job and target), so a `job` label of pgb's would be renamed to
//! `exported_job` or overwrite the target's.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::{CheckReport, DrillReport, WalCheck};

/// The label naming the pgb job (`--job`, a daemon job); empty for a check without one.
pub const JOB_LABEL: &str = "pgb_job";

struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(String, String)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            samples: Vec::new(),
        }
    }

    fn push(&mut self, labels: &str, value: impl ToString) {
        self.samples.push((labels.to_owned(), value.to_string()));
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn set_labels(set: &str, database: &str, job: Option<&str>) -> String {
    format!(
        "set=\"{}\",database=\"{}\",{JOB_LABEL}=\"{}\"",
        escape(set),
        escape(database),
        escape(job.unwrap_or(""))
    )
}

fn render_families(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} gauge", f.name);
        for (labels, value) in &f.samples {
            let _ = writeln!(out, "{}{{{labels}}} {value}", f.name);
        }
    }
    out
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Renders a check report: per backup set the newest backup's time, duration and size, the
/// number of backups, the maximum age applied, the last drill's RTO and RPO and the last
/// passed drill's time; and the overall check status. `job` is every series' `pgb_job` label.
pub fn render_check(report: &CheckReport, job: Option<&str>) -> String {
    render_checks([(job, report)])
}

/// Renders several check reports, one per job (as `pgb daemon` serves on `/metrics`), as one
/// exposition: each metric family appears once, with the series of every job under it.
/// Series as in [`render_check`]; jobs should check distinct sets (e.g. one database each),
/// or the same series would appear twice with different `pgb_job` labels.
pub fn render_checks<'a>(
    reports: impl IntoIterator<Item = (Option<&'a str>, &'a CheckReport)>,
) -> String {
    let mut last_success = Family::new(
        "pgb_backup_last_success_timestamp_seconds",
        "Unix time the newest complete backup of the set finished.",
    );
    let mut duration = Family::new(
        "pgb_backup_last_duration_seconds",
        "Duration of the newest complete backup of the set.",
    );
    let mut size = Family::new(
        "pgb_backup_last_size_bytes",
        "Stored size of the newest complete backup of the set.",
    );
    let mut count = Family::new(
        "pgb_backups",
        "Complete backups of the set in the repository.",
    );
    let mut max_age = Family::new(
        "pgb_backup_max_age_seconds",
        "The maximum age the check applies to the newest backup of the set.",
    );
    let mut drill_success = Family::new(
        "pgb_drill_last_success_timestamp_seconds",
        "Unix time the last passed restore drill of the set started.",
    );
    let mut rto = Family::new(
        "pgb_drill_last_rto_seconds",
        "Recovery time measured by the last restore drill of the set.",
    );
    let mut rpo = Family::new(
        "pgb_drill_last_rpo_seconds",
        "Recovery point (backup age at drill time) of the last restore drill of the set.",
    );
    let mut status = Family::new(
        "pgb_check_status",
        "Check status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    );
    let mut wal = WalFamilies::new();
    let mut pitr = PitrFamilies::new();
    for (job, report) in reports {
        for w in &report.wal {
            wal.push(w, job);
        }
        for s in &report.sets {
            let l = set_labels(&s.set, &s.database, job);
            if let Some(n) = &s.newest {
                last_success.push(&l, n.finished_at.unix_timestamp());
                duration.push(&l, n.duration_s);
                size.push(&l, n.stored_size);
            }
            count.push(&l, s.backups);
            if let Some(m) = s.max_age_s {
                max_age.push(&l, m);
            }
            if let Some(d) = &s.last_passed_drill {
                drill_success.push(&l, d.started_at.unix_timestamp());
            }
            if let Some(d) = &s.last_drill {
                rto.push(&l, seconds(d.rto_ms));
                rpo.push(&l, d.rpo_s);
            }
            pitr.push(s, job);
        }
        status.push(
            &format!("{JOB_LABEL}=\"{}\"", escape(job.unwrap_or(""))),
            report.status.code(),
        );
    }
    render_families(&[
        last_success,
        duration,
        size,
        count,
        max_age,
        drill_success,
        rto,
        rpo,
        status,
        wal.last_commit,
        wal.rpo,
        wal.max_rpo,
        wal.last_segment,
        wal.max_age,
        wal.window_start,
        wal.gaps,
        wal.status,
        wal.timeline_start,
        wal.timeline_end,
        wal.timeline_gaps,
        pitr.success,
        pitr.passed,
        pitr.rto,
        pitr.rpo,
    ])
}

/// The point-in-time recovery drills' series, per cluster (`pgb drill --physical`).
struct PitrFamilies {
    success: Family,
    passed: Family,
    rto: Family,
    rpo: Family,
}

impl PitrFamilies {
    fn new() -> Self {
        Self {
            success: Family::new(
                "pgb_pitr_drill_last_success_timestamp_seconds",
                "Unix time the last passed point-in-time recovery drill of the cluster started.",
            ),
            passed: Family::new(
                "pgb_pitr_drill_last_passed",
                "Whether the last point-in-time recovery drill of the cluster passed (1) or not (0).",
            ),
            rto: Family::new(
                "pgb_pitr_drill_last_rto_seconds",
                "Recovery time measured by the last point-in-time recovery drill of the cluster.",
            ),
            rpo: Family::new(
                "pgb_pitr_drill_last_rpo_seconds",
                "Age of the newest archived commit when the last point-in-time recovery drill of the cluster ran.",
            ),
        }
    }

    /// The set's last (passed) drill, when it was a point-in-time drill.
    fn push(&mut self, s: &crate::SetReport, job: Option<&str>) {
        let labels = |sysid: &str| {
            format!(
                "system_identifier=\"{}\",{JOB_LABEL}=\"{}\"",
                escape(sysid),
                escape(job.unwrap_or(""))
            )
        };
        if let Some((d, sysid)) = s
            .last_passed_drill
            .as_ref()
            .and_then(|d| d.system_identifier.as_deref().map(|id| (d, id)))
        {
            self.success
                .push(&labels(sysid), d.started_at.unix_timestamp());
        }
        if let Some((d, sysid)) = s
            .last_drill
            .as_ref()
            .and_then(|d| d.system_identifier.as_deref().map(|id| (d, id)))
        {
            let l = labels(sysid);
            self.passed
                .push(&l, u8::from(d.outcome == crate::DrillOutcome::Passed));
            self.rto.push(&l, seconds(d.rto_ms));
            self.rpo.push(&l, d.rpo_s);
        }
    }
}

/// The WAL archive's series, per cluster.
struct WalFamilies {
    last_commit: Family,
    rpo: Family,
    max_rpo: Family,
    last_segment: Family,
    max_age: Family,
    window_start: Family,
    gaps: Family,
    status: Family,
    timeline_start: Family,
    timeline_end: Family,
    timeline_gaps: Family,
}

impl WalFamilies {
    fn new() -> Self {
        Self {
            last_commit: Family::new(
                "pgb_wal_last_commit_timestamp_seconds",
                "Unix time of the newest commit in the WAL archive (from the WAL records).",
            ),
            rpo: Family::new(
                "pgb_wal_rpo_seconds",
                "Age of the newest archived commit at check time: the recovery point.",
            ),
            max_rpo: Family::new(
                "pgb_wal_max_rpo_seconds",
                "The maximum recovery point age the check applies.",
            ),
            last_segment: Family::new(
                "pgb_wal_last_segment_timestamp_seconds",
                "Unix time the newest archived WAL segment was stored.",
            ),
            max_age: Family::new(
                "pgb_wal_max_age_seconds",
                "The maximum age of the newest archived segment the check applies.",
            ),
            window_start: Family::new(
                "pgb_wal_window_start_timestamp_seconds",
                "Unix time the recoverable window of the newest physical backup's timeline starts.",
            ),
            gaps: Family::new(
                "pgb_wal_gaps_after_newest_backup",
                "Gaps in the WAL archive after the newest physical backup's start.",
            ),
            status: Family::new(
                "pgb_wal_check_status",
                "The cluster's WAL check status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
            ),
            timeline_start: Family::new(
                "pgb_wal_timeline_window_start_timestamp_seconds",
                "Unix time the timeline's recoverable window starts (end of its oldest usable base backup).",
            ),
            timeline_end: Family::new(
                "pgb_wal_timeline_window_end_timestamp_seconds",
                "Unix time the timeline's recoverable window ends (its newest archived commit).",
            ),
            timeline_gaps: Family::new(
                "pgb_wal_timeline_gaps",
                "Gaps in the archived WAL on the timeline's path.",
            ),
        }
    }

    fn push(&mut self, w: &WalCheck, job: Option<&str>) {
        let l = format!(
            "system_identifier=\"{}\",{JOB_LABEL}=\"{}\"",
            escape(&w.system_identifier),
            escape(job.unwrap_or(""))
        );
        if let Some(t) = w.newest_commit {
            self.last_commit.push(&l, t.unix_timestamp());
        }
        if let Some(r) = w.rpo_s {
            self.rpo.push(&l, r);
        }
        if let Some(m) = w.max_rpo_s {
            self.max_rpo.push(&l, m);
        }
        if let Some(t) = w.newest_segment_stored_at {
            self.last_segment.push(&l, t.unix_timestamp());
        }
        if let Some(m) = w.max_wal_age_s {
            self.max_age.push(&l, m);
        }
        if let Some(t) = w.window_from {
            self.window_start.push(&l, t.unix_timestamp());
        }
        if w.physical_backups > 0 {
            self.gaps.push(&l, w.gaps_after_newest_backup);
        }
        self.status.push(&l, w.status.code());
        for t in &w.timelines {
            let l = format!(
                "system_identifier=\"{}\",timeline=\"{}\",{JOB_LABEL}=\"{}\"",
                escape(&w.system_identifier),
                t.timeline,
                escape(job.unwrap_or(""))
            );
            if let Some(at) = t.window_from {
                self.timeline_start.push(&l, at.unix_timestamp());
            }
            if let Some(at) = t.window_to {
                self.timeline_end.push(&l, at.unix_timestamp());
            }
            self.timeline_gaps.push(&l, t.gaps);
        }
    }
}

/// Renders one drill: its RTO and RPO, and its start time when it passed.
pub fn render_drill(report: &DrillReport, job: Option<&str>) -> String {
    let l = set_labels(&report.set, &report.database, job.or(report.job.as_deref()));
    let mut drill_success = Family::new(
        "pgb_drill_last_success_timestamp_seconds",
        "Unix time the last passed restore drill of the set started.",
    );
    let mut rto = Family::new(
        "pgb_drill_last_rto_seconds",
        "Recovery time measured by the last restore drill of the set.",
    );
    let mut rpo = Family::new(
        "pgb_drill_last_rpo_seconds",
        "Recovery point (backup age at drill time) of the last restore drill of the set.",
    );
    if report.passed() {
        drill_success.push(&l, report.started_at.unix_timestamp());
    }
    rto.push(&l, seconds(report.rto_ms));
    rpo.push(&l, report.rpo_s);
    render_families(&[drill_success, rto, rpo])
}

/// Writes `text` to `dir/name` atomically (a temp file in `dir`, flushed to disk, then
/// renamed), so node_exporter's textfile collector never reads a partial file. The temp
/// file's name does not end in `.prom`, so the collector ignores it. Returns the path.
///
/// # Errors
/// I/O errors; the temp file is removed on failure.
pub fn write_textfile(dir: &Path, name: &str, text: &str) -> std::io::Result<PathBuf> {
    let mut rnd = [0u8; 6];
    let _ = getrandom::fill(&mut rnd);
    let suffix: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".{name}.{suffix}.tmp"));
    let target = dir.join(name);
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map(|()| target)
}

/// The textfile name `pgb check --textfile DIR` writes in `DIR`, one per check so that checks
/// sharing a directory never overwrite each other's status:
///
/// - with a job: `pgb-<job>.prom`;
/// - else `pgb-repo-<repository>.prom`, or `pgb-repo-<repository>-db-<database>.prom` when
///   the check is limited to one database; `repository` should be the redacted URL (no
///   credentials in a file name).
///
/// Each part is sanitized: every character but ASCII letters, digits, `_`, `-` and `.` becomes
/// `_`, and leading and trailing `_`, `-`, `.` are removed (so `/var/backups/pgb` gives
/// `pgb-repo-var_backups_pgb.prom`). The name is stable: the same check always writes the same
/// file.
pub fn textfile_name(job: Option<&str>, repository: &str, database: Option<&str>) -> String {
    match job {
        Some(job) => format!("pgb-{}.prom", sanitize(job)),
        None => {
            let mut name = format!("pgb-repo-{}", sanitize(repository));
            if let Some(db) = database {
                name.push_str("-db-");
                name.push_str(&sanitize(db));
            }
            name.push_str(".prom");
            name
        }
    }
}

fn sanitize(part: &str) -> String {
    let s: String = part
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_matches(|c| matches!(c, '_' | '-' | '.'));
    if s.is_empty() {
        "_".to_owned()
    } else {
        s.to_owned()
    }
}
