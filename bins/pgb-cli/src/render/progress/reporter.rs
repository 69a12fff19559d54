//! The progress reporter: an indicatif bar on a terminal, log lines every interval
//! elsewhere, both fed by the library's progress events.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pgb::{Event, Progress, Repository};

use super::{LOG_TARGET, ProgressConfig, ProgressMode, human, line, summary};

struct Inner {
    what: String,
    interval: Duration,
    started: Instant,
    done: AtomicU64,
    /// The expected plain bytes, 0 while unknown.
    total: AtomicU64,
    bar: Option<ProgressBar>,
    /// Set when the operation is over; wakes the log thread.
    stop: (Mutex<bool>, Condvar),
    /// Where the previous backup's size is looked up (backups only).
    repo: Option<Repository>,
    lookup: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Inner {
    fn total(&self) -> Option<u64> {
        Some(self.total.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    fn set_total(&self, total: u64) {
        if total == 0 {
            return;
        }
        self.total.store(total, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_style(bar_style(true));
            bar.set_length(total.max(self.done.load(Ordering::Relaxed)));
        }
    }

    fn log_line(&self) {
        let text = line(
            &self.what,
            self.done.load(Ordering::Relaxed),
            self.total(),
            self.started.elapsed(),
        );
        tracing::info!(target: LOG_TARGET, "{text}");
    }
}

fn bar_style(with_total: bool) -> ProgressStyle {
    let template = if with_total {
        "{msg:8} [{bar:30}] {bytes}/~{total_bytes} {binary_bytes_per_sec} ETA {eta}"
    } else {
        "{spinner} {msg:8} {bytes} {binary_bytes_per_sec} {elapsed}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// Shows one operation's progress (backup, verify or restore) as configured. [`finish`]
/// clears the bar, stops the log lines and writes a summary line; dropping it unfinished
/// does the same with a "stopped" summary.
///
/// [`finish`]: Reporter::finish
pub(crate) struct Reporter {
    inner: Arc<Inner>,
    mode: ProgressMode,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Reporter {
    /// `what` moves about `total` plain bytes (when known).
    pub(crate) fn new(cfg: &ProgressConfig, what: &'static str, total: Option<u64>) -> Self {
        Self::start(cfg, what.to_owned(), total, None)
    }

    /// A backup: the expected size is the plain size of the newest complete backup of the same
    /// database in `repo`, looked up in the background once the backup started.
    pub(crate) fn backup(cfg: &ProgressConfig, repo: &Repository) -> Self {
        let repo = (cfg.mode != ProgressMode::None).then(|| repo.clone());
        Self::start(cfg, "backup".to_owned(), None, repo)
    }

    /// A run of job `name` (`pgb run`, the daemon): its backup and verify, with the expected
    /// size from the job's previous backup, labelled `job NAME`.
    pub(crate) fn job(cfg: &ProgressConfig, repo: &Repository, name: &str) -> Self {
        let repo = (cfg.mode != ProgressMode::None).then(|| repo.clone());
        Self::start(cfg, format!("job {name}"), None, repo)
    }

    /// A run of job `name` by the daemon, labelled `job NAME`: the daemon's runner looks the
    /// expected size up itself and hands it over ([`Reporter::expect_total`]).
    pub(crate) fn daemon_job(cfg: &ProgressConfig, name: &str) -> Self {
        Self::start(cfg, format!("job {name}"), None, None)
    }

    /// The plain size to expect, found by someone else.
    pub(crate) fn expect_total(&self, total: u64) {
        self.inner.set_total(total);
    }

    fn start(
        cfg: &ProgressConfig,
        what: String,
        total: Option<u64>,
        repo: Option<Repository>,
    ) -> Self {
        let bar = (cfg.mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
                .with_style(bar_style(false))
                .with_message(what.clone());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let inner = Arc::new(Inner {
            what,
            interval: cfg.interval,
            started: Instant::now(),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            bar,
            stop: (Mutex::new(false), Condvar::new()),
            repo,
            lookup: Mutex::new(None),
        });
        if let Some(t) = total {
            inner.set_total(t);
        }
        let ticker = (cfg.mode == ProgressMode::Log).then(|| {
            let inner = Arc::clone(&inner);
            std::thread::spawn(move || {
                let (lock, cvar) = &inner.stop;
                let mut stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    let (guard, timeout) = cvar
                        .wait_timeout_while(stopped, inner.interval, |s| !*s)
                        .unwrap_or_else(PoisonError::into_inner);
                    stopped = guard;
                    if *stopped {
                        return;
                    }
                    if timeout.timed_out() {
                        inner.log_line();
                    }
                }
            })
        });
        Self {
            inner,
            mode: cfg.mode,
            ticker,
        }
    }

    /// Ends the display: `Some(plain bytes)` when the operation succeeded, `None` when not.
    pub(crate) fn finish(mut self, plain_bytes: Option<u64>) {
        self.end(plain_bytes);
    }

    fn end(&mut self, plain_bytes: Option<u64>) {
        if let Some(task) = self
            .inner
            .lookup
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        if let Some(bar) = &self.inner.bar {
            bar.finish_and_clear();
        }
        if let Some(t) = self.ticker.take() {
            let (lock, cvar) = &self.inner.stop;
            *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
            cvar.notify_all();
            let _ = t.join();
        }
        if self.mode == ProgressMode::Log {
            let done = plain_bytes.ok_or_else(|| self.inner.done.load(Ordering::Relaxed));
            if let Some(text) = summary(&self.inner.what, done, self.inner.started.elapsed()) {
                tracing::info!(target: LOG_TARGET, "{text}");
            }
        }
        self.mode = ProgressMode::None;
    }

    /// Looks up the previous backup of `database` and takes its plain size as the total.
    fn look_up_total(&self, database: &str) {
        let (Some(repo), Ok(rt)) = (
            self.inner.repo.clone(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        let inner = Arc::clone(&self.inner);
        let database = database.to_owned();
        let task = rt.spawn(async move {
            if let Ok(listing) = repo.list().await
                && let Some(m) = listing.latest(Some(&database))
            {
                inner.set_total(m.plain_size());
            }
        });
        *self
            .inner
            .lookup
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(task);
    }
}

impl Progress for Reporter {
    fn event(&self, e: &Event) {
        log_progress(e);
        match e {
            Event::BackupStarted { database, .. } => self.look_up_total(database),
            Event::Progress { plain_bytes, .. } => {
                self.inner.done.store(*plain_bytes, Ordering::Relaxed);
                if let Some(bar) = &self.inner.bar {
                    if let Some(len) = bar.length()
                        && *plain_bytes > len
                    {
                        bar.set_length(*plain_bytes);
                    }
                    bar.set_position(*plain_bytes);
                }
            }
            _ => {}
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if self.mode != ProgressMode::None || self.ticker.is_some() {
            self.end(None);
        }
    }
}

/// Logs a backup's progress (`-v`); with the `test-support` feature, also the failpoints.
pub(crate) fn log_progress(e: &Event) {
    #[cfg(feature = "test-support")]
    crate::failpoint::reached(e);
    match e {
        Event::BackupStarted { id, database } => tracing::info!(%id, %database, "backup started"),
        Event::Progress { plain_bytes, .. } => tracing::debug!(
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
