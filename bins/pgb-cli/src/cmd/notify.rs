//! Sending a notification: failures to deliver are warnings (redacted URL) and never change
//! the exit code.

use pgb_notify::{Notification, Notifier, RunId};

pub(super) async fn send(notifier: Option<&Notifier>, n: Notification) {
    let Some(notifier) = notifier else { return };
    let run = RunId::generate();
    for d in notifier.notify(&n, &run).await {
        if !d.ok {
            tracing::warn!(
                transport = d.transport,
                url = %d.url,
                error = d.error.as_deref().unwrap_or("-"),
                "notification not delivered"
            );
        }
    }
}
