//! Sending a notification: failures to deliver are warnings (redacted URL) and never change
//! the exit code. A run (a backup, a drill) is announced first with [`start`] and its outcome
//! sent with [`finish`] under the same run id, so healthchecks pairs `/start` with the success
//! or `/fail` ping; a failure carries the process's last log lines ([`LOG_TAIL`]).

use std::sync::LazyLock;

use pgb_notify::{Delivery, LogTail, Notification, Notifier, RunId};

/// Log lines kept for the body of a failure ping.
const LOG_TAIL_LINES: usize = 50;

/// The process's last log lines: `main` tees the log output into it.
pub(crate) static LOG_TAIL: LazyLock<LogTail> = LazyLock::new(|| LogTail::new(LOG_TAIL_LINES));

/// Announces a run (healthchecks `/start`); the run id pairs it with [`finish`].
pub(super) async fn start(notifier: Option<&Notifier>) -> RunId {
    let run = RunId::generate();
    if let Some(notifier) = notifier {
        warn_undelivered(notifier.start(&run).await);
    }
    run
}

/// Sends the outcome of the run `run` announced.
pub(super) async fn finish(notifier: Option<&Notifier>, n: Notification, run: &RunId) {
    let Some(notifier) = notifier else { return };
    let n = if n.event.is_success() {
        n
    } else {
        n.with_log_tail(LOG_TAIL.lines())
    };
    warn_undelivered(notifier.notify(&n, run).await);
}

/// Sends a notification that ends no announced run (a check).
pub(super) async fn send(notifier: Option<&Notifier>, n: Notification) {
    finish(notifier, n, &RunId::generate()).await;
}

fn warn_undelivered(deliveries: Vec<Delivery>) {
    for d in deliveries.iter().filter(|d| !d.ok) {
        tracing::warn!(
            transport = d.transport,
            url = %d.url,
            error = d.error.as_deref().unwrap_or("-"),
            "notification not delivered"
        );
    }
}
