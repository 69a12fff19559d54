//! LSNs and WAL file names.

use std::fmt;
use std::str::FromStr;

/// A timeline id (`1` for a fresh cluster; each promotion after a point-in-time recovery
/// starts the next).
pub type TimelineId = u32;

/// A log sequence number: a byte position in the write-ahead log, written `X/Y` (two
/// hexadecimal halves of 32 bits), as PostgreSQL prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

/// Text that is not an LSN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an LSN: expected two hexadecimal numbers separated by '/', e.g. 0/1A2B3C4")]
pub struct InvalidLsn(String);

impl Lsn {
    /// The segment number holding this position, for segments of `segment_size` bytes.
    pub fn segment(self, segment_size: u64) -> u64 {
        self.0 / segment_size
    }

    /// The offset of this position inside its segment.
    pub fn segment_offset(self, segment_size: u64) -> u64 {
        self.0 % segment_size
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = InvalidLsn;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidLsn(s.to_owned());
        let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
        let half = |h: &str| {
            if h.is_empty() || h.len() > 8 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            u32::from_str_radix(h, 16).map_err(|_| bad())
        };
        Ok(Lsn((u64::from(half(hi)?) << 32) | u64::from(half(lo)?)))
    }
}

impl serde::Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a file in `pg_wal` (or in the archive) is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WalFileKind {
    /// A complete segment, `000000010000000A000000FF`.
    Segment,
    /// The last, incomplete segment of a timeline, archived at promotion or by a streaming
    /// receiver: `000000010000000A000000FF.partial`.
    Partial,
    /// A backup history file, `000000010000000A000000FF.00000028.backup`: written by
    /// `pg_backup_stop`, names the start and stop positions of a base backup.
    BackupHistory,
    /// A timeline history file, `00000002.history`: where each ancestor timeline forked.
    TimelineHistory,
}

/// The name of a file the archiver hands over, parsed. Every form is 8 hexadecimal digits
/// of timeline first; segments continue with 8 digits of "log" (the high 32 bits of the
/// segment's start) and 8 of segment number within that log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WalFileName {
    name: String,
    kind: WalFileKind,
    timeline: TimelineId,
    /// For segment-based kinds: the segment number counted from LSN 0 (`log * segments per
    /// log + seg`), which needs the segment size, so the two raw halves are kept instead.
    log: u32,
    seg: u32,
}

/// A file name that is none of the WAL file forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a WAL file name: expected a segment (24 hexadecimal digits), a .partial \
     segment, a .backup history file or a TTTTTTTT.history timeline file"
)]
pub struct InvalidWalFileName(String);

