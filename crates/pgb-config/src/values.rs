//! Parsers for the small value grammars of the config: durations, sizes, compression specs.

use std::fmt::Write as _;
use std::time::Duration;

/// Parses a duration: `0`, `90s`, `15m`, `26h`, `7d`, `2w`, or several (`1h30m`).
///
/// # Errors
/// A one-line reason.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let bad = || format!("invalid duration {text:?}: expected e.g. 90s, 15m, 26h, 7d, 2w or 1h30m");
    if t.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() {
        return Err(format!(
            "invalid duration {text:?}: a number needs a unit (s, m, h, d, w)"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// Formats a duration the way [`parse_duration`] reads it (`1h30m`).
pub fn format_duration(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= len {
            let _ = write!(out, "{}{unit}", s / len);
            s %= len;
        }
    }
    out
}

/// Parses a size: `1048576`, `500MB`, `10MiB`, `2GB`, `1TiB` (B, KB/KiB, MB/MiB, GB/GiB, TB/TiB).
///
/// # Errors
/// A one-line reason.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("invalid size {text:?}: expected e.g. 500MB, 10MiB or 2GB");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        // A bare letter is ambiguous (1000 or 1024?): say which.
        "k" | "m" | "g" | "t" => {
            return Err(format!(
                "invalid size {text:?}: say {num}{u}B (powers of 1000) or {num}{u}iB (powers of 1024)",
                u = unit.trim().to_ascii_uppercase()
            ));
        }
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// Checks a compression spec: `none`, `gzip[:1-9]`, `zstd[:1-19]` (the grammar of
/// `pgb_core::Compression`, which the binary parses the value into).
///
/// # Errors
/// A one-line reason.
pub fn check_compression(text: &str) -> Result<(), String> {
    let bad = || format!("invalid compression {text:?}: expected none, gzip[:1-9] or zstd[:1-19]");
    let (name, level) = match text.split_once(':') {
        Some((n, l)) => (n, Some(l.parse::<u32>().map_err(|_| bad())?)),
        None => (text, None),
    };
    let ok = match (name, level) {
        ("none", None) => true,
        ("gzip" | "gz", l) => l.is_none_or(|l| (1..=9).contains(&l)),
        ("zstd" | "zst", l) => l.is_none_or(|l| (1..=19).contains(&l)),
        _ => false,
    };
    if ok { Ok(()) } else { Err(bad()) }
}

/// Hides the password of a URL (`postgres://u:secret@h/db` -> `postgres://u:***@h/db`) and
/// any `password=` query value.
pub fn redact_url(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|kv| {
                    if kv.to_ascii_lowercase().starts_with("password=") {
                        "password=***".to_owned()
                    } else {
                        kv.to_owned()
                    }
                })
                .collect();
            format!("{path}?{}", q.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(26 * 3600)), "1d2h");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10MiB").unwrap(), 10 << 20);
        assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert!(parse_size("ten MB").is_err());
        assert!(parse_size("5XB").is_err());
        // The same grammar for a flag, a key and a variable: `kB` too, and a bare unit letter
        // refused as ambiguous with both spellings offered.
        assert_eq!(parse_size("2kB").unwrap(), 2000);
        assert_eq!(parse_size("2KiB").unwrap(), 2048);
        let e = parse_size("10M").unwrap_err();
        assert!(e.contains("10MB") && e.contains("10MiB"), "{e}");
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn compression() {
        for ok in ["none", "gzip", "gzip:9", "zstd", "zstd:19"] {
            check_compression(ok).unwrap();
        }
        for bad in ["zstd:0", "zstd:20", "gzip:10", "lz4", "none:1", "zstd:x"] {
            assert!(check_compression(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/shop"),
            "postgres://app:***@db:5432/shop"
        );
        assert_eq!(
            redact_url("postgres://app@db/shop?sslmode=require&password=x"),
            "postgres://app@db/shop?sslmode=require&password=***"
        );
        assert_eq!(redact_url("s3://bucket/prefix"), "s3://bucket/prefix");
    }
}
