//! A spill file behind the pipeline's input queue.
//!
//! A source writes in bursts: pg_dump copies a table at disk speed, then waits while the
//! server reads a catalogue or the next table; `pg_basebackup` sends a large file, then many
//! small ones. The in-memory input queue is small so that memory stays flat (8 MiB). When it
//! is full the source waits, and where compression keeps the cores busy a burst is then taken
//! at compression's pace instead of the source's: the pauses that follow it no longer overlap
//! any work, and the whole backup stretches. With a spill, a chunk that finds the queue full
//! goes to a temporary file instead (up to [`SpillOptions::limit`] bytes waiting), and the
//! file is fed back into the queue in order as compression takes it: the source is read at its
//! own pace while memory stays bounded.
//!
//! The file has no name (created unlinked, so it is gone with the process, even after a
//! `SIGKILL`), it is reused as a ring of at most `limit` bytes, and it holds ciphertext only:
//! every byte is XORed with an AES-128 counter-mode keystream under a random key that exists only in this
//! process's memory, so the database's contents never reach the disk in the clear, whether
//! the backup is encrypted or not. A file that cannot be created or written (a full disk)
//! ends spilling for the rest of the artifact with a warning; the backup goes on at the
//! queue's pace.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::{Bytes, BytesMut};
use ctr::cipher::{KeyIvInit as _, StreamCipher as _, StreamCipherSeek as _};
use tokio::sync::Notify;

use crate::queue::{ByteSender, Closed, TrySendError};

/// Where, and how much of, a backup's input may wait on disk when compression is behind.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpillOptions {
    /// The directory of the (unnamed) spill file.
    pub dir: PathBuf,
    /// The most bytes waiting in the file at once; at least 1 MiB is used.
    pub limit: u64,
}

impl SpillOptions {
    /// A spill file in `dir` holding at most `limit` bytes.
    pub fn new(dir: impl Into<PathBuf>, limit: u64) -> Self {
        Self {
            dir: dir.into(),
            limit,
        }
    }
}

/// The spill a caller gets when it names only a directory: enough for several of pg_dump's
/// bursts, small next to the dumps that have them.
pub const DEFAULT_SPILL_LIMIT: u64 = 256 << 20;

/// The smallest ring used, whatever the limit asked.
const MIN_RING: u64 = 1 << 20;

/// What is read back from the file at a time (as pg_dump's reads are gathered).
const READ_CHUNK: u64 = 512 << 10;

/// The input of the encoder with a spill file behind it: `tx` is the in-memory queue;
/// without `spill` every chunk waits for room in it. Returns the producing side and the
/// drain, a future that feeds the file back into the queue and finishes the queue once the
/// producer is done: run both side by side (the drain ends only after [`SpillSender::finish`]
/// or a closed queue).
pub(crate) fn spill_queue(tx: ByteSender, spill: Option<&SpillOptions>) -> (SpillSender, Drain) {
    let mut key = [0u8; 16];
    // Without randomness there is no key to hide the bytes under: no spill.
    let keyed = getrandom::fill(&mut key).is_ok();
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            broken: spill.is_none() || !keyed,
            ..State::default()
        }),
        more: Notify::new(),
        room: Notify::new(),
        dir: spill.map(|s| s.dir.clone()).unwrap_or_default(),
        ring: spill.map_or(MIN_RING, |s| s.limit.max(MIN_RING)),
        key,
        io: OnceLock::new(),
        buffers: Arc::default(),
        #[cfg(test)]
        peek: OnceLock::new(),
    });
    let tx = Arc::new(tx);
    (
        SpillSender {
            tx: Some(Arc::clone(&tx)),
            shared: Arc::clone(&shared),
            finished: false,
        },
        Drain { tx, shared },
    )
}

#[derive(Debug, Default)]
struct State {
    /// Chunks are going to the file (the queue gets them through the drain, in order).
    spilling: bool,
    /// No (more) spilling: none asked, or the file failed.
    broken: bool,
    /// The producer is done.
    finished: bool,
    /// The producer went away without finishing (its source failed): the queue must not be
    /// finished, or the encoder would seal a truncated stream.
    abandoned: bool,
    /// The queue is closed (the encoder stopped).
    closed: bool,
    /// Keystream of the current round of the ring (a fresh nonce each time it empties).
    round: u64,
    /// Logical end of the bytes given to the file, written or being written.
    reserved: u64,
    /// Logical end of the bytes written.
    written: u64,
    /// Logical end of the bytes fed back into the queue.
    read: u64,
}

