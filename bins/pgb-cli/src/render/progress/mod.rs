//! Progress events → a progress bar on a terminal, or a log line every few seconds
//! (`--progress auto|bar|log|none`, `PGB_PROGRESS`). The libraries only report
//! [`pgb::Event`]s; everything shown is decided here.

mod reporter;

use std::time::Duration;

pub(crate) use reporter::{Reporter, log_progress};

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
/// stderr is a terminal that can draw one, log lines otherwise (a pipe, a file, or a terminal
/// whose `TERM` is `dumb` or unset, where the bar library would draw nothing).
/// `PGB_PROGRESS_INTERVAL` (seconds) sets the log lines' interval.
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
        ProgressArg::Auto if stderr_is_terminal && draws_bars(env) => ProgressMode::Bar,
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

/// Whether the terminal type can draw a bar: `TERM` is set and not `dumb` (the test the bar
/// library makes before drawing anything).
fn draws_bars(env: Env<'_>) -> bool {
    env.get("TERM").is_some_and(|t| t != "dumb")
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
/// plain bytes, `backup: stopped after 1.2 GiB, 31s` when it did not; none for a failure before
/// any byte moved (the error line says everything, a "stopped after 0 B" line only precedes it).
fn summary(what: &str, done: Result<u64, u64>, elapsed: Duration) -> Option<String> {
    Some(match done {
        Ok(done) => {
            let secs = elapsed.as_secs_f64().max(0.001);
            format!(
                "{what}: {} in {} ({}/s)",
                human(done),
                clock(elapsed),
                human((done as f64 / secs) as u64)
            )
        }
        Err(0) => return None,
        Err(done) => format!("{what}: stopped after {}, {}", human(done), clock(elapsed)),
    })
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
        let none = env(&[("TERM", "xterm-256color")]);
        let mode =
            |flag, quiet, env: &HashMap<_, _>, tty| config(flag, quiet, env, tty).unwrap().mode;
        assert_eq!(mode(None, false, &none, true), ProgressMode::Bar);
        assert_eq!(mode(None, false, &none, false), ProgressMode::Log);
        assert_eq!(mode(None, true, &none, true), ProgressMode::None, "--quiet");
        // A terminal that cannot draw a bar (TERM dumb or unset) gets log lines.
        assert_eq!(
            mode(None, false, &env(&[("TERM", "dumb")]), true),
            ProgressMode::Log
        );
        assert_eq!(mode(None, false, &env(&[]), true), ProgressMode::Log);
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
            summary("backup", Ok(2 * mib), Duration::from_secs(3725)).unwrap(),
            "backup: 2.0 MiB in 1h02m (562 B/s)"
        );
        assert_eq!(
            summary("restore", Err(4 * mib), Duration::from_secs(31)).unwrap(),
            "restore: stopped after 4.0 MiB, 31s"
        );
        assert_eq!(
            summary("backup", Err(0), Duration::from_secs(0)),
            None,
            "a failure before any byte moved leaves the error line alone"
        );
    }
}
