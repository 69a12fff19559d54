//! Small formatting helpers shared by the renderers: times, sizes, durations, escaping.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use pgb_core::migration::MigrationHead;
use time::OffsetDateTime;

use crate::MigrationReport;
use crate::drill::DrillOutcome;

/// `2026-05-01 03:04 UTC`.
pub(crate) fn time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// `2026-05-01`.
pub(crate) fn date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

/// RFC 3339 without fractions, for machine-readable attributes.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        date(t),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// RFC 3339 as the JSON writes it (fractions kept), so that attributes equal its values.
pub(crate) fn rfc3339_exact(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| rfc3339(t))
}

/// `1.2 GiB`, `512 B`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.0} {}", UNITS[u])
    }
}

/// A duration as people write it: `850ms`, `41.2s`, `5m3s`, `2h10m`, `1d2h`.
pub(crate) fn millis(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        return format!("{:.1}s", ms as f64 / 1000.0);
    }
    secs(ms / 1000)
}

/// Seconds as people write them: `45s`, `5m3s`, `2h10m`, `1d2h`.
pub(crate) fn secs(s: u64) -> String {
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) if sec == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m{sec}s"),
        (0, _, 0) => format!("{h}h"),
        (0, _, _) => format!("{h}h{m}m"),
        (_, 0, _) => format!("{d}d"),
        _ => format!("{d}d{h}h"),
    }
}

/// `passed`, `check_failed`, `limit_exceeded`.
pub(crate) fn outcome(o: DrillOutcome) -> &'static str {
    match o {
        DrillOutcome::Passed => "passed",
        DrillOutcome::CheckFailed => "check_failed",
        DrillOutcome::LimitExceeded => "limit_exceeded",
        DrillOutcome::MigrationFailed => "migration_failed",
    }
}

/// A drill outcome for people: `passed`, `check failed`, `over a limit`.
pub(crate) fn outcome_words(o: &str) -> &str {
    match o {
        "check_failed" => "check failed",
        "limit_exceeded" => "over a limit",
        "migration_failed" => "migration check failed",
        other => other,
    }
}

/// Heads as one value (`prisma:20240501_init, flyway:3`), empty for none.
fn labels(h: &[MigrationHead]) -> String {
    h.iter()
        .map(MigrationHead::label)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A backup's migration heads as `pgb list`'s `MIGRATION` column shows them: those of
/// `database`, or for a whole server (`*`) `db=framework:head` per database; empty for none.
pub(crate) fn heads(by_db: &BTreeMap<String, Vec<MigrationHead>>, database: &str) -> String {
    if database != "*" {
        return by_db.get(database).map(|h| labels(h)).unwrap_or_default();
    }
    by_db
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(db, h)| format!("{db}={}", labels(h)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A drill's migration result in one line: `migrations: prisma:A → prisma:B, expected
/// prisma:B, passed` (before and after the `post_restore` hook); empty when it recorded none.
pub(crate) fn drill_migrations(m: &MigrationReport) -> String {
    if m.is_empty() {
        return String::new();
    }
    let or_none = |h: &[MigrationHead]| {
        if h.is_empty() {
            "none".to_owned()
        } else {
            labels(h)
        }
    };
    let mut s = format!("migrations: {}", or_none(&m.before));
    if let Some(after) = &m.after {
        let _ = write!(s, " → {}", or_none(after));
    }
    if let Some(e) = &m.expected {
        let _ = write!(s, ", expected {e}");
    }
    match m.passed {
        Some(true) => s.push_str(", passed"),
        Some(false) => s.push_str(", FAILED"),
        None => {}
    }
    s
}

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for a Markdown table cell.
pub(crate) fn md(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', " ")
        .replace('<', "&lt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_read_these() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(300 << 20), "300 MiB");
        assert_eq!(millis(850), "850ms");
        assert_eq!(millis(41_200), "41.2s");
        assert_eq!(millis(303_000), "5m3s");
        assert_eq!(secs(93_600), "1d2h");
        assert_eq!(secs(7800), "2h10m");
        assert_eq!(secs(120), "2m");
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(md("a|b\nc"), "a\\|b c");
    }

    #[test]
    fn heads_read_as_pgb_list_shows_them() {
        use pgb_core::migration::MigrationFramework;
        let prisma = |h: &str| MigrationHead::new(MigrationFramework::Prisma, h);
        let mut by_db = BTreeMap::new();
        by_db.insert("shop".to_owned(), vec![prisma("20240201_orders")]);
        assert_eq!(heads(&by_db, "shop"), "prisma:20240201_orders");
        assert_eq!(heads(&by_db, "billing"), "");
        assert_eq!(heads(&by_db, "*"), "shop=prisma:20240201_orders");
        let mut m = MigrationReport::default();
        assert_eq!(drill_migrations(&m), "");
        m.before = vec![prisma("A")];
        m.after = Some(vec![prisma("B").with_dirty(true)]);
        m.expected = Some("prisma:B".into());
        m.passed = Some(false);
        assert_eq!(
            drill_migrations(&m),
            "migrations: prisma:A → prisma:B (dirty), expected prisma:B, FAILED"
        );
    }
}
