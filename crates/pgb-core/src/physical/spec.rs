//! What a caller (a command line, a form, a job) asks of a physical restore, as text, checked
//! into [`RecoverySettings`]; and the `restore_command` line that makes the restored server
//! fetch its WAL with the caller's own `wal fetch`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pgb_wal::InvalidLsn;

use super::recovery::{
    InvalidTarget, RecoverySettings, RecoveryTarget, TargetAction, TimelineTarget,
    parse_target_time,
};

/// A recovery target as given, before it is checked: at most one of a time, an LSN, a restore
/// point, a transaction id or `immediate` (the first set wins, in that order; none: the end of
/// the archive), whether the stop is exclusive, the timeline (`latest`, `current` or a number;
/// `None`: latest) and the action at the target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetRequest {
    /// `recovery_target_time`, as [`parse_target_time`] reads it.
    pub time: Option<String>,
    /// `recovery_target_lsn` (`0/3000060`).
    pub lsn: Option<String>,
    /// `recovery_target_name`.
    pub name: Option<String>,
    /// `recovery_target_xid`.
    pub xid: Option<u64>,
    /// `recovery_target = 'immediate'`.
    pub immediate: bool,
    /// Stop just before the target (time, LSN and xid targets only).
    pub exclusive: bool,
    /// `latest`, `current` or a timeline number.
    pub timeline: Option<String>,
    /// What the server does at the target.
    pub action: TargetAction,
}

/// A [`TargetRequest`] that cannot be used; each variant names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRecovery {
    /// The time does not parse.
    #[error("{0}")]
    Time(InvalidTarget),
    /// The LSN does not parse.
    #[error("{0}")]
    Lsn(InvalidLsn),
    /// An exclusive stop with a target it does not apply to (a name, `immediate`, none).
    #[error("an exclusive stop applies to a time, LSN or transaction id target only")]
    Exclusive,
    /// The timeline is none of a number above 0, `latest`, `current`.
    #[error("{0:?}: expected a timeline number, latest or current")]
    Timeline(String),
}

impl FromStr for TimelineTarget {
    type Err = InvalidRecovery;

    /// `latest`, `current` or a timeline number above 0.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "latest" => Ok(Self::Latest),
            "current" => Ok(Self::Current),
            n => n
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .map(Self::Id)
                .ok_or_else(|| InvalidRecovery::Timeline(n.to_owned())),
        }
    }
}

impl TargetRequest {
    /// The recovery settings asked for (no `restore_command` yet: it names the cluster the
    /// plan picks, see [`WalFetchCommand`]).
    ///
    /// # Errors
    /// [`InvalidRecovery`].
    pub fn settings(&self) -> Result<RecoverySettings, InvalidRecovery> {
        let target = if let Some(t) = &self.time {
            RecoveryTarget::Time(parse_target_time(t).map_err(InvalidRecovery::Time)?)
        } else if let Some(l) = &self.lsn {
            RecoveryTarget::Lsn(l.parse().map_err(InvalidRecovery::Lsn)?)
        } else if let Some(n) = &self.name {
            RecoveryTarget::Name(n.clone())
        } else if let Some(x) = self.xid {
            RecoveryTarget::Xid(x)
        } else if self.immediate {
            RecoveryTarget::Immediate
        } else {
            RecoveryTarget::EndOfArchive
        };
        if self.exclusive && !target.takes_inclusive() {
            return Err(InvalidRecovery::Exclusive);
        }
        let timeline = self.timeline.as_deref().unwrap_or("latest").parse()?;
        Ok(RecoverySettings::new(None, target)
            .with_exclusive(self.exclusive)
            .with_timeline(timeline)
            .with_action(self.action))
    }
}

/// The `restore_command` a restored server runs to fetch its WAL from a pgb repository:
/// `PROGRAM wal fetch %f %p --repo URL --system-id ID [--identity-file F]... [--auth-key-file
/// F] [--passphrase-file F] [--allow-unauthenticated] --spool DATA_DIR/pgb_spool`.
///
/// It names key *files*, never a key. A local repository and every file are made absolute
/// (the server runs `restore_command` in its data directory). PostgreSQL runs the line through
/// `sh -c`: each word is quoted for the shell when it holds more than safe characters, and `%`
/// in a literal is doubled (PostgreSQL expands `%f`, `%p`, `%r`, `%%`).
///
/// ```
/// use pgb_core::physical::WalFetchCommand;
/// use std::path::Path;
/// let cmd = WalFetchCommand::new("/usr/bin/pgb", "s3://b/100%")
///     .with_key_file("--auth-key-file", "/etc/pgb/auth key");
/// assert_eq!(
///     cmd.line(7, Path::new("/data")),
///     "/usr/bin/pgb wal fetch %f %p --repo 's3://b/100%%' --system-id 7 \
///      --auth-key-file '/etc/pgb/auth key' --spool /data/pgb_spool"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalFetchCommand {
    program: PathBuf,
    repo: String,
    local: Option<PathBuf>,
    keys: Vec<(&'static str, PathBuf)>,
    allow_unauthenticated: bool,
}

