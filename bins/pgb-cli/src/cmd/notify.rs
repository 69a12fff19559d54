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

/// A run announced by [`start`].
pub(super) struct Run {
    id: RunId,
    started: Option<tokio::task::JoinHandle<Vec<Delivery>>>,
}

/// Announces a run (healthchecks `/start`) in the background, so a slow endpoint never delays
/// the work; the run id pairs it with [`finish`], which waits for it first (start, then outcome).
pub(super) fn start(notifier: Option<&Notifier>) -> Run {
    let id = RunId::generate();
    let started = notifier.map(|n| {
        let (n, id) = (n.clone(), id.clone());
        tokio::spawn(async move { n.start(&id).await })
    });
    Run { id, started }
}

/// Sends the outcome of `run`.
pub(super) async fn finish(notifier: Option<&Notifier>, n: Notification, run: Run) {
    if let Some(started) = run.started
        && let Ok(deliveries) = started.await
    {
        warn_undelivered(deliveries);
    }
    let Some(notifier) = notifier else { return };
    let n = if n.event.is_success() {
        n
    } else {
        n.with_log_tail(LOG_TAIL.lines())
    };
    warn_undelivered(notifier.notify(&n, &run.id).await);
}

/// Sends a notification that ends no announced run (a check).
pub(super) async fn send(notifier: Option<&Notifier>, n: Notification) {
    let run = Run {
        id: RunId::generate(),
        started: None,
    };
    finish(notifier, n, run).await;
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
