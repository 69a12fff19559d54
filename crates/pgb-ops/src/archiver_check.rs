//! `pgb check --server`: the server's own account of its archiving joins the check. The
//! repository shows what arrived; `pg_stat_archiver` shows an `archive_command` failing right
//! now (PostgreSQL retries it every few seconds while `pg_wal` fills) and the backlog of
//! segments waiting, before the newest archived commit grows old enough to trip `--max-rpo`.

use pgb_postgres::{ArchiverStatus, ConnConfig, SqlClient};
use time::OffsetDateTime;

use crate::check::{CheckReport, CheckStatus, Finding};

/// More segments than this waiting to be archived is a WARNING by default: the archive is
/// falling behind the server (16 segments are 256 MiB of WAL at the default size).
pub const DEFAULT_MAX_READY: u64 = 16;

/// Asks the server `server` points at about its archiver and adds what is wrong to `report`:
/// archiving off or failing (CRITICAL), more than `max_ready` segments waiting (WARNING), the
/// server's cluster absent from the repository's WAL archive (CRITICAL); a server that cannot
/// be asked is UNKNOWN. The status goes into the cluster's [`crate::WalCheck`].
pub async fn check_archiver(
    report: &mut CheckReport,
    sql: &SqlClient,
    server: &ConnConfig,
    max_ready: u64,
) {
    match sql.archiver_status(server).await {
        Ok(status) => judge(report, status, max_ready),
        Err(e) => add(
            report,
            CheckStatus::Unknown,
            format!("cannot ask the server about its archiver: {e}"),
        ),
    }
}

fn judge(report: &mut CheckReport, status: ArchiverStatus, max_ready: u64) {
    let id = status.system_identifier.clone();
    if status.archive_mode == "off" {
        add(
            report,
            CheckStatus::Critical,
            format!(
                "cluster {id}: archive_mode is off, nothing is archived (set archive_mode = on \
                 and archive_command = 'pgb wal push %p ...', then restart)"
            ),
        );
    } else if status.failing {
        add(
            report,
            CheckStatus::Critical,
            format!(
                "cluster {id}: archive_command is failing: {} failed at {} ({} failure(s) since \
                 the statistics were reset), last success {}; the server log says why",
                status.last_failed_wal.as_deref().unwrap_or("a segment"),
                when(status.last_failed_at),
                status.failed_count,
                match (&status.last_archived_wal, status.last_archived_at) {
                    (Some(wal), at) => format!("{wal} at {}", when(at)),
                    (None, _) => "never".to_owned(),
                }
            ),
        );
    }
    if let Some(ready) = status.ready.filter(|n| *n > max_ready) {
        add(
            report,
            CheckStatus::Warning,
            format!(
                "cluster {id}: {ready} segment(s) wait to be archived (more than {max_ready}): \
                 the archive falls behind the server"
            ),
        );
    }
    match report.wal.iter_mut().find(|w| w.system_identifier == id) {
        Some(cluster) => cluster.archiver = Some(status),
        None if status.archive_mode != "off" => add(
            report,
            CheckStatus::Critical,
            format!(
                "cluster {id}: the server archives, but this repository holds none of its WAL \
                 (does archive_command push into this repository?)"
            ),
        ),
        None => {}
    }
}

fn when(secs: Option<i64>) -> String {
    secs.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "an unknown time".to_owned())
}

fn add(report: &mut CheckReport, status: CheckStatus, message: String) {
    report.status = report.status.max(status);
    report.findings.push(Finding { status, message });
}
