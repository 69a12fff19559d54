//! Clean-ups a `Drop` hands to the runtime: a future dropped mid-way (a restore or a drill
//! cancelled by a signal) cannot await, so the guards it held (a database a restore created, a
//! drill's scratch database) spawn their async drop on the current runtime and register it
//! here. Whoever awaited the dropped future awaits [`settle_cleanups`] next:
//! `Repository::restore_until` before it returns `Cancelled` (it drops `begin` or `finish`
//! futures on cancel), the binary before its runtime goes away. So the drop finishes on that
//! path without blocking a runtime thread. Without a runtime the guard falls back to a
//! blocking drop itself. The registry is process-wide: settling also awaits the clean-ups of
//! other dropped futures, which are never long (a `DROP DATABASE`).

use std::future::Future;
use std::sync::Mutex;

use tokio::task::JoinHandle;

/// The spawned clean-ups not yet awaited.
static PENDING: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Spawns `task` on the current runtime and registers it for [`settle_cleanups`]; gives
/// `task` back when there is no runtime (the caller then cleans up without one).
///
/// # Errors
/// `task` itself, when no runtime is current.
pub fn spawn_cleanup<F>(task: F) -> Result<(), F>
where
    F: Future<Output = ()> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            let handle = rt.spawn(task);
            let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
            pending.retain(|h| !h.is_finished());
            pending.push(handle);
            Ok(())
        }
        Err(_) => Err(task),
    }
}

/// Awaits every clean-up spawned by a dropped guard so far (also those spawned while
/// waiting). Returns at once when there is none.
pub async fn settle_cleanups() {
    loop {
        let batch = std::mem::take(&mut *PENDING.lock().unwrap_or_else(|p| p.into_inner()));
        if batch.is_empty() {
            return;
        }
        for h in batch {
            // A clean-up that panicked or was cancelled has nothing left to await.
            let _ = h.await;
        }
    }
}

/// How many spawned clean-ups are still running.
pub fn pending_cleanups() -> usize {
    let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
    pending.retain(|h| !h.is_finished());
    pending.len()
}
