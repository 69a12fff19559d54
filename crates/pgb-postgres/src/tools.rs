//! Finding PostgreSQL client tools by version, and running them.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};

use pgb_core::{DumpError, DumpErrorKind};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// A client tool found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// Its path.
    pub path: PathBuf,
    /// Its `--version` line, e.g. `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`.
    pub version: String,
    /// Its major version.
    pub major: u32,
}

/// Where to look for pg_dump, pg_restore and psql, in order: configured bin dirs, then
/// `/usr/lib/postgresql/*/bin` (Debian's side-by-side installs), then `PATH` as the caller
/// passed it (the library does not read the environment).
#[derive(Debug, Clone, Default)]
pub struct ToolLocator {
    bin_dirs: Vec<PathBuf>,
    path: Option<OsString>,
    system_dirs: bool,
}

impl ToolLocator {
    /// A locator that searches `/usr/lib/postgresql/*/bin` only.
    pub fn new() -> Self {
        Self {
            bin_dirs: Vec::new(),
            path: None,
            system_dirs: true,
        }
    }

    /// Adds a directory searched first (e.g. PostgreSQL 17 binaries installed elsewhere).
    pub fn with_bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dirs.push(dir.into());
        self
    }

    /// Also searches these `PATH` entries (pass `std::env::var_os("PATH")`).
    pub fn with_path(mut self, path: Option<OsString>) -> Self {
        self.path = path;
        self
    }

    /// Whether to search `/usr/lib/postgresql/*/bin`.
    pub fn with_system_dirs(mut self, yes: bool) -> Self {
        self.system_dirs = yes;
        self
    }

    fn candidate_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = self.bin_dirs.clone();
        if self.system_dirs
            && let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql")
        {
            let mut found: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("bin")).collect();
            found.sort();
            dirs.extend(found);
        }
        if let Some(p) = &self.path {
            dirs.extend(std::env::split_paths(p));
        }
        dirs
    }

    /// Every copy of `name` found, with its version (unrunnable ones are skipped).
    pub async fn find_all(&self, name: &str) -> Vec<Tool> {
        let mut tools: Vec<Tool> = Vec::new();
        for dir in self.candidate_dirs() {
            let path = dir.join(name);
            if !path.is_file() || tools.iter().any(|t| t.path == path) {
                continue;
            }
            // Debian's /usr/bin/pg_dump etc. are a Perl wrapper that runs one of the
            // /usr/lib/postgresql/*/bin tools, which are searched already; probing the wrapper
            // only costs a Perl start-up per tool.
            if std::fs::canonicalize(&path)
                .is_ok_and(|p| p.ends_with("postgresql-common/pg_wrapper"))
                && self.system_dirs
            {
                continue;
            }
            if let Some(tool) = probe_version(&path).await {
                tools.push(tool);
            }
        }
        tools
    }

    /// The copy of `name` with the smallest major version that is at least `min_major`
    /// (the closest match to the server or archive), preferring earlier search locations on
    /// a tie.
    ///
    /// # Errors
    /// `ToolNotFound` when there is no copy at all, `VersionMismatch` naming both versions when
    /// every copy is too old.
    pub async fn pick(&self, name: &str, min_major: u32, what: &str) -> Result<Tool, DumpError> {
        let all = self.find_all(name).await;
        if all.is_empty() {
            return Err(DumpError::new(
                DumpErrorKind::ToolNotFound,
                format!(
                    "{name} not found (searched --pg-bin-dir, /usr/lib/postgresql/*/bin and PATH); install the PostgreSQL client tools"
                ),
            ));
        }
        let best = all
            .iter()
            .filter(|t| t.major >= min_major)
            .min_by_key(|t| t.major)
            .cloned();
        best.ok_or_else(|| {
            let newest = all.iter().map(|t| t.major).max().unwrap_or(0);
            DumpError::new(
                DumpErrorKind::VersionMismatch,
                format!(
                    "{what} is PostgreSQL {min_major} but the newest {name} available is {newest}; install PostgreSQL {min_major} client tools (or newer) and point --pg-bin-dir at them"
                ),
            )
        })
    }
}

/// Runs `path --version` and parses the major version.
pub(crate) async fn probe_version(path: &Path) -> Option<Tool> {
    let out = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let major = parse_major(&version)?;
    Some(Tool {
        path: path.to_path_buf(),
        version,
        major,
    })
}

