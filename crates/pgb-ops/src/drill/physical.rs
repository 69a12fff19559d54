//! Point-in-time recovery drills: a physical base backup restored into a scratch data
//! directory and recovered by a temporary PostgreSQL of its major version from the WAL
//! archive to a second of the recoverable window, checked, measured and recorded like a drill
//! of a dump.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pgb_core::physical::{
    PhysicalRestorePlan, PhysicalRestoreRequest, RecoverySettings, RecoveryTarget, TargetAction,
    TimelineTarget,
};
use pgb_core::wal::{CommitTimes, WalError, WalFetchOptions, WalReach};
use pgb_core::{AuthKey, BackupId, Error as CoreError, Manifest, Mismatch, Progress, Repository};
use pgb_postgres::{ScratchServer, ScratchServerOptions, SqlClient, Tool, ToolLocator};
use pgb_wal::{Lsn, WalFileName};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::checks::{self, cause_of, failed, passed};
use super::{CheckResult, Clock, DrillError, DrillOutcome, DrillReport, Phase, SmokeStatement};
use crate::record::{compact_time, record_drill};

/// The scratch server's `restore_command`: `cp` of the requested file (`%f`) from the
/// verified spool `<data_dir>/pgb_spool` to `%p`. A file not in the spool is "not found"
/// (`cp` exits 1): the end of the WAL the drill fetched, or a timeline history probe, both
/// normal for PostgreSQL. Words are quoted for the shell and `%` doubled.
fn spool_restore_command(data_dir: &Path) -> String {
    let spool = data_dir.join("pgb_spool").display().to_string();
    let word = if !spool.is_empty()
        && spool
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@".contains(&b))
    {
        spool
    } else {
        format!("'{}'", spool.replace('\'', r"'\''"))
    };
    format!("cp {}/%f %p", word.replace('%', "%%"))
}

/// Where a point-in-time drill recovers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PitrTarget {
    /// A random whole second inside the recoverable window ([`random_second`]).
    Random,
    /// This moment; it must lie inside the window.
    Time(OffsetDateTime),
}

impl std::str::FromStr for PitrTarget {
    type Err = pgb_core::physical::InvalidTarget;

    /// `random`, or a time in the grammar of a restore's target time
    /// ([`pgb_core::physical::parse_target_time`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "random" => Ok(Self::Random),
            t => pgb_core::physical::parse_target_time(t).map(Self::Time),
        }
    }
}

/// Options for [`drill_pitr`].
#[derive(Clone)]
#[non_exhaustive]
pub struct PitrDrillOptions {
    /// Where recovery stops.
    pub target: PitrTarget,
    /// The cluster (needed when the repository holds physical backups of several).
    pub system_identifier: Option<u64>,
    /// The base backup; `None`: the newest that ended before the target.
    pub backup: Option<BackupId>,
    /// Where to find `pg_ctl` (of the backup's major version exactly) and `psql`.
    pub locator: ToolLocator,
    /// The scratch directory is created under this directory and removed afterwards.
    pub scratch_root: PathBuf,
    /// The OS user the server runs as when this process is root.
    pub os_user: String,
    /// The role the checks connect as (a superuser of the backed-up cluster).
    pub user: String,
    /// The database the smoke statements run in.
    pub database: String,
    /// Smoke statements (one row, first column `true`).
    pub smoke: Vec<SmokeStatement>,
    /// Also check every B-tree index with `amcheck` (`bt_index_check`), in every database.
    pub amcheck: bool,
    /// Fail when the recovery time exceeds this.
    pub max_rto: Option<Duration>,
    /// Fail when the archive's newest commit is older than this at drill time.
    pub max_rpo: Option<Duration>,
    /// How long replay may take before the drill fails.
    pub recovery_timeout: Duration,
    /// Write the result to the repository.
    pub record: bool,
    /// Authenticates the record.
    pub auth_key: Option<AuthKey>,
    /// The job name, for reports.
    pub job: Option<String>,
    /// The seed of the random second (`None`: from the OS).
    pub seed: Option<u64>,
}

impl fmt::Debug for PitrDrillOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PitrDrillOptions")
            .field("target", &self.target)
            .field("system_identifier", &self.system_identifier)
            .field("backup", &self.backup)
            .field("scratch_root", &self.scratch_root)
            .field("os_user", &self.os_user)
            .field("user", &self.user)
            .field("database", &self.database)
            .field("amcheck", &self.amcheck)
            .finish_non_exhaustive()
    }
}

