//! WAL page headers, and checking that a segment file is the segment its name says.
//!
//! Every page (`XLOG_BLCKSZ`, 8 KiB by default) of a segment starts with
//! `XLogPageHeaderData` (24 bytes once aligned); the first page of a segment with
//! `XLogLongPageHeaderData` (40 bytes): the short header, then the system identifier, the
//! segment size and the page size. Fields are little-endian (the byte order of every platform
//! pgb supports; PostgreSQL writes its own).
//!
//! The magic number is the WAL format version: PostgreSQL bumps it whenever the format of a
//! record changes, once per major version at most.

use crate::names::{Lsn, TimelineId, WalFileKind, WalFileName};

/// Size of a short page header (`SizeOfXLogShortPHD`, MAXALIGNed).
pub(crate) const SHORT_PAGE_HEADER_SIZE: usize = 24;
/// Size of a long page header (`SizeOfXLogLongPHD`, MAXALIGNed).
pub(crate) const LONG_PAGE_HEADER_SIZE: usize = 40;

/// `xlp_info`: the page starts with the rest of a record begun on an earlier page.
pub const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;
/// `xlp_info`: the page has a long header (the first page of a segment).
pub const XLP_LONG_HEADER: u16 = 0x0002;
/// `xlp_info`: a record that was cut short (its continuation never written before a crash)
/// was abandoned; the page starts a new record instead of continuing it.
pub const XLP_FIRST_IS_OVERWRITE_CONTRECORD: u16 = 0x0008;
/// `xlp_info` bits PostgreSQL defines (0x0004, `XLP_BKP_REMOVABLE`, is unused since 9.5).
const XLP_ALL_FLAGS: u16 = 0x000F;

/// The WAL format magic of each PostgreSQL major version whose records pgb reads
/// (`XLOG_PAGE_MAGIC` in `src/include/access/xlog_internal.h`). 15 and 17 are checked
/// against real servers by `tests/real_wal.rs`; 16 and 18 come from the source of those
/// releases.
pub const KNOWN_MAGICS: &[(u16, u32)] = &[(0xD110, 15), (0xD113, 16), (0xD116, 17), (0xD118, 18)];

/// The lowest and highest magic numbers accepted as PostgreSQL WAL at all: 0xD101 is
/// PostgreSQL 12; 0xD1FF leaves room for many majors to come (the magic grows by a few per
/// major). Outside this range the file is not WAL pgb understands.
const MAGIC_RANGE: std::ops::RangeInclusive<u16> = 0xD101..=0xD1FF;

/// The PostgreSQL major version writing WAL with this magic, if it is one pgb knows.
pub fn pg_major_of_magic(magic: u16) -> Option<u32> {
    KNOWN_MAGICS
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, major)| *major)
}

/// A page header as read (short or long).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageHeader {
    pub(crate) magic: u16,
    pub(crate) info: u16,
    pub(crate) timeline: TimelineId,
    pub(crate) page_address: Lsn,
    pub(crate) rem_len: u32,
    /// (system identifier, segment size, block size) for a long header.
    pub(crate) long: Option<(u64, u32, u32)>,
}

impl PageHeader {
    /// Reads the header at the start of `page` (at least a short header's bytes; a long one's
    /// when the long flag is set). `None` when too short.
    pub(crate) fn read(page: &[u8]) -> Option<Self> {
        let u16_at = |o: usize| u16::from_le_bytes([page[o], page[o + 1]]);
        if page.len() < SHORT_PAGE_HEADER_SIZE {
            return None;
        }
        let info = u16_at(2);
        let long = if info & XLP_LONG_HEADER != 0 {
            if page.len() < LONG_PAGE_HEADER_SIZE {
                return None;
            }
            Some((u64_at(page, 24), u32_at(page, 32), u32_at(page, 36)))
        } else {
            None
        };
        Some(Self {
            magic: u16_at(0),
            info,
            timeline: u32_at(page, 4),
            page_address: Lsn(u64_at(page, 8)),
            rem_len: u32_at(page, 16),
            long,
        })
    }

    /// The header's size: where the page's data begins.
    pub(crate) fn size(&self) -> usize {
        if self.long.is_some() {
            LONG_PAGE_HEADER_SIZE
        } else {
            SHORT_PAGE_HEADER_SIZE
        }
    }

