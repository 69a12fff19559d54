//! The first page of a WAL segment, checked before a segment is archived or handed to
//! PostgreSQL (the reading itself is `pgb_wal::check_segment`, shared with every other
//! reader of WAL).

use pgb_wal::WalFileName;

/// Checks `data` is the segment `file` names (or its `.partial`); returns the cluster's
/// system identifier.
pub(super) fn check(data: &[u8], file: &WalFileName) -> Result<u64, String> {
    pgb_wal::check_segment(data, file)
        .map(|h| h.system_identifier)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid segment of 1 MiB: just the long header.
    fn fake_segment(name: &str, system_identifier: u64) -> Vec<u8> {
        let file: WalFileName = name.parse().unwrap();
        let size = 1u64 << 20;
        let mut d = vec![0u8; size as usize];
        d[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
        d[2..4].copy_from_slice(&pgb_wal::XLP_LONG_HEADER.to_le_bytes());
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
        assert!(check(&seg, &other).is_err());
        assert!(check(&seg[..1000], &name).is_err());
        assert!(check(&vec![0u8; 1 << 20], &name).is_err());
    }
}
