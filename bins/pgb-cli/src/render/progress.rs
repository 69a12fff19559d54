//! Progress events → log lines on stderr.

use pgb::Event;

use super::human;

/// Logs a backup's progress (`-v`); with the `test-support` feature, also the failpoints.
pub(crate) fn log_progress(e: &Event) {
    #[cfg(feature = "test-support")]
    crate::failpoint::reached(e);
    match e {
        Event::BackupStarted { id, database } => tracing::info!(%id, %database, "backup started"),
        Event::Progress { plain_bytes, .. } => tracing::info!(
            bytes = plain_bytes,
            "progress: {} read",
            human(*plain_bytes)
        ),
        Event::DataFinished { stored_bytes } => {
            tracing::info!(stored = stored_bytes, "data object finished");
        }
        Event::Committed { id } => tracing::info!(%id, "manifest written; backup committed"),
        _ => {}
    }
}
