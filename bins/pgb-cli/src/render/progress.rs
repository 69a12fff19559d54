//! Progress events → a progress bar on a terminal, or a log line every few seconds
//! (`--progress auto|bar|log|none`, `PGB_PROGRESS`). The libraries only report
//! [`pgb::Event`]s; everything shown is decided here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pgb::{Event, Progress, Repository};

use super::human;
use crate::args::ProgressArg;
use crate::resolve::Env;

/// How often a log line is written in `log` mode unless `PGB_PROGRESS_INTERVAL` says otherwise.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Where the log lines go: enabled at info by default when the mode is `log`.
pub(crate) const LOG_TARGET: &str = "pgb::progress";

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProgressMode {
    /// A bar on stderr (a terminal).
    Bar,
    /// A log line every `interval`.
    Log,
    /// Nothing (the `-v` log lines of [`log_progress`] only).
    None,
}

/// The resolved `--progress` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProgressConfig {
    pub(crate) mode: ProgressMode,
    pub(crate) interval: Duration,
}

impl Default for ProgressConfig {
    fn default() -> Self {
        Self {
            mode: ProgressMode::None,
            interval: LOG_INTERVAL,
        }
    }
}

/// `--progress`, else `PGB_PROGRESS`, else `none` with `--quiet`, else `auto`: a bar when
/// stderr is a terminal, log lines otherwise. `PGB_PROGRESS_INTERVAL` (seconds) sets the
/// log lines' interval.
pub(crate) fn config(
    flag: Option<ProgressArg>,
    quiet: bool,
    env: Env<'_>,
    stderr_is_terminal: bool,
) -> Result<ProgressConfig, String> {
    let from_env = env
        .get("PGB_PROGRESS")
        .filter(|v| !v.is_empty())
        .map(|v| match v.as_str() {
            "auto" => Ok(ProgressArg::Auto),
            "bar" => Ok(ProgressArg::Bar),
            "log" => Ok(ProgressArg::Log),
            "none" => Ok(ProgressArg::None),
            _ => Err(format!("PGB_PROGRESS={v:?}: use auto, bar, log or none")),
        })
        .transpose()?;
    let arg = match (flag, from_env, quiet) {
        (Some(a), _, _) | (None, Some(a), _) => a,
        (None, None, true) => ProgressArg::None,
        (None, None, false) => ProgressArg::Auto,
    };
    let mode = match arg {
        ProgressArg::Auto if stderr_is_terminal => ProgressMode::Bar,
        ProgressArg::Auto | ProgressArg::Log => ProgressMode::Log,
        ProgressArg::Bar => ProgressMode::Bar,
        ProgressArg::None => ProgressMode::None,
    };
    let interval = match env.get("PGB_PROGRESS_INTERVAL").filter(|v| !v.is_empty()) {
        None => LOG_INTERVAL,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .ok_or_else(|| {
                format!("PGB_PROGRESS_INTERVAL={v:?}: use a number of seconds, e.g. 5")
            })?,
    };
    Ok(ProgressConfig { mode, interval })
}

/// Time left: the bytes still expected at the average rate so far. `None` without an
/// expected total, before any byte, or once past the total.
pub(crate) fn eta(done: u64, total: Option<u64>, elapsed: Duration) -> Option<Duration> {
    let total = total?;
    if done == 0 || done >= total || elapsed.is_zero() {
        return None;
    }
    let rate = done as f64 / elapsed.as_secs_f64();
    Some(Duration::from_secs_f64((total - done) as f64 / rate))
}

/// A duration as people read it: `45s`, `3m20s`, `1h05m`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// One log line: `backup: 1.2 GiB (48% of ~2.5 GiB), 40.1 MiB/s, ETA 33s`.
pub(crate) fn line(what: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        format!("{}/s", human((done as f64 / secs) as u64))
    } else {
        "-".to_owned()
    };
    let share = match total {
        Some(t) if t > 0 && done <= t => {
            format!(" ({}% of ~{})", done * 100 / t, human(t))
        }
        Some(t) => format!(" (expected ~{})", human(t)),
        None => String::new(),
    };
    let eta = eta(done, total, elapsed).map_or_else(String::new, |e| format!(", ETA {}", clock(e)));
    format!(
        "{what}: {}{share}, {rate}, {} elapsed{eta}",
        human(done),
        clock(elapsed)
    )
}

