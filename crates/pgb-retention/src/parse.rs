//! Counts and calendar spans, and the policy-text parsers the CLI reuses.

use std::fmt;
use std::str::FromStr;

use crate::RetentionError;

/// How many buckets a count rule keeps.
///
/// `N(0)` means "rule absent" (as in restic), so a policy made only of zero counts is
/// rejected as having no rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Count {
    /// Keep the newest backup of each of the N newest non-empty buckets.
    N(u32),
    /// Keep the newest backup of every bucket (and always the oldest backup).
    Unlimited,
}

impl Count {
    /// The remaining budget as the engine tracks it: `None` is unlimited.
    pub(crate) fn budget(self) -> Option<u32> {
        match self {
            Count::N(n) => Some(n),
            Count::Unlimited => None,
        }
    }

    pub(crate) fn is_active(self) -> bool {
        self != Count::N(0)
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Count::N(n) => write!(f, "{n}"),
            Count::Unlimited => f.write_str("unlimited"),
        }
    }
}

impl FromStr for Count {
    type Err = RetentionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_count(s)
    }
}

impl serde::Serialize for Count {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Count::N(n) => serializer.serialize_u32(*n),
            Count::Unlimited => serializer.serialize_str("unlimited"),
        }
    }
}

/// Parses a count rule's value: a non-negative integer or `unlimited`.
///
/// `0` parses (it switches the rule off). restic's `-1` for "unlimited" is refused with a hint,
/// because a negative count reads like a typo.
///
/// ```
/// use pgb_retention::{parse_count, Count};
/// assert_eq!(parse_count("7").unwrap(), Count::N(7));
/// assert_eq!(parse_count("unlimited").unwrap(), Count::Unlimited);
/// assert!(parse_count("-1").unwrap_err().to_string().contains("unlimited"));
/// ```
pub fn parse_count(text: &str) -> Result<Count, RetentionError> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("unlimited") {
        return Ok(Count::Unlimited);
    }
    let err = |hint: &str| RetentionError::InvalidCount {
        input: text.to_owned(),
        hint: hint.to_owned(),
    };
    if t.starts_with('-') {
        return Err(err(
            "counts cannot be negative; use `unlimited` for no limit",
        ));
    }
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("expected a whole number or `unlimited`"));
    }
    t.parse::<u32>()
        .map(Count::N)
        .map_err(|_| err("number too large; use `unlimited` for no limit"))
}

/// A calendar-aware length of time for `keep-within*` rules.
///
/// Windows are subtracted from the anchor (the newest backup) in the policy zone like Go's
/// `AddDate(-years, -months, -days)`, which restic uses: the civil date is normalised, not
/// clamped, so 03-31 minus one month is 03-02. `hours` are then subtracted as absolute time.
/// Weeks are written `w` and stored as 7 days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// Calendar years.
    pub years: u32,
    /// Calendar months.
    pub months: u32,
    /// Calendar days in the policy zone (23 or 25 hours across DST changes).
    pub days: u32,
    /// Absolute hours.
    pub hours: u32,
}

impl Span {
    /// `n` calendar years.
    #[must_use]
    pub const fn years(n: u32) -> Span {
        Span {
            years: n,
            months: 0,
            days: 0,
            hours: 0,
        }
    }

    /// `n` calendar months.
    #[must_use]
    pub const fn months(n: u32) -> Span {
        Span {
            years: 0,
            months: n,
            days: 0,
            hours: 0,
        }
    }

    /// `n` weeks, i.e. `7 * n` calendar days (saturating).
    #[must_use]
    pub const fn weeks(n: u32) -> Span {
        Span::days(n.saturating_mul(7))
    }

    /// `n` calendar days.
    #[must_use]
    pub const fn days(n: u32) -> Span {
        Span {
            years: 0,
            months: 0,
            days: n,
            hours: 0,
        }
    }

    /// `n` absolute hours.
    #[must_use]
    pub const fn hours(n: u32) -> Span {
        Span {
            years: 0,
            months: 0,
            days: 0,
            hours: n,
        }
    }

    /// Whether every component is zero.
    #[must_use]
    pub const fn is_zero(&self) -> bool {
        self.years == 0 && self.months == 0 && self.days == 0 && self.hours == 0
    }
}

/// Prints the canonical form `parse_span` accepts, e.g. `1y6mo`, `14d`, `36h`.
impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0d");
        }
        for (n, unit) in [
            (self.years, "y"),
            (self.months, "mo"),
            (self.days, "d"),
            (self.hours, "h"),
        ] {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for Span {
    type Err = RetentionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_span(s)
    }
}