    pub(crate) fn has_unknown_flags(&self) -> bool {
        self.info & !XLP_ALL_FLAGS != 0
    }
}

pub(crate) fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

pub(crate) fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// The long header of a segment's first page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// `xlp_magic`: the WAL format version.
    pub magic: u16,
    /// The PostgreSQL major version of that magic, `None` for a magic pgb does not know (a
    /// newer release, or one older than 15): the header layout is the same, but pgb does not
    /// read such records (see [`crate::scan_segment`]).
    pub pg_major: Option<u32>,
    /// `xlp_info` flag bits.
    pub info: u16,
    /// `xlp_tli`: the timeline that wrote the page. The first segment of a new timeline
    /// begins with a copy of its parent's WAL up to the fork, so its first page may carry the
    /// parent's (lower) timeline.
    pub timeline: TimelineId,
    /// `xlp_pageaddr`: the LSN of the page, the segment's start.
    pub page_address: Lsn,
    /// `xlp_rem_len`: the bytes of a record begun in the previous segment that open this one.
    pub rem_len: u32,
    /// `xlp_sysid`: the cluster's system identifier.
    pub system_identifier: u64,
    /// `xlp_seg_size`: the segment size (`initdb --wal-segsize`, 16 MiB by default).
    pub segment_size: u32,
    /// `xlp_xlog_blcksz`: the WAL page size (8 KiB unless compiled otherwise).
    pub block_size: u32,
    /// Whether the long-header flag is set (always, for a header that parsed).
    pub long: bool,
}

impl SegmentHeader {
    /// Reads and sanity-checks the long header at the start of `bytes` (a segment's first
    /// page): the long flag, a PostgreSQL WAL magic, a segment size that is a power of two
    /// from 1 MiB to 1 GiB, a page size that is a power of two from 1 to 64 KiB, and a page
    /// address at a segment boundary.
    pub fn parse(bytes: &[u8]) -> Result<Self, SegmentProblem> {
        let h = PageHeader::read(bytes).ok_or(SegmentProblem::TooShort { len: bytes.len() })?;
        if !MAGIC_RANGE.contains(&h.magic) {
            return Err(SegmentProblem::NotWal { magic: h.magic });
        }
        let Some((system_identifier, segment_size, block_size)) = h.long else {
            return Err(SegmentProblem::NotLongHeader { info: h.info });
        };
        if h.has_unknown_flags() {
            return Err(SegmentProblem::UnknownFlags { info: h.info });
        }
        if !segment_size.is_power_of_two() || !(1 << 20..=1 << 30).contains(&segment_size) {
            return Err(SegmentProblem::BadSegmentSize { segment_size });
        }
        if !block_size.is_power_of_two() || !(1 << 10..=1 << 16).contains(&block_size) {
            return Err(SegmentProblem::BadBlockSize { block_size });
        }
        if h.page_address.0 % u64::from(segment_size) != 0 {
            return Err(SegmentProblem::NotSegmentStart {
                page_address: h.page_address,
            });
        }
        Ok(Self {
            magic: h.magic,
            pg_major: pg_major_of_magic(h.magic),
            info: h.info,
            timeline: h.timeline,
            page_address: h.page_address,
            rem_len: h.rem_len,
            system_identifier,
            segment_size,
            block_size,
            long: true,
        })
    }

    /// Whether the segment opens with the end of a record begun in the previous one.
    pub fn starts_with_continuation(&self) -> bool {
        self.info & XLP_FIRST_IS_CONTRECORD != 0
    }
}

