//! PostgreSQL's write-ahead log as data: log sequence numbers, the names of the files the
//! archiver hands over (segments, partial segments, backup history and timeline history
//! files), segment headers, the records pgb reads for recovery targets (commits, restore
//! points) and timeline histories.
//!
//! - [`check_segment`]: is this file the segment its name says ([`SegmentHeader`])?
//! - [`scan_segment`] / [`WalScanner`]: the commits, aborts, restore points and WAL switches
//!   in one or more consecutive segments, and where the valid WAL ends ([`SegmentScan`]).
//! - [`TimelineHistory`]: a `.history` file, and which timeline holds a position.
//! - [`parse_pg_control`]: the system identifier and WAL segment size of a data directory.
//!
//! Pure parsing: no I/O, no async, no dependency on the rest of pgb, so the archive, the
//! restore planner and embedders share one reading of the format.

#![forbid(unsafe_code)]

mod control;
mod crc;
mod header;
mod history;
mod names;
mod records;

pub use control::{
    ControlFile, ControlFileProblem, ControlLayoutFields, PG_CONTROL_FILE_SIZE, parse_pg_control,
    system_identifier_from_pg_control,
};
pub use header::{
    KNOWN_MAGICS, SegmentHeader, SegmentProblem, XLP_FIRST_IS_CONTRECORD,
    XLP_FIRST_IS_OVERWRITE_CONTRECORD, XLP_LONG_HEADER, check_segment, pg_major_of_magic,
};
pub use history::{HistoryEntry, InvalidHistory, TimelineHistory};
pub use names::{InvalidLsn, InvalidWalFileName, Lsn, TimelineId, WalFileKind, WalFileName};
pub use records::{
    InvalidWal, PG_EPOCH_UNIX_MICROS, RestorePoint, ScanEnd, ScanError, SegmentScan, WalScanner,
    XactKind, XactRecord, pg_time_to_unix_micros, scan_segment, unix_micros_to_pg_time,
};
