//! PostgreSQL's write-ahead log as data: log sequence numbers, the names of the files the
//! archiver hands over (segments, partial segments, backup history and timeline history
//! files), segment headers, the records pgb reads for recovery targets (commits, restore
//! points) and timeline histories.
//!
//! Pure parsing: no I/O, no async, no dependency on the rest of pgb, so the archive, the
//! restore planner and embedders share one reading of the format.

#![forbid(unsafe_code)]

mod names;

pub use names::{InvalidLsn, InvalidWalFileName, Lsn, TimelineId, WalFileKind, WalFileName};
