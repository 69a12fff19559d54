//! Freshness checks from the repository alone (so a job that silently stopped is caught),
//! with the monitoring-plugin status convention.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use pgb_core::{AuthKey, Listing, Manifest, Repository};
use serde::Serialize;
use time::OffsetDateTime;

use crate::drill::{DrillOutcome, DrillReport};
use crate::wal_check::{self, WalCheck};

/// The monitoring-plugin status: exit codes 0, 1, 2, 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CheckStatus {
    /// All good.
    Ok,
    /// Needs attention (size drop, old or missing drill, unusable manifests).
    Warning,
    /// Backups are missing, too old, too small, or the last drill failed.
    Critical,
    /// The repository could not be read.
    Unknown,
}

impl CheckStatus {
    /// The exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Warning => 1,
            Self::Critical => 2,
            Self::Unknown => 3,
        }
    }

    /// `OK`, `WARNING`, `CRITICAL`, `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warning => "WARNING",
            Self::Critical => "CRITICAL",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// The worse of two statuses (UNKNOWN is worst: the state cannot be told).
    fn worst(self, other: Self) -> Self {
        self.max(other)
    }
}

impl std::fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Thresholds for [`check`]. Each `None` disables its rule.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckOptions {
    /// The newest complete backup of each set must be younger than this (CRITICAL).
    pub max_age: Option<Duration>,
    /// The newest backup's stored size must be at least this (CRITICAL).
    pub min_size: Option<u64>,
    /// WARNING when the newest backup's dump size dropped by more than this percentage
    /// against the median of the set's previous five backups.
    pub max_size_drop_percent: Option<u32>,
    /// WARNING when the set's last drill is older than this, or there is none.
    pub max_drill_age: Option<Duration>,
    /// "Now" (the caller's clock).
    pub now: OffsetDateTime,
    /// Authenticates drill records (the repository's authentication key).
    pub auth_key: Option<AuthKey>,
    /// Only the backups of this database (a job's, in a repository several jobs share);
    /// `None`: every database. A database with no complete backup is CRITICAL.
    pub database: Option<String>,
    /// The newest archived commit (read from the WAL records) must be younger than this
    /// (CRITICAL), for every cluster in the WAL archive.
    pub max_rpo: Option<Duration>,
    /// The newest archived WAL segment must have been stored less than this ago (CRITICAL).
    pub max_wal_age: Option<Duration>,
}

impl CheckOptions {
    /// No thresholds, checked at `now`.
    pub fn new(now: OffsetDateTime) -> Self {
        Self {
            max_age: None,
            min_size: None,
            max_size_drop_percent: None,
            max_drill_age: None,
            now,
            auth_key: None,
            database: None,
            max_rpo: None,
            max_wal_age: None,
        }
    }

    /// Sets the maximum recovery point age (the newest archived commit's).
    pub fn with_max_rpo(mut self, d: Duration) -> Self {
        self.max_rpo = Some(d);
        self
    }

    /// Sets the maximum age of the newest archived WAL segment.
    pub fn with_max_wal_age(mut self, d: Duration) -> Self {
        self.max_wal_age = Some(d);
        self
    }

    /// Checks only the backups of `database`.
    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self
    }

    /// Sets the maximum age.
    pub fn with_max_age(mut self, d: Duration) -> Self {
        self.max_age = Some(d);
        self
    }

    /// Sets the minimum size.
    pub fn with_min_size(mut self, bytes: u64) -> Self {
        self.min_size = Some(bytes);
        self
    }

    /// Sets the maximum size drop.
    pub fn with_max_size_drop_percent(mut self, pct: u32) -> Self {
        self.max_size_drop_percent = Some(pct);
        self
    }

    /// Sets the maximum drill age.
    pub fn with_max_drill_age(mut self, d: Duration) -> Self {
        self.max_drill_age = Some(d);
        self
    }

    /// Sets the authentication key for drill records.
    pub fn with_auth_key(mut self, key: AuthKey) -> Self {
        self.auth_key = Some(key);
        self
    }
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad.
    pub status: CheckStatus,
    /// One line.
    pub message: String,
}

/// The newest complete backup of a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BackupSummary {
    /// Its id.
    pub id: String,
    /// pg_dump start.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Data object finished.
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// Age at check time, seconds.
    pub age_s: u64,
    /// How long it took, seconds.
    pub duration_s: u64,
    /// Stored bytes.
    pub stored_size: u64,
    /// Dump bytes.
    pub plain_size: u64,
}

