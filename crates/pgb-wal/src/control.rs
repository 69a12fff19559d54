//! `global/pg_control`: the cluster's system identifier and WAL geometry, read from a data
//! directory (a base backup) without a running server.
//!
//! The file is always 8192 bytes (`PG_CONTROL_FILE_SIZE`); `ControlFileData` at its start
//! begins with `uint64 system_identifier`, `uint32 pg_control_version`, and ends with a
//! CRC-32C of everything before it. The fields between move between major versions; the
//! offsets below were read from real files of PostgreSQL 15 (version 1300, the same as 16)
//! and 17 (1700), where they coincide (17 used padding for the checkpoint's `wal_level`).
//! For another version only the system identifier is read (its offset never changed), after
//! the CRC is found at some offset.

use crate::crc::crc32c;
use crate::header::{u32_at, u64_at};
use crate::names::{Lsn, TimelineId};

/// `PG_CONTROL_FILE_SIZE`.
pub const PG_CONTROL_FILE_SIZE: usize = 8192;

/// Offsets in `ControlFileData` for versions 1300 (PostgreSQL 15, 16) and 1700 (17).
mod v1300 {
    pub(super) const CHECKPOINT: usize = 0x20;
    pub(super) const CHECKPOINT_TIMELINE: usize = 0x30;
    pub(super) const XLOG_BLCKSZ: usize = 0xE0;
    pub(super) const XLOG_SEG_SIZE: usize = 0xE4;
    pub(super) const CRC: usize = 0x120;
}

/// What pgb reads from `pg_control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlFile {
    /// The cluster's system identifier (the WAL's, the archive's key).
    pub system_identifier: u64,
    /// `pg_control_version` (1300 for PostgreSQL 15 and 16, 1700 for 17).
    pub control_version: u32,
    /// `catalog_version_no`.
    pub catalog_version: u32,
    /// The layout-dependent fields, for a version whose layout pgb knows.
    pub layout: Option<ControlLayoutFields>,
}

/// Fields whose offsets depend on the `pg_control` version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlLayoutFields {
    /// The WAL segment size (`initdb --wal-segsize`).
    pub wal_segment_size: u32,
    /// The WAL page size.
    pub wal_block_size: u32,
    /// The last checkpoint's position.
    pub checkpoint: Lsn,
    /// The timeline of the last checkpoint.
    pub checkpoint_timeline: TimelineId,
}

/// A `pg_control` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlFileProblem {
    /// Not 8192 bytes.
    #[error("pg_control has {len} bytes; PostgreSQL writes exactly 8192")]
    WrongSize {
        /// The file's length.
        len: usize,
    },
    /// No CRC-32C matches (at the known offset, or at any plausible one for another version).
    #[error("pg_control's checksum does not match: the file is damaged or not a pg_control")]
    BadChecksum,
}

/// Reads `pg_control`: verifies its size and CRC, returns its system identifier, version and,
/// for a layout pgb knows, the WAL segment size and last checkpoint.
pub fn parse_pg_control(bytes: &[u8]) -> Result<ControlFile, ControlFileProblem> {
    if bytes.len() != PG_CONTROL_FILE_SIZE {
        return Err(ControlFileProblem::WrongSize { len: bytes.len() });
    }
    let control_version = u32_at(bytes, 8);
    let known = matches!(control_version, 1300 | 1700);
    let crc_ok = |at: usize| crc32c(&bytes[..at]) == u32_at(bytes, at);
    if known {
        if !crc_ok(v1300::CRC) {
            return Err(ControlFileProblem::BadChecksum);
        }
    } else if !(16..=1024).step_by(4).any(crc_ok) {
        // Another version's layout: its CRC, last, lies somewhere past the fixed fields.
        return Err(ControlFileProblem::BadChecksum);
    }
    let layout = known.then(|| ControlLayoutFields {
        wal_segment_size: u32_at(bytes, v1300::XLOG_SEG_SIZE),
        wal_block_size: u32_at(bytes, v1300::XLOG_BLCKSZ),
        checkpoint: Lsn(u64_at(bytes, v1300::CHECKPOINT)),
        checkpoint_timeline: u32_at(bytes, v1300::CHECKPOINT_TIMELINE),
    });
    Ok(ControlFile {
        system_identifier: u64_at(bytes, 0),
        control_version,
        catalog_version: u32_at(bytes, 12),
        layout,
    })
}

/// The system identifier in `pg_control` (its first 8 bytes), after checking the file (see
/// [`parse_pg_control`]).
pub fn system_identifier_from_pg_control(bytes: &[u8]) -> Result<u64, ControlFileProblem> {
    parse_pg_control(bytes).map(|c| c.system_identifier)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(version: u32, crc_at: usize) -> Vec<u8> {
        let mut b = vec![0u8; PG_CONTROL_FILE_SIZE];
        b[..8].copy_from_slice(&7_234_567_890_123_456_789u64.to_le_bytes());
        b[8..12].copy_from_slice(&version.to_le_bytes());
        b[12..16].copy_from_slice(&202_307_071u32.to_le_bytes());
        b[v1300::CHECKPOINT..v1300::CHECKPOINT + 8].copy_from_slice(&0x0300_0028u64.to_le_bytes());
        b[v1300::CHECKPOINT_TIMELINE..v1300::CHECKPOINT_TIMELINE + 4]
            .copy_from_slice(&2u32.to_le_bytes());
        b[v1300::XLOG_BLCKSZ..v1300::XLOG_BLCKSZ + 4].copy_from_slice(&8192u32.to_le_bytes());
        b[v1300::XLOG_SEG_SIZE..v1300::XLOG_SEG_SIZE + 4]
            .copy_from_slice(&(64u32 << 20).to_le_bytes());
        let crc = crc32c(&b[..crc_at]);
        b[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
        b
    }

    #[test]
    fn reads_a_known_layout() {
        let c = parse_pg_control(&control(1700, v1300::CRC)).unwrap();
        assert_eq!(c.system_identifier, 7_234_567_890_123_456_789);
        assert_eq!((c.control_version, c.catalog_version), (1700, 202_307_071));
        let l = c.layout.unwrap();
        assert_eq!(l.wal_segment_size, 64 << 20);
        assert_eq!(l.wal_block_size, 8192);
        assert_eq!(l.checkpoint, Lsn(0x0300_0028));
        assert_eq!(l.checkpoint_timeline, 2);
    }

    #[test]
    fn another_version_gives_its_system_identifier_only() {
        let c = parse_pg_control(&control(1800, 0x128)).unwrap();
        assert_eq!(c.system_identifier, 7_234_567_890_123_456_789);
        assert_eq!(c.layout, None);
        assert_eq!(
            system_identifier_from_pg_control(&control(1800, 0x128)).unwrap(),
            7_234_567_890_123_456_789
        );
    }

    #[test]
    fn damage_is_refused() {
        let mut b = control(1300, v1300::CRC);
        b[3] ^= 1;
        assert_eq!(parse_pg_control(&b), Err(ControlFileProblem::BadChecksum));
        // A known version whose checksum is elsewhere is not that version's layout.
        assert_eq!(
            parse_pg_control(&control(1300, 0x128)),
            Err(ControlFileProblem::BadChecksum)
        );
        assert_eq!(
            parse_pg_control(&[0u8; 100]),
            Err(ControlFileProblem::WrongSize { len: 100 })
        );
        assert_eq!(
            parse_pg_control(&vec![0u8; 8192]),
            Err(ControlFileProblem::BadChecksum),
            "zeros"
        );
    }
}
