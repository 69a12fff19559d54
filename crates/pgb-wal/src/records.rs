//! Reading the records of WAL segments for what point-in-time recovery needs: transaction
//! commits and aborts (their xid and time: `recovery_target_xid`, `recovery_target_time`),
//! restore points (`recovery_target_name`), WAL switches, and where the valid WAL ends.
//!
//! The framing follows PostgreSQL's `xlogreader.c`: records start MAXALIGNed (8 bytes), each
//! page begins with a page header, a record longer than what is left of its page continues
//! on the next pages (each flagged `XLP_FIRST_IS_CONTRECORD`, with `xlp_rem_len` saying how
//! much is left), and a record is believed only once its CRC-32C matches and its `xl_prev`
//! points at the record before it. The valid WAL ends at the first record that fails: a zero
//! length (the zeroed rest of the last page written), a page whose address is another
//! segment's (a recycled segment still holding old WAL), a bad checksum or a broken back link.
//! That is not an error: every segment a server is still writing, or a `.partial` one, ends
//! that way.

use crate::crc::Crc32c;
use crate::header::{
    PageHeader, SegmentHeader, SegmentProblem, XLP_FIRST_IS_CONTRECORD,
    XLP_FIRST_IS_OVERWRITE_CONTRECORD, u32_at, u64_at,
};
use crate::names::{Lsn, TimelineId};

/// `SizeOfXLogRecord`: `xl_tot_len` u32, `xl_xid` u32, `xl_prev` u64, `xl_info` u8,
/// `xl_rmid` u8, 2 bytes of padding, `xl_crc` u32.
const RECORD_HEADER_SIZE: usize = 24;
/// The offset of `xl_crc` (the CRC covers the header up to it).
const CRC_OFFSET: usize = 20;
/// No record is longer (`XLogRecordMaxSize` is 1020 MiB); a longer `xl_tot_len` is garbage.
const MAX_RECORD_LEN: u32 = 1 << 30;

const RM_XLOG_ID: u8 = 0;
const RM_XACT_ID: u8 = 1;
const XLOG_SWITCH: u8 = 0x40;
const XLOG_RESTORE_POINT: u8 = 0x70;
const XLOG_XACT_OPMASK: u8 = 0x70;
const XLOG_XACT_HAS_INFO: u8 = 0x80;

const XLR_MAX_BLOCK_ID: u8 = 32;
const XLR_BLOCK_ID_DATA_SHORT: u8 = 255;
const XLR_BLOCK_ID_DATA_LONG: u8 = 254;
const XLR_BLOCK_ID_ORIGIN: u8 = 253;
const XLR_BLOCK_ID_TOPLEVEL_XID: u8 = 252;
const BKPBLOCK_HAS_IMAGE: u8 = 0x10;
const BKPBLOCK_HAS_DATA: u8 = 0x20;
const BKPBLOCK_SAME_REL: u8 = 0x80;
const BKPIMAGE_HAS_HOLE: u8 = 0x01;
/// PostgreSQL 15+: `BKPIMAGE_COMPRESS_PGLZ | _LZ4 | _ZSTD`.
const BKPIMAGE_COMPRESSED: u8 = 0x04 | 0x08 | 0x10;
/// `sizeof(RelFileLocator)`: spcOid, dbOid, relNumber.
const REL_FILE_LOCATOR_SIZE: usize = 12;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC).
pub const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// A PostgreSQL `TimestampTz` (microseconds since 2000-01-01 00:00:00 UTC) as microseconds
/// since the Unix epoch.
pub fn pg_time_to_unix_micros(pg_micros: i64) -> i64 {
    pg_micros.saturating_add(PG_EPOCH_UNIX_MICROS)
}

/// Microseconds since the Unix epoch as a PostgreSQL `TimestampTz`.
pub fn unix_micros_to_pg_time(unix_micros: i64) -> i64 {
    unix_micros.saturating_sub(PG_EPOCH_UNIX_MICROS)
}

/// What ended a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum XactKind {
    /// `XLOG_XACT_COMMIT`.
    Commit,
    /// `XLOG_XACT_ABORT`.
    Abort,
    /// `XLOG_XACT_COMMIT_PREPARED` (`COMMIT PREPARED`).
    CommitPrepared,
    /// `XLOG_XACT_ABORT_PREPARED` (`ROLLBACK PREPARED`).
    AbortPrepared,
}

impl XactKind {
    /// Whether the transaction committed (its changes are visible after the record).
    pub fn is_commit(self) -> bool {
        matches!(self, Self::Commit | Self::CommitPrepared)
    }
}

/// A transaction's commit or abort record: the records `recovery_target_time` and
/// `recovery_target_xid` stop at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct XactRecord {
    /// Where the record starts.
    pub lsn: Lsn,
    /// Where it ends: the position after it and its alignment padding, where the next record
    /// starts (PostgreSQL's `EndRecPtr`, what `pg_current_wal_insert_lsn()` says right after it).
    pub end: Lsn,
    /// Commit or abort, plain or of a prepared transaction.
    pub kind: XactKind,
    /// The top-level transaction id: `xl_xid`, or for a prepared transaction the xid it
    /// was prepared as (the record's own `xl_xid` is the committing session's, usually 0).
    pub xid: u32,
    /// The commit or abort time (`xact_time`): microseconds since 2000-01-01 UTC
    /// ([`pg_time_to_unix_micros`] converts).
    pub timestamp: i64,
}

/// A restore point (`pg_create_restore_point(name)`): what `recovery_target_name` stops at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RestorePoint {
    /// Where the record starts.
    pub lsn: Lsn,
    /// Where it ends, as for [`XactRecord::end`]: what `pg_create_restore_point` returns, and
    /// the switch point of a timeline that recovery to this point forks.
    pub end: Lsn,
    /// The name given (at most 63 bytes; not necessarily unique).
    pub name: String,
    /// When it was created: microseconds since 2000-01-01 UTC.
    pub timestamp: i64,
}

/// How the scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// The input ended inside a record that continues in the next segment (not an error).
    Continues,
    /// The input ended at a record boundary (or in the padding after a WAL switch).
    EndOfInput,
    /// The valid WAL ends at `at`, where the next record could not be read. The usual end of
    /// a segment still being written, a `.partial` one, or a recycled one.
    Invalid {
        /// Where the record that failed starts (for a page that failed with no record in
        /// progress, the page's address).
        at: Lsn,
        /// Why it failed.
        reason: InvalidWal,
    },
}

