//! The stored form of one archived WAL file: one header line, then the file compressed (and
//! encrypted) by the same stages as a backup's artifacts.
//!
//! ```text
//! pgb-wal 1 <name> <plain size> <plain sha256> <zstd|gzip|none> <age|none> <hmac|->\n
//! <body>
//! ```
//!
//! The header makes each object self-describing, so a fetch is one GET and a re-push of the
//! same file compares digests from the first bytes of the stored one, with no download of the
//! body and no catalog. By hand: `tail -n +2 OBJECT | [age -d -i KEY |] zstd -d > NAME`.
//! With an authentication key the HMAC covers the cluster's system identifier and every other
//! header field, so a file cannot be swapped for another or moved to another cluster's folder.

use std::io::{Read, Write};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::codec::{self, Compression, OuterDecode, OuterStage};

/// The first bytes of every stored WAL file.
pub(super) const MAGIC: &str = "pgb-wal 1 ";
/// A header line is never longer than this.
pub(super) const MAX_HEADER: usize = 512;

/// The parsed header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) name: String,
    pub(super) plain_size: u64,
    pub(super) plain_sha256: String,
    pub(super) compression: Compression,
    pub(super) encrypted: bool,
    pub(super) mac: Option<String>,
}

fn compression_token(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Gzip { .. } => "gzip",
        Compression::Zstd { .. } => "zstd",
    }
}

impl Header {
    /// The bytes the HMAC covers.
    pub(super) fn mac_input(&self, system_identifier: u64) -> String {
        format!(
            "pgb-wal 1 {system_identifier} {} {} {} {} {}",
            self.name,
            self.plain_size,
            self.plain_sha256,
            compression_token(self.compression),
            if self.encrypted { "age" } else { "none" },
        )
    }

    /// The header line, newline included.
    pub(super) fn line(&self) -> String {
        format!(
            "{MAGIC}{} {} {} {} {} {}\n",
            self.name,
            self.plain_size,
            self.plain_sha256,
            compression_token(self.compression),
            if self.encrypted { "age" } else { "none" },
            self.mac.as_deref().unwrap_or("-"),
        )
    }

    /// Parses the header at the start of `bytes`; returns it and where the body starts.
    pub(super) fn parse(bytes: &[u8]) -> Result<(Self, usize), String> {
        let window = &bytes[..bytes.len().min(MAX_HEADER)];
        let end = window
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("no pgb WAL header line (not written by pgb wal push, or truncated)")?;
        let line = std::str::from_utf8(&window[..end]).map_err(|_| "the header is not text")?;
        let rest = line
            .strip_prefix(MAGIC)
            .ok_or("not a pgb WAL object (unknown header)")?;
        let f: Vec<&str> = rest.split(' ').collect();
        let [name, size, sha, comp, enc, mac] = f[..] else {
            return Err(format!("malformed header ({} fields)", f.len()));
        };
        let plain_size = size.parse().map_err(|_| "malformed size in the header")?;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("malformed sha256 in the header".to_owned());
        }
        let compression = match comp {
            "zstd" => Compression::Zstd { level: 3 },
            "gzip" => Compression::Gzip { level: 6 },
            "none" => Compression::None,
            other => return Err(format!("unknown compression {other:?} in the header")),
        };
        let encrypted = match enc {
            "age" => true,
            "none" => false,
            other => return Err(format!("unknown encryption {other:?} in the header")),
        };
        Ok((
            Self {
                name: name.to_owned(),
                plain_size,
                plain_sha256: sha.to_owned(),
                compression,
                encrypted,
                mac: (mac != "-").then(|| mac.to_owned()),
            },
            end + 1,
        ))
    }
}

/// sha256 of `data` as hex.
pub(super) fn sha256_hex(data: &[u8]) -> String {
    codec::hex(&Sha256::digest(data))
}

/// Compresses and (optionally) encrypts `data` through the backup pipeline's encoder chain
/// ([`codec::encoder_chain`]), on the calling thread (a WAL file is at most one segment;
/// pushes run side by side instead).
pub(super) fn encode(
    data: &[u8],
    compression: Compression,
    outer: Option<OuterStage>,
) -> std::io::Result<Vec<u8>> {
    let (sink, mut chain) = codec::encoder_chain(compression, outer, 0)?;
    chain.write_all(data)?;
    chain.finish_stage()?;
    Ok(sink.take_all())
}

/// Decrypts and decompresses `body` through the restore side's decoder chain
/// ([`codec::decoder_chain`]), reading at most `limit` bytes of plaintext (one more means the
/// object is not what its header says).
pub(super) fn decode(
    body: Bytes,
    compression: Compression,
    outer: Option<OuterDecode>,
    limit: u64,
) -> std::io::Result<Vec<u8>> {
    let reader = codec::decoder_chain(Box::new(std::io::Cursor::new(body)), compression, outer)?;
    let mut out = Vec::new();
    reader.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_what_pgb_never_writes() {
        let h = Header {
            name: "000000010000000000000003".to_owned(),
            plain_size: 16 << 20,
            plain_sha256: "a".repeat(64),
            compression: Compression::Zstd { level: 3 },
            encrypted: true,
            mac: Some("b".repeat(64)),
        };
        let mut bytes = h.line().into_bytes();
        bytes.extend_from_slice(b"\x28\xb5\x2f\xfd body");
        let (parsed, body) = Header::parse(&bytes).unwrap();
        assert_eq!(parsed, h);
        assert_eq!(&bytes[body..body + 4], b"\x28\xb5\x2f\xfd");
        for bad in [
            &b"\x28\xb5\x2f\xfd"[..],
            b"pgb-wal 2 x 1 aa zstd none -\n",
            b"pgb-wal 1 x 1 short zstd none -\n",
            b"pgb-wal 1 x one aaaa zstd none -\n",
        ] {
            assert!(Header::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn encode_decode_round_trip_and_limit() {
        let data = vec![7u8; 100_000];
        for c in [
            Compression::None,
            Compression::Gzip { level: 1 },
            Compression::Zstd { level: 3 },
        ] {
            let stored = Bytes::from(encode(&data, c, None).unwrap());
            assert_eq!(decode(stored.clone(), c, None, 100_000).unwrap(), data);
            // A stream longer than the header says is caught by the limit.
            assert_eq!(decode(stored, c, None, 10).unwrap().len(), 11);
        }
    }
}