/// A set's last drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DrillSummary {
    /// The backup drilled.
    pub backup_id: String,
    /// When the drill started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Age at check time, seconds.
    pub age_s: u64,
    /// The verdict.
    pub outcome: DrillOutcome,
    /// Recovery time, milliseconds.
    pub rto_ms: u64,
    /// Recovery point, seconds.
    pub rpo_s: u64,
    /// A point-in-time recovery drill's cluster (system identifier); absent for a drill of a
    /// dump.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_identifier: Option<String>,
}

/// One backup set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SetReport {
    /// The set (`host:port/database`).
    pub set: String,
    /// Its database.
    pub database: String,
    /// Complete backups.
    pub backups: u64,
    /// The newest complete backup.
    pub newest: Option<BackupSummary>,
    /// The maximum age applied, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age_s: Option<u64>,
    /// The last drill.
    pub last_drill: Option<DrillSummary>,
    /// The last drill that passed.
    pub last_passed_drill: Option<DrillSummary>,
    /// What is wrong.
    pub findings: Vec<Finding>,
    /// The worst finding's status.
    pub status: CheckStatus,
}

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CheckReport {
    /// The overall status.
    pub status: CheckStatus,
    /// When checked.
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// Per set, by set name.
    pub sets: Vec<SetReport>,
    /// Backups running now (ids).
    pub running: Vec<String>,
    /// Repository-wide problems (unreadable repository, no backups, unusable manifests).
    pub findings: Vec<Finding>,
    /// Per cluster of the WAL archive: the recovery point, the newest segment, gaps after
    /// the newest physical backup (when asked for with a maximum RPO or WAL age, or when
    /// physical backups are checked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wal: Vec<WalCheck>,
}

impl CheckReport {
    /// The one-line summary used by [`nagios`] and notifications.
    pub fn summary(&self) -> String {
        let mut problems: Vec<String> = self
            .findings
            .iter()
            .filter(|f| f.status != CheckStatus::Ok)
            .map(|f| f.message.clone())
            .collect();
        for s in &self.sets {
            for f in s.findings.iter().filter(|f| f.status != CheckStatus::Ok) {
                problems.push(format!("{}: {}", s.set, f.message));
            }
        }
        for w in &self.wal {
            for f in w.findings.iter().filter(|f| f.status != CheckStatus::Ok) {
                problems.push(format!("WAL of {}: {}", w.system_identifier, f.message));
            }
        }
        if problems.is_empty() {
            let rpo = self
                .wal
                .iter()
                .filter_map(|w| w.rpo_s)
                .max()
                .map(|r| format!(", newest archived commit {} old", human(r)))
                .unwrap_or_default();
            let newest = self
                .sets
                .iter()
                .filter_map(|s| s.newest.as_ref().map(|n| n.age_s))
                .max();
            format!(
                "{} backup set{}, oldest newest-backup {}{rpo}",
                self.sets.len(),
                if self.sets.len() == 1 { "" } else { "s" },
                newest.map_or("n/a".to_owned(), |a| format!("{} old", human(a)))
            )
        } else {
            problems.join("; ")
        }
    }
}

