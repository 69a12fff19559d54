//! Notifications of the WAL archive: `wal_push_failed` when `pgb wal push` (PostgreSQL's
//! archive_command) fails, rate-limited per cluster because PostgreSQL retries every few
//! seconds, and `wal_gap` when `pgb check` finds a gap after the newest base backup or
//! `pgb wal verify` finds any.
//!
//! The rate limit's state is a small JSON file ([`pgb_notify::RateLimit`]) named by this
//! binary: `pgb-wal-push-<system id>.json` in `PGB_NOTIFY_STATE_DIR`, else in the data
//! directory (the parent of `pg_wal`, where archive_command runs). `PGB_WAL_NOTIFY_INTERVAL`
//! (default 15m) is the least time between two notifications of one cluster.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pgb_config::ResolvedJob;
use pgb_notify::{Event, Notification, RateLimit};

use crate::args::WalPushArgs;
use crate::exit::Failure;
use crate::resolve::{self, Env};

/// At most one `wal_push_failed` per cluster in this long, unless `PGB_WAL_NOTIFY_INTERVAL`.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// `pgb wal push`, and on failure a rate-limited `wal_push_failed` to the job's (or the
/// environment's) notification targets. The exit code is the push's, whatever the delivery.
pub(super) async fn push(a: WalPushArgs, env: Env<'_>) -> Result<(), Failure> {
    let path = a.path.clone();
    let job_args = crate::args::JobArgs {
        job: a.target.job.job.clone(),
        config: a.target.job.config.clone(),
    };
    let flag_sysid = a.target.system_id;
    let Err(f) = super::wal::push(a, env).await else {
        return Ok(());
    };
    let job = super::wal::job(&job_args, env).ok().flatten();
    let sysid = flag_sysid.or_else(|| {
        super::wal::control_file_system_id(Path::new("global/pg_control"))
            .ok()
            .flatten()
    });
    push_failed(job.as_ref(), env, &path, sysid, &f.message).await;
    Err(f)
}

/// Where the rate limit of `sysid`'s pushes is kept.
fn state_file(segment: &Path, sysid: Option<u64>, env: Env<'_>) -> PathBuf {
    let dir = env.get("PGB_NOTIFY_STATE_DIR").map_or_else(
        || {
            // pg_wal/<segment> -> the data directory.
            let pg_wal = segment.parent().unwrap_or(Path::new(""));
            match pg_wal.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ if pg_wal.as_os_str().is_empty() => PathBuf::from(".."),
                _ => PathBuf::from("."),
            }
        },
        PathBuf::from,
    );
    let id = sysid.map_or_else(|| "unknown".to_owned(), |s| s.to_string());
    dir.join(format!("pgb-wal-push-{id}.json"))
}

async fn push_failed(
    job: Option<&ResolvedJob>,
    env: Env<'_>,
    segment: &Path,
    sysid: Option<u64>,
    cause: &str,
) {
    let notifier = match pgb_jobs::notifier_for(&Default::default(), job, env) {
        Ok(Some(n)) => n,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "wal_push_failed not sent");
            return;
        }
    };
    let every = env
        .get("PGB_WAL_NOTIFY_INTERVAL")
        .and_then(|v| pgb_config::parse_duration(&v).ok())
        .unwrap_or(DEFAULT_INTERVAL);
    let path = state_file(segment, sysid, env);
    let mut state: RateLimit = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let due = state.failure(time::OffsetDateTime::now_utc(), every);
    if let Err(e) = write_state(&path, &state) {
        tracing::warn!(path = %path.display(), error = %e, "cannot keep the wal_push_failed rate limit");
    }
    let Some(failures) = due else {
        tracing::info!(path = %path.display(), "wal_push_failed suppressed (rate limit)");
        return;
    };
    let name = segment
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut n = Notification::new(Event::WalPushFailed)
        .with_host(resolve::config::holder(env).host)
        .with_wal("segment", name)
        .with_wal("failures", failures)
        .with_wal("interval_s", every.as_secs())
        .with_cause(cause);
    if let Some(j) = job {
        n = n.with_job(&j.name);
    }
    if let Some(s) = sysid {
        n = n.with_system_identifier(s);
    }
    super::notify::send(Some(&notifier), n).await;
}

/// Writes the state beside its final name, then renames it over (never half a file).
fn write_state(path: &Path, state: &RateLimit) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(state).unwrap_or_default())?;
    std::fs::rename(&tmp, path)
}

/// `wal_gap` for each cluster whose archive has a gap after its newest base backup (no
/// restore reaches the present), as `pgb check` found it.
pub(super) async fn gaps(
    notifier: Option<&pgb_notify::Notifier>,
    report: &pgb_ops::CheckReport,
    job: Option<&str>,
    env: Env<'_>,
) {
    for w in report.wal.iter().filter(|w| w.gaps_after_newest_backup > 0) {
        let mut n = Notification::new(Event::WalGap)
            .with_host(resolve::config::holder(env).host)
            .with_status(w.status.as_str())
            .with_system_identifier(&w.system_identifier)
            .with_wal("gaps", w.gaps_after_newest_backup);
        for t in w.timelines.iter().filter(|t| t.gaps > 0) {
            n = n.with_wal(format!("timeline_{}_gaps", t.timeline), t.gaps);
        }
        if let Some(f) = w.findings.iter().find(|f| f.message.contains("gap")) {
            n = n.with_cause(&f.message);
        }
        if let Some(j) = job {
            n = n.with_job(j);
        }
        super::notify::send(notifier, n).await;
    }
}

/// `wal_gap` for `pgb wal verify`'s gaps (every gap of the archive), to the job's or the
/// environment's targets.
pub(super) async fn verify_gaps(
    job: Option<&ResolvedJob>,
    env: Env<'_>,
    report: &pgb::wal::WalVerifyReport,
) {
    let Some(first) = report.gaps().next() else {
        return;
    };
    let notifier = match pgb_jobs::notifier_for(&Default::default(), job, env) {
        Ok(Some(n)) => n,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "wal_gap not sent");
            return;
        }
    };
    let mut n = Notification::new(Event::WalGap)
        .with_host(resolve::config::holder(env).host)
        .with_status("CRITICAL")
        .with_system_identifier(report.system_identifier)
        .with_wal("gaps", report.gaps().count())
        .with_wal("timeline", first.timeline)
        .with_wal("first_missing", &first.first_missing)
        .with_cause(format!(
            "{} segment(s) missing from {} on timeline {} (pgb wal verify)",
            first.missing, first.first_missing, first.timeline
        ));
    if let Some(j) = job {
        n = n.with_job(&j.name);
    }
    super::notify::send(Some(&notifier), n).await;
}
