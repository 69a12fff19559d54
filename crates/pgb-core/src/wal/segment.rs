//! The first page of a WAL segment, checked before a segment is archived or handed to
//! PostgreSQL.
//!
//! The long page header: magic (u16), info (u16), timeline (u32), page address (u64),
//! remaining length (u32, padded to 24 bytes), then system identifier (u64), segment size
//! (u32) and block size (u32).

use pgb_wal::{Lsn, WalFileName};

/// `XLP_LONG_HEADER`: set in the first page of every segment.
const XLP_LONG_HEADER: u16 = 0x0002;
/// WAL page magics are 0xD0xx; PostgreSQL 9.x wrote 0xD07x-0xD09x, 15 writes 0xD110.
const MIN_MAGIC: u16 = 0xD000;

/// Checks `data` is the segment `file` names (or its `.partial`): the header's timeline and
/// page address match the name and its length is the segment size the header declares.
/// Returns the cluster's system identifier.
pub(super) fn check(data: &[u8], file: &WalFileName) -> Result<u64, String> {
    if data.len() < 40 {
        return Err(format!(
            "{} bytes is too short for a WAL segment",
            data.len()
        ));
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().expect("8 bytes"));
    let magic = u16_at(0);
    if magic < MIN_MAGIC || magic & 0xFF00 != 0xD000 && magic & 0xFF00 != 0xD100 {
        return Err(format!("no WAL page magic (found {magic:#06x})"));
    }
    if u16_at(2) & XLP_LONG_HEADER == 0 {
        return Err("the first page has no long header: not the start of a segment".to_owned());
    }
    let segment_size = u64::from(u32_at(32));
    if !segment_size.is_power_of_two() || !(1 << 20..=1 << 30).contains(&segment_size) {
        return Err(format!(
            "implausible segment size {segment_size} in the header"
        ));
    }
    if data.len() as u64 != segment_size {
        return Err(format!(
            "{} bytes, but the header says segments are {segment_size} bytes",
            data.len()
        ));
    }
    let timeline = u32_at(4);
    if timeline != file.timeline() {
        return Err(format!(
            "the header is of timeline {timeline}, the name of timeline {}",
            file.timeline()
        ));
    }
    let page_address = Lsn(u64_at(8));
    let expected = file.start_lsn(segment_size);
    if Some(page_address) != expected {
        return Err(format!(
            "the header starts at {page_address}, the name at {}",
            expected.map_or_else(String::new, |l| l.to_string())
        ));
    }
    Ok(u64_at(24))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal valid segment of 1 MiB: just the long header.
    pub(crate) fn fake_segment(name: &str, system_identifier: u64) -> Vec<u8> {
        let file: WalFileName = name.parse().unwrap();
        let size = 1u64 << 20;
        let mut d = vec![0u8; size as usize];
        d[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
        d[2..4].copy_from_slice(&XLP_LONG_HEADER.to_le_bytes());
        d[4..8].copy_from_slice(&file.timeline().to_le_bytes());
        d[8..16].copy_from_slice(&file.start_lsn(size).unwrap().0.to_le_bytes());
        d[24..32].copy_from_slice(&system_identifier.to_le_bytes());
        d[32..36].copy_from_slice(&(size as u32).to_le_bytes());
        d[36..40].copy_from_slice(&8192u32.to_le_bytes());
        d
    }

    #[test]
    fn a_segment_must_match_its_name() {
        let name: WalFileName = "000000010000000000000005".parse().unwrap();
        let seg = fake_segment(name.as_str(), 42);
        assert_eq!(check(&seg, &name), Ok(42));
        let other: WalFileName = "000000010000000000000006".parse().unwrap();
        assert!(check(&seg, &other).unwrap_err().contains("starts at"));
        let tl2: WalFileName = "000000020000000000000005".parse().unwrap();
        assert!(check(&seg, &tl2).unwrap_err().contains("timeline"));
        assert!(check(&seg[..1000], &name).unwrap_err().contains("bytes"));
        assert!(
            check(&vec![0u8; 1 << 20], &name)
                .unwrap_err()
                .contains("magic")
        );
    }
}
