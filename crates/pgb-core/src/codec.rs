//! Compression codecs and the blocking encode/decode stages of the pipeline.
//!
//! Compression is CPU work, so it runs on a blocking thread between two bounded channels; memory
//! stays at a few chunks whatever the size of the dump. The encoder chain is built from `Write`
//! adapters so that further stages (encryption) slot in after compression.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::queue::ByteReceiver;

/// How the stored bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Compression {
    /// Stored as produced by pg_dump.
    None,
    /// gzip (RFC 1952), through flate2. Level 1-9.
    Gzip {
        /// Compression level.
        level: u32,
    },
    /// zstd, with frame checksums. Level 1-19.
    Zstd {
        /// Compression level.
        level: i32,
    },
}

impl Default for Compression {
    fn default() -> Self {
        Self::Zstd { level: 3 }
    }
}

impl Compression {
    /// File-name suffix, e.g. `.zst`.
    pub fn extension(&self) -> &'static str {
        match self {
            Self::None => "",
            Self::Gzip { .. } => ".gz",
            Self::Zstd { .. } => ".zst",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Gzip { level } => write!(f, "gzip:{level}"),
            Self::Zstd { level } => write!(f, "zstd:{level}"),
        }
    }
}

/// A compression spec that did not parse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid compression {0:?}: expected none, gzip[:1-9] or zstd[:1-19]")]
pub struct InvalidCompression(String);

impl FromStr for Compression {
    type Err = InvalidCompression;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidCompression(s.to_owned());
        let (name, level) = match s.split_once(':') {
            Some((n, l)) => (n, Some(l)),
            None => (s, None),
        };
        match name {
            "none" if level.is_none() => Ok(Self::None),
            "gzip" | "gz" => {
                let level = level.map_or(Ok(6), |l| l.parse().map_err(|_| bad()))?;
                if !(1..=9).contains(&level) {
                    return Err(bad());
                }
                Ok(Self::Gzip { level })
            }
            "zstd" | "zst" => {
                let level = level.map_or(Ok(3), |l| l.parse().map_err(|_| bad()))?;
                if !(1..=19).contains(&level) {
                    return Err(bad());
                }
                Ok(Self::Zstd { level })
            }
            _ => Err(bad()),
        }
    }
}