fn hex8(s: &str) -> Option<u32> {
    if s.len() == 8
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    {
        u32::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

impl WalFileName {
    /// The segment of `timeline` holding `lsn`.
    pub fn segment_of(timeline: TimelineId, lsn: Lsn, segment_size: u64) -> Self {
        Self::segment(timeline, lsn.segment(segment_size), segment_size)
    }

    /// Segment number `segno` (counted from LSN 0) of `timeline`.
    pub fn segment(timeline: TimelineId, segno: u64, segment_size: u64) -> Self {
        let per_log = segments_per_log(segment_size);
        let log = (segno / per_log) as u32;
        let seg = (segno % per_log) as u32;
        Self {
            name: format!("{timeline:08X}{log:08X}{seg:08X}"),
            kind: WalFileKind::Segment,
            timeline,
            log,
            seg,
        }
    }

    /// The history file of `timeline`.
    pub fn history(timeline: TimelineId) -> Self {
        Self {
            name: format!("{timeline:08X}.history"),
            kind: WalFileKind::TimelineHistory,
            timeline,
            log: 0,
            seg: 0,
        }
    }

    /// The name as PostgreSQL writes it.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// What kind of file it is.
    pub fn kind(&self) -> WalFileKind {
        self.kind
    }

    /// Its timeline.
    pub fn timeline(&self) -> TimelineId {
        self.timeline
    }

    /// For segments, partial segments and backup history files: the segment number counted
    /// from LSN 0 for segments of `segment_size` bytes; `None` for a timeline history file.
    pub fn segment_number(&self, segment_size: u64) -> Option<u64> {
        match self.kind {
            WalFileKind::TimelineHistory => None,
            _ => Some(u64::from(self.log) * segments_per_log(segment_size) + u64::from(self.seg)),
        }
    }

    /// The first LSN of the segment (segment-based kinds only).
    pub fn start_lsn(&self, segment_size: u64) -> Option<Lsn> {
        self.segment_number(segment_size)
            .map(|n| Lsn(n * segment_size))
    }

    /// The next segment on the same timeline (segment-based kinds only).
    pub fn next_segment(&self, segment_size: u64) -> Option<Self> {
        self.segment_number(segment_size)
            .map(|n| Self::segment(self.timeline, n + 1, segment_size))
    }

    /// The 24-digit segment name a partial segment or backup history file belongs to.
    pub fn segment_name(&self) -> Option<&str> {
        match self.kind {
            WalFileKind::TimelineHistory => None,
            _ => Some(&self.name[..24]),
        }
    }
}

/// Segments per "log" (4 GiB of WAL): the low half of a segment name counts up to this.
fn segments_per_log(segment_size: u64) -> u64 {
    0x1_0000_0000 / segment_size.max(1)
}

impl FromStr for WalFileName {
    type Err = InvalidWalFileName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidWalFileName(s.to_owned());
        if let Some(tli) = s.strip_suffix(".history") {
            let timeline = hex8(tli).ok_or_else(bad)?;
            return Ok(Self::history(timeline));
        }
        if s.len() < 24 || !s.is_char_boundary(24) {
            return Err(bad());
        }
        let (segment, rest) = s.split_at(24);
        let timeline = hex8(&segment[..8]).ok_or_else(bad)?;
        let log = hex8(&segment[8..16]).ok_or_else(bad)?;
        let seg = hex8(&segment[16..24]).ok_or_else(bad)?;
        let kind = match rest {
            "" => WalFileKind::Segment,
            ".partial" => WalFileKind::Partial,
            r if r.len() == 16
                && r.ends_with(".backup")
                && hex8(&r[1..9]).is_some()
                && r.starts_with('.') =>
            {
                WalFileKind::BackupHistory
            }
            _ => return Err(bad()),
        };
        if timeline == 0 {
            return Err(bad());
        }
        Ok(Self {
            name: s.to_owned(),
            kind,
            timeline,
            log,
            seg,
        })
    }
}

impl fmt::Display for WalFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 16 * 1024 * 1024;

    #[test]
    fn lsn_round_trips_as_postgres_prints_it() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn.0, 0x16_B374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!("0/0".parse::<Lsn>().unwrap(), Lsn(0));
        for bad in ["", "0", "/1", "1/", "G/1", "123456789/0", "1/2/3", " 0/1"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn segment_names_follow_postgres_arithmetic() {
        // 0/3000028 with 16 MiB segments is segment 3 of log 0.
        let lsn: Lsn = "0/3000028".parse().unwrap();
        let f = WalFileName::segment_of(1, lsn, SEG);
        assert_eq!(f.as_str(), "000000010000000000000003");
        // Segment 0x100 of 16 MiB is the first of log 1.
        let f = WalFileName::segment(2, 256, SEG);
        assert_eq!(f.as_str(), "000000020000000100000000");
        assert_eq!(f.segment_number(SEG), Some(256));
        assert_eq!(f.start_lsn(SEG).unwrap().to_string(), "1/0");
        let last = WalFileName::segment(1, 255, SEG);
        assert_eq!(last.as_str(), "0000000100000000000000FF");
        assert_eq!(
            last.next_segment(SEG).unwrap().as_str(),
            "000000010000000100000000"
        );
        // 1 GiB segments: four per log.
        let big = WalFileName::segment(1, 5, 1 << 30);
        assert_eq!(big.as_str(), "000000010000000100000001");
    }

    #[test]
    fn every_archived_file_form_parses_and_others_do_not() {
        let s: WalFileName = "00000002000000AB000000CD".parse().unwrap();
        assert_eq!((s.kind(), s.timeline()), (WalFileKind::Segment, 2));
        let p: WalFileName = "000000010000000000000007.partial".parse().unwrap();
        assert_eq!(p.kind(), WalFileKind::Partial);
        assert_eq!(p.segment_name(), Some("000000010000000000000007"));
        let b: WalFileName = "000000010000000000000002.00000028.backup".parse().unwrap();
        assert_eq!(b.kind(), WalFileKind::BackupHistory);
        assert_eq!(b.segment_number(SEG), Some(2));
        let h: WalFileName = "0000000A.history".parse().unwrap();
        assert_eq!((h.kind(), h.timeline()), (WalFileKind::TimelineHistory, 10));
        assert_eq!(h.segment_number(SEG), None);
        for bad in [
            "RECOVERYXLOG",
            "00000001000000000000000",
            "0000000100000000000000001",
            "000000010000000000000001.tmp",
            "00000000000000000000000A",
            "0000000g0000000000000001",
            "00000001.HISTORY",
            "../00000001.history",
            "000000010000000000000002.0000002.backup",
        ] {
            assert!(bad.parse::<WalFileName>().is_err(), "{bad:?}");
        }
    }
}