struct Shared {
    state: Mutex<State>,
    /// To the drain: bytes written, or the producer finished.
    more: Notify,
    /// To the producer: the drain took bytes (room in the ring), or the queue closed.
    room: Notify,
    dir: PathBuf,
    ring: u64,
    key: [u8; 16],
    /// The file's thread ([`Shared::io`]).
    io: OnceLock<std::sync::mpsc::Sender<Io>>,
    /// Read-back buffers given back by the chunks that held them, for the file's thread.
    buffers: Arc<BufferPool>,
    /// The file itself, for tests to look at what reaches the disk.
    #[cfg(test)]
    peek: OnceLock<File>,
}

/// Read-back buffers given back when their chunk is dropped (on whichever thread), kept for
/// the file's thread to reuse.
#[derive(Default)]
struct BufferPool(Mutex<Vec<Vec<u8>>>);

impl BufferPool {
    /// The most buffers kept: more than the queue holds of them at once (its budget in
    /// READ_CHUNKs, plus those the encoder and the hash thread hold).
    const KEEP: usize = 12;

    fn drain(&self) -> Vec<Vec<u8>> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn give(&self, buf: Vec<u8>) {
        let mut free = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if free.len() < Self::KEEP {
            free.push(buf);
        }
    }
}

/// A chunk read back from the file, its buffer returned to the pool when dropped.
struct Pooled {
    buf: Vec<u8>,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The file's thread, started with the first spill: every read and write of the file,
    /// and every read-back buffer, on one thread (one malloc arena: reads spread over the
    /// blocking pool's threads took peak memory from 31 to 40 MiB in the burst benchmark).
    fn io(&self) -> std::io::Result<&std::sync::mpsc::Sender<Io>> {
        if let Some(tx) = self.io.get() {
            return Ok(tx);
        }
        let file = tempfile::tempfile_in(&self.dir)?;
        #[cfg(test)]
        let _ = self.peek.set(file.try_clone()?);
        let (tx, rx) = std::sync::mpsc::channel();
        let ring = Ring {
            file,
            size: self.ring,
            key: self.key,
            buffers: Vec::new(),
            returned: Arc::clone(&self.buffers),
        };
        std::thread::Builder::new()
            .name("pgb-spill".into())
            .spawn(move || ring.serve(&rx))?;
        Ok(self.io.get_or_init(|| tx))
    }

