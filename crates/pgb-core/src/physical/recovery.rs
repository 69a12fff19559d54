//! What a restored server recovers to, and the files that tell it: `recovery.signal` and
//! lines appended to `postgresql.auto.conf` (which PostgreSQL reads after
//! `postgresql.conf`, so they win).

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::path::Path;

use pgb_wal::{Lsn, TimelineId};
use serde::Serialize;
use time::OffsetDateTime;

/// Where recovery stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RecoveryTarget {
    /// The end of the archive (no target): replay every segment there is, then promote.
    EndOfArchive,
    /// As soon as the backup is consistent (`recovery_target = 'immediate'`).
    Immediate,
    /// A moment (`recovery_target_time`).
    #[serde(with = "time::serde::rfc3339")]
    Time(OffsetDateTime),
    /// A WAL position (`recovery_target_lsn`).
    Lsn(Lsn),
    /// A restore point made with `pg_create_restore_point` (`recovery_target_name`).
    Name(String),
    /// A transaction id (`recovery_target_xid`).
    Xid(u64),
}

impl fmt::Display for RecoveryTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EndOfArchive => f.write_str("the end of the archive"),
            Self::Immediate => f.write_str("the end of the backup (immediate)"),
            Self::Time(t) => write!(f, "time {}", conf_time(*t)),
            Self::Lsn(l) => write!(f, "LSN {l}"),
            Self::Name(n) => write!(f, "restore point {n:?}"),
            Self::Xid(x) => write!(f, "transaction {x}"),
        }
    }
}

impl RecoveryTarget {
    /// Whether `recovery_target_inclusive` applies (time, LSN and xid targets).
    pub fn takes_inclusive(&self) -> bool {
        matches!(self, Self::Time(_) | Self::Lsn(_) | Self::Xid(_))
    }
}

/// The timeline recovery follows (`recovery_target_timeline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TimelineTarget {
    /// The newest timeline in the archive (PostgreSQL's default).
    #[default]
    Latest,
    /// The backup's own timeline.
    Current,
    /// This timeline.
    Id(TimelineId),
}

impl fmt::Display for TimelineTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latest => f.write_str("latest"),
            Self::Current => f.write_str("current"),
            Self::Id(n) => write!(f, "{n}"),
        }
    }
}

/// What the server does once it reached the target (`recovery_target_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TargetAction {
    /// End recovery and accept writes, on a new timeline.
    #[default]
    Promote,
    /// Stay in recovery, read-only, until `pg_wal_replay_resume()`.
    Pause,
    /// Stop the server.
    Shutdown,
}

impl fmt::Display for TargetAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Promote => "promote",
            Self::Pause => "pause",
            Self::Shutdown => "shutdown",
        })
    }
}

/// A recovery target time that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidTarget {
    /// Not a time in a format pgb reads.
    #[error(
        "{0:?} is not a time: expected RFC 3339 (2026-05-01T14:30:00Z) or YYYY-MM-DD HH:MM:SS[.ffffff] with a zone (+02:00, Z)"
    )]
    Unparseable(String),
    /// A time without a zone (ambiguous: the server's, the restoring host's?).
    #[error("{0:?} has no time zone: add one (Z, +00, +02:00), so the target is not ambiguous")]
    NoZone(String),
}

/// Parses a recovery target time: RFC 3339 (`2026-05-01T14:30:00Z`) or PostgreSQL's
/// `YYYY-MM-DD HH:MM:SS[.ffffff]` followed by a zone (`Z`, `+02`, `+02:00`, `+0200`, with or
/// without a space before it). A time without a zone is refused.
///
/// # Errors
/// [`InvalidTarget`].
pub fn parse_target_time(text: &str) -> Result<OffsetDateTime, InvalidTarget> {
    let s = text.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let unparseable = || InvalidTarget::Unparseable(text.to_owned());
    // YYYY-MM-DD[ T]HH:MM:SS[.f...][ ]ZONE
    if s.len() < 19 || !s.is_char_boundary(19) {
        return Err(unparseable());
    }
    let (datetime, rest) = s.split_at(19);
    let datetime = datetime.replacen('T', " ", 1);
    let rest = rest.trim_start();
    let (frac, zone) = match rest.strip_prefix('.') {
        Some(r) => {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 || n > 9 {
                return Err(unparseable());
            }
            (&r[..n], r[n..].trim_start())
        }
        None => ("", rest),
    };
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let local = time::PrimitiveDateTime::parse(&datetime, &fmt).map_err(|_| unparseable())?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| unparseable())?
    };
    let local = local.replace_nanosecond(nanos).map_err(|_| unparseable())?;
    if zone.is_empty() {
        return Err(InvalidTarget::NoZone(text.to_owned()));
    }
    let offset = parse_zone(zone).ok_or_else(unparseable)?;
    Ok(local.assume_offset(offset))
}