impl PitrDrillOptions {
    /// A drill to a random second of the window, under `scratch_root`, recorded; the server
    /// runs as `postgres` when root, the checks connect as `postgres` to `postgres`. Its
    /// `restore_command` is the drill's own: `cp` from the verified spool the drill fills
    /// before the server starts, so the server needs no repository, credentials or keys.
    pub fn new(locator: ToolLocator, scratch_root: impl Into<PathBuf>) -> Self {
        Self {
            target: PitrTarget::Random,
            system_identifier: None,
            backup: None,
            locator,
            scratch_root: scratch_root.into(),
            os_user: "postgres".to_owned(),
            user: "postgres".to_owned(),
            database: "postgres".to_owned(),
            smoke: Vec::new(),
            amcheck: false,
            max_rto: None,
            max_rpo: None,
            recovery_timeout: Duration::from_secs(3600),
            record: true,
            auth_key: None,
            job: None,
            seed: None,
        }
    }

    /// Sets the target.
    pub fn with_target(mut self, t: PitrTarget) -> Self {
        self.target = t;
        self
    }

    /// Only this cluster.
    pub fn with_system_identifier(mut self, id: Option<u64>) -> Self {
        self.system_identifier = id;
        self
    }

    /// This base backup.
    pub fn with_backup(mut self, id: Option<BackupId>) -> Self {
        self.backup = id;
        self
    }

    /// Adds a smoke statement.
    pub fn with_smoke(mut self, name: impl Into<String>, sql: impl Into<String>) -> Self {
        self.smoke.push(SmokeStatement {
            name: name.into(),
            sql: sql.into(),
        });
        self
    }

    /// The database the smoke statements run in.
    pub fn with_database(mut self, db: impl Into<String>) -> Self {
        self.database = db.into();
        self
    }

    /// The role the checks connect as.
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }

    /// The OS user the server runs as when root.
    pub fn with_os_user(mut self, user: impl Into<String>) -> Self {
        self.os_user = user.into();
        self
    }

    /// Checks B-tree indexes with `amcheck`.
    pub fn with_amcheck(mut self, yes: bool) -> Self {
        self.amcheck = yes;
        self
    }

    /// Sets the RTO limit.
    pub fn with_max_rto(mut self, d: Duration) -> Self {
        self.max_rto = Some(d);
        self
    }

    /// Sets the RPO limit.
    pub fn with_max_rpo(mut self, d: Duration) -> Self {
        self.max_rpo = Some(d);
        self
    }

    /// How long replay may take.
    pub fn with_recovery_timeout(mut self, d: Duration) -> Self {
        self.recovery_timeout = d;
        self
    }

    /// Whether to record the result.
    pub fn with_record(mut self, yes: bool) -> Self {
        self.record = yes;
        self
    }

    /// Authenticates the record.
    pub fn with_auth_key(mut self, key: AuthKey) -> Self {
        self.auth_key = Some(key);
        self
    }

    /// Sets the job name.
    pub fn with_job(mut self, job: impl Into<String>) -> Self {
        self.job = Some(job.into());
        self
    }

    /// Seeds the random second.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

/// What a point-in-time drill recovered to: recorded as the drill record's `pitr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PitrReport {
    /// The cluster.
    pub system_identifier: String,
    /// The timeline recovered along.
    pub timeline: u32,
    /// The PostgreSQL major version the scratch server ran.
    pub server_major: u32,
    /// `random` or `given`.
    pub target: String,
    /// The recovery target time.
    #[serde(with = "time::serde::rfc3339")]
    pub target_time: OffsetDateTime,
    /// The window's start: the end of its oldest base backup.
    #[serde(with = "time::serde::rfc3339")]
    pub window_from: OffsetDateTime,
    /// The window's end: the newest archived commit.
    #[serde(with = "time::serde::rfc3339")]
    pub window_to: OffsetDateTime,
    /// The last transaction replayed (`pg_last_xact_replay_timestamp()`): at or before the
    /// target; absent when none was replayed or recovery did not finish.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub replayed_to: Option<OffsetDateTime>,
    /// Archived WAL segments fetched (verified) before replay.
    pub wal_segments: u64,
    /// Their bytes.
    pub wal_bytes: u64,
}

/// A random whole second strictly after `from` (a base backup's end) and strictly before
/// `to` (the newest archived commit: recovery to a time stops at the first commit after it),
/// chosen by `seed`; `None` when no whole second lies between them.
pub fn random_second(
    from: OffsetDateTime,
    to: OffsetDateTime,
    seed: u64,
) -> Option<OffsetDateTime> {
    let lo = from.unix_timestamp() + 1;
    let floor_to = to.unix_timestamp();
    let hi = if to.nanosecond() == 0 {
        floor_to - 1
    } else {
        floor_to
    };
    if lo > hi {
        return None;
    }
    let span = u64::try_from(hi - lo + 1).ok()?;
    let pick = lo + i64::try_from(seed % span).ok()?;
    OffsetDateTime::from_unix_timestamp(pick).ok()
}