    /// Writes `chunk` at logical position `at` of `round`; on failure the chunk comes back in
    /// the clear.
    async fn write(
        &self,
        at: u64,
        round: u64,
        chunk: Bytes,
    ) -> Result<(), (std::io::Error, Bytes)> {
        let io = match self.io() {
            Ok(io) => io,
            Err(e) => return Err((e, chunk)),
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let buf = chunk
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        if let Err(std::sync::mpsc::SendError(Io::Write { buf, .. })) = io.send(Io::Write {
            at,
            round,
            buf,
            reply,
        }) {
            return Err((
                std::io::Error::other("the spill thread stopped"),
                buf.freeze(),
            ));
        }
        answer.await.unwrap_or_else(|_| {
            Err((
                std::io::Error::other("the spill thread stopped"),
                Bytes::new(),
            ))
        })
    }

    /// Reads `len` bytes at logical position `at` of `round`, in the clear.
    async fn read(&self, at: u64, round: u64, len: u64) -> std::io::Result<Bytes> {
        let stopped = || std::io::Error::other("the spill thread stopped");
        let io = self
            .io
            .get()
            .ok_or_else(|| std::io::Error::other("the spill file is missing"))?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        io.send(Io::Read {
            at,
            round,
            len,
            reply,
        })
        .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The spill file's cipher.
type Keystream = ctr::Ctr64BE<aes::Aes128>;

/// A request to the file's thread.
enum Io {
    Write {
        at: u64,
        round: u64,
        buf: BytesMut,
        reply: tokio::sync::oneshot::Sender<Result<(), (std::io::Error, Bytes)>>,
    },
    Read {
        at: u64,
        round: u64,
        len: u64,
        reply: tokio::sync::oneshot::Sender<std::io::Result<Bytes>>,
    },
}

/// The spill file as its thread holds it.
struct Ring {
    file: File,
    size: u64,
    key: [u8; 16],
    /// Read-back buffers free for reuse (taken from `returned` when empty).
    buffers: Vec<Vec<u8>>,
    returned: Arc<BufferPool>,
}

impl Ring {
    fn serve(mut self, rx: &std::sync::mpsc::Receiver<Io>) {
        while let Ok(req) = rx.recv() {
            match req {
                Io::Write {
                    at,
                    round,
                    mut buf,
                    reply,
                } => {
                    self.cipher(round, at).apply_keystream(&mut buf);
                    let done = self.write_at(&buf, at).map_err(|e| {
                        // The same keystream again gives the plaintext back.
                        self.cipher(round, at).apply_keystream(&mut buf);
                        (e, buf.freeze())
                    });
                    let _ = reply.send(done);
                }
                Io::Read {
                    at,
                    round,
                    len,
                    reply,
                } => {
                    let _ = reply.send(self.read_at(at, round, len));
                }
            }
        }
    }

    fn cipher(&self, round: u64, at: u64) -> Keystream {
        // The round in the IV's upper half, the block counter in its lower half: no
        // (key, counter) pair repeats while the ring is reused.
        let mut iv = [0u8; 16];
        iv[..8].copy_from_slice(&round.to_be_bytes());
        let mut c = Keystream::new(&self.key.into(), &iv.into());
        c.seek(at);
        c
    }

    /// Where logical position `at` is in the file, and how many bytes fit before the wrap.
    fn place(&self, at: u64, len: usize) -> (u64, usize) {
        let pos = at % self.size;
        let first = usize::try_from((self.size - pos).min(len as u64)).unwrap_or(len);
        (pos, first)
    }

    fn write_at(&self, buf: &[u8], at: u64) -> std::io::Result<()> {
        let (pos, first) = self.place(at, buf.len());
        self.file.write_all_at(&buf[..first], pos)?;
        self.file.write_all_at(&buf[first..], 0)
    }

    fn read_at(&mut self, at: u64, round: u64, len: u64) -> std::io::Result<Bytes> {
        let len = usize::try_from(len).map_err(std::io::Error::other)?;
        if self.buffers.is_empty() {
            self.buffers = self.returned.drain();
        }
        let mut buf = self
            .buffers
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(READ_CHUNK as usize));
        buf.resize(len, 0);
        let (pos, first) = self.place(at, len);
        self.file.read_exact_at(&mut buf[..first], pos)?;
        self.file.read_exact_at(&mut buf[first..], 0)?;
        self.cipher(round, at).apply_keystream(&mut buf);
        Ok(Bytes::from_owner(Pooled {
            buf,
            pool: Arc::clone(&self.returned),
        }))
    }
}

/// Where a chunk goes.
enum Step {
    /// Into the queue (nothing waits in the file).
    Queue,
    /// Into the file at this position of this round.
    File(u64, u64),
    /// Nowhere yet: the ring is full (or spilling ended and the file still drains).
    Wait,
}

/// The producing side of [`spill_queue`].
pub(crate) struct SpillSender {
    tx: Option<Arc<ByteSender>>,
    shared: Arc<Shared>,
    finished: bool,
}

impl SpillSender {
    /// Queues `chunk`: into the queue when it has room and nothing waits in the file, else
    /// into the file when it has room, else waits for either.
    pub(crate) async fn send(&self, mut chunk: Bytes) -> Result<(), Closed> {
        let tx = self.tx.as_ref().ok_or(Closed)?;
        let sh = &self.shared;
        let len = chunk.len() as u64;
        loop {
            let room = sh.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let step = {
                let mut s = sh.state();
                if s.closed {
                    return Err(Closed);
                }
                if !s.spilling {
                    Step::Queue
                } else if !s.broken && s.reserved - s.read + len <= sh.ring {
                    let at = s.reserved;
                    s.reserved += len;
                    Step::File(at, s.round)
                } else {
                    Step::Wait
                }
            };
            let (at, round) = match step {
                Step::File(at, round) => (at, round),
                Step::Wait => {
                    room.await;
                    continue;
                }
                // Nothing waits in the file: straight into the queue if it has room.
                Step::Queue => match tx.try_send(chunk) {
                    Ok(()) => return Ok(()),
                    Err(TrySendError::Closed) => return Err(Closed),
                    Err(TrySendError::Full(c)) => {
                        chunk = c;
                        let start = {
                            let mut s = sh.state();
                            if s.broken || len > sh.ring {
                                None
                            } else {
                                // Only this producer starts spilling: the ring is empty now.
                                s.spilling = true;
                                let at = s.reserved;
                                s.reserved += len;
                                Some((at, s.round))
                            }
                        };
                        match start {
                            Some(p) => p,
                            None => return tx.send(chunk).await,
                        }
                    }
                },
            };
            match sh.write(at, round, chunk).await {
                Ok(()) => {
                    sh.state().written += len;
                    sh.more.notify_one();
                    return Ok(());
                }
                Err((_, back)) if back.len() as u64 != len => {
                    // The writing thread died with the chunk: its bytes are lost.
                    sh.state().closed = true;
                    sh.more.notify_one();
                    return Err(Closed);
                }
                Err((e, back)) => {
                    chunk = back;
                    tracing::warn!(dir = %sh.dir.display(), error = %e,
                        "cannot write the spill file; the backup goes on at the pace of compression");
                    {
                        let mut s = sh.state();
                        s.broken = true;
                        // The last reservation, and this producer's only one: given back.
                        s.reserved -= len;
                    }
                    sh.more.notify_one();
                }
            }
        }
    }

    /// The end of the input: the drain finishes the queue once the file is empty.
    pub(crate) fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for SpillSender {
    fn drop(&mut self) {
        // The drain takes the queue over alone (it finishes it only after a `finish`).
        self.tx = None;
        let mut s = self.shared.state();
        if self.finished {
            s.finished = true;
        } else {
            s.abandoned = true;
        }
        drop(s);
        self.shared.more.notify_one();
    }
}

/// The draining side of [`spill_queue`].
pub(crate) struct Drain {
    tx: Arc<ByteSender>,
    shared: Arc<Shared>,
}

impl Drain {
    /// Feeds the file back into the queue in order until the producer finished and the file
    /// is empty, then finishes the queue. `Ok(false)`: the queue closed first (the encoder
    /// stopped; its error says why).
    ///
    /// # Errors
    /// The spill file could not be read back: bytes the source gave are lost, so the backup
    /// must fail.
    pub(crate) async fn run(self) -> Result<bool, std::io::Error> {
        let sh = &self.shared;
        loop {
            let more = sh.more.notified();
            tokio::pin!(more);
            more.as_mut().enable();
            let next = {
                let mut s = sh.state();
                if s.abandoned {
                    return Ok(false);
                }
                if s.written > s.read {
                    Some((s.read, s.round, (s.written - s.read).min(READ_CHUNK)))
                } else {
                    if s.spilling && s.reserved == s.read {
                        // Empty: the next chunk may go straight into the queue again, and the
                        // ring starts over under a fresh keystream.
                        s.spilling = false;
                        s.round += 1;
                        s.reserved = 0;
                        s.written = 0;
                        s.read = 0;
                        sh.room.notify_waiters();
                    }
                    if s.finished && !s.spilling {
                        break;
                    }
                    None
                }
            };
            let Some((at, round, len)) = next else {
                more.await;
                continue;
            };
            let chunk = sh.read(at, round, len).await?;
            // A read-back buffer holds a whole READ_CHUNK, however little it carries.
            let cost = usize::try_from(READ_CHUNK.max(len)).unwrap_or(usize::MAX);
            if self.tx.send_with_cost(chunk, cost).await.is_err() {
                sh.state().closed = true;
                sh.room.notify_waiters();
                return Ok(false);
            }
            sh.state().read += len;
            sh.room.notify_waiters();
        }
        let Drain { tx, shared } = self;
        drop(shared);
        Ok(Arc::try_unwrap(tx).is_ok_and(|tx| tx.finish().is_ok()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::codec::EncodeMsg;
    use crate::queue::byte_queue;

    /// Chunk `i` of a test stream: distinct, recognisable bytes.
    fn chunk(i: u32, len: usize) -> Bytes {
        let mut v = vec![0u8; len];
        for (j, b) in v.iter_mut().enumerate() {
            *b = (i as usize * 31 + j) as u8;
        }
        Bytes::from(v)
    }

    /// Every byte the queue delivers until its `Finish`.
    fn received(rx: &mut crate::queue::ByteReceiver) -> Vec<u8> {
        let mut got = Vec::new();
        while let Some(msg) = tokio::task::block_in_place(|| rx.blocking_recv()) {
            match msg {
                EncodeMsg::Data(b) => got.extend_from_slice(&b),
                EncodeMsg::Finish => break,
            }
        }
        got
    }

    fn spill_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    /// A producer faster than its consumer runs ahead by the spill, never blocked by the
    /// small queue, and the consumer gets every byte in order; the file under the ring holds
    /// none of the plaintext.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_goes_to_the_file_and_comes_back_in_order_encrypted() {
        const CHUNK: usize = 64 << 10;
        const N: u32 = 64; // 4 MiB, against a 256 KiB queue and a 8 MiB spill
        let dir = spill_dir();
        let (qtx, mut qrx) = byte_queue(256 << 10);
        let (tx, drain) = spill_queue(qtx, Some(&SpillOptions::new(dir.path(), 8 << 20)));
        let drain = tokio::spawn(drain.run());
        // The whole burst is taken while the consumer takes nothing.
        tokio::time::timeout(Duration::from_secs(10), async {
            for i in 0..N {
                tx.send(chunk(i, CHUNK)).await.unwrap();
            }
        })
        .await
        .expect("the producer waited for the consumer although the spill had room");
        let spilled = tx.shared.peek.get().expect("a spill file");
        let mut on_disk = vec![0u8; CHUNK];
        spilled.read_exact_at(&mut on_disk, 0).unwrap();
        assert_ne!(
            &on_disk[..],
            &chunk(4, CHUNK)[..],
            "the spill holds plaintext"
        );
        assert!(
            (0..N).all(|i| on_disk[..64] != chunk(i, CHUNK)[..64]),
            "the spill holds plaintext"
        );
        tx.finish();
        let got = received(&mut qrx);
        let want: Vec<u8> = (0..N).flat_map(|i| chunk(i, CHUNK).to_vec()).collect();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes out of order or changed");
        assert!(drain.await.unwrap().unwrap());
        // Unnamed: nothing left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// The ring bounds the bytes waiting: a producer stops at the limit until the consumer
    /// takes some, and the stream still comes through whole across many wraps.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_limit_bounds_the_bytes_waiting_and_the_ring_wraps() {
        const CHUNK: usize = 100_000; // does not divide the ring: writes straddle the wrap
        let dir = spill_dir();
        let (qtx, mut qrx) = byte_queue(200_000);
        let (tx, drain) = spill_queue(qtx, Some(&SpillOptions::new(dir.path(), 1 << 20)));
        let drain = tokio::spawn(drain.run());
        let producer = tokio::spawn(async move {
            for i in 0..100 {
                tx.send(chunk(i, CHUNK)).await.unwrap();
            }
            tx.finish();
        });
        // With the consumer idle, at most the queue and the ring are taken.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!producer.is_finished(), "the producer went past the limit");
        let got = received(&mut qrx);
        producer.await.unwrap();
        assert!(drain.await.unwrap().unwrap());
        let want: Vec<u8> = (0..100).flat_map(|i| chunk(i, CHUNK).to_vec()).collect();
        assert!(
            got == want,
            "bytes out of order or changed across the wraps"
        );
    }

    /// A directory where no file can be made: no spill, a warning, and the stream still
    /// arrives whole at the queue's pace.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_spill_that_cannot_be_written_falls_back_to_waiting() {
        let (qtx, mut qrx) = byte_queue(100_000);
        let missing = SpillOptions::new("/nonexistent/pgb-spill-test", 8 << 20);
        let (tx, drain) = spill_queue(qtx, Some(&missing));
        let drain = tokio::spawn(drain.run());
        let producer = tokio::spawn(async move {
            for i in 0..40 {
                tx.send(chunk(i, 50_000)).await.unwrap();
            }
            tx.finish();
        });
        let got = received(&mut qrx);
        producer.await.unwrap();
        assert!(drain.await.unwrap().unwrap());
        let want: Vec<u8> = (0..40).flat_map(|i| chunk(i, 50_000).to_vec()).collect();
        assert!(got == want);
    }

    /// A consumer that goes away fails a producer waiting for room instead of leaving it
    /// waiting, and the drain reports the closed queue.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_queue_fails_the_producer_and_the_drain() {
        let dir = spill_dir();
        let (qtx, qrx) = byte_queue(100_000);
        let (tx, drain) = spill_queue(qtx, Some(&SpillOptions::new(dir.path(), 1 << 20)));
        let drain = tokio::spawn(drain.run());
        let producer = tokio::spawn(async move {
            for i in 0..100 {
                if tx.send(chunk(i, 100_000)).await.is_err() {
                    return Err(Closed);
                }
            }
            Ok(())
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(qrx);
        assert_eq!(producer.await.unwrap(), Err(Closed));
        assert!(!drain.await.unwrap().unwrap());
    }
}
