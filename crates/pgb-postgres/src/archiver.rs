//! What a running server says about its WAL archiving: `pg_stat_archiver` (the last archived
//! and the last failed segment) and the backlog of segments waiting (`.ready` files in
//! `pg_wal/archive_status`). The repository shows what arrived; only the server shows what is
//! failing or waiting.

use pgb_core::DumpError;
use serde::Serialize;

use crate::conn::ConnConfig;
use crate::sql_client::SqlClient;

/// `pg_stat_archiver` and the `.ready` backlog of one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ArchiverStatus {
    /// The cluster's system identifier (text: it does not fit a JSON double).
    pub system_identifier: String,
    /// `archive_mode` (`on`, `always`, `off`).
    pub archive_mode: String,
    /// Segments archived since the statistics were reset.
    pub archived_count: u64,
    /// The last segment archived.
    pub last_archived_wal: Option<String>,
    /// When, in Unix seconds.
    pub last_archived_at: Option<i64>,
    /// Failed attempts since the statistics were reset.
    pub failed_count: u64,
    /// The last segment whose archiving failed.
    pub last_failed_wal: Option<String>,
    /// When, in Unix seconds.
    pub last_failed_at: Option<i64>,
    /// Whether the archiver's latest attempt failed: a failure after the last success (or
    /// with no success at all), compared by the server to the microsecond. PostgreSQL
    /// retries, so this stays true until one succeeds.
    pub failing: bool,
    /// Segments waiting to be archived; `None` when the role may not list
    /// `pg_wal/archive_status` (it needs `pg_monitor` or superuser).
    pub ready: Option<u64>,
}

const STATUS: &str = "select \
    (select system_identifier from pg_control_system())::text, \
    current_setting('archive_mode'), archived_count, coalesce(last_archived_wal, ''), \
    coalesce(extract(epoch from last_archived_time)::bigint::text, ''), failed_count, \
    coalesce(last_failed_wal, ''), coalesce(extract(epoch from last_failed_time)::bigint::text, ''), \
    (last_failed_time > coalesce(last_archived_time, '-infinity'))::int \
    from pg_stat_archiver";

const READY: &str = "select count(*) from pg_ls_archive_statusdir() where name like '%.ready'";

impl SqlClient {
    /// Asks the server `conn` points at about its archiver.
    ///
    /// # Errors
    /// As [`SqlClient::query`] (unreachable, authentication, ...), or `Failed` when the
    /// answer cannot be read. A role that may not list the backlog is not an error
    /// (`ready` is `None`).
    pub async fn archiver_status(&self, conn: &ConnConfig) -> Result<ArchiverStatus, DumpError> {
        let row = self.query(conn, STATUS, &[]).await?;
        let mut status = parse_status(&row).ok_or_else(|| {
            DumpError::new(
                pgb_core::DumpErrorKind::Failed,
                format!("unexpected answer from pg_stat_archiver: {row:?}"),
            )
        })?;
        status.ready = self
            .query(conn, READY, &[])
            .await
            .ok()
            .and_then(|n| n.trim().parse().ok());
        Ok(status)
    }
}

fn parse_status(row: &str) -> Option<ArchiverStatus> {
    let f: Vec<&str> = row.trim().split('|').collect();
    let [
        sysid,
        mode,
        archived,
        last_wal,
        last_at,
        failed,
        failed_wal,
        failed_at,
        failing,
    ] = f[..]
    else {
        return None;
    };
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let secs = |s: &str| -> Option<Option<i64>> {
        if s.is_empty() {
            Some(None)
        } else {
            s.parse().ok().map(Some)
        }
    };
    Some(ArchiverStatus {
        system_identifier: sysid.to_owned(),
        archive_mode: mode.to_owned(),
        archived_count: archived.parse().ok()?,
        last_archived_wal: text(last_wal),
        last_archived_at: secs(last_at)?,
        failed_count: failed.parse().ok()?,
        last_failed_wal: text(failed_wal),
        last_failed_at: secs(failed_at)?,
        failing: failing == "1",
        ready: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archivers_row_is_read_whole_and_a_short_one_refused() {
        let s = parse_status(
            "7315|on|12|000000010000000000000007|1700000100|3|000000010000000000000008|1700000200|1",
        )
        .unwrap();
        assert_eq!(s.archived_count, 12);
        assert_eq!(
            s.last_failed_wal.as_deref(),
            Some("000000010000000000000008")
        );
        assert_eq!(s.last_failed_at, Some(1_700_000_200));
        assert!(s.failing);
        let never = parse_status("7315|on|0|||0|||0").unwrap();
        assert!(!never.failing);
        assert_eq!(never.last_archived_at, None);
        assert!(parse_status("garbage").is_none());
    }
}