/// `Z`, `UTC`, `+HH`, `+HH:MM`, `+HHMM` (or `-`).
fn parse_zone(z: &str) -> Option<time::UtcOffset> {
    if z.eq_ignore_ascii_case("z") || z.eq_ignore_ascii_case("utc") || z.eq_ignore_ascii_case("gmt")
    {
        return Some(time::UtcOffset::UTC);
    }
    let (sign, rest) = match z.as_bytes().first()? {
        b'+' => (1i8, &z[1..]),
        b'-' => (-1i8, &z[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let h: i8 = digits[..2].parse().ok()?;
    let m: i8 = if digits.len() == 4 {
        digits[2..].parse().ok()?
    } else {
        0
    };
    time::UtcOffset::from_hms(sign * h, sign * m, 0).ok()
}

/// A time as `recovery_target_time` takes it, in UTC to the microsecond (PostgreSQL's
/// precision; finer digits are dropped, so the target never moves later).
pub(crate) fn conf_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// A value quoted for `postgresql.conf`: in single quotes, each single quote doubled (and a
/// backslash doubled, as PostgreSQL reads backslash escapes in quoted values).
pub fn quote_conf(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// The recovery settings a restore writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RecoverySettings {
    /// `restore_command`, as the server will run it (`%f` and `%p` unexpanded); `None`
    /// writes none (a backup with its WAL included restores to its end without one).
    pub restore_command: Option<String>,
    /// Where recovery stops.
    pub target: RecoveryTarget,
    /// `recovery_target_inclusive = off`: stop just before the target rather than after.
    pub exclusive: bool,
    /// `recovery_target_timeline`.
    pub timeline: TimelineTarget,
    /// `recovery_target_action`.
    pub action: TargetAction,
}

impl RecoverySettings {
    /// Recovery to `target`, promoting, on the latest timeline, with `restore_command`.
    pub fn new(restore_command: Option<String>, target: RecoveryTarget) -> Self {
        Self {
            restore_command,
            target,
            exclusive: false,
            timeline: TimelineTarget::Latest,
            action: TargetAction::Promote,
        }
    }

    /// Stops just before the target.
    pub fn with_exclusive(mut self, yes: bool) -> Self {
        self.exclusive = yes;
        self
    }

    /// Sets the timeline.
    pub fn with_timeline(mut self, t: TimelineTarget) -> Self {
        self.timeline = t;
        self
    }

    /// Sets the action at the target.
    pub fn with_action(mut self, a: TargetAction) -> Self {
        self.action = a;
        self
    }

    /// The `postgresql.auto.conf` lines, in order (each `key = 'value'`). Every recovery
    /// target is set (the unused ones to `''`), so a target the source cluster's own
    /// configuration carried cannot combine with this one; `archive_mode = 'off'` so the
    /// restored server never archives into the source's repository.
    pub fn lines(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(cmd) = &self.restore_command {
            out.push(("restore_command", cmd.clone()));
        }
        let (mut immediate, mut time, mut lsn, mut name, mut xid) = Default::default();
        match &self.target {
            RecoveryTarget::EndOfArchive => {}
            RecoveryTarget::Immediate => immediate = "immediate".to_owned(),
            RecoveryTarget::Time(t) => time = conf_time(*t),
            RecoveryTarget::Lsn(l) => lsn = l.to_string(),
            RecoveryTarget::Name(n) => name = n.clone(),
            RecoveryTarget::Xid(x) => xid = x.to_string(),
        }
        // The unused targets first: PostgreSQL refuses a second target assigned after one
        // is set, even to '' ("multiple recovery targets specified"), but not before.
        let mut targets = [
            ("recovery_target", immediate),
            ("recovery_target_time", time),
            ("recovery_target_lsn", lsn),
            ("recovery_target_name", name),
            ("recovery_target_xid", xid),
        ];
        targets.sort_by_key(|(_, v)| !v.is_empty());
        out.extend(targets);
        let inclusive = if self.exclusive { "off" } else { "on" };
        out.push(("recovery_target_inclusive", inclusive.to_owned()));
        out.push(("recovery_target_timeline", self.timeline.to_string()));
        out.push(("recovery_target_action", self.action.to_string()));
        out.push(("archive_mode", "off".to_owned()));
        out
    }

    /// Writes `recovery.signal` and appends the settings to `postgresql.auto.conf` in the
    /// restored data directory `dir`; lines of the source's `postgresql.auto.conf` that set
    /// the same keys are commented out, and a `standby.signal` is removed (the restore
    /// recovers and promotes; it does not follow a primary). `header` is the comment above
    /// the settings.
    pub(crate) fn write(&self, dir: &Path, header: &str) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let auto = dir.join("postgresql.auto.conf");
        let keys: Vec<&str> = self.lines().iter().map(|(k, _)| *k).collect();
        let old = match std::fs::read_to_string(&auto) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let mut text = String::with_capacity(old.len() + 1024);
        for line in old.lines() {
            let key = line
                .split(['=', ' ', '\t'])
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if keys.contains(&key.as_str()) {
                text.push_str("# (replaced by pgb restore) ");
            }
            text.push_str(line);
            text.push('\n');
        }
        let _ = write!(text, "\n# {header}\n");
        for (k, v) in self.lines() {
            let _ = writeln!(text, "{k} = {}", quote_conf(&v));
        }
        let tmp = dir.join("postgresql.auto.conf.pgb-tmp");
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &auto)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(dir.join("recovery.signal"))?;
        match std::fs::remove_file(dir.join("standby.signal")) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_times_parse_with_a_zone_only() {
        let want = time::macros::datetime!(2026-05-01 12:30:00.25 UTC);
        for s in [
            "2026-05-01T14:30:00.25+02:00",
            "2026-05-01 14:30:00.25+02",
            "2026-05-01 14:30:00.25 +0200",
            "2026-05-01 12:30:00.25Z",
            "2026-05-01 12:30:00.250000 UTC",
        ] {
            assert_eq!(parse_target_time(s).unwrap(), want, "{s}");
        }
        assert_eq!(
            parse_target_time("2026-05-01 12:30:00").unwrap_err(),
            InvalidTarget::NoZone("2026-05-01 12:30:00".to_owned())
        );
        for bad in [
            "yesterday",
            "2026-05-01",
            "2026-13-01 00:00:00Z",
            "2026-05-01 12:30:00 CEST",
        ] {
            assert!(
                matches!(parse_target_time(bad), Err(InvalidTarget::Unparseable(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn settings_quote_and_reset_other_targets() {
        let s = RecoverySettings::new(
            Some("/usr/bin/pgb wal fetch %f %p --repo '/r'".to_owned()),
            RecoveryTarget::Time(time::macros::datetime!(2026-05-01 12:30:00.123456789 UTC)),
        )
        .with_exclusive(true);
        let lines = s.lines();
        assert_eq!(lines[0].1, "/usr/bin/pgb wal fetch %f %p --repo '/r'");
        assert!(lines.contains(&(
            "recovery_target_time",
            "2026-05-01 12:30:00.123456+00".to_owned()
        )));
        assert!(lines.contains(&("recovery_target_lsn", String::new())));
        assert!(lines.contains(&("recovery_target_inclusive", "off".to_owned())));
        assert!(lines.contains(&("archive_mode", "off".to_owned())));
        assert_eq!(quote_conf("it's"), "'it''s'");
        let dir = std::env::temp_dir().join(format!("pgb-recovery-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join("postgresql.auto.conf"),
            "# Do not edit\nrecovery_target_name = 'old'\nwork_mem = '8MB'\n",
        )
        .unwrap();
        std::fs::write(dir.join("standby.signal"), "").unwrap();
        s.write(&dir, "pgb restore").unwrap();
        let auto = std::fs::read_to_string(dir.join("postgresql.auto.conf")).unwrap();
        assert!(
            auto.contains("# (replaced by pgb restore) recovery_target_name = 'old'"),
            "{auto}"
        );
        assert!(auto.contains("\nwork_mem = '8MB'\n"), "{auto}");
        assert!(
            auto.contains("restore_command = '/usr/bin/pgb wal fetch %f %p --repo ''/r'''"),
            "{auto}"
        );
        assert!(dir.join("recovery.signal").exists());
        assert!(!dir.join("standby.signal").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