/// Why WAL stopped being valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWal {
    /// `xl_tot_len` is zero: the zeroed rest of the last page written.
    #[error("record length 0: the end of the WAL written")]
    ZeroLength,
    /// `xl_tot_len` is shorter than a record header or impossibly long.
    #[error("invalid record length {len}")]
    BadLength {
        /// `xl_tot_len`.
        len: u32,
    },
    /// `xl_prev` is not the previous record (a stale record on a torn or recycled page).
    #[error("record with incorrect prev-link {found} (expected {expected})")]
    BadPrevLink {
        /// `xl_prev`.
        found: Lsn,
        /// The previous record's start (or, for the first record read, any lower LSN).
        expected: Lsn,
    },
    /// The record's CRC-32C does not match.
    #[error("incorrect record checksum")]
    BadChecksum,
    /// The record's block headers do not add up (after a matching checksum: a bug or a
    /// format pgb does not know).
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    /// A page's address is not where it lies: a recycled segment's old page, or the next
    /// segment given is not the next one.
    #[error("unexpected page address {found} (expected {expected})")]
    PageAddress {
        /// `xlp_pageaddr`.
        found: Lsn,
        /// The page's position in the input.
        expected: Lsn,
    },
    /// A page header that is not WAL of the same server: another magic, unknown flags, a
    /// segment start without a long header or with another system identifier or sizes.
    #[error("invalid page header: {0}")]
    PageHeader(&'static str),
    /// A page's timeline is lower than the page before it.
    #[error("timeline {found} after {previous}: out of sequence")]
    TimelineBackwards {
        /// `xlp_tli`.
        found: TimelineId,
        /// The previous page's.
        previous: TimelineId,
    },
    /// A record continues onto a page not flagged as holding its continuation.
    #[error("there is no contrecord flag on the page after an unfinished record")]
    MissingContinuation,
    /// The continuation's remaining length does not match the record's.
    #[error("continuation length {found}, expected {expected}")]
    ContinuationLength {
        /// `xlp_rem_len`.
        found: u32,
        /// What the record has left.
        expected: u32,
    },
    /// A page flagged as continuing a record where a new record should start.
    #[error("a continuation where a record should start")]
    UnexpectedContinuation,
}

/// What one scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    /// The start of the input (a segment boundary).
    pub start: Lsn,
    /// The timeline of the first page header.
    pub timeline: TimelineId,
    /// The system identifier of the first segment's header.
    pub system_identifier: u64,
    /// The segment size of the first segment's header.
    pub segment_size: u32,
    /// Commits and aborts, in WAL order.
    pub transactions: Vec<XactRecord>,
    /// Restore points, in WAL order.
    pub restore_points: Vec<RestorePoint>,
    /// Where each `XLOG_SWITCH` record starts (the rest of its segment is unused).
    pub switches: Vec<Lsn>,
    /// The start of the first record read whole (none when the input holds no record start).
    pub first_record: Option<Lsn>,
    /// The start of the last valid record.
    pub last_record: Option<Lsn>,
    /// The end of the valid WAL: the [end](XactRecord::end) of the last valid record; after a
    /// switch, the end of its segment (as PostgreSQL counts it); the start of the input when
    /// nothing was read.
    pub end_of_valid: Lsn,
    /// Records read and found valid.
    pub records: u64,
    /// Where records were found abandoned (a crash cut them short; the server wrote over
    /// their continuation, `XLP_FIRST_IS_OVERWRITE_CONTRECORD`).
    pub overwritten: Vec<Lsn>,
    /// How the scan ended.
    pub end: ScanEnd,
}

impl SegmentScan {
    /// Whether the last record read continues past the input (into the next segment).
    pub fn continues(&self) -> bool {
        self.end == ScanEnd::Continues
    }

    /// Commits only (plain and prepared).
    pub fn commits(&self) -> impl Iterator<Item = &XactRecord> {
        self.transactions.iter().filter(|x| x.kind.is_commit())
    }
}

/// Input a scan cannot start on: not a WAL segment pgb can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// The first page is not a segment's first page.
    #[error("not the start of a WAL segment: {0}")]
    NotASegment(#[from] SegmentProblem),
    /// WAL of a PostgreSQL version whose records pgb does not read.
    #[error("WAL magic {magic:#06X} is not a PostgreSQL version pgb reads records of (15 to 18)")]
    UnsupportedVersion {
        /// `xlp_magic`.
        magic: u16,
    },
    /// The input is not whole pages.
    #[error("{len} bytes is not a whole number of {block_size}-byte WAL pages")]
    NotWholePages {
        /// The bytes given.
        len: usize,
        /// The page size.
        block_size: u32,
    },
}

/// Scans one segment, or several consecutive segments' bytes one after another (see
/// [`WalScanner`] to give them one at a time). The input must start at a segment boundary
/// and be whole pages.
pub fn scan_segment(bytes: &[u8]) -> Result<SegmentScan, ScanError> {
    let mut s = WalScanner::new();
    s.push(bytes)?;
    s.finish().ok_or(ScanError::NotWholePages {
        len: 0,
        block_size: 0,
    })
}

#[derive(Debug, Clone, Copy)]
struct Format {
    magic: u16,
    system_identifier: u64,
    segment_size: u64,
    block_size: usize,
    /// `sizeof(xl_xact_stats_item)`: 12 bytes up to PostgreSQL 17, 16 from 18 (64-bit
    /// object ids).
    stats_item_size: usize,
}

#[derive(Debug)]
enum State {
    /// Before the first page.
    Start,
    /// At a record boundary.
    Fresh,
    /// Skipping the end of a record begun before the input.
    Skip { remaining: u32 },
    /// Assembling a record that crosses pages.
    Partial {
        start: Lsn,
        total: u32,
        buf: Vec<u8>,
        header_checked: bool,
    },
    /// After a switch record: nothing to read until `until` (a segment boundary).
    AfterSwitch { until: Lsn },
    /// The valid WAL ended.
    Done,
}

/// An incremental scan over consecutive segments: [`push`](Self::push) each segment's bytes
/// (or any run of whole pages) in order, then [`finish`](Self::finish). A record crossing
/// from one segment into the next is assembled across pushes; once the valid WAL ended,
/// further input is ignored.
#[derive(Debug)]
pub struct WalScanner {
    fmt: Option<Format>,
    start: Lsn,
    timeline: TimelineId,
    next_page: Lsn,
    last_tli: TimelineId,
    prev: Option<Lsn>,
    state: State,
    end: Option<ScanEnd>,
    out: SegmentScan,
}

impl Default for WalScanner {
    fn default() -> Self {
        Self::new()
    }
}

fn align8(n: usize) -> usize {
    (n + 7) & !7
}

