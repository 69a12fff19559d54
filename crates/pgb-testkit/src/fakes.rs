//! Fakes for fault tests of the orchestration.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use pgb_core::{
    ArchiveChecker, ArchiveFormat, ArchiveInfo, DumpError, DumpSource, DumpStream, Dumper,
    PreparedDump, RestoreOptions, RestoreReport, RestoreSink, Restorer, ToolExit,
};

/// How a [`FakeDumper`]'s dump ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeOutcome {
    /// All bytes, then success.
    Succeed,
    /// This many bytes, then exit status 1 (like a pg_dump that lost its connection).
    FailAfter(u64),
    /// No bytes, then success (the "empty dump" incident).
    Empty,
}

/// A dumper that yields deterministic bytes and ends as told.
#[derive(Debug, Clone)]
pub struct FakeDumper {
    size: u64,
    chunk: usize,
    outcome: FakeOutcome,
    aborted: Arc<AtomicBool>,
}

impl FakeDumper {
    /// `size` bytes in chunks of 64 KiB, ending with `outcome`.
    pub fn new(size: u64, outcome: FakeOutcome) -> Self {
        Self {
            size,
            chunk: 64 * 1024,
            outcome,
            aborted: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the orchestration aborted (killed) the fake dump.
    pub fn was_aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }

    /// The exact bytes a successful dump produces.
    pub fn expected_bytes(&self) -> Vec<u8> {
        (0..self.size).map(byte_at).collect()
    }
}

fn byte_at(i: u64) -> u8 {
    // Compressible but not trivial: text-like runs with a slowly changing pattern.
    b"PGDMP fake dump line with some text 0123456789\n"[(i % 47) as usize] ^ ((i / 4096) % 3) as u8
}

#[async_trait]
impl Dumper for FakeDumper {
    async fn prepare(&self) -> Result<Box<dyn PreparedDump>, DumpError> {
        Ok(Box::new(FakePrepared {
            source: DumpSource::new(
                "fakedb",
                "fake:5432",
                "15.0",
                "pg_dump (fake) 15.0",
                15,
                ArchiveFormat::Custom,
            ),
            dumper: self.clone(),
        }))
    }
}

#[derive(Debug)]
struct FakePrepared {
    source: DumpSource,
    dumper: FakeDumper,
}

#[async_trait]
impl PreparedDump for FakePrepared {
    fn source(&self) -> &DumpSource {
        &self.source
    }

    async fn start(self: Box<Self>) -> Result<Box<dyn DumpStream>, DumpError> {
        Ok(Box::new(FakeStream {
            pos: 0,
            dumper: self.dumper,
        }))
    }
}

#[derive(Debug)]
struct FakeStream {
    pos: u64,
    dumper: FakeDumper,
}

#[async_trait]
impl DumpStream for FakeStream {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, DumpError> {
        let limit = match self.dumper.outcome {
            FakeOutcome::Succeed => self.dumper.size,
            FakeOutcome::FailAfter(n) => n.min(self.dumper.size),
            FakeOutcome::Empty => 0,
        };
        if self.pos >= limit {
            return match self.dumper.outcome {
                FakeOutcome::FailAfter(_) => Err(DumpError::tool_failed(
                    "pg_dump",
                    ToolExit::Code(1),
                    "pg_dump: error: connection lost (fake)",
                )),
                _ => Ok(None),
            };
        }
        let end = (self.pos + self.dumper.chunk as u64).min(limit);
        let chunk: Vec<u8> = (self.pos..end).map(byte_at).collect();
        self.pos = end;
        Ok(Some(Bytes::from(chunk)))
    }

    async fn abort(self: Box<Self>) {
        self.dumper.aborted.store(true, Ordering::SeqCst);
    }
}

/// What a [`RecordingRestorer`] saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Every byte written, in order.
    pub data: Vec<u8>,
    /// `finish` was called (the restore would have committed).
    pub finished: bool,
    /// `abort` was called (the restore was rolled back).
    pub aborted: bool,
}

/// A restorer that records what it receives instead of running pg_restore.
#[derive(Debug, Clone, Default)]
pub struct RecordingRestorer {
    recorded: Arc<Mutex<Recorded>>,
}

impl RecordingRestorer {
    /// A fresh recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// What has been recorded so far.
    pub fn recorded(&self) -> Recorded {
        self.recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl Restorer for RecordingRestorer {
    async fn begin(
        &self,
        _: &ArchiveInfo,
        _: &RestoreOptions,
    ) -> Result<Box<dyn RestoreSink>, DumpError> {
        Ok(Box::new(RecordingSink(Arc::clone(&self.recorded))))
    }
}

#[async_trait]
impl ArchiveChecker for RecordingRestorer {
    async fn check(&self, _: &ArchiveInfo) -> Result<Box<dyn RestoreSink>, DumpError> {
        Ok(Box::new(RecordingSink(Arc::clone(&self.recorded))))
    }
}

#[derive(Debug)]
struct RecordingSink(Arc<Mutex<Recorded>>);

#[async_trait]
impl RestoreSink for RecordingSink {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .data
            .extend_from_slice(&chunk);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<RestoreReport, DumpError> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .finished = true;
        Ok(RestoreReport::new("recorded", false, "recorder"))
    }

    async fn abort(self: Box<Self>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .aborted = true;
    }
}