/// Why a file is not the WAL segment its name says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentProblem {
    /// Fewer bytes than a long page header.
    #[error("{len} bytes is too short for a WAL segment's first page header (40 bytes)")]
    TooShort {
        /// The file's length.
        len: usize,
    },
    /// The magic number is not PostgreSQL WAL's.
    #[error(
        "magic number {magic:#06X} is not PostgreSQL WAL (expected 0xD101 to 0xD1FF; PostgreSQL 15 writes 0xD110, 17 writes 0xD116)"
    )]
    NotWal {
        /// `xlp_magic` as found.
        magic: u16,
    },
    /// The first page lacks the long header every segment starts with.
    #[error(
        "the first page has no long header (xlp_info {info:#06X}): not the start of a WAL segment"
    )]
    NotLongHeader {
        /// `xlp_info` as found.
        info: u16,
    },
    /// Flag bits PostgreSQL never sets.
    #[error("the first page has unknown flag bits (xlp_info {info:#06X})")]
    UnknownFlags {
        /// `xlp_info` as found.
        info: u16,
    },
    /// A segment size PostgreSQL cannot have.
    #[error("segment size {segment_size} in the header is not a power of two from 1 MiB to 1 GiB")]
    BadSegmentSize {
        /// `xlp_seg_size` as found.
        segment_size: u32,
    },
    /// A page size PostgreSQL cannot have.
    #[error("WAL page size {block_size} in the header is not a power of two from 1 to 64 KiB")]
    BadBlockSize {
        /// `xlp_xlog_blcksz` as found.
        block_size: u32,
    },
    /// The page address is not a segment boundary.
    #[error("the first page's address {page_address} is not the start of a segment")]
    NotSegmentStart {
        /// `xlp_pageaddr` as found.
        page_address: Lsn,
    },
    /// The name is not a segment's (a history or backup history file).
    #[error("{name} names a {kind:?} file, not a WAL segment")]
    NotASegmentName {
        /// The name given.
        name: String,
        /// Its kind.
        kind: WalFileKind,
    },
    /// The file is not as long as the segment size its header states.
    #[error("the file has {len} bytes; its header says segments have {segment_size}")]
    WrongLength {
        /// The file's length.
        len: usize,
        /// `xlp_seg_size`.
        segment_size: u32,
    },
    /// The header's page address is another segment's: the file was renamed or recycled.
    #[error("the header says this segment starts at {found}, but {name} starts at {expected}")]
    WrongPageAddress {
        /// The name checked against.
        name: String,
        /// `xlp_pageaddr`.
        found: Lsn,
        /// The start LSN of the named segment.
        expected: Lsn,
    },
    /// The header's timeline is newer than the name's, or zero.
    #[error("the header says timeline {found}, which cannot begin {name} (timeline {expected})")]
    WrongTimeline {
        /// The name checked against.
        name: String,
        /// `xlp_tli`.
        found: TimelineId,
        /// The name's timeline.
        expected: TimelineId,
    },
}