impl WalScanner {
    /// A scanner waiting for the first segment.
    pub fn new() -> Self {
        Self {
            fmt: None,
            start: Lsn(0),
            timeline: 0,
            next_page: Lsn(0),
            last_tli: 0,
            prev: None,
            state: State::Start,
            end: None,
            out: SegmentScan {
                start: Lsn(0),
                timeline: 0,
                system_identifier: 0,
                segment_size: 0,
                transactions: Vec::new(),
                restore_points: Vec::new(),
                switches: Vec::new(),
                first_record: None,
                last_record: None,
                end_of_valid: Lsn(0),
                records: 0,
                overwritten: Vec::new(),
                end: ScanEnd::EndOfInput,
            },
        }
    }

    /// Whether the valid WAL has ended (more input would be ignored).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The position the next pushed byte must have.
    pub fn next_lsn(&self) -> Lsn {
        self.next_page
    }

    /// Scans the next bytes: the first push must start with a segment's first page; every
    /// push must be whole pages.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), ScanError> {
        let fmt = match self.fmt {
            Some(f) => f,
            None => {
                let h = SegmentHeader::parse(bytes)?;
                let Some(major) = h.pg_major else {
                    return Err(ScanError::UnsupportedVersion { magic: h.magic });
                };
                let f = Format {
                    magic: h.magic,
                    system_identifier: h.system_identifier,
                    segment_size: u64::from(h.segment_size),
                    block_size: h.block_size as usize,
                    stats_item_size: if major >= 18 { 16 } else { 12 },
                };
                self.fmt = Some(f);
                self.start = h.page_address;
                self.next_page = h.page_address;
                self.timeline = h.timeline;
                self.out.start = h.page_address;
                self.out.timeline = h.timeline;
                self.out.system_identifier = h.system_identifier;
                self.out.segment_size = h.segment_size;
                self.out.end_of_valid = h.page_address;
                f
            }
        };
        if !bytes.len().is_multiple_of(fmt.block_size) {
            return Err(ScanError::NotWholePages {
                len: bytes.len(),
                block_size: fmt.block_size as u32,
            });
        }
        for page in bytes.chunks_exact(fmt.block_size) {
            let lsn = self.next_page;
            self.next_page = Lsn(lsn.0 + fmt.block_size as u64);
            if self.is_done() {
                continue;
            }
            self.page(&fmt, page, lsn);
        }
        Ok(())
    }

    /// The scan's result; `None` when nothing was pushed.
    pub fn finish(mut self) -> Option<SegmentScan> {
        self.fmt?;
        self.out.end = match (self.end.take(), &self.state) {
            (Some(end), _) => end,
            (None, State::Skip { .. } | State::Partial { .. }) => ScanEnd::Continues,
            (None, _) => ScanEnd::EndOfInput,
        };
        Some(self.out)
    }

    fn stop(&mut self, at: Lsn, reason: InvalidWal) {
        self.end = Some(ScanEnd::Invalid { at, reason });
        self.state = State::Done;
    }

    /// Checks a page header against its position and the first segment's.
    fn check_page(
        &mut self,
        fmt: &Format,
        page: &[u8],
        lsn: Lsn,
    ) -> Result<PageHeader, InvalidWal> {
        let h = PageHeader::read(page).ok_or(InvalidWal::PageHeader("truncated"))?;
        if h.magic != fmt.magic {
            return Err(InvalidWal::PageHeader(
                "another WAL magic than the first page's",
            ));
        }
        if h.has_unknown_flags() {
            return Err(InvalidWal::PageHeader("unknown flag bits"));
        }
        if h.page_address != lsn {
            return Err(InvalidWal::PageAddress {
                found: h.page_address,
                expected: lsn,
            });
        }
        if lsn.0.is_multiple_of(fmt.segment_size) {
            match h.long {
                None => {
                    return Err(InvalidWal::PageHeader(
                        "a segment start without a long header",
                    ));
                }
                Some((sysid, seg, blk)) => {
                    if sysid != fmt.system_identifier {
                        return Err(InvalidWal::PageHeader("another system identifier"));
                    }
                    if u64::from(seg) != fmt.segment_size || blk as usize != fmt.block_size {
                        return Err(InvalidWal::PageHeader("another segment or page size"));
                    }
                }
            }
        }
        if h.timeline == 0 {
            return Err(InvalidWal::PageHeader("timeline 0"));
        }
        if h.timeline < self.last_tli {
            return Err(InvalidWal::TimelineBackwards {
                found: h.timeline,
                previous: self.last_tli,
            });
        }
        self.last_tli = h.timeline;
        Ok(h)
    }

    fn page(&mut self, fmt: &Format, page: &[u8], page_lsn: Lsn) {
        if let State::AfterSwitch { until } = self.state {
            if page_lsn < until {
                return;
            }
            self.state = State::Fresh;
        }
        let pending_start = match &self.state {
            State::Partial { start, .. } => *start,
            _ => page_lsn,
        };
        let h = match self.check_page(fmt, page, page_lsn) {
            Ok(h) => h,
            Err(reason) => return self.stop(pending_start, reason),
        };
        let bs = fmt.block_size;
        let mut pos = h.size();
        let cont = h.info & XLP_FIRST_IS_CONTRECORD != 0;
        let overwrite = h.info & XLP_FIRST_IS_OVERWRITE_CONTRECORD != 0;
        // Continuation data at the top of the page.
        match std::mem::replace(&mut self.state, State::Fresh) {
            State::Start if cont => {
                // The end of a record begun in the previous segment: skipped.
                let take = (h.rem_len as usize).min(bs - pos);
                pos += take;
                if take < h.rem_len as usize {
                    self.state = State::Skip {
                        remaining: h.rem_len - take as u32,
                    };
                    return;
                }
                pos = align8(pos);
                self.out.end_of_valid = Lsn(page_lsn.0 + pos as u64);
            }
            State::Start => {}
            State::Fresh => {
                if cont {
                    let at = Lsn(page_lsn.0 + pos as u64);
                    return self.stop(at, InvalidWal::UnexpectedContinuation);
                }
            }
            State::Skip { remaining } => {
                if !cont {
                    return self.stop(page_lsn, InvalidWal::MissingContinuation);
                }
                if h.rem_len != remaining {
                    let found = h.rem_len;
                    let reason = InvalidWal::ContinuationLength {
                        found,
                        expected: remaining,
                    };
                    return self.stop(page_lsn, reason);
                }
                let take = (remaining as usize).min(bs - pos);
                pos += take;
                if take < remaining as usize {
                    self.state = State::Skip {
                        remaining: remaining - take as u32,
                    };
                    return;
                }
                pos = align8(pos);
                self.out.end_of_valid = Lsn(page_lsn.0 + pos as u64);
            }
            State::Partial { start, .. } if overwrite => {
                // The record was abandoned after a crash; this page starts afresh.
                self.out.overwritten.push(start);
            }
            State::Partial {
                start,
                total,
                mut buf,
                mut header_checked,
            } => {
                if !cont {
                    return self.stop(start, InvalidWal::MissingContinuation);
                }
                let left = total - buf.len() as u32;
                if h.rem_len != left {
                    let reason = InvalidWal::ContinuationLength {
                        found: h.rem_len,
                        expected: left,
                    };
                    return self.stop(start, reason);
                }
                let take = (left as usize).min(bs - pos);
                buf.extend_from_slice(&page[pos..pos + take]);
                pos += take;
                if !header_checked && buf.len() >= RECORD_HEADER_SIZE {
                    header_checked = true;
                    if let Err(reason) = self.check_prev(&buf[..RECORD_HEADER_SIZE], start) {
                        return self.stop(start, reason);
                    }
                }
                if (buf.len() as u32) < total {
                    self.state = State::Partial {
                        start,
                        total,
                        buf,
                        header_checked,
                    };
                    return;
                }
                let end = Lsn(page_lsn.0 + pos as u64);
                if !self.record(fmt, &buf, start, end) {
                    return;
                }
                pos = align8(pos);
            }
            other @ (State::AfterSwitch { .. } | State::Done) => {
                self.state = other;
                return;
            }
        }
        // Records starting on this page.
        while matches!(self.state, State::Fresh) && pos + 4 <= bs {
            let rec_lsn = Lsn(page_lsn.0 + pos as u64);
            let total = u32_at(page, pos);
            if total == 0 {
                return self.stop(rec_lsn, InvalidWal::ZeroLength);
            }
            if (total as usize) < RECORD_HEADER_SIZE || total > MAX_RECORD_LEN {
                return self.stop(rec_lsn, InvalidWal::BadLength { len: total });
            }
            let avail = bs - pos;
            if avail >= RECORD_HEADER_SIZE
                && let Err(reason) = self.check_prev(&page[pos..pos + RECORD_HEADER_SIZE], rec_lsn)
            {
                return self.stop(rec_lsn, reason);
            }
            if total as usize <= avail {
                let end = Lsn(rec_lsn.0 + u64::from(total));
                if !self.record(fmt, &page[pos..pos + total as usize], rec_lsn, end) {
                    return;
                }
                pos = align8(pos + total as usize);
            } else {
                self.state = State::Partial {
                    start: rec_lsn,
                    total,
                    buf: page[pos..].to_vec(),
                    header_checked: avail >= RECORD_HEADER_SIZE,
                };
            }
        }
    }

    /// `xl_prev` must be the previous record's start; for the first record read, lower than
    /// its own position (as PostgreSQL checks a record it starts reading at).
    fn check_prev(&self, header: &[u8], at: Lsn) -> Result<(), InvalidWal> {
        let prev = Lsn(u64_at(header, 8));
        match self.prev {
            Some(expected) if prev != expected => Err(InvalidWal::BadPrevLink {
                found: prev,
                expected,
            }),
            None if prev >= at => Err(InvalidWal::BadPrevLink {
                found: prev,
                expected: Lsn(at.0.saturating_sub(1)),
            }),
            _ => Ok(()),
        }
    }

    /// A whole record: checks its CRC, decodes it, records what PITR needs. Returns whether
    /// reading goes on at the next record on the same page.
    fn record(&mut self, fmt: &Format, rec: &[u8], start: Lsn, end: Lsn) -> bool {
        // Where the next record starts: PostgreSQL's EndRecPtr, and what XLogInsert returns.
        let end = Lsn((end.0 + 7) & !7);
        let mut crc = Crc32c::new();
        crc.update(&rec[RECORD_HEADER_SIZE..]);
        crc.update(&rec[..CRC_OFFSET]);
        if crc.finish() != u32_at(rec, CRC_OFFSET) {
            self.stop(start, InvalidWal::BadChecksum);
            return false;
        }
        let main = match main_data(rec) {
            Ok(m) => m,
            Err(what) => {
                self.stop(start, InvalidWal::Malformed(what));
                return false;
            }
        };
        self.prev = Some(start);
        self.out.records += 1;
        self.out.first_record.get_or_insert(start);
        self.out.last_record = Some(start);
        self.out.end_of_valid = end;
        let xid = u32_at(rec, 4);
        let info = rec[16];
        let rmid = rec[17];
        match (rmid, info & 0xF0) {
            (RM_XLOG_ID, XLOG_SWITCH) => {
                self.out.switches.push(start);
                // The rest of the segment is unused: PostgreSQL counts the record as reaching
                // its end.
                let seg = fmt.segment_size;
                let until = end.0.div_ceil(seg) * seg;
                self.out.end_of_valid = Lsn(until);
                self.state = State::AfterSwitch { until: Lsn(until) };
                return false;
            }
            (RM_XLOG_ID, XLOG_RESTORE_POINT) if main.len() >= 8 => {
                let name = &main[8..main.len().min(8 + 64)];
                let name = name.split(|&b| b == 0).next().unwrap_or_default();
                self.out.restore_points.push(RestorePoint {
                    lsn: start,
                    end,
                    name: String::from_utf8_lossy(name).into_owned(),
                    timestamp: u64_at(main, 0) as i64,
                });
            }
            (RM_XACT_ID, _) => {
                if let Some(x) = xact(info, xid, main, fmt.stats_item_size, start, end) {
                    self.out.transactions.push(x);
                }
            }
            _ => {}
        }
        true
    }
}