/// Everything chosen before anything starts.
struct Prepared {
    plan: PhysicalRestorePlan,
    request: PhysicalRestoreRequest,
    /// The WAL check (`None` when a damaged segment stopped it: see `damaged`).
    reach: Option<WalReach>,
    /// A damaged archived segment the WAL check found: the drill fails without starting.
    damaged: Option<String>,
    report: PitrReport,
    pg_ctl: Tool,
    client: SqlClient,
    /// The scratch directory (holds `data/` and `run/`).
    dir: PathBuf,
}

/// The scratch directory, removed (awaited) by [`ScratchDir::remove`], else on drop.
struct ScratchDir(Option<PathBuf>);

impl ScratchDir {
    fn create(path: &Path) -> Result<Self, DrillError> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(path)
            .map_err(|e| {
                DrillError::Invalid(format!(
                    "cannot create the drill's scratch directory {}: {e}",
                    path.display()
                ))
            })?;
        Ok(Self(Some(path.to_path_buf())))
    }

    async fn remove(&mut self) -> bool {
        let Some(p) = self.0.take() else { return true };
        match tokio::fs::remove_dir_all(&p).await {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => {
                tracing::error!(dir = %p.display(), error = %e, "could not remove the drill's scratch directory; remove it by hand");
                false
            }
        }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            // The drill future was dropped mid-drill: a blocking removal is all there is.
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// Restores a physical base backup into a scratch data directory under
/// `opts.scratch_root`, starts a temporary PostgreSQL of the backup's major version on it (a
/// free port on 127.0.0.1, archiving off), recovers from the WAL archive to a random second
/// of the recoverable window (or the time given), checks that recovery stopped at the target,
/// runs the table checks, the smoke statements and optionally `amcheck`, measures the phases
/// (`plan`, `base_fetch`, `wal_fetch`, `replay`, `checks`), the RTO and the RPO (drill start minus
/// the newest archived commit), and records the result like [`super::drill`].
///
/// Before anything is written or started: the cluster's window is read, the target checked
/// to lie inside it ([`DrillError::OutsideWindow`]), and the WAL from the chosen backup to
/// the target checked as `restore --preview` does ([`DrillError::Unreachable`]). The server
/// is stopped and the scratch directory removed on every way out, also when `cancel`
/// resolves (then this returns [`DrillError::Cancelled`]).
///
/// # Errors
/// [`DrillError`]: the drill could not run (nothing recorded).
pub async fn drill_pitr(
    repo: &Repository,
    opts: &PitrDrillOptions,
    progress: &dyn Progress,
    cancel: impl Future<Output = ()>,
) -> Result<DrillReport, DrillError> {
    let started_at = OffsetDateTime::now_utc();
    let t0 = Instant::now();
    let mut cancel = std::pin::pin!(cancel);
    let p = tokio::select! {
        biased;
        () = &mut cancel => return Err(DrillError::Cancelled),
        r = prepare(repo, opts, started_at) => r?,
    };
    // Phase `plan`: the window, the target, the backup and the WAL check.
    let plan = Phase {
        name: "plan".to_owned(),
        millis: super::millis(t0.elapsed()),
    };
    if let Some(problem) = &p.damaged {
        let found = Found {
            checks: vec![failed("wal fetch", problem.clone())],
            phases: vec![plan],
            ..Found::default()
        };
        return Ok(finish(repo, opts, &p, found, started_at, t0.elapsed(), true).await);
    }
    let mut dir = ScratchDir::create(&p.dir)?;
    let mut server: Option<ScratchServer> = None;
    let ran = {
        let steps = steps(repo, opts, progress, &p, &mut server);
        tokio::select! {
            biased;
            () = &mut cancel => None,
            r = steps => Some(r),
        }
    };
    let rto = t0.elapsed();
    let stopped = match server.take() {
        Some(s) => s.stop().await,
        None => true,
    };
    let removed = dir.remove().await;
    let mut found = ran.ok_or(DrillError::Cancelled)??;
    found.phases.insert(0, plan);
    Ok(finish(repo, opts, &p, found, started_at, rto, stopped && removed).await)
}

/// The verdict, recorded unless `opts.record` is off.
async fn finish(
    repo: &Repository,
    opts: &PitrDrillOptions,
    p: &Prepared,
    found: Found,
    started_at: OffsetDateTime,
    rto: Duration,
    cleaned: bool,
) -> DrillReport {
    let mut report = verdict(opts, p, found, started_at, rto, cleaned);
    if opts.record {
        match record_drill(repo, &report, opts.auth_key.as_ref()).await {
            Ok(key) => report.recorded_as = Some(key.as_str().to_owned()),
            Err(e) => report.record_error = Some(e.to_string()),
        }
    }
    report
}

fn wal_err(e: WalError) -> DrillError {
    match e {
        WalError::Storage(s) => DrillError::Repository(CoreError::Storage(s)),
        other => DrillError::Invalid(other.to_string()),
    }
}

fn text_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// The cluster, its window, the target, the plan and its WAL check, the tools: everything
/// decided before anything is written or started.
async fn prepare(
    repo: &Repository,
    opts: &PitrDrillOptions,
    now: OffsetDateTime,
) -> Result<Prepared, DrillError> {
    let listing = repo.list().await?;
    let mut clusters: Vec<u64> = listing
        .backups
        .iter()
        .filter_map(|m| m.physical.as_ref().map(|p| p.system_identifier))
        .filter(|s| opts.system_identifier.is_none_or(|w| w == *s))
        .collect();
    clusters.sort_unstable();
    clusters.dedup();
    let sysid = match clusters.as_slice() {
        [] => {
            return Err(CoreError::NoPhysicalBackup {
                system_identifier: opts.system_identifier.map(|s| s.to_string()),
            }
            .into());
        }
        [one] => *one,
        many => {
            return Err(CoreError::Invalid(Mismatch::SeveralClusters {
                clusters: many.iter().map(u64::to_string).collect(),
            })
            .into());
        }
    };
    let all: Vec<&Manifest> = listing.backups.iter().collect();
    let w = repo
        .wal()
        .window(sysid, &all, CommitTimes::Newest)
        .await
        .map_err(wal_err)?;
    let Some(commit) = &w.newest_commit else {
        return Err(DrillError::NoWindow(format!(
            "cluster {sysid} has no recoverable window to drill: the newest archived commit is unknown ({})",
            w.commit_problem.as_deref().unwrap_or("no archived WAL")
        )));
    };
    let range = w
        .timelines
        .iter()
        .find(|t| t.timeline == commit.timeline)
        .and_then(|t| t.window())
        .filter(|r| r.to_commit.is_some());
    let Some(range) = range else {
        return Err(DrillError::NoWindow(format!(
            "cluster {sysid} has no recoverable window to drill: no base backup on timeline {} restores to the newest archived commit ({}); a gap, or no commit since the newest base backup (pgb list --windows)",
            commit.timeline,
            text_time(commit.at)
        )));
    };
    let (from, to) = (range.from_time, range.to_commit.unwrap_or(commit.at));
    let (target, chosen) = match opts.target {
        PitrTarget::Random => {
            let seed = opts.seed.unwrap_or_else(|| {
                let mut b = [0u8; 8];
                let _ = getrandom::fill(&mut b);
                u64::from_le_bytes(b)
            });
            let t = random_second(from, to, seed).ok_or_else(|| {
                DrillError::NoWindow(format!(
                    "the recoverable window of cluster {sysid} ({} to {}) holds no whole second to recover to",
                    text_time(from),
                    text_time(to)
                ))
            })?;
            (t, "random")
        }
        PitrTarget::Time(t) => {
            if t <= from || t >= to {
                return Err(DrillError::OutsideWindow {
                    target: text_time(t),
                    system_identifier: sysid.to_string(),
                    from: text_time(from),
                    to: text_time(to),
                    before: t <= from,
                });
            }
            (t, "given")
        }
    };
    let dir = opts.scratch_root.join(format!(
        "pgb-drill-{sysid}-{}",
        compact_time(now).to_ascii_lowercase()
    ));
    let data_dir = dir.join("data");
    // Only the verified spool: the server needs no repository, credentials or keys.
    let cmd = spool_restore_command(&data_dir);
    let settings = RecoverySettings::new(Some(cmd), RecoveryTarget::Time(target))
        .with_timeline(TimelineTarget::Id(commit.timeline))
        .with_action(TargetAction::Promote);
    let selector = opts
        .backup
        .as_ref()
        .map_or_else(|| "latest".to_owned(), ToString::to_string);
    let request = PhysicalRestoreRequest::new(selector, &data_dir, settings)
        .with_system_identifier(Some(sysid))
        .with_verify_first(false);
    let plan = repo.plan_physical_restore(&request).await?;
    // A damaged archived segment on the way to the target: the drill fails (recorded),
    // before anything is fetched or started.
    let (reach, damaged) = match repo.wal().reach(&plan).await {
        Ok(r) => (Some(r), None),
        Err(WalError::Storage(e)) => return Err(CoreError::Storage(e).into()),
        Err(e) => (None, Some(e.to_string())),
    };
    if let Some(reach) = reach.as_ref().filter(|r| !r.is_reachable()) {
        return Err(DrillError::Unreachable {
            problem: format!(
                "drill target {} cannot be reached from backup {}: {}",
                text_time(target),
                plan.backup,
                serde_json::to_string(&reach.reach).unwrap_or_default()
            ),
            reach: reach.reach.clone(),
        });
    }
    let major = plan
        .manifest
        .physical
        .as_ref()
        .map_or(0, |p| p.server_major);
    let pg_ctl = ScratchServer::locate(&opts.locator, major)
        .await
        .map_err(DrillError::Target)?;
    let client = SqlClient::locate(&opts.locator)
        .await
        .map_err(DrillError::Target)?;
    let report = PitrReport {
        system_identifier: sysid.to_string(),
        timeline: commit.timeline,
        server_major: major,
        target: chosen.to_owned(),
        target_time: target,
        window_from: from,
        window_to: to,
        replayed_to: None,
        wal_segments: 0,
        wal_bytes: 0,
    };
    Ok(Prepared {
        plan,
        request,
        reach,
        damaged,
        report,
        pg_ctl,
        client,
        dir,
    })
}

/// What the steps found.
#[derive(Debug, Default)]
struct Found {
    checks: Vec<CheckResult>,
    phases: Vec<Phase>,
    tables: u64,
    server: Option<String>,
    replayed_to: Option<OffsetDateTime>,
    wal_segments: u64,
    wal_bytes: u64,
}

/// The phases, each timed; a failed check ends the pipeline there.
async fn steps(
    repo: &Repository,
    opts: &PitrDrillOptions,
    progress: &dyn Progress,
    p: &Prepared,
    server: &mut Option<ScratchServer>,
) -> Result<Found, DrillError> {
    let mut found = Found::default();
    let mut clock = Clock::new();
    let base = base_fetch(repo, p, &opts.locator, progress).await?;
    let ok = base.passed;
    found.checks.push(base);
    found.phases.push(clock.lap("base_fetch"));
    if !ok {
        return Ok(found);
    }
    let wal = wal_fetch(repo, p, &mut found).await?;
    let ok = wal.passed;
    found.checks.push(wal);
    found.phases.push(clock.lap("wal_fetch"));
    if !ok {
        return Ok(found);
    }
    let sopts = ScratchServerOptions::new(&p.plan.data_dir, p.dir.join("run"))
        .with_os_user(opts.os_user.clone());
    // In the caller's slot before it starts: a drill cancelled mid-start stops it too.
    let s = server.insert(ScratchServer::new(&p.pg_ctl, &sopts));
    let replay = match s.start(&sopts).await {
        Ok(()) => {
            found.server = Some(s.server());
            replay(opts, p, s, &mut found).await?
        }
        Err(e) => failed(REPLAY, cause_of(&e)),
    };
    let ok = replay.passed;
    found.checks.push(replay);
    found.phases.push(clock.lap("replay"));
    if !ok {
        return Ok(found);
    }
    let s = server.as_ref().expect("replay started the server");
    let checked = run_checks(opts, p, s).await;
    found.tables = checked.0;
    found.checks.extend(checked.1);
    found.phases.push(clock.lap("checks"));
    Ok(found)
}

const REPLAY: &str = "recovery to the target";

/// Phase `base_fetch`: the base backup extracted (an incremental one with its chain,
/// combined by `pg_combinebackup` of `locator`), every file checked against its
/// `backup_manifest`, the recovery settings written.
async fn base_fetch(
    repo: &Repository,
    p: &Prepared,
    locator: &ToolLocator,
    progress: &dyn Progress,
) -> Result<CheckResult, DrillError> {
    const NAME: &str = "base fetch";
    let combiner = pgb_postgres::PgCombineBackup::new(locator.clone());
    match Box::pin(repo.restore_physical_combined_until(
        &p.plan,
        &p.request,
        Some(&combiner),
        progress,
        std::future::pending(),
    ))
    .await
    {
        Ok(r) => Ok(passed(
            NAME,
            format!(
                "backup {}: {} stored bytes, {} bytes in {} files extracted and checked against backup_manifest",
                p.plan.backup, p.plan.fetch_bytes, r.bytes, r.files_checked
            ),
        )),
        Err(e @ (CoreError::Integrity { .. } | CoreError::Manifest { .. })) => {
            Ok(failed(NAME, e.to_string()))
        }
        Err(CoreError::Dump(e)) => Ok(failed(NAME, cause_of(&e))),
        Err(e) => Err(e.into()),
    }
}

/// The archived segments replay reads from the backup's start to the target, in order:
/// `count` (as many as the WAL check counted) along `path` (timeline, from, to).
fn replay_segments(path: &[(u32, Lsn, Option<Lsn>)], count: u64, size: u64) -> Vec<String> {
    let mut out = Vec::new();
    for &(timeline, from, to) in path {
        let first = from.segment(size);
        // The segment holding a switch point is read from the next timeline (as the WAL
        // check walks it).
        let last = match to {
            None => u64::MAX,
            Some(to) => match to.segment(size).checked_sub(1) {
                Some(l) => l,
                None => continue,
            },
        };
        let mut n = first;
        while n <= last && (out.len() as u64) < count {
            out.push(WalFileName::segment(timeline, n, size).to_string());
            n += 1;
        }
    }
    out
}

/// Phase `wal_fetch`: the history files and segments replay needs, fetched and verified
/// (size, sha256, the authentication, a segment's header) into the spool, the only place the
/// server's `restore_command` takes WAL from.
async fn wal_fetch(
    repo: &Repository,
    p: &Prepared,
    found: &mut Found,
) -> Result<CheckResult, DrillError> {
    const NAME: &str = "wal fetch";
    let size = p
        .plan
        .manifest
        .physical
        .as_ref()
        .map_or(16 << 20, |x| x.wal_segment_size);
    let spool = p.plan.data_dir.join("pgb_spool");
    if let Err(e) = tokio::fs::create_dir_all(&spool).await {
        return Ok(failed(
            NAME,
            format!("cannot create {}: {e}", spool.display()),
        ));
    }
    let wal = repo.wal();
    let sysid = p.plan.system_identifier;
    let Some(reach) = &p.reach else {
        return Ok(failed(NAME, p.damaged.clone().unwrap_or_default()));
    };
    let path: Vec<(u32, Lsn, Option<Lsn>)> = reach
        .path
        .iter()
        .map(|s| (s.timeline, s.from, s.to))
        .collect();
    // The history files of the timelines replay passes through (PostgreSQL reads the target
    // timeline's at startup and again at promotion), then the segments.
    let histories = path
        .iter()
        .filter(|(timeline, _, _)| *timeline > 1)
        .map(|(timeline, _, _)| WalFileName::history(*timeline).to_string());
    for name in histories.chain(replay_segments(&path, reach.segments, size)) {
        match wal
            .fetch(
                sysid,
                &name,
                &spool.join(&name),
                &WalFetchOptions::default(),
            )
            .await
        {
            Ok(_) if name.ends_with(".history") => {}
            Ok(r) => {
                found.wal_segments += 1;
                found.wal_bytes += r.plain_size;
            }
            // Not archived (it came with the base backup; a history file of a timeline that
            // has none): the server finds it elsewhere or does without, as without pgb.
            Err(e) if e.is_not_found() => {}
            Err(WalError::Storage(s)) => return Err(CoreError::Storage(s).into()),
            Err(e) => return Ok(failed(NAME, format!("{name}: {e}"))),
        }
    }
    Ok(passed(
        NAME,
        format!(
            "{} segment(s), {} bytes, verified (checksums, authentication, headers)",
            found.wal_segments, found.wal_bytes
        ),
    ))
}

/// Phase `replay`: waits until the server promoted at the target (or stopped, or the timeout),
/// then checks that it stopped at the target: the last replayed commit is at or before it.
async fn replay(
    opts: &PitrDrillOptions,
    p: &Prepared,
    s: &ScratchServer,
    found: &mut Found,
) -> Result<CheckResult, DrillError> {
    let conn = s.conn(&opts.user, "postgres");
    let deadline = Instant::now() + opts.recovery_timeout;
    let target = p.report.target_time;
    loop {
        if p.client
            .query(&conn, "select pg_is_in_recovery()", &[])
            .await
            .is_ok_and(|o| o == "f")
        {
            break;
        }
        if !s.is_running().await.map_err(DrillError::Target)? {
            return Ok(failed(
                REPLAY,
                format!("the server stopped: {}", last_problem(&s.log())),
            ));
        }
        if Instant::now() > deadline {
            return Ok(failed(
                REPLAY,
                format!(
                    "recovery did not reach the target within {}s",
                    opts.recovery_timeout.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sql = "select coalesce((extract(epoch from pg_last_xact_replay_timestamp()) * 1000000)::bigint::text, '')";
    let replayed = match p.client.query(&conn, sql, &[]).await {
        Ok(v) if v.is_empty() => None,
        Ok(v) => v
            .parse::<i128>()
            .ok()
            .and_then(|us| OffsetDateTime::from_unix_timestamp_nanos(us * 1000).ok()),
        Err(e) => return Ok(failed(REPLAY, cause_of(&e))),
    };
    found.replayed_to = replayed;
    let log = s.log();
    let stop = log
        .lines()
        .find(|l| l.contains("recovery stopping before") || l.contains("recovery stopping after"))
        .map(|l| l.split_once("LOG:").map_or(l, |x| x.1).trim().to_owned());
    let Some(stop) = stop else {
        return Ok(failed(
            REPLAY,
            "the server promoted without stopping at the target (no \"recovery stopping\" line in its log)",
        ));
    };
    match replayed {
        Some(r) if r > target => Ok(failed(
            REPLAY,
            format!(
                "recovery went past the target: last replayed commit {} is after {}",
                text_time(r),
                text_time(target)
            ),
        )),
        _ => Ok(passed(
            REPLAY,
            format!(
                "promoted at {}: {stop}; last replayed commit {}",
                text_time(target),
                replayed.map_or_else(|| "none".to_owned(), text_time)
            ),
        )),
    }
}

/// The last `FATAL`/`PANIC`/`ERROR` line of a server log, else its last line.
fn last_problem(log: &str) -> String {
    log.lines()
        .rev()
        .find(|l| l.contains("FATAL") || l.contains("PANIC"))
        .or_else(|| log.lines().rev().find(|l| l.contains("ERROR")))
        .or_else(|| log.lines().last())
        .unwrap_or("no server log")
        .trim()
        .to_owned()
}

const DATABASES_SQL: &str =
    "select datname from pg_database where datallowconn and not datistemplate order by 1";

const AMCHECK_SQL: &str = "create extension if not exists amcheck; \
     select count(bt_index_check(c.oid)) from pg_index i join pg_class c on c.oid = i.indexrelid \
     join pg_am a on a.oid = c.relam where a.amname = 'btree' and c.relpersistence <> 't' \
     and i.indisvalid and i.indisready;";

/// Phase `checks`: every table of every database answers a probe, the smoke statements, and
/// with `amcheck` every B-tree index. Returns the tables counted and the checks.
async fn run_checks(
    opts: &PitrDrillOptions,
    p: &Prepared,
    s: &ScratchServer,
) -> (u64, Vec<CheckResult>) {
    let client = &p.client;
    let mut out = Vec::new();
    let base = s.conn(&opts.user, "postgres");
    let dbs: Vec<String> = match client.query(&base, DATABASES_SQL, &[]).await {
        Ok(v) => v.lines().map(str::to_owned).collect(),
        Err(e) => return (0, vec![failed("tables", cause_of(&e))]),
    };
    let (mut tables, mut with_rows, mut problems) = (0u64, 0u64, Vec::new());
    for db in &dbs {
        match checks::tables_of(client, &s.conn(&opts.user, db)).await {
            Ok(t) => {
                tables += t.len() as u64;
                with_rows += t.values().filter(|r| **r).count() as u64;
            }
            Err(e) => problems.push(format!("database {db}: {e}")),
        }
    }
    out.push(if problems.is_empty() {
        passed(
            "tables",
            format!(
                "all {tables} tables of {} database(s) answer a probe ({with_rows} hold rows)",
                dbs.len()
            ),
        )
    } else {
        failed("tables", problems.join("; "))
    });
    let target = s.conn(&opts.user, &opts.database);
    for smoke in &opts.smoke {
        out.push(checks::smoke(client, &target, smoke).await);
    }
    if opts.amcheck {
        let (mut indexes, mut problems) = (0u64, Vec::new());
        for db in &dbs {
            match client
                .query(&s.conn(&opts.user, db), AMCHECK_SQL, &[])
                .await
            {
                Ok(v) => {
                    indexes += v
                        .lines()
                        .last()
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or(0)
                }
                Err(e) => problems.push(format!("database {db}: {}", cause_of(&e))),
            }
        }
        out.push(if problems.is_empty() {
            passed(
                "amcheck",
                format!(
                    "bt_index_check passed on {indexes} B-tree index(es) of {} database(s)",
                    dbs.len()
                ),
            )
        } else {
            failed("amcheck", problems.join("; "))
        });
    }
    (tables, out)
}

/// The report: the first failed check, else the RTO and RPO limits.
fn verdict(
    opts: &PitrDrillOptions,
    p: &Prepared,
    found: Found,
    started_at: OffsetDateTime,
    rto: Duration,
    cleaned: bool,
) -> DrillReport {
    let m = &p.plan.manifest;
    let w_to = p.report.window_to;
    let rpo_s = u64::try_from((started_at - w_to).whole_seconds()).unwrap_or(0);
    let first_failure = found
        .checks
        .iter()
        .find(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail));
    let mut limits = Vec::new();
    if let Some(max) = opts.max_rto
        && rto > max
    {
        limits.push(format!(
            "RTO {:.1}s exceeds the limit of {}s",
            rto.as_secs_f64(),
            max.as_secs()
        ));
    }
    if let Some(max) = opts.max_rpo
        && rpo_s > max.as_secs()
    {
        limits.push(format!(
            "RPO {rpo_s}s (newest archived commit {}) exceeds the limit of {}s",
            text_time(w_to),
            max.as_secs()
        ));
    }
    let (outcome, cause) = match first_failure {
        Some(f) => (DrillOutcome::CheckFailed, Some(f)),
        None if !limits.is_empty() => (DrillOutcome::LimitExceeded, Some(limits.join("; "))),
        None => (DrillOutcome::Passed, None),
    };
    let mut pitr = p.report.clone();
    pitr.replayed_to = found.replayed_to;
    pitr.wal_segments = found.wal_segments;
    pitr.wal_bytes = found.wal_bytes;
    DrillReport {
        backup_id: m.id.clone(),
        set: m.set.clone(),
        database: m.database.clone(),
        job: opts.job.clone(),
        backup_started_at: m.started_at,
        stored_size: m.stored_size(),
        target_server: found.server.unwrap_or_else(|| "127.0.0.1".to_owned()),
        scratch_database: p.dir.display().to_string(),
        kept: false,
        dropped: cleaned,
        started_at,
        finished_at: OffsetDateTime::now_utc(),
        outcome,
        cause,
        phases: found.phases,
        rto_ms: super::millis(rto),
        rpo_s,
        max_rto_ms: opts.max_rto.map(super::millis),
        max_rpo_s: opts.max_rpo.map(|d| d.as_secs()),
        toc_tables: found.tables,
        checks: found.checks,
        migrations: None,
        pitr: Some(pitr),
        pgb_version: env!("CARGO_PKG_VERSION").to_owned(),
        recorded_as: None,
        record_error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_random_second_lies_strictly_inside_the_window() {
        let from = datetime!(2026-12-05 04:46:03.250 UTC);
        let to = datetime!(2026-12-05 04:46:09.125 UTC);
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200u64 {
            let t = random_second(from, to, seed).unwrap();
            assert!(t > from && t < to, "{t} outside {from}..{to}");
            assert_eq!(t.nanosecond(), 0);
            // Seeded: the same seed, the same second.
            assert_eq!(random_second(from, to, seed), Some(t));
            seen.insert(t);
        }
        // 04:46:04 to 04:46:09: six seconds, each chosen by some seed.
        assert_eq!(seen.len(), 6, "{seen:?}");
        // A window ending on a whole second excludes it (no commit after it to stop at).
        let t = random_second(from, datetime!(2026-12-05 04:46:05 UTC), 1).unwrap();
        assert_eq!(t, datetime!(2026-12-05 04:46:04 UTC));
        // No whole second inside.
        assert_eq!(
            random_second(from, datetime!(2026-12-05 04:46:04 UTC), 7),
            None
        );
        assert_eq!(random_second(to, from, 7), None);
    }

    #[test]
    fn a_drill_target_is_random_or_a_restore_target_time() {
        assert_eq!("random".parse::<PitrTarget>().unwrap(), PitrTarget::Random);
        let t = "2026-12-05 06:45:52+00".parse::<PitrTarget>().unwrap();
        assert_eq!(
            t,
            PitrTarget::Time(time::macros::datetime!(2026-12-05 06:45:52 UTC))
        );
        assert!("yesterday-ish".parse::<PitrTarget>().is_err());
    }

    #[test]
    fn the_scratch_servers_restore_command_copies_from_the_spool_only() {
        assert_eq!(
            spool_restore_command(Path::new("/tmp/d/data")),
            "cp /tmp/d/data/pgb_spool/%f %p"
        );
        assert_eq!(
            spool_restore_command(Path::new("/tmp/it's 100%/data")),
            r"cp '/tmp/it'\''s 100%%/data/pgb_spool'/%f %p"
        );
    }

    #[test]
    fn replay_reads_the_segments_from_the_backup_to_the_target() {
        // Timeline 1 from 0/2000028, switching to 2 at 0/3800000; four segments counted. The
        // segment holding the switch point is read from timeline 2 (PostgreSQL takes the
        // newest timeline that holds it; the WAL check walks it so).
        let path = [
            (1, Lsn(0x0200_0028), Some(Lsn(0x0380_0000))),
            (2, Lsn(0x0380_0000), None),
        ];
        let names = replay_segments(&path, 4, 16 << 20);
        assert_eq!(
            names,
            [
                "000000010000000000000002",
                "000000020000000000000003",
                "000000020000000000000004",
                "000000020000000000000005"
            ]
        );
        // A switch at a segment's start: the previous segment is the old timeline's last.
        let path = [
            (1, Lsn(0x0200_0028), Some(Lsn(0x0300_0000))),
            (2, Lsn(0x0300_0000), None),
        ];
        assert_eq!(
            replay_segments(&path, 2, 16 << 20),
            ["000000010000000000000002", "000000020000000000000003"]
        );
    }
}
