//! The drill's scratch database: named, created, and dropped (awaited) on every way out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pgb_core::DumpError;
use pgb_postgres::{ConnConfig, SqlClient};
use time::OffsetDateTime;

use crate::record::compact_time;

/// The drill's scratch database. [`Scratch::finish`] drops it (awaited) once created; should
/// the drill future be dropped before that, `Drop` spawns the same drop on the runtime
/// (`pgb_postgres::spawn_cleanup`, awaited by `pgb_postgres::settle_cleanups`).
#[derive(Debug)]
pub(super) struct Scratch {
    client: SqlClient,
    server: ConnConfig,
    name: String,
    /// Whether creating it was attempted (and it may exist) and it is not dropped yet.
    armed: AtomicBool,
}

impl Scratch {
    pub(super) fn new(client: SqlClient, server: ConnConfig, name: String) -> Self {
        Self {
            client,
            server,
            name,
            armed: AtomicBool::new(false),
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// The scratch database's connection.
    pub(super) fn conn(&self) -> ConnConfig {
        self.server.with_dbname(&self.name)
    }

    pub(super) async fn create(&self) -> Result<(), DumpError> {
        self.armed.store(true, Ordering::SeqCst);
        self.client.create_database(&self.server, &self.name).await
    }

    /// Drops the database unless `keep`; whether it is gone (true when never created and not
    /// kept).
    pub(super) async fn finish(&self, keep: bool) -> bool {
        if !self.armed.swap(false, Ordering::SeqCst) {
            return !keep;
        }
        if keep {
            return false;
        }
        drop_scratch(self.client.clone(), self.server.clone(), self.name.clone()).await
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.armed.swap(false, Ordering::SeqCst) {
            return;
        }
        // The drill future was dropped mid-step: nothing can be awaited here, so hand the
        // drop to the runtime (never block this thread).
        // The binary awaits it (`pgb_postgres::settle_cleanups`) before its runtime goes.
        let task = drop_scratch(self.client.clone(), self.server.clone(), self.name.clone());
        if pgb_postgres::spawn_cleanup(async move {
            task.await;
        })
        .is_err()
        {
            tracing::error!(database = %self.name, "no runtime to drop the drill's scratch database; drop it by hand");
        }
    }
}

/// `DROP DATABASE` (sessions terminated first), three tries; whether it succeeded.
async fn drop_scratch(client: SqlClient, server: ConnConfig, name: String) -> bool {
    for attempt in 0..3u64 {
        match client.drop_database(&server, &name).await {
            Ok(()) => {
                tracing::debug!(database = %name, "dropped the drill's scratch database");
                return true;
            }
            Err(e) if attempt == 2 => {
                tracing::error!(database = %name, error = %e, "could not drop the drill's scratch database; drop it by hand");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await,
        }
    }
    false
}

/// `pgb_drill_<database>_<utc time>`: lower-case letters, digits and `_` only, at most 63 bytes.
pub(super) fn scratch_name(database: &str, at: OffsetDateTime) -> String {
    let mut db: String = database
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let suffix = compact_time(at).to_ascii_lowercase();
    let room = 63 - "pgb_drill__".len() - suffix.len();
    db.truncate(room);
    format!("pgb_drill_{db}_{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_are_safe_and_short() {
        let at = time::macros::datetime!(2026-11-30 02:45:07 UTC);
        assert_eq!(scratch_name("app", at), "pgb_drill_app_20261130t024507z");
        let long = scratch_name(&"Ä-x".repeat(40), at);
        assert!(long.len() <= 63, "{long}");
        assert!(
            long.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
    }
}