/// The main data of a record (`DecodeXLogRecord`): walks the block headers after the record
/// header, checks that their data lengths add up to the record's, and returns the main data,
/// which comes last.
fn main_data(rec: &[u8]) -> Result<&[u8], &'static str> {
    let total = rec.len();
    let mut p = RECORD_HEADER_SIZE;
    let mut datatotal: u64 = 0;
    let mut main_len: u64 = 0;
    let mut have_rel = false;
    let mut max_block: i32 = -1;
    let short = "record with invalid length";
    let take = |p: &mut usize, n: usize| -> Result<usize, &'static str> {
        if total - *p < n {
            return Err(short);
        }
        let at = *p;
        *p += n;
        Ok(at)
    };
    while ((total - p) as u64) > datatotal {
        let id = rec[take(&mut p, 1)?];
        match id {
            XLR_BLOCK_ID_DATA_SHORT => {
                main_len = u64::from(rec[take(&mut p, 1)?]);
                datatotal += main_len;
                break;
            }
            XLR_BLOCK_ID_DATA_LONG => {
                main_len = u64::from(u32_at(rec, take(&mut p, 4)?));
                datatotal += main_len;
                break;
            }
            XLR_BLOCK_ID_ORIGIN => {
                take(&mut p, 2)?;
            }
            XLR_BLOCK_ID_TOPLEVEL_XID => {
                take(&mut p, 4)?;
            }
            0..=XLR_MAX_BLOCK_ID => {
                if i32::from(id) <= max_block {
                    return Err("out-of-order block id");
                }
                max_block = i32::from(id);
                let fork_flags = rec[take(&mut p, 1)?];
                let at = take(&mut p, 2)?;
                let data_len = u16::from_le_bytes([rec[at], rec[at + 1]]);
                let has_data = fork_flags & BKPBLOCK_HAS_DATA != 0;
                if has_data != (data_len != 0) {
                    return Err("BKPBLOCK_HAS_DATA does not match the data length");
                }
                datatotal += u64::from(data_len);
                if fork_flags & BKPBLOCK_HAS_IMAGE != 0 {
                    let at = take(&mut p, 5)?;
                    let bimg_len = u16::from_le_bytes([rec[at], rec[at + 1]]);
                    let bimg_info = rec[at + 4];
                    if bimg_info & BKPIMAGE_COMPRESSED != 0 && bimg_info & BKPIMAGE_HAS_HOLE != 0 {
                        take(&mut p, 2)?;
                    }
                    datatotal += u64::from(bimg_len);
                }
                if fork_flags & BKPBLOCK_SAME_REL == 0 {
                    take(&mut p, REL_FILE_LOCATOR_SIZE)?;
                    have_rel = true;
                } else if !have_rel {
                    return Err("BKPBLOCK_SAME_REL set but no previous relation");
                }
                take(&mut p, 4)?;
            }
            _ => return Err("invalid block id"),
        }
    }
    if (total - p) as u64 != datatotal {
        return Err(short);
    }
    Ok(&rec[total - main_len as usize..])
}