/// `pg_dump (PostgreSQL) 15.18 (Debian ...)` → 15; `... 9.6.24` → 9.
pub(crate) fn parse_major(version_line: &str) -> Option<u32> {
    let after = version_line.split(')').nth(1).unwrap_or(version_line);
    let num = after.split_whitespace().next()?;
    num.split(['.', 'b', 'r', 'd']).next()?.parse().ok()
}

/// The last bytes a child wrote to stderr, drained concurrently so it can never block.
#[derive(Debug, Clone, Default)]
pub(crate) struct StderrTail(Arc<Mutex<VecDeque<u8>>>);

const TAIL_BYTES: usize = 16 * 1024;

impl StderrTail {
    /// Starts draining `stderr` into the tail.
    pub(crate) fn drain(
        stderr: tokio::process::ChildStderr,
        tool: &'static str,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let tail = Self::default();
        let t = tail.clone();
        let handle = tokio::spawn(async move {
            let mut stderr = stderr;
            let mut buf = [0u8; 4096];
            loop {
                match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut q = t.0.lock().unwrap_or_else(PoisonError::into_inner);
                        q.extend(&buf[..n]);
                        while q.len() > TAIL_BYTES {
                            q.pop_front();
                        }
                    }
                }
            }
            let text = t.text();
            if !text.is_empty() {
                tracing::debug!(tool, stderr = %text, "child stderr");
            }
        });
        (tail, handle)
    }

    /// The last few lines.
    pub(crate) fn text(&self) -> String {
        let q = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes: Vec<u8> = q.iter().copied().collect();
        let s = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }
}

/// The line of a tool's stderr that best states the cause: the last `error:`/`FATAL:` line
/// (pg_dump ends with `detail: Command was: ...`, which says what, not why), else the last line.
pub(crate) fn cause_line(tail: &str) -> String {
    tail.lines()
        .rev()
        .find(|l| l.contains("error:") || l.contains("FATAL:") || l.contains("ERROR:"))
        .or_else(|| tail.lines().last())
        .unwrap_or("no message")
        .trim()
        .to_owned()
}

/// Describes an exit status in words: `exited with status 1`, `was killed by signal 9`.
pub(crate) fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "ended abnormally".to_owned(),
    }
}

/// Classifies a connection failure from libpq's message.
pub(crate) fn classify_connect_error(stderr: &str, what: &str) -> DumpError {
    let lower = stderr.to_lowercase();
    let (kind, message) = if lower.contains("does not exist") && lower.contains("database") {
        (
            DumpErrorKind::DatabaseNotFound,
            format!(
                "{what}: the database does not exist; check the name in the URL (pgb restore creates missing targets, pgb backup cannot)"
            ),
        )
    } else if lower.contains("password authentication failed")
        || lower.contains("no password supplied")
        || lower.contains("authentication failed")
    {
        (
            DumpErrorKind::AuthFailed,
            format!(
                "{what}: authentication failed; set PGPASSWORD or PGPASSFILE (never the command line) or fix the user"
            ),
        )
    } else if lower.contains("connection refused")
        || lower.contains("could not translate host name")
        || lower.contains("timeout expired")
        || lower.contains("no route to host")
        || lower.contains("could not connect")
        || lower.contains("network is unreachable")
    {
        (
            DumpErrorKind::Unreachable,
            format!(
                "{what}: the server is unreachable; check host and port, and that PostgreSQL is running"
            ),
        )
    } else {
        (
            DumpErrorKind::Connection,
            format!("{what}: could not connect"),
        )
    };
    DumpError::new(kind, message).with_stderr(stderr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_major_versions() {
        assert_eq!(
            parse_major("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(parse_major("pg_restore (PostgreSQL) 17.11"), Some(17));
        assert_eq!(parse_major("psql (PostgreSQL) 18beta1"), Some(18));
        assert_eq!(parse_major("pg_dump (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major("garbage"), None);
    }

    #[test]
    fn classifies_libpq_errors() {
        let k = |s: &str| classify_connect_error(s, "x").kind();
        assert_eq!(
            k("FATAL:  database \"nope\" does not exist"),
            DumpErrorKind::DatabaseNotFound
        );
        assert_eq!(
            k("FATAL:  password authentication failed for user \"u\""),
            DumpErrorKind::AuthFailed
        );
        assert_eq!(
            k("connection to server at \"127.0.0.1\", port 1 failed: Connection refused"),
            DumpErrorKind::Unreachable
        );
    }
}
