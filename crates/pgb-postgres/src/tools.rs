//! Finding PostgreSQL client tools by version, and running them.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};

use pgb_core::{DumpError, DumpErrorKind};
use tokio::process::Command;

use crate::process::InheritedEnv;

/// A client tool found on disk, with the environment it may inherit (its locator's
/// [`InheritedEnv`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// Its path.
    pub path: PathBuf,
    /// Its `--version` line, e.g. `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`.
    pub version: String,
    /// Its major version.
    pub major: u32,
    inherited: InheritedEnv,
}

impl Tool {
    /// The variables it inherits from the caller ([`ToolLocator::with_inherited_env`]).
    pub fn inherited_env(&self) -> &InheritedEnv {
        &self.inherited
    }
}

/// Where to look for pg_dump, pg_restore and psql, in order: configured bin dirs, then
/// `/usr/lib/postgresql/*/bin` (Debian's side-by-side installs), then `PATH` as the caller
/// passed it (the library does not read the environment).
///
/// The tools it returns run with the variables of [`ToolLocator::with_inherited_env`] (the
/// caller's libpq variables, locale, `PATH`, `HOME`, ...) and nothing else of the caller's.
///
/// Each candidate's `--version` is probed once and cached; clones share the cache, so an
/// operation that picks psql, pg_dump and pg_restore several times probes each file once.
#[derive(Debug, Clone, Default)]
pub struct ToolLocator {
    bin_dirs: Vec<PathBuf>,
    path: Option<OsString>,
    system_dirs: bool,
    inherited: InheritedEnv,
    probed: ProbeCache,
}

/// `--version` results by path (`None`: not a runnable PostgreSQL tool).
type ProbeCache = Arc<Mutex<HashMap<PathBuf, Option<Tool>>>>;

impl ToolLocator {
    /// A locator that searches `/usr/lib/postgresql/*/bin` only.
    pub fn new() -> Self {
        Self {
            bin_dirs: Vec::new(),
            path: None,
            system_dirs: true,
            inherited: InheritedEnv::default(),
            probed: ProbeCache::default(),
        }
    }

    /// Adds a directory searched first (e.g. PostgreSQL 17 binaries installed elsewhere).
    pub fn with_bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dirs.push(dir.into());
        self
    }

    /// Also searches these `PATH` entries (the caller's `PATH`).
    pub fn with_path(mut self, path: Option<OsString>) -> Self {
        self.path = path;
        self
    }

    /// The variables every tool found (and its `--version` probe) may inherit: the caller's
    /// libpq variables, locale, `PATH`, `HOME`, ... (see [`InheritedEnv`]). Without it a tool
    /// gets nothing of the caller's environment but what its connection hands it.
    pub fn with_inherited_env(mut self, env: InheritedEnv) -> Self {
        self.inherited = env;
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
            if let Some(tool) = self.probe(&path).await {
                tools.push(tool);
            }
        }
        tools
    }

    /// `path --version`, from the cache when this locator (or a clone) probed it before.
    async fn probe(&self, path: &Path) -> Option<Tool> {
        let cached = self
            .probed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .cloned();
        // A clone may have been handed other variables: each locator's tools carry its own.
        if let Some(known) = cached {
            return known.map(|t| Tool {
                inherited: self.inherited.clone(),
                ..t
            });
        }
        let found = probe_version(path, &self.inherited).await;
        self.probed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_path_buf(), found.clone());
        found
    }

    /// The copy of `name` with the smallest major version that is at least `min_major`
    /// (the closest match to the server or archive), preferring earlier search locations on
    /// a tie.
    ///
    /// # Errors
    /// `ToolNotFound` when there is no copy at all, `VersionMismatch` with both versions
    /// ([`DumpError::versions`]) when every copy is too old. `what` names what needs the
    /// version in the message (`"the server (15.4)"`).
    pub async fn pick(&self, name: &str, min_major: u32, what: &str) -> Result<Tool, DumpError> {
        let all = self.find_all(name).await;
        if all.is_empty() {
            return Err(DumpError::new(
                DumpErrorKind::ToolNotFound,
                format!(
                    "{name} not found in the configured directories, /usr/lib/postgresql/*/bin or PATH"
                ),
            )
            .with_program(name));
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
                    "{what} is PostgreSQL {min_major} but the newest {name} available is {newest}"
                ),
            )
            .with_program(name)
            .with_versions(min_major, newest)
        })
    }
}

/// Runs `path --version` (with `inherited`) and parses the major version.
pub(crate) async fn probe_version(path: &Path, inherited: &InheritedEnv) -> Option<Tool> {
    let out = Command::from(crate::process::std_command(path, inherited, None))
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
        inherited: inherited.clone(),
    })
}

/// `pg_dump (PostgreSQL) 15.18 (Debian ...)` → 15; `... 9.6.24` → 9.
pub(crate) fn parse_major(version_line: &str) -> Option<u32> {
    let after = version_line.split(')').nth(1).unwrap_or(version_line);
    let num = after.split_whitespace().next()?;
    num.split(['.', 'b', 'r', 'd']).next()?.parse().ok()
}

/// Classifies a connection failure from libpq's message.
pub(crate) fn classify_connect_error(stderr: &str, what: &str) -> DumpError {
    let lower = stderr.to_lowercase();
    let (kind, message) = if lower.contains("does not exist") && lower.contains("database") {
        (
            DumpErrorKind::DatabaseNotFound,
            format!("{what}: the database does not exist"),
        )
    } else if lower.contains("password authentication failed")
        || lower.contains("no password supplied")
        || lower.contains("authentication failed")
    {
        (
            DumpErrorKind::AuthFailed,
            format!("{what}: authentication failed"),
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
            format!("{what}: the server is unreachable"),
        )
    } else {
        (
            DumpErrorKind::Connection,
            format!("{what}: could not connect"),
        )
    };
    DumpError::new(kind, message)
        .with_program("psql")
        .with_stderr(stderr)
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

    #[tokio::test]
    async fn version_probes_are_cached_across_picks_and_clones() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("psql");
        let count = dir.path().join("probes");
        std::fs::write(
            &tool,
            format!(
                "#!/bin/sh\n[ \"$1\" = --version ] || exit 0\necho x >> '{}'\necho 'psql (PostgreSQL) 15.1'\n",
                count.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A fork elsewhere may hold the file open for writing a moment (ETXTBSY): wait until
        // it runs.
        while std::process::Command::new(&tool).status().is_err() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let locator = ToolLocator::new()
            .with_system_dirs(false)
            .with_bin_dir(dir.path());
        for _ in 0..3 {
            assert_eq!(locator.pick("psql", 15, "x").await.unwrap().major, 15);
        }
        let e = locator
            .clone()
            .pick("psql", 16, "the server")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), DumpErrorKind::VersionMismatch);
        assert_eq!(e.versions(), Some((16, 15)));
        assert_eq!(
            std::fs::read_to_string(&count).unwrap().lines().count(),
            1,
            "one --version probe for four picks"
        );
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