/// Lower-case hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The leaf of an encoder chain: collects output until the pipeline drains it.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    /// Room for `n` more bytes.
    fn reserve(&self, n: usize) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reserve(n);
    }

    /// Everything collected so far.
    pub(crate) fn take_all(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Everything collected, once it is at least `threshold` bytes. The next chunk's room is
    /// reserved up front (the threshold plus one stage's largest write), so a chunk does not
    /// pin the up to twice as large allocation of a buffer grown by doubling past it.
    fn take_if_over(&self, threshold: usize) -> Option<Bytes> {
        let mut v = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (v.len() >= threshold.max(1)).then(|| {
            let next = Vec::with_capacity(threshold.saturating_add(STAGE_WRITE_MAX));
            Bytes::from(std::mem::replace(&mut *v, next))
        })
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One stage of an encoder chain. `finish_stage` writes this stage's trailer and then finishes
/// the inner stage. It is called only on success: an error path drops the chain unfinished, so
/// a failed backup can never produce a valid-looking, truncated archive.
pub(crate) trait EncodeStage: Write + Send {
    fn finish_stage(self: Box<Self>) -> io::Result<()>;
}

impl EncodeStage for SharedBuf {
    fn finish_stage(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }
}

struct ZstdStage(zstd::stream::write::Encoder<'static, Box<dyn EncodeStage>>);

impl Write for ZstdStage {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl EncodeStage for ZstdStage {
    fn finish_stage(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.finish_stage()
    }
}

struct GzipStage(flate2::write::GzEncoder<Box<dyn EncodeStage>>);

impl Write for GzipStage {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl EncodeStage for GzipStage {
    fn finish_stage(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.finish_stage()
    }
}

/// Wraps `inner` in the compression stage for `c`, with `workers` zstd worker threads (0:
/// compress on the calling thread).
fn compress_stage_with(
    c: Compression,
    inner: Box<dyn EncodeStage>,
    workers: u32,
) -> io::Result<Box<dyn EncodeStage>> {
    Ok(match c {
        Compression::None => inner,
        Compression::Gzip { level } => Box::new(GzipStage(flate2::write::GzEncoder::new(
            inner,
            flate2::Compression::new(level),
        ))),
        Compression::Zstd { level } => {
            let mut enc = zstd::stream::write::Encoder::new(inner, level)?;
            enc.include_checksum(true)?;
            if workers > 0 {
                enc.multithread(workers)?;
                enc.set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB_SIZE))?;
            }
            Box::new(ZstdStage(enc))
        }
    })
}

/// A builder for the stages after compression (encryption plugs in here).
pub(crate) type OuterStage =
    Box<dyn FnOnce(Box<dyn EncodeStage>) -> io::Result<Box<dyn EncodeStage>> + Send>;

/// The encoder chain of every stored object, a backup's artifacts and archived WAL alike:
/// compression (with `workers` zstd worker threads, 0 for none), then the outer stages
/// (encryption), into the returned buffer that the caller drains. Writing plaintext into the
/// chain is all a source does; nothing of it is copied per source.
pub(crate) fn encoder_chain(
    compression: Compression,
    outer: Option<OuterStage>,
    workers: u32,
) -> io::Result<(SharedBuf, Box<dyn EncodeStage>)> {
    let sink = SharedBuf::default();
    let leaf: Box<dyn EncodeStage> = Box::new(sink.clone());
    let leaf = match outer {
        Some(f) => f(leaf)?,
        None => leaf,
    };
    Ok((sink, compress_stage_with(compression, leaf, workers)?))
}

/// Digests of both ends of an encode or decode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Digests {
    pub(crate) plain_size: u64,
    pub(crate) plain_sha256: String,
}

/// zstd worker threads: the cores left after pg_dump, its server backend and pgb's own hashing
/// and upload (3), at most [`MAX_ZSTD_WORKERS`]. On 2 or 3 cores: none, compression stays on
/// the encoder thread (there is no core to move it to). With workers the encoder thread only
/// feeds them, so compression leaves the critical path where cores are spare.
fn zstd_workers() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    u32::try_from(cores.saturating_sub(3)).map_or(MAX_ZSTD_WORKERS, |n| n.min(MAX_ZSTD_WORKERS))
}

/// More workers than this add memory (a job buffer each) without speed: zstd:3 at 1 MiB jobs
/// runs at several hundred MB/s per worker, faster than pg_dump writes.
const MAX_ZSTD_WORKERS: u32 = 4;

/// zstd's job size with workers: small jobs keep memory bounded (about 2 jobs per worker in
/// flight) at a negligible cost in ratio.
const ZSTD_JOB_SIZE: u32 = 1 << 20;

/// Plaintext chunks queued for the hash thread.
const HASH_DEPTH: usize = 8;

/// sha256 of the plaintext on its own thread, beside compression rather than before it.
struct HashThread {
    tx: Option<std::sync::mpsc::SyncSender<Bytes>>,
    handle: Option<std::thread::JoinHandle<Digests>>,
}

impl HashThread {
    fn spawn() -> io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(HASH_DEPTH);
        let handle = std::thread::Builder::new()
            .name("pgb-sha256".into())
            .spawn(move || {
                let mut hasher = Sha256::new();
                let mut size = 0u64;
                for chunk in rx {
                    hasher.update(&chunk);
                    size += chunk.len() as u64;
                }
                Digests {
                    plain_size: size,
                    plain_sha256: hex(&hasher.finalize()),
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Queues `chunk` (a reference count, not a copy).
    fn update(&self, chunk: &Bytes) -> io::Result<()> {
        self.tx
            .as_ref()
            .and_then(|tx| tx.send(chunk.clone()).ok())
            .ok_or_else(|| io::Error::other("the sha256 thread stopped"))
    }

    /// The digest of everything queued.
    fn finish(mut self) -> io::Result<Digests> {
        drop(self.tx.take());
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .ok_or_else(|| io::Error::other("the sha256 thread panicked"))
    }
}

impl Drop for HashThread {
    fn drop(&mut self) {
        // Closing the queue ends the thread; an unfinished digest is never used.
        drop(self.tx.take());
    }
}

/// Output chunks are gathered to about this size before they go to storage: small, because
/// several are alive at once (queued, being written, being gathered) and the memory they take
/// is better spent on the input queue, which absorbs the source's bursts (at zstd:3 a 256 KiB
/// chunk is still about 2 MiB of plaintext).
const OUT_CHUNK: usize = 256 << 10;

/// The most one stage writes into the chain's buffer at once: zstd's output buffer
/// (`ZSTD_CStreamOutSize`, 128 KiB and a few bytes); age writes 64 KiB chunks, gzip less.
const STAGE_WRITE_MAX: usize = 160 << 10;

/// Message into the encoder thread. The chain is finished only on `Finish`; a closed channel
/// without it means the producer failed, and the chain is dropped unfinished.
#[derive(Debug)]
pub(crate) enum EncodeMsg {
    Data(Bytes),
    Finish,
}

/// Runs the encoder chain on a blocking thread: `rx` plaintext in, `tx` stored bytes out.
/// Returns the plaintext digest once the chain was finished, or an error if the input ended
/// without `Finish` (nothing finalized) or an encoder failed.
pub(crate) fn spawn_encoder(
    compression: Compression,
    outer: Option<OuterStage>,
    mut rx: ByteReceiver,
    tx: mpsc::Sender<Bytes>,
) -> tokio::task::JoinHandle<io::Result<Digests>> {
    tokio::task::spawn_blocking(move || {
        let (sink, mut chain) = encoder_chain(compression, outer, zstd_workers())?;
        sink.reserve(OUT_CHUNK + STAGE_WRITE_MAX);
        let hasher = HashThread::spawn()?;
        let send = |b: Bytes| {
            tx.blocking_send(b)
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "storage writer stopped"))
        };
        loop {
            match rx.blocking_recv() {
                Some(EncodeMsg::Data(chunk)) => {
                    hasher.update(&chunk)?;
                    chain.write_all(&chunk)?;
                    if let Some(out) = sink.take_if_over(OUT_CHUNK) {
                        send(out)?;
                    }
                }
                Some(EncodeMsg::Finish) => {
                    chain.finish_stage()?;
                    if let Some(out) = sink.take_if_over(1) {
                        send(out)?;
                    }
                    return hasher.finish();
                }
                None => {
                    // Dropped unfinished on purpose: see `EncodeStage`.
                    drop(chain);
                    return Err(io::Error::new(
                        io::ErrorKind::Interrupted,
                        "input ended without completion; encoders not finalized",
                    ));
                }
            }
        }
    })
}

/// A `Read` over a channel of chunks, for the read-based decoders.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// A builder for the stages before decompression (decryption plugs in here).
pub(crate) type OuterDecode =
    Box<dyn FnOnce(Box<dyn Read + Send>) -> io::Result<Box<dyn Read + Send>> + Send>;

/// The decoder chain of every stored object, the reverse of [`encoder_chain`]: the outer
/// stages (decryption), then decompression of exactly one frame (anything after it is
/// corruption, not a second archive), over `stored`.
pub(crate) fn decoder_chain(
    stored: Box<dyn Read + Send>,
    compression: Compression,
    outer: Option<OuterDecode>,
) -> io::Result<Box<dyn Read + Send>> {
    let reader = match outer {
        Some(f) => f(stored)?,
        None => stored,
    };
    Ok(match compression {
        Compression::None => reader,
        Compression::Gzip { .. } => Box::new(flate2::read::GzDecoder::new(reader)),
        Compression::Zstd { .. } => {
            Box::new(zstd::stream::read::Decoder::new(reader)?.single_frame())
        }
    })
}

/// Plaintext chunks out of the decoder: with the queue behind it, the chunk held back until
/// the checksums match and the one being written, a few of them are alive at once, so they
/// are kept small (peak memory of a restore, measured: docs/benchmarks.md).
const DECODE_CHUNK: usize = 256 << 10;

/// Runs the decoder on a blocking thread: stored bytes in, plaintext out in chunks of at most
/// [`DECODE_CHUNK`]. Fails on a truncated or corrupt stream, or trailing garbage after the last frame.
pub(crate) fn spawn_decoder(
    compression: Compression,
    outer: Option<OuterDecode>,
    rx: mpsc::Receiver<Bytes>,
    tx: mpsc::Sender<Bytes>,
) -> tokio::task::JoinHandle<io::Result<Digests>> {
    tokio::task::spawn_blocking(move || {
        let stored: Box<dyn Read + Send> = Box::new(ChannelReader {
            rx,
            cur: Bytes::new(),
        });
        let mut reader = decoder_chain(stored, compression, outer)?;
        // The plaintext sha256 runs beside decompression, as in the encoder: a spooled restore
        // or a verify has the cores to itself until the archive is complete.
        let hasher = HashThread::spawn()?;
        let mut buf = vec![0u8; DECODE_CHUNK];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let chunk = Bytes::copy_from_slice(&buf[..n]);
            hasher.update(&chunk)?;
            tx.blocking_send(chunk)
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "restore sink stopped"))?;
        }
        // Bytes after the end of the compressed stream are left unread here; the caller hashes
        // every stored byte, so appended data fails the size and sha256 check.
        hasher.finish()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn roundtrip(c: Compression, data: Vec<u8>) -> Vec<u8> {
        let (itx, irx) = crate::queue::byte_queue(400_000);
        let (otx, mut orx) = mpsc::channel(4);
        let enc = spawn_encoder(c, None, irx, otx);
        let feed = tokio::spawn(async move {
            for chunk in data.chunks(100_000) {
                itx.send(Bytes::copy_from_slice(chunk)).await.unwrap();
            }
            itx.finish().unwrap();
        });
        let mut stored = Vec::new();
        while let Some(b) = orx.recv().await {
            stored.extend_from_slice(&b);
        }
        feed.await.unwrap();
        enc.await.unwrap().unwrap();
        stored
    }

    async fn decode(c: Compression, stored: Vec<u8>) -> io::Result<Vec<u8>> {
        let (itx, irx) = mpsc::channel(4);
        let (otx, mut orx) = mpsc::channel(4);
        let dec = spawn_decoder(c, None, irx, otx);
        tokio::spawn(async move {
            for chunk in stored.chunks(7_000) {
                if itx.send(Bytes::copy_from_slice(chunk)).await.is_err() {
                    break;
                }
            }
        });
        let mut out = Vec::new();
        while let Some(b) = orx.recv().await {
            out.extend_from_slice(&b);
        }
        dec.await.unwrap().map(|_| out)
    }

    /// The multithreaded zstd path (taken where cores are spare) produces a valid, checksummed
    /// frame that the streaming decoder restores byte for byte.
    #[test]
    fn zstd_with_workers_roundtrips() {
        let data: Vec<u8> = (0..6_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 % 16 + b'a')
            .collect();
        let c = Compression::Zstd { level: 3 };
        let sink = SharedBuf::default();
        let mut chain = compress_stage_with(c, Box::new(sink.clone()), 2).unwrap();
        for chunk in data.chunks(300_000) {
            chain.write_all(chunk).unwrap();
        }
        chain.finish_stage().unwrap();
        let stored = sink.take_if_over(1).unwrap();
        assert!(stored.len() < data.len() / 2, "compressed");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let out = rt.block_on(decode(c, stored.to_vec())).unwrap();
        assert!(out == data, "round trip");
    }

    fn sample() -> Vec<u8> {
        (0..3_000_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 4093) as u8)
            .collect()
    }

    #[tokio::test]
    async fn every_codec_round_trips() {
        for c in [
            Compression::None,
            Compression::Gzip { level: 6 },
            Compression::Zstd { level: 3 },
        ] {
            let stored = roundtrip(c, sample()).await;
            assert_eq!(decode(c, stored).await.unwrap(), sample(), "{c}");
        }
    }

    #[tokio::test]
    async fn truncated_streams_fail_to_decode() {
        for c in [
            Compression::Gzip { level: 6 },
            Compression::Zstd { level: 3 },
        ] {
            let mut stored = roundtrip(c, sample()).await;
            stored.truncate(stored.len() / 2);
            assert!(
                decode(c, stored).await.is_err(),
                "{c}: truncation must be detected"
            );
        }
    }

    #[tokio::test]
    async fn an_unfinished_encoder_produces_no_valid_stream() {
        for c in [
            Compression::Gzip { level: 6 },
            Compression::Zstd { level: 3 },
        ] {
            let (itx, irx) = crate::queue::byte_queue(4 << 20);
            let (otx, mut orx) = mpsc::channel(64);
            let enc = spawn_encoder(c, None, irx, otx);
            itx.send(Bytes::from(sample())).await.unwrap();
            drop(itx); // the producer failed: no Finish
            assert!(enc.await.unwrap().is_err());
            let mut stored = Vec::new();
            while let Some(b) = orx.recv().await {
                stored.extend_from_slice(&b);
            }
            assert!(
                decode(c, stored).await.is_err(),
                "{c}: partial output must not decode"
            );
        }
    }

    #[test]
    fn parses_compression_specs() {
        assert_eq!(
            "zstd".parse::<Compression>().unwrap(),
            Compression::Zstd { level: 3 }
        );
        assert_eq!(
            "gzip:9".parse::<Compression>().unwrap(),
            Compression::Gzip { level: 9 }
        );
        assert_eq!("none".parse::<Compression>().unwrap(), Compression::None);
        assert!("zstd:0".parse::<Compression>().is_err());
        assert!("lz4".parse::<Compression>().is_err());
    }
}