const XACT_XINFO_HAS_DBINFO: u32 = 1 << 0;
const XACT_XINFO_HAS_SUBXACTS: u32 = 1 << 1;
const XACT_XINFO_HAS_RELFILELOCATORS: u32 = 1 << 2;
const XACT_XINFO_HAS_INVALS: u32 = 1 << 3;
const XACT_XINFO_HAS_TWOPHASE: u32 = 1 << 4;
const XACT_XINFO_HAS_DROPPED_STATS: u32 = 1 << 8;
/// `sizeof(SharedInvalidationMessage)`.
const INVAL_MESSAGE_SIZE: usize = 16;

/// A commit or abort record's kind, xid and time (`ParseCommitRecord` / `ParseAbortRecord`
/// as far as the two-phase xid).
fn xact(
    info: u8,
    record_xid: u32,
    main: &[u8],
    stats_item_size: usize,
    lsn: Lsn,
    end: Lsn,
) -> Option<XactRecord> {
    let kind = match info & XLOG_XACT_OPMASK {
        0x00 => XactKind::Commit,
        0x20 => XactKind::Abort,
        0x30 => XactKind::CommitPrepared,
        0x40 => XactKind::AbortPrepared,
        _ => return None,
    };
    if main.len() < 8 {
        return None;
    }
    let timestamp = u64_at(main, 0) as i64;
    let mut xid = record_xid;
    if matches!(kind, XactKind::CommitPrepared | XactKind::AbortPrepared) {
        xid = twophase_xid(info, main, kind.is_commit(), stats_item_size).unwrap_or(record_xid);
    }
    Some(XactRecord {
        lsn,
        end,
        kind,
        xid,
        timestamp,
    })
}