/// Checks that `bytes` is the whole WAL segment `expected_name` (a segment or `.partial`
/// name): its first page has a long header with a PostgreSQL WAL magic, its page address is
/// the start of the named segment, its timeline is the name's or an ancestor's (at most the
/// name's: a new timeline's first segment starts with a copy of the parent's WAL, pages and
/// headers included), and the file is exactly the segment size its header states.
///
/// A magic pgb does not know (a newer PostgreSQL) is accepted: the header layout has not
/// changed since 9.3, and refusing would stop the archiving of a server pgb will learn to
/// read later; [`SegmentHeader::pg_major`] is then `None`, for the caller to warn about.
pub fn check_segment(
    bytes: &[u8],
    expected_name: &WalFileName,
) -> Result<SegmentHeader, SegmentProblem> {
    if !matches!(
        expected_name.kind(),
        WalFileKind::Segment | WalFileKind::Partial
    ) {
        return Err(SegmentProblem::NotASegmentName {
            name: expected_name.to_string(),
            kind: expected_name.kind(),
        });
    }
    let h = SegmentHeader::parse(bytes)?;
    if bytes.len() != h.segment_size as usize {
        return Err(SegmentProblem::WrongLength {
            len: bytes.len(),
            segment_size: h.segment_size,
        });
    }
    let expected = expected_name
        .start_lsn(u64::from(h.segment_size))
        .unwrap_or_default();
    if h.page_address != expected {
        return Err(SegmentProblem::WrongPageAddress {
            name: expected_name.to_string(),
            found: h.page_address,
            expected,
        });
    }
    if h.timeline == 0 || h.timeline > expected_name.timeline() {
        return Err(SegmentProblem::WrongTimeline {
            name: expected_name.to_string(),
            found: h.timeline,
            expected: expected_name.timeline(),
        });
    }
    Ok(h)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SEG: u32 = 1 << 20;

    /// A long page header for a segment at `addr`.
    pub(crate) fn long_header(magic: u16, info: u16, tli: u32, addr: u64, seg: u32) -> Vec<u8> {
        let mut h = Vec::with_capacity(LONG_PAGE_HEADER_SIZE);
        h.extend_from_slice(&magic.to_le_bytes());
        h.extend_from_slice(&(info | XLP_LONG_HEADER).to_le_bytes());
        h.extend_from_slice(&tli.to_le_bytes());
        h.extend_from_slice(&addr.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&[0; 4]);
        h.extend_from_slice(&0x1234_5678_9ABC_DEF0u64.to_le_bytes());
        h.extend_from_slice(&seg.to_le_bytes());
        h.extend_from_slice(&8192u32.to_le_bytes());
        h
    }

    fn segment(magic: u16, tli: u32, addr: u64) -> Vec<u8> {
        let mut s = long_header(magic, 0, tli, addr, SEG);
        s.resize(SEG as usize, 0);
        s
    }

    fn name(s: &str) -> WalFileName {
        s.parse().unwrap()
    }

    #[test]
    fn a_segment_checks_against_its_name() {
        let seg = segment(0xD116, 2, 5 * u64::from(SEG));
        let h = check_segment(&seg, &name("000000020000000000000005")).unwrap();
        assert_eq!(h.pg_major, Some(17));
        assert_eq!(h.timeline, 2);
        assert_eq!(h.page_address, Lsn(5 * u64::from(SEG)));
        assert_eq!(h.system_identifier, 0x1234_5678_9ABC_DEF0);
        assert_eq!((h.segment_size, h.block_size, h.long), (SEG, 8192, true));
        assert!(!h.starts_with_continuation());
        // A partial segment, and a first page still carrying the parent's timeline.
        check_segment(&seg, &name("000000020000000000000005.partial")).unwrap();
        check_segment(&seg, &name("000000030000000000000005")).unwrap();
    }

    #[test]
    fn each_mismatch_is_named() {
        let seg = segment(0xD110, 2, 5 * u64::from(SEG));
        let err = check_segment(&seg, &name("000000020000000000000006")).unwrap_err();
        assert!(
            matches!(err, SegmentProblem::WrongPageAddress { .. }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "the header says this segment starts at 0/500000, but 000000020000000000000006 \
             starts at 0/600000"
        );
        let err = check_segment(&seg, &name("000000010000000000000005")).unwrap_err();
        assert!(matches!(
            err,
            SegmentProblem::WrongTimeline {
                found: 2,
                expected: 1,
                ..
            }
        ));
        let err =
            check_segment(&seg[..SEG as usize - 1], &name("000000020000000000000005")).unwrap_err();
        assert!(matches!(err, SegmentProblem::WrongLength { .. }), "{err}");
        let err = check_segment(&seg, &name("00000002.history")).unwrap_err();
        assert!(
            matches!(err, SegmentProblem::NotASegmentName { .. }),
            "{err}"
        );
        let err = check_segment(&seg[..30], &name("000000020000000000000005")).unwrap_err();
        assert!(matches!(err, SegmentProblem::TooShort { len: 30 }), "{err}");
        let zeros = vec![0u8; SEG as usize];
        let err = check_segment(&zeros, &name("000000020000000000000005")).unwrap_err();
        assert!(matches!(err, SegmentProblem::NotWal { magic: 0 }), "{err}");
        let mut short = seg.clone();
        short[2] &= !(XLP_LONG_HEADER as u8);
        let err = check_segment(&short, &name("000000020000000000000005")).unwrap_err();
        assert!(matches!(err, SegmentProblem::NotLongHeader { .. }), "{err}");
        let mut odd = seg.clone();
        odd[32..36].copy_from_slice(&3_000_000u32.to_le_bytes());
        let err = check_segment(&odd, &name("000000020000000000000005")).unwrap_err();
        assert!(
            matches!(err, SegmentProblem::BadSegmentSize { .. }),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_newer_magic_is_accepted_without_a_version() {
        let seg = segment(0xD11F, 1, 0);
        let h = check_segment(&seg, &name("000000010000000000000000")).unwrap();
        assert_eq!((h.magic, h.pg_major), (0xD11F, None));
        assert_eq!(pg_major_of_magic(0xD110), Some(15));
        assert_eq!(pg_major_of_magic(0xD118), Some(18));
    }
}
