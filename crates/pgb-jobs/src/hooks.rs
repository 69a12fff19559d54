//! Running a job's hooks: an argv without a shell, with a timeout, in the job's environment
//! plus `PGB_JOB`, `PGB_EVENT`, `PGB_BACKUP_ID`, `PGB_STATUS`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HookEvent {
    /// Before pg_dump starts; failing aborts the backup.
    PreBackup,
    /// After every backup.
    PostBackup,
    /// When a backup failed.
    OnError,
    /// After a successful restore.
    PostRestore,
    /// Before a restore or drill: prints the migration head the application expects
    /// (`expected_migration_command`).
    ExpectedMigration,
}

impl HookEvent {
    /// The name in `PGB_EVENT` and the config key.
    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::PreBackup => "pre_backup",
            HookEvent::PostBackup => "post_backup",
            HookEvent::OnError => "on_error",
            HookEvent::PostRestore => "post_restore",
            HookEvent::ExpectedMigration => "expected_migration",
        }
    }
}

/// A password passed to a hook as `PGPASSWORD`. Never shown by `Debug`, never in a report;
/// any output line containing it is masked.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(p: impl Into<String>) -> Self {
        Self(p.into())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// One hook invocation.
#[derive(Debug, Clone)]
pub struct HookRun {
    /// The program (resolved path) to execute.
    pub program: PathBuf,
    /// The argv as configured (`argv[0]` is shown; the rest are the arguments).
    pub argv: Vec<String>,
    /// The job's environment: the child gets exactly this plus the `PGB_*` variables.
    pub env: BTreeMap<String, String>,
    /// The job.
    pub job: String,
    /// The event.
    pub event: HookEvent,
    /// The backup concerned, if any.
    pub backup_id: Option<String>,
    /// `success` or `failure`.
    pub status: Option<String>,
    /// For `post_restore`: the restored database's URL, without a password.
    pub database_url: Option<String>,
    /// For `post_restore`: its password, as `PGPASSWORD`.
    pub password: Option<Password>,
    /// Kill the hook (and its process group) after this long.
    pub timeout: Duration,
    /// Working directory; the caller's when `None`.
    pub cwd: Option<PathBuf>,
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One output line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputLine {
    /// Where it came from.
    pub stream: Stream,
    /// The line, with the password masked.
    pub line: String,
}

/// What a hook did, for the caller to log: no environment values, no password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookReport {
    /// The event.
    pub event: HookEvent,
    /// The argv.
    pub argv: Vec<String>,
    /// Exit code, when it exited.
    pub exit_code: Option<i32>,
    /// Killed after the timeout.
    pub timed_out: bool,
    /// It could not be started (the reason).
    pub spawn_error: Option<String>,
    /// How long it ran.
    pub duration_ms: u64,
    /// Its output, in order of arrival per stream (at most [`MAX_LINES`] lines).
    pub output: Vec<OutputLine>,
}

impl HookReport {
    /// Exited 0 in time.
    pub fn ok(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && self.spawn_error.is_none()
    }

    /// One line for an error message: `post_restore hook ["npx", ...] exited with 1`.
    pub fn summary(&self) -> String {
        match self.failure() {
            Some(f) => f.to_string(),
            None => format!("{} hook {:?} succeeded", self.event.as_str(), self.argv),
        }
    }

    /// Why the hook failed, typed; `None` when it exited 0 in time.
    pub fn failure(&self) -> Option<HookFailure> {
        let cause = if let Some(e) = &self.spawn_error {
            HookCause::CouldNotStart(e.clone())
        } else if self.timed_out {
            HookCause::TimedOut {
                after_ms: self.duration_ms,
            }
        } else {
            match self.exit_code {
                Some(0) => return None,
                Some(code) => HookCause::Exited(code),
                None => HookCause::Signalled,
            }
        };
        Some(HookFailure {
            event: self.event,
            argv: self.argv.clone(),
            cause,
        })
    }
}

/// A failed hook: which one, and why (its `Display` is the one-line summary).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} hook {:?} {cause}", event.as_str(), argv)]
pub struct HookFailure {
    /// The event it ran for.
    pub event: HookEvent,
    /// Its argv (never its environment).
    pub argv: Vec<String>,
    /// Why it failed.
    pub cause: HookCause,
}

/// Why a hook failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookCause {
    /// It could not be started (the operating system's reason).
    #[error("could not start: {0}")]
    CouldNotStart(String),
    /// It ran past its timeout and was killed with its process group.
    #[error("timed out after {after_ms} ms and was killed")]
    TimedOut {
        /// How long it ran.
        after_ms: u64,
    },
    /// It exited with a non-zero code.
    #[error("exited with {0}")]
    Exited(i32),
    /// A signal ended it.
    #[error("was killed by a signal")]
    Signalled,
}

/// Output lines kept per run; the rest are counted in a final marker line.
pub const MAX_LINES: usize = 1000;

/// Runs a hook to completion or timeout. Never fails: a hook that cannot start is reported.
pub async fn run_hook(run: &HookRun) -> HookReport {
    let started = Instant::now();
    let mut report = HookReport {
        event: run.event,
        argv: run.argv.clone(),
        exit_code: None,
        timed_out: false,
        spawn_error: None,
        duration_ms: 0,
        output: Vec::new(),
    };
    let mut cmd = Command::new(&run.program);
    cmd.args(run.argv.iter().skip(1))
        .env_clear()
        .envs(&run.env)
        .env("PGB_JOB", &run.job)
        .env("PGB_EVENT", run.event.as_str())
        .env("PGB_BACKUP_ID", run.backup_id.as_deref().unwrap_or(""))
        .env("PGB_STATUS", run.status.as_deref().unwrap_or(""))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(u) = &run.database_url {
        cmd.env("DATABASE_URL", u);
    }
    if let Some(p) = &run.password {
        cmd.env("PGPASSWORD", &p.0);
    }
    if let Some(d) = &run.cwd {
        cmd.current_dir(d);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            report.spawn_error = Some(e.to_string());
            return report;
        }
    };
    let pid = child.id();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (stream, reader) in [
        (
            Stream::Stdout,
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
        (
            Stream::Stderr,
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
    ] {
        let Some(reader) = reader else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(reader).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(OutputLine { stream, line }).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let status = tokio::select! {
        s = child.wait() => s.ok(),
        () = tokio::time::sleep(run.timeout) => {
            report.timed_out = true;
            kill_group(pid);
            let _ = child.kill().await;
            None
        }
    };
    report.exit_code = status.and_then(|s| s.code());
    // Grandchildren that kept the pipes open were killed with the group; give the readers
    // a moment to drain what is left, but never hang on them.
    let mask = run
        .password
        .as_ref()
        .map(|p| p.0.clone())
        .filter(|p| !p.is_empty());
    let mut dropped = 0usize;
    let drain = async {
        while let Some(mut l) = rx.recv().await {
            if let Some(m) = &mask {
                l.line = l.line.replace(m.as_str(), "***");
            }
            if report.output.len() < MAX_LINES {
                report.output.push(l);
            } else {
                dropped += 1;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    if dropped > 0 {
        report.output.push(OutputLine {
            stream: Stream::Stderr,
            line: format!("[{dropped} more lines not kept]"),
        });
    }
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    report
}

/// Kills the hook's whole process group (it was started as a group leader), so a hook that
/// forked (a shell script, npx) leaves nothing running.
fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    if let Some(group) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
}