pub(crate) fn human(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

pub(crate) fn secs(d: time::Duration) -> u64 {
    u64::try_from(d.whole_seconds()).unwrap_or(0)
}

/// Checks the repository: per backup set the newest complete backup and its age, size
/// anomalies, the last drill and its result; plus running backups. Never fails: an
/// unreadable repository is an UNKNOWN report.
pub async fn check(repo: &Repository, opts: &CheckOptions) -> CheckReport {
    check_listed(repo, repo.list().await.as_ref(), opts).await
}

/// [`check`] over a listing already made of `repo` (or the error making it failed with): the
/// daemon lists a repository once per refresh for every job that shares it.
pub async fn check_listed(
    repo: &Repository,
    listing: Result<&Listing, &pgb_core::Error>,
    opts: &CheckOptions,
) -> CheckReport {
    let now = opts.now;
    let mut report = CheckReport {
        status: CheckStatus::Ok,
        checked_at: now,
        sets: Vec::new(),
        running: Vec::new(),
        findings: Vec::new(),
        wal: Vec::new(),
    };
    let listing = match listing {
        Ok(l) => l,
        Err(e) => {
            report.status = CheckStatus::Unknown;
            report.findings.push(Finding {
                status: CheckStatus::Unknown,
                message: format!("cannot read the repository: {e}"),
            });
            return report;
        }
    };
    let drills = match crate::record::drill_history(repo, opts.auth_key.as_ref()).await {
        Ok(h) => h.into_iter().filter_map(|e| e.report).collect::<Vec<_>>(),
        Err(e) => {
            report.findings.push(Finding {
                status: CheckStatus::Unknown,
                message: format!("cannot read drill records: {e}"),
            });
            Vec::new()
        }
    };
    report.running = listing.in_progress.clone();
    if !listing.invalid.is_empty() {
        report.findings.push(Finding {
            status: CheckStatus::Warning,
            message: format!(
                "{} backup(s) with an unusable manifest: {}",
                listing.invalid.len(),
                listing
                    .invalid
                    .iter()
                    .map(|i| i.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    let backups: Vec<&Manifest> = listing
        .backups
        .iter()
        .filter(|m| opts.database.as_ref().is_none_or(|d| &m.database == d))
        .collect();
    if backups.is_empty() {
        report.findings.push(Finding {
            status: CheckStatus::Critical,
            message: match &opts.database {
                None => "no complete backups in the repository".to_owned(),
                Some(d) => format!("no complete backups of database {d} in the repository"),
            },
        });
    }
    if wal_check::wanted(opts, backups.iter().any(|m| m.is_physical())) {
        let (wal, findings) = wal_check::check_wal(repo, listing, opts).await;
        report.wal = wal;
        report.findings.extend(findings);
    }
    let mut sets: BTreeMap<&str, Vec<&Manifest>> = BTreeMap::new();
    for m in backups {
        sets.entry(m.set.as_str()).or_default().push(m);
    }
    for (set, backups) in sets {
        report.sets.push(check_set(
            set,
            &backups,
            &drills,
            !report.running.is_empty(),
            opts,
        ));
    }
    report.status = report
        .findings
        .iter()
        .map(|f| f.status)
        .chain(report.sets.iter().map(|s| s.status))
        .chain(report.wal.iter().map(|w| w.status))
        .fold(CheckStatus::Ok, CheckStatus::worst);
    report
}

fn check_set(
    set: &str,
    backups: &[&Manifest],
    drills: &[DrillReport],
    running: bool,
    opts: &CheckOptions,
) -> SetReport {
    let now = opts.now;
    // `backups` is oldest first (the listing's order).
    let newest = backups.last().expect("sets are never empty");
    let mut findings = Vec::new();
    let age_s = secs(now - newest.started_at);
    if let Some(max) = opts.max_age
        && age_s > max.as_secs()
    {
        // A backup running now is probably the one that will fix it: a warning, until the
        // age reaches twice the limit (a stuck run keeps its lease alive forever).
        let (status, note) = if running && age_s <= 2 * max.as_secs() {
            (CheckStatus::Warning, "; a backup is running now")
        } else {
            (CheckStatus::Critical, "")
        };
        findings.push(Finding {
            status,
            message: format!(
                "newest backup {} is {} old (max {}){note}",
                newest.id,
                human(age_s),
                human(max.as_secs())
            ),
        });
    }
    if let Some(min) = opts.min_size
        && newest.stored_size() < min
    {
        findings.push(Finding {
            status: CheckStatus::Critical,
            message: format!(
                "newest backup {} is {} bytes, below the minimum of {min}",
                newest.id,
                newest.stored_size()
            ),
        });
    }
    if let Some(pct) = opts.max_size_drop_percent {
        let prev: Vec<u64> = backups
            .iter()
            .rev()
            .skip(1)
            .take(5)
            .map(|m| m.plain_size())
            .collect();
        if let Some(median) = median(&prev)
            && median > 0
        {
            let floor = median as f64 * (1.0 - f64::from(pct) / 100.0);
            if (newest.plain_size() as f64) < floor {
                let drop = 100.0 - newest.plain_size() as f64 * 100.0 / median as f64;
                findings.push(Finding {
                    status: CheckStatus::Warning,
                    message: format!(
                        "newest backup {} is {:.0}% smaller than the median of the previous {} ({} vs {} dump bytes)",
                        newest.id,
                        drop,
                        prev.len(),
                        newest.plain_size(),
                        median
                    ),
                });
            }
        }
    }
    let last = drills
        .iter()
        .filter(|d| d.set == set)
        .max_by_key(|d| d.started_at);
    let last_passed = drills
        .iter()
        .filter(|d| d.set == set && d.passed())
        .max_by_key(|d| d.started_at);
    let summary = |d: &DrillReport| DrillSummary {
        backup_id: d.backup_id.to_string(),
        started_at: d.started_at,
        age_s: secs(now - d.started_at),
        outcome: d.outcome,
        rto_ms: d.rto_ms,
        rpo_s: d.rpo_s,
        system_identifier: d.pitr.as_ref().map(|p| p.system_identifier.clone()),
    };
    if let Some(d) = last
        && d.outcome != DrillOutcome::Passed
    {
        findings.push(Finding {
            status: CheckStatus::Critical,
            message: format!(
                "last drill (backup {}) failed: {}",
                d.backup_id,
                d.cause.as_deref().unwrap_or("no cause recorded")
            ),
        });
    }
    if let Some(max) = opts.max_drill_age {
        match last {
            None => findings.push(Finding {
                status: CheckStatus::Warning,
                message: "no drill recorded".to_owned(),
            }),
            Some(d) if secs(now - d.started_at) > max.as_secs() => findings.push(Finding {
                status: CheckStatus::Warning,
                message: format!(
                    "last drill is {} old (max {})",
                    human(secs(now - d.started_at)),
                    human(max.as_secs())
                ),
            }),
            Some(_) => {}
        }
    }
    let status = findings
        .iter()
        .map(|f| f.status)
        .fold(CheckStatus::Ok, CheckStatus::worst);
    SetReport {
        set: set.to_owned(),
        database: newest.database.clone(),
        backups: backups.len() as u64,
        newest: Some(BackupSummary {
            id: newest.id.to_string(),
            started_at: newest.started_at,
            finished_at: newest.finished_at,
            age_s,
            duration_s: secs(newest.finished_at - newest.started_at),
            stored_size: newest.stored_size(),
            plain_size: newest.plain_size(),
        }),
        max_age_s: opts.max_age.map(|d| d.as_secs()),
        last_drill: last.map(summary),
        last_passed_drill: last_passed.map(summary),
        findings,
        status,
    }
}

fn median(v: &[u64]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2
    })
}

/// The Nagios / monitoring-plugin line: `PGB OK - <summary> | <perfdata>`, with per set the
/// newest backup's age (against the maximum age as critical threshold) and stored size.
pub fn nagios(report: &CheckReport) -> String {
    let mut line = format!("PGB {} - {}", report.status, report.summary());
    // The plugin format reserves `|` for the perfdata separator.
    line = line.replace('|', "/");
    let mut perf = String::new();
    for s in &report.sets {
        if let Some(n) = &s.newest {
            let label = s.set.replace(['\'', '='], "_");
            let _ = write!(
                perf,
                " 'age {label}'={}s;;{};0; 'size {label}'={}B;;;0;",
                n.age_s,
                s.max_age_s.map(|m| m.to_string()).unwrap_or_default(),
                n.stored_size
            );
        }
    }
    for w in &report.wal {
        let id = &w.system_identifier;
        let max = |m: Option<u64>| m.map(|m| m.to_string()).unwrap_or_default();
        if let Some(rpo) = w.rpo_s {
            let _ = write!(perf, " 'rpo {id}'={rpo}s;;{};0;", max(w.max_rpo_s));
        }
        if let Some(age) = w.wal_age_s {
            let _ = write!(perf, " 'wal_age {id}'={age}s;;{};0;", max(w.max_wal_age_s));
        }
    }
    if !perf.is_empty() {
        line.push_str(" |");
        line.push_str(&perf);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[5, 1, 3]), Some(3));
        assert_eq!(median(&[4, 1, 3, 10]), Some(3));
    }

    #[test]
    fn statuses_order_and_codes() {
        assert_eq!(
            CheckStatus::Ok.worst(CheckStatus::Critical),
            CheckStatus::Critical
        );
        assert_eq!(
            CheckStatus::Critical.worst(CheckStatus::Unknown),
            CheckStatus::Unknown
        );
        assert_eq!(
            [
                CheckStatus::Ok,
                CheckStatus::Warning,
                CheckStatus::Critical,
                CheckStatus::Unknown
            ]
            .map(CheckStatus::code),
            [0, 1, 2, 3]
        );
        assert_eq!(
            serde_json::to_string(&CheckStatus::Warning).unwrap(),
            "\"WARNING\""
        );
    }
}