impl serde::Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Parses a `keep-within*` duration: one or more `<number><unit>` parts with units `h`, `d`,
/// `w` (7 days), `mo` and `y`, e.g. `14d`, `36h`, `2w`, `6mo`, `1y`, `1y6mo`.
///
/// A bare `m` is refused: it means months in restic, minutes in rustic and 31 days in borg.
/// The result must be longer than zero.
///
/// ```
/// use pgb_retention::{parse_span, Span};
/// assert_eq!(parse_span("14d").unwrap(), Span::days(14));
/// assert_eq!(parse_span("1y6mo").unwrap(), Span { years: 1, months: 6, ..Span::default() });
/// let err = parse_span("6m").unwrap_err().to_string();
/// assert!(err.contains("use `mo` for months"));
/// ```
pub fn parse_span(text: &str) -> Result<Span, RetentionError> {
    let err = |hint: String| RetentionError::InvalidSpan {
        input: text.to_owned(),
        hint,
    };
    let t = text.trim();
    if t.is_empty() {
        return Err(err(
            "expected e.g. `14d`, `36h`, `2w`, `6mo` or `1y6mo`".to_owned()
        ));
    }
    let mut span = Span::default();
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err(format!(
                "expected a number before `{rest}`; write e.g. `14d` or `1y6mo`"
            )));
        }
        let n: u32 = rest[..digits]
            .parse()
            .map_err(|_| err("number too large".to_owned()))?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = rest[..letters].to_ascii_lowercase();
        rest = &rest[letters..];
        let (slot, add) = match unit.as_str() {
            "y" => (&mut span.years, n),
            "mo" => (&mut span.months, n),
            "w" => (
                &mut span.days,
                n.checked_mul(7)
                    .ok_or_else(|| err("number too large".to_owned()))?,
            ),
            "d" => (&mut span.days, n),
            "h" => (&mut span.hours, n),
            "" => {
                return Err(err(
                    "missing unit; use `h`, `d`, `w`, `mo` or `y` (e.g. `14d`)".to_owned(),
                ));
            }
            "m" | "min" | "mins" | "minute" | "minutes" => {
                return Err(err(
                    "`m` is ambiguous: use `mo` for months (or `h` for hours; minutes are not \
                     supported)"
                        .to_owned(),
                ));
            }
            other => {
                return Err(err(format!(
                    "unknown unit `{other}`; use `h`, `d`, `w`, `mo` or `y`"
                )));
            }
        };
        *slot = slot
            .checked_add(add)
            .ok_or_else(|| err("number too large".to_owned()))?;
    }
    if span.is_zero() {
        return Err(err("the duration must be longer than zero".to_owned()));
    }
    Ok(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(parse_count("7"), Ok(Count::N(7)));
        assert_eq!(parse_count("0"), Ok(Count::N(0)));
        assert_eq!(parse_count(" 12 "), Ok(Count::N(12)));
        assert_eq!(parse_count("unlimited"), Ok(Count::Unlimited));
        assert_eq!(parse_count("Unlimited"), Ok(Count::Unlimited));
        for bad in ["", "-1", "7d", "x", "99999999999"] {
            assert!(
                matches!(parse_count(bad), Err(RetentionError::InvalidCount { .. })),
                "{bad}"
            );
        }
        assert!(
            parse_count("-1")
                .unwrap_err()
                .to_string()
                .contains("`unlimited`")
        );
        assert_eq!("3".parse::<Count>(), Ok(Count::N(3)));
        assert_eq!(Count::Unlimited.to_string(), "unlimited");
    }

    #[test]
    fn spans() {
        let s = |y, mo, d, h| Span {
            years: y,
            months: mo,
            days: d,
            hours: h,
        };
        assert_eq!(parse_span("14d"), Ok(s(0, 0, 14, 0)));
        assert_eq!(parse_span("36h"), Ok(s(0, 0, 0, 36)));
        assert_eq!(parse_span("2w"), Ok(s(0, 0, 14, 0)));
        assert_eq!(parse_span("6mo"), Ok(s(0, 6, 0, 0)));
        assert_eq!(parse_span("1y"), Ok(s(1, 0, 0, 0)));
        assert_eq!(parse_span("1y6mo"), Ok(s(1, 6, 0, 0)));
        assert_eq!(parse_span("1y2mo3d4h"), Ok(s(1, 2, 3, 4)));
        assert_eq!(parse_span("1w2d"), Ok(s(0, 0, 9, 0)));
        assert_eq!(parse_span("1D"), Ok(s(0, 0, 1, 0)));
    }

    #[test]
    fn bare_m_is_rejected_with_a_hint() {
        for bad in ["6m", "1y6m", "30min"] {
            let msg = parse_span(bad).unwrap_err().to_string();
            assert!(
                msg.contains("use `mo` for months (or `h` for hours; minutes are not supported)"),
                "{bad}: {msg}"
            );
        }
    }

    #[test]
    fn bad_spans() {
        for bad in [
            "",
            "14",
            "d",
            "0d",
            "0h0d",
            "14x",
            "1.5d",
            "-1d",
            "99999999999d",
            "1 d",
        ] {
            assert!(
                matches!(parse_span(bad), Err(RetentionError::InvalidSpan { .. })),
                "{bad}"
            );
        }
        assert!(
            parse_span("14")
                .unwrap_err()
                .to_string()
                .contains("missing unit")
        );
        assert!(
            parse_span("0d")
                .unwrap_err()
                .to_string()
                .contains("longer than zero")
        );
    }

    #[test]
    fn display_round_trips() {
        for text in ["14d", "36h", "6mo", "1y", "1y6mo", "1y2mo3d4h"] {
            let span = parse_span(text).unwrap();
            assert_eq!(span.to_string(), text);
            assert_eq!(span.to_string().parse::<Span>(), Ok(span));
        }
        assert_eq!(Span::weeks(2).to_string(), "14d");
    }
}