/// `path` made absolute: resolved when it exists, else joined to the working directory.
fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// A word for `sh -c`: as is when it holds only safe characters, else in single quotes.
fn shell_word(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@".contains(&b));
    if safe {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A literal in `restore_command`: a shell word with `%` doubled.
fn literal(s: &str) -> String {
    shell_word(s).replace('%', "%%")
}

impl WalFetchCommand {
    /// `program`'s `wal fetch` from the repository `repo` (a URL, or a local path with or
    /// without `file://`).
    pub fn new(program: impl Into<PathBuf>, repo: &str) -> Self {
        let (repo, local) = match repo.strip_prefix("file://") {
            Some(path) => {
                let path = absolute(Path::new(path));
                (format!("file://{}", path.display()), Some(path))
            }
            None if !repo.contains("://") => {
                let path = absolute(Path::new(repo));
                (path.display().to_string(), Some(path))
            }
            None => (repo.to_owned(), None),
        };
        Self {
            program: program.into(),
            repo,
            local,
            keys: Vec::new(),
            allow_unauthenticated: false,
        }
    }

    /// Adds a key file under its `wal fetch` option (`--identity-file`, `--auth-key-file`,
    /// `--passphrase-file`).
    #[must_use]
    pub fn with_key_file(mut self, option: &'static str, path: impl AsRef<Path>) -> Self {
        self.keys.push((option, absolute(path.as_ref())));
        self
    }

    /// Adds `--allow-unauthenticated`.
    #[must_use]
    pub fn with_allow_unauthenticated(mut self, yes: bool) -> Self {
        self.allow_unauthenticated = yes;
        self
    }

    /// The repository's directory when it is local (absolute): what a restore must not
    /// write into.
    pub fn local_repository(&self) -> Option<&Path> {
        self.local.as_deref()
    }

    /// The line for the cluster `system_id` restored into `data_dir`.
    pub fn line(&self, system_id: u64, data_dir: &Path) -> String {
        let mut cmd = format!(
            "{} wal fetch %f %p --repo {} --system-id {system_id}",
            literal(&self.program.display().to_string()),
            literal(&self.repo)
        );
        for (option, path) in &self.keys {
            let _ = write!(cmd, " {option} {}", literal(&path.display().to_string()));
        }
        if self.allow_unauthenticated {
            cmd.push_str(" --allow-unauthenticated");
        }
        let spool = data_dir.join("pgb_spool");
        let _ = write!(cmd, " --spool {}", literal(&spool.display().to_string()));
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_command_words_are_quoted_for_the_shell_and_percent_signs_doubled() {
        assert_eq!(shell_word("/usr/bin/pgb"), "/usr/bin/pgb");
        assert_eq!(shell_word("/my repo/it's"), r"'/my repo/it'\''s'");
        assert_eq!(literal("/backups/100%"), "'/backups/100%%'");
        assert_eq!(literal("s3://bucket/prefix"), "s3://bucket/prefix");
        let c = WalFetchCommand::new("/bin/pgb", "file://rel/repo")
            .with_key_file("--identity-file", "/k/id")
            .with_allow_unauthenticated(true);
        let repo = c.local_repository().expect("local").to_owned();
        assert!(repo.is_absolute() && repo.ends_with("rel/repo"), "{repo:?}");
        assert_eq!(
            c.line(1, Path::new("/d")),
            format!(
                "/bin/pgb wal fetch %f %p --repo file://{} --system-id 1 --identity-file /k/id --allow-unauthenticated --spool /d/pgb_spool",
                repo.display()
            )
        );
        assert!(
            WalFetchCommand::new("p", "s3://b")
                .local_repository()
                .is_none()
        );
    }

    #[test]
    fn a_target_request_is_checked_into_recovery_settings() {
        let s = TargetRequest::default().settings().unwrap();
        assert_eq!(s.target, RecoveryTarget::EndOfArchive);
        assert_eq!(s.timeline, TimelineTarget::Latest);
        let r = TargetRequest {
            lsn: Some("0/3000060".into()),
            exclusive: true,
            timeline: Some("3".into()),
            action: TargetAction::Pause,
            ..TargetRequest::default()
        };
        let s = r.settings().unwrap();
        assert!(matches!(s.target, RecoveryTarget::Lsn(_)) && s.exclusive);
        assert_eq!(
            (s.timeline, s.action),
            (TimelineTarget::Id(3), TargetAction::Pause)
        );
        assert_eq!("current".parse(), Ok(TimelineTarget::Current));
        for bad in ["0", "x", "-1"] {
            assert_eq!(
                bad.parse::<TimelineTarget>(),
                Err(InvalidRecovery::Timeline(bad.into()))
            );
        }
        let named = TargetRequest {
            name: Some("before".into()),
            exclusive: true,
            ..TargetRequest::default()
        };
        assert_eq!(named.settings(), Err(InvalidRecovery::Exclusive));
        let t = TargetRequest {
            time: Some("2026-05-01 14:30:00".into()),
            ..TargetRequest::default()
        };
        assert!(matches!(
            t.settings(),
            Err(InvalidRecovery::Time(InvalidTarget::NoZone(_)))
        ));
        let l = TargetRequest {
            lsn: Some("nope".into()),
            ..TargetRequest::default()
        };
        assert!(matches!(l.settings(), Err(InvalidRecovery::Lsn(_))));
    }
}