/// The prepared transaction's xid (`xl_xact_twophase`), after the optional parts before it.
fn twophase_xid(info: u8, main: &[u8], commit: bool, stats_item_size: usize) -> Option<u32> {
    if info & XLOG_XACT_HAS_INFO == 0 {
        return None;
    }
    let get = |at: usize| main.get(at..at + 4).map(|_| u32_at(main, at));
    let xinfo = get(8)?;
    let mut p = 12;
    let counted = |p: &mut usize, item: usize| -> Option<()> {
        let n = get(*p)? as usize;
        *p += 4 + n.checked_mul(item)?;
        Some(())
    };
    if xinfo & XACT_XINFO_HAS_DBINFO != 0 {
        p += 8;
    }
    if xinfo & XACT_XINFO_HAS_SUBXACTS != 0 {
        counted(&mut p, 4)?;
    }
    if xinfo & XACT_XINFO_HAS_RELFILELOCATORS != 0 {
        counted(&mut p, REL_FILE_LOCATOR_SIZE)?;
    }
    if xinfo & XACT_XINFO_HAS_DROPPED_STATS != 0 {
        counted(&mut p, stats_item_size)?;
    }
    if commit && xinfo & XACT_XINFO_HAS_INVALS != 0 {
        counted(&mut p, INVAL_MESSAGE_SIZE)?;
    }
    if xinfo & XACT_XINFO_HAS_TWOPHASE == 0 {
        return None;
    }
    get(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crc::crc32c;
    use crate::header::tests::long_header;

    const SEG: u64 = 1 << 20;
    const BLK: usize = 8192;
    const MAGIC: u16 = 0xD116;

    /// Writes WAL as PostgreSQL lays it out: page headers, MAXALIGNed records, records split
    /// across pages with continuation headers, `xl_prev` chained, CRCs computed.
    struct Wal {
        start: u64,
        buf: Vec<u8>,
        prev: u64,
        tli: u32,
    }

    impl Wal {
        fn new(start: u64) -> Self {
            Self {
                start,
                buf: Vec::new(),
                prev: start.saturating_sub(0x28),
                tli: 1,
            }
        }

        fn pos(&self) -> u64 {
            self.start + self.buf.len() as u64
        }

        fn page_header(&mut self, info: u16, rem_len: u32) {
            let addr = self.pos();
            if addr.is_multiple_of(SEG) {
                let mut h = long_header(MAGIC, info, self.tli, addr, SEG as u32);
                h[16..20].copy_from_slice(&rem_len.to_le_bytes());
                self.buf.extend_from_slice(&h);
            } else {
                self.buf.extend_from_slice(&MAGIC.to_le_bytes());
                self.buf.extend_from_slice(&info.to_le_bytes());
                self.buf.extend_from_slice(&self.tli.to_le_bytes());
                self.buf.extend_from_slice(&addr.to_le_bytes());
                self.buf.extend_from_slice(&rem_len.to_le_bytes());
                self.buf.extend_from_slice(&[0; 4]);
            }
        }

        fn at_page_start(&self) -> bool {
            self.buf.len().is_multiple_of(BLK)
        }

        /// Appends record bytes, continuing on new pages as needed.
        fn write_spanning(&mut self, mut bytes: &[u8]) {
            while !bytes.is_empty() {
                if self.at_page_start() {
                    self.page_header(XLP_FIRST_IS_CONTRECORD, bytes.len() as u32);
                }
                let space = BLK - self.buf.len() % BLK;
                let n = space.min(bytes.len());
                self.buf.extend_from_slice(&bytes[..n]);
                bytes = &bytes[n..];
            }
        }

        fn build(&self, rmid: u8, info: u8, xid: u32, body: &[u8]) -> Vec<u8> {
            let total = (RECORD_HEADER_SIZE + body.len()) as u32;
            let mut rec = Vec::new();
            rec.extend_from_slice(&total.to_le_bytes());
            rec.extend_from_slice(&xid.to_le_bytes());
            rec.extend_from_slice(&self.prev.to_le_bytes());
            rec.extend_from_slice(&[info, rmid, 0, 0]);
            rec.extend_from_slice(&[0; 4]);
            rec.extend_from_slice(body);
            let mut c = Crc32c::new();
            c.update(&rec[RECORD_HEADER_SIZE..]);
            c.update(&rec[..CRC_OFFSET]);
            let crc = c.finish();
            rec[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
            rec
        }

        /// Appends a record; returns its start.
        fn record(&mut self, rmid: u8, info: u8, xid: u32, body: &[u8]) -> Lsn {
            if self.at_page_start() {
                self.page_header(0, 0);
            }
            let start = self.pos();
            let rec = self.build(rmid, info, xid, body);
            self.write_spanning(&rec);
            self.buf.resize(align8(self.buf.len()), 0);
            self.prev = start;
            Lsn(start)
        }

        /// Filler records (rmid 10, heap-like, main data only) up to `to` bytes into the
        /// buffer, leaving the position there or just past it.
        fn fill_until(&mut self, to: usize) {
            while self.buf.len() + 200 < to {
                self.record(10, 0, 7, &main_only(&[1; 100]));
            }
        }

        fn zero_pad_to(&mut self, len: usize) {
            self.buf.resize(len, 0);
        }
    }

    fn main_only(data: &[u8]) -> Vec<u8> {
        let mut b = if data.len() < 256 {
            vec![XLR_BLOCK_ID_DATA_SHORT, data.len() as u8]
        } else {
            let mut v = vec![XLR_BLOCK_ID_DATA_LONG];
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v
        };
        b.extend_from_slice(data);
        b
    }

    fn commit_body(ts: i64) -> Vec<u8> {
        main_only(&ts.to_le_bytes())
    }

    fn restore_point_body(ts: i64, name: &str) -> Vec<u8> {
        let mut d = ts.to_le_bytes().to_vec();
        let mut n = [0u8; 64];
        n[..name.len()].copy_from_slice(name.as_bytes());
        d.extend_from_slice(&n);
        main_only(&d)
    }

    fn scan(b: &[u8]) -> SegmentScan {
        scan_segment(b).unwrap()
    }

    #[test]
    fn commits_aborts_restore_points_and_the_end_of_wal() {
        let mut w = Wal::new(3 * SEG);
        let c1 = w.record(RM_XACT_ID, 0x00, 700, &commit_body(1_000_000));
        w.record(10, 0, 701, &main_only(b"heap insert"));
        let a = w.record(RM_XACT_ID, 0x20, 701, &commit_body(2_000_000));
        let rp = w.record(
            RM_XLOG_ID,
            XLOG_RESTORE_POINT,
            0,
            &restore_point_body(3_000_000, "before_drop"),
        );
        // Not a commit: an XLOG_XACT_ASSIGNMENT (0x50).
        w.record(RM_XACT_ID, 0x50, 702, &main_only(&[0; 8]));
        let end = w.pos();
        w.zero_pad_to(SEG as usize);
        let s = scan(&w.buf);
        assert_eq!(s.start, Lsn(3 * SEG));
        assert_eq!(s.system_identifier, 0x1234_5678_9ABC_DEF0);
        assert_eq!(s.records, 5);
        assert_eq!(
            s.transactions,
            [
                XactRecord {
                    lsn: c1,
                    end: Lsn(c1.0 + 40),
                    kind: XactKind::Commit,
                    xid: 700,
                    timestamp: 1_000_000
                },
                XactRecord {
                    lsn: a,
                    end: Lsn(a.0 + 40),
                    kind: XactKind::Abort,
                    xid: 701,
                    timestamp: 2_000_000
                },
            ]
        );
        assert_eq!(s.commits().count(), 1);
        assert_eq!(s.restore_points.len(), 1);
        assert_eq!(s.restore_points[0].name, "before_drop");
        assert_eq!(s.restore_points[0].lsn, rp);
        assert_eq!(s.restore_points[0].timestamp, 3_000_000);
        assert_eq!(s.first_record, Some(c1));
        // end_of_valid is where the next record would start.
        assert_eq!(s.end_of_valid, Lsn(end));
        assert_eq!(
            s.end,
            ScanEnd::Invalid {
                at: Lsn(end),
                reason: InvalidWal::ZeroLength
            }
        );
        assert!(!s.continues());
    }

    #[test]
    fn records_across_pages_and_split_headers() {
        let mut w = Wal::new(0);
        // A record of 20000 bytes spans three pages.
        let big = w.record(
            RM_XACT_ID,
            0x00,
            900,
            &main_only(&[[5u8; 8], [0; 8]].concat().repeat(1250)),
        );
        // Then records until one starts 16 bytes before a page end: its header is split.
        let target = 4 * BLK - 16;
        w.fill_until(target - 100);
        let size = target - w.buf.len();
        w.record(
            10,
            0,
            7,
            &main_only(&vec![9; size - RECORD_HEADER_SIZE - 2]),
        );
        assert_eq!(w.buf.len(), target);
        let split = w.record(RM_XACT_ID, 0x00, 901, &commit_body(42));
        let after = w.record(RM_XACT_ID, 0x00, 902, &commit_body(43));
        w.zero_pad_to(SEG as usize);
        let s = scan(&w.buf);
        let xids: Vec<u32> = s.commits().map(|x| x.xid).collect();
        assert_eq!(xids, [900, 901, 902], "{:?}", s.end);
        assert_eq!(s.transactions[0].lsn, big);
        assert_eq!(s.transactions[0].timestamp, 0x0505_0505_0505_0505);
        assert_eq!(s.transactions[1].lsn, split);
        assert_eq!(split.0 as usize % BLK, BLK - 16, "the header is split");
        assert_eq!(s.transactions[2].lsn, after);
        assert!(matches!(
            s.end,
            ScanEnd::Invalid {
                reason: InvalidWal::ZeroLength,
                ..
            }
        ));
    }

    #[test]
    fn a_record_continuing_into_the_next_segment() {
        let mut w = Wal::new(0);
        w.fill_until(SEG as usize - 100);
        let last = w.record(RM_XACT_ID, 0x00, 500, &main_only(&[7; 300]));
        assert!(w.pos() > SEG, "the record crosses the segment end");
        let after = w.record(RM_XACT_ID, 0x00, 501, &commit_body(9));
        w.zero_pad_to(2 * SEG as usize);
        let (first, second) = w.buf.split_at(SEG as usize);

        let s1 = scan(first);
        assert!(s1.continues(), "{:?}", s1.end);
        assert_eq!(s1.end, ScanEnd::Continues);
        assert!(s1.transactions.is_empty());
        assert_eq!(
            s1.end_of_valid, last,
            "the valid WAL ends where the unfinished record starts"
        );

        // Alone, the next segment skips the end of that record and reads on.
        let s2 = scan(second);
        assert_eq!(s2.transactions.len(), 1);
        assert_eq!(s2.transactions[0].lsn, after);
        assert_eq!(s2.first_record, Some(after));

        // Both, pushed one after the other, read the crossing record whole.
        let mut sc = WalScanner::new();
        sc.push(first).unwrap();
        assert_eq!(sc.next_lsn(), Lsn(SEG));
        sc.push(second).unwrap();
        let s = sc.finish().unwrap();
        let xids: Vec<u32> = s.commits().map(|x| x.xid).collect();
        assert_eq!(xids, [500, 501]);
        assert_eq!(s.transactions[0].lsn, last);
    }

    #[test]
    fn a_recycled_tail_is_not_read() {
        let mut w = Wal::new(SEG);
        w.record(RM_XACT_ID, 0x00, 10, &commit_body(1));
        let end = w.pos();
        // The rest of the page is zero; the next pages still hold WAL of an older segment
        // (the same offsets, 16 segments earlier), valid in every other way.
        w.zero_pad_to(BLK);
        let mut old = Wal::new(0);
        old.zero_pad_to(BLK);
        old.prev = 0x100;
        while old.buf.len() < 3 * BLK {
            old.record(RM_XACT_ID, 0x00, 3, &commit_body(5));
        }
        w.buf.extend_from_slice(&old.buf[BLK..3 * BLK]);
        w.zero_pad_to(SEG as usize);
        let s = scan(&w.buf);
        assert_eq!(s.transactions.len(), 1);
        assert!(
            matches!(s.end, ScanEnd::Invalid { at, reason: InvalidWal::ZeroLength } if at.0 == end)
        );

        // Without the zeroed rest: a stale record right after the last one (wrong prev link),
        // and a page from an older segment.
        let mut w = Wal::new(SEG);
        w.record(RM_XACT_ID, 0x00, 10, &commit_body(1));
        let mut stale = Wal::new(SEG);
        stale.prev = 0x42;
        stale.buf = w.buf.clone();
        stale.record(RM_XACT_ID, 0x00, 11, &commit_body(2));
        let s = scan(&{
            let mut b = stale.buf.clone();
            b.resize(SEG as usize, 0);
            b
        });
        assert_eq!(s.transactions.len(), 1);
        assert!(
            matches!(
                s.end,
                ScanEnd::Invalid {
                    reason: InvalidWal::BadPrevLink { .. },
                    ..
                }
            ),
            "{:?}",
            s.end
        );

        let mut w = Wal::new(SEG);
        w.fill_until(BLK - 200);
        w.record(RM_XACT_ID, 0x00, 12, &main_only(&[1; 400]));
        let crossing = w.pos();
        let mut b = w.buf.clone();
        b.resize(SEG as usize, 0);
        // The second page is an old one: its address is not this segment's.
        b[BLK + 8..BLK + 16].copy_from_slice(&(BLK as u64).to_le_bytes());
        let s = scan(&b);
        assert!(s.transactions.is_empty());
        match s.end {
            ScanEnd::Invalid {
                at,
                reason: InvalidWal::PageAddress { found, expected },
            } => {
                assert!(at.0 < crossing);
                assert_eq!((found, expected), (Lsn(BLK as u64), Lsn(SEG + BLK as u64)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_checksum_ends_the_valid_wal() {
        let mut w = Wal::new(0);
        w.record(RM_XACT_ID, 0x00, 1, &commit_body(1));
        let bad = w.record(RM_XACT_ID, 0x00, 2, &commit_body(2));
        w.record(RM_XACT_ID, 0x00, 3, &commit_body(3));
        w.zero_pad_to(SEG as usize);
        let o = (bad.0 as usize) + 26;
        w.buf[o] ^= 0x40;
        let s = scan(&w.buf);
        assert_eq!(s.transactions.len(), 1);
        assert_eq!(
            s.end,
            ScanEnd::Invalid {
                at: bad,
                reason: InvalidWal::BadChecksum
            }
        );
        assert_eq!(s.last_record, Some(Lsn(40)));
    }

    #[test]
    fn a_switch_skips_the_rest_of_its_segment() {
        let mut w = Wal::new(0);
        w.record(RM_XACT_ID, 0x00, 1, &commit_body(1));
        let sw = w.record(RM_XLOG_ID, XLOG_SWITCH, 0, &[]);
        // Garbage after the switch is never read.
        w.buf.extend_from_slice(&[0xAB; 64]);
        w.zero_pad_to(SEG as usize);
        let next = w.record(RM_XACT_ID, 0x00, 2, &commit_body(2));
        w.zero_pad_to(2 * SEG as usize);
        let s = scan(&w.buf[..SEG as usize]);
        assert_eq!(s.switches, [sw]);
        assert_eq!(s.end_of_valid, Lsn(SEG));
        assert_eq!(s.end, ScanEnd::EndOfInput);
        let s = scan(&w.buf);
        assert_eq!(s.commits().map(|x| x.xid).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(s.transactions[1].lsn, next);
    }

    #[test]
    fn a_prepared_transaction_is_named_by_its_own_xid() {
        let mut w = Wal::new(0);
        // COMMIT PREPARED with xinfo: dbinfo, 2 subxacts, 1 relfilelocator, 1 dropped stat,
        // 1 inval, twophase xid 4242, a gid; the record's own xid is 0.
        let mut d = 77i64.to_le_bytes().to_vec();
        let xinfo = XACT_XINFO_HAS_DBINFO
            | XACT_XINFO_HAS_SUBXACTS
            | XACT_XINFO_HAS_RELFILELOCATORS
            | XACT_XINFO_HAS_DROPPED_STATS
            | XACT_XINFO_HAS_INVALS
            | XACT_XINFO_HAS_TWOPHASE
            | (1 << 7);
        d.extend_from_slice(&xinfo.to_le_bytes());
        d.extend_from_slice(&[1; 8]);
        d.extend_from_slice(&2u32.to_le_bytes());
        d.extend_from_slice(&[2; 8]);
        d.extend_from_slice(&1u32.to_le_bytes());
        d.extend_from_slice(&[3; 12]);
        d.extend_from_slice(&1u32.to_le_bytes());
        d.extend_from_slice(&[4; 12]);
        d.extend_from_slice(&1u32.to_le_bytes());
        d.extend_from_slice(&[5; 16]);
        d.extend_from_slice(&4242u32.to_le_bytes());
        d.extend_from_slice(b"gid\0");
        w.record(RM_XACT_ID, 0x30 | XLOG_XACT_HAS_INFO, 0, &main_only(&d));
        // ROLLBACK PREPARED: no invals in an abort record.
        let mut d = 78i64.to_le_bytes().to_vec();
        d.extend_from_slice(&XACT_XINFO_HAS_TWOPHASE.to_le_bytes());
        d.extend_from_slice(&4343u32.to_le_bytes());
        w.record(RM_XACT_ID, 0x40 | XLOG_XACT_HAS_INFO, 0, &main_only(&d));
        w.zero_pad_to(SEG as usize);
        let s = scan(&w.buf);
        let got: Vec<_> = s
            .transactions
            .iter()
            .map(|x| (x.kind, x.xid, x.timestamp))
            .collect();
        assert_eq!(
            got,
            [
                (XactKind::CommitPrepared, 4242, 77),
                (XactKind::AbortPrepared, 4343, 78)
            ]
        );
    }

    #[test]
    fn block_references_before_the_main_data() {
        let mut body = Vec::new();
        // Block 0: data (3 bytes) and an uncompressed image with a hole (100 bytes), a rel.
        body.extend_from_slice(&[0, BKPBLOCK_HAS_DATA | BKPBLOCK_HAS_IMAGE]);
        body.extend_from_slice(&3u16.to_le_bytes());
        body.extend_from_slice(&100u16.to_le_bytes());
        body.extend_from_slice(&40u16.to_le_bytes());
        body.push(BKPIMAGE_HAS_HOLE);
        body.extend_from_slice(&[9; 12]);
        body.extend_from_slice(&1u32.to_le_bytes());
        // Block 1: same rel, a compressed image with a hole (its hole length follows).
        body.extend_from_slice(&[1, BKPBLOCK_HAS_IMAGE | BKPBLOCK_SAME_REL]);
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&50u16.to_le_bytes());
        body.extend_from_slice(&40u16.to_le_bytes());
        body.push(BKPIMAGE_HAS_HOLE | 0x10);
        body.extend_from_slice(&1000u16.to_le_bytes());
        body.extend_from_slice(&2u32.to_le_bytes());
        // Origin and top-level xid.
        body.extend_from_slice(&[XLR_BLOCK_ID_ORIGIN, 1, 0]);
        body.extend_from_slice(&[XLR_BLOCK_ID_TOPLEVEL_XID, 1, 2, 3, 4]);
        body.extend_from_slice(&[XLR_BLOCK_ID_DATA_SHORT, 8]);
        body.extend_from_slice(&[0xEE; 100]); // block 0 image
        body.extend_from_slice(&[0xDD; 3]); // block 0 data
        body.extend_from_slice(&[0xCC; 50]); // block 1 image
        body.extend_from_slice(&123i64.to_le_bytes()); // main data
        let mut w = Wal::new(0);
        w.record(RM_XACT_ID, 0x00, 31, &body);
        // The same with a byte missing is malformed (after a valid CRC).
        body.pop();
        let mal = w.record(RM_XACT_ID, 0x00, 32, &body);
        w.zero_pad_to(SEG as usize);
        let s = scan(&w.buf);
        assert_eq!(s.transactions.len(), 1);
        assert_eq!(s.transactions[0].timestamp, 123);
        assert!(
            matches!(s.end, ScanEnd::Invalid { at, reason: InvalidWal::Malformed(_) } if at == mal),
            "{:?}",
            s.end
        );
        assert_eq!(main_data(&w.build(0, 0, 0, &[])).unwrap(), &[] as &[u8]);
        assert!(
            main_data(&w.build(0, 0, 0, &[200])).is_err(),
            "invalid block id"
        );
        assert!(
            main_data(&w.build(0, 0, 0, &[0, BKPBLOCK_SAME_REL, 0, 0, 0, 0, 0, 0])).is_err(),
            "SAME_REL with no relation before"
        );
    }

    #[test]
    fn an_abandoned_record_is_overwritten() {
        let mut w = Wal::new(0);
        w.record(RM_XACT_ID, 0x00, 1, &commit_body(1));
        w.fill_until(BLK - 100);
        // A record begun at the end of the page whose continuation was never written.
        let aborted = w.pos();
        let rec = w.build(10, 0, 5, &main_only(&[1; 250]));
        let room = BLK - w.buf.len();
        w.buf.extend_from_slice(&rec[..room]);
        w.page_header(XLP_FIRST_IS_OVERWRITE_CONTRECORD, 0);
        let next = w.record(RM_XACT_ID, 0x00, 2, &commit_body(2));
        w.zero_pad_to(SEG as usize);
        let s = scan(&w.buf);
        assert_eq!(s.overwritten, [Lsn(aborted)]);
        assert_eq!(s.commits().map(|x| x.xid).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(s.transactions[1].lsn, next);
    }

    #[test]
    fn input_that_is_not_readable_wal_is_refused() {
        let mut w = Wal::new(0);
        w.record(RM_XACT_ID, 0x00, 1, &commit_body(1));
        w.zero_pad_to(SEG as usize);
        assert!(matches!(
            scan_segment(&w.buf[..BLK + 1]),
            Err(ScanError::NotWholePages { .. })
        ));
        assert!(matches!(
            scan_segment(&[]),
            Err(ScanError::NotASegment(SegmentProblem::TooShort { len: 0 }))
        ));
        let mut newer = w.buf.clone();
        newer[0..2].copy_from_slice(&0xD11Fu16.to_le_bytes());
        assert_eq!(
            scan_segment(&newer),
            Err(ScanError::UnsupportedVersion { magic: 0xD11F })
        );
        assert!(WalScanner::new().finish().is_none());
    }

    #[test]
    fn timestamps_convert_to_unix_time() {
        // 2000-01-01T00:00:00Z.
        assert_eq!(pg_time_to_unix_micros(0), 946_684_800_000_000);
        assert_eq!(unix_micros_to_pg_time(946_684_800_000_001), 1);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