/// The final log line: `backup: 2.4 GiB in 1m02s (39.6 MiB/s)` when it succeeded with `done`
/// plain bytes, `backup: stopped after 1.2 GiB, 31s` when it did not.
fn summary(what: &str, done: Result<u64, u64>, elapsed: Duration) -> String {
    match done {
        Ok(done) => {
            let secs = elapsed.as_secs_f64().max(0.001);
            format!(
                "{what}: {} in {} ({}/s)",
                human(done),
                clock(elapsed),
                human((done as f64 / secs) as u64)
            )
        }
        Err(done) => format!("{what}: stopped after {}, {}", human(done), clock(elapsed)),
    }
}

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
            let text = summary(&self.inner.what, done, self.inner.started.elapsed());
            tracing::info!(target: LOG_TARGET, "{text}");
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn auto_is_a_bar_on_a_terminal_and_log_lines_elsewhere() {
        let none = env(&[]);
        let mode =
            |flag, quiet, env: &HashMap<_, _>, tty| config(flag, quiet, env, tty).unwrap().mode;
        assert_eq!(mode(None, false, &none, true), ProgressMode::Bar);
        assert_eq!(mode(None, false, &none, false), ProgressMode::Log);
        assert_eq!(mode(None, true, &none, true), ProgressMode::None, "--quiet");
        let log = env(&[("PGB_PROGRESS", "log")]);
        assert_eq!(mode(None, false, &log, true), ProgressMode::Log, "env");
        assert_eq!(
            mode(None, true, &log, true),
            ProgressMode::Log,
            "env beats --quiet"
        );
        assert_eq!(
            mode(Some(ProgressArg::None), false, &log, true),
            ProgressMode::None,
            "the flag beats the env"
        );
        assert_eq!(
            mode(Some(ProgressArg::Bar), false, &none, false),
            ProgressMode::Bar
        );
        let bad = env(&[("PGB_PROGRESS", "fancy")]);
        assert!(
            config(None, false, &bad, true)
                .unwrap_err()
                .contains("PGB_PROGRESS")
        );
        let interval = env(&[("PGB_PROGRESS_INTERVAL", "2")]);
        assert_eq!(
            config(None, false, &interval, false).unwrap().interval,
            Duration::from_secs(2)
        );
        assert_eq!(
            config(None, false, &none, false).unwrap().interval,
            LOG_INTERVAL
        );
        let zero = env(&[("PGB_PROGRESS_INTERVAL", "0")]);
        assert!(config(None, false, &zero, false).is_err());
    }

    #[test]
    fn eta_comes_from_the_expected_total_at_the_rate_so_far() {
        let ten = Duration::from_secs(10);
        // 100 of 400 bytes in 10 s: 300 bytes left at 10 B/s.
        assert_eq!(eta(100, Some(400), ten), Some(Duration::from_secs(30)));
        assert_eq!(eta(100, None, ten), None, "no previous backup");
        assert_eq!(eta(0, Some(400), ten), None, "no rate yet");
        assert_eq!(eta(500, Some(400), ten), None, "past the expected size");
        assert_eq!(eta(100, Some(400), Duration::ZERO), None);
    }

    #[test]
    fn log_lines_show_bytes_share_rate_and_eta() {
        let mib = 1 << 20;
        assert_eq!(
            line(
                "backup",
                100 * mib,
                Some(400 * mib),
                Duration::from_secs(10)
            ),
            "backup: 100.0 MiB (25% of ~400.0 MiB), 10.0 MiB/s, 10s elapsed, ETA 30s"
        );
        assert_eq!(
            line("restore", 3 * mib, None, Duration::from_secs(75)),
            "restore: 3.0 MiB, 41.0 KiB/s, 1m15s elapsed"
        );
        assert_eq!(
            line("verify", 500, Some(400), Duration::from_secs(1)),
            "verify: 500 B (expected ~400 B), 500 B/s, 1s elapsed"
        );
        assert_eq!(
            summary("backup", Ok(2 * mib), Duration::from_secs(3725)),
            "backup: 2.0 MiB in 1h02m (562 B/s)"
        );
        assert_eq!(
            summary("restore", Err(4 * mib), Duration::from_secs(31)),
            "restore: stopped after 4.0 MiB, 31s"
        );
    }
}
