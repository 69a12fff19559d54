//! The spill file behind the pipeline's input queue, through `Repository::backup`: a source
//! is read to its end while the store takes nothing (the file holds what memory may not), the
//! backup restores byte for byte, and a source that fails after its bytes went to the file
//! commits nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pgb_core::{
    ArchiveFormat, BackupOptions, ByteStream, Compression, DumpError, DumpSource, DumpStream,
    Dumper, MemoryStorage, NoProgress, ObjectKey, ObjectMeta, ObjectWriter, PreparedDump,
    Repository, RestoreOptions, SpillOptions, Storage, StorageError, StorageInfo, ToolExit,
    WriteOptions,
};
use pgb_testkit::RecordingRestorer;
use tokio::sync::Notify;

const CHUNK: usize = 256 << 10;

/// Opens once the source has given its last byte.
#[derive(Debug, Default)]
struct Gate {
    open: AtomicBool,
    notify: Notify,
}

impl Gate {
    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    async fn wait(&self) {
        loop {
            let n = self.notify.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.open.load(Ordering::SeqCst) {
                return;
            }
            n.await;
        }
    }
}

/// `chunks` distinct chunks of [`CHUNK`] bytes, then success or a failure; opens `gate` at
/// its end either way.
#[derive(Debug, Clone)]
struct Source {
    chunks: usize,
    fail: bool,
    gate: Arc<Gate>,
}

impl Source {
    fn chunk(i: usize) -> Bytes {
        let line = format!("COPY row {i:08} of a table with some text to compress\n");
        Bytes::from(line.as_bytes().repeat(CHUNK / line.len() + 1)[..CHUNK].to_vec())
    }

    fn bytes(&self) -> Vec<u8> {
        (0..self.chunks)
            .flat_map(|i| Self::chunk(i).to_vec())
            .collect()
    }
}

#[async_trait]
impl Dumper for Source {
    async fn prepare(&self) -> Result<Box<dyn PreparedDump>, DumpError> {
        Ok(Box::new(Prepared {
            source: DumpSource::new(
                "spilldb",
                "fake:5432",
                "15.0",
                "pg_dump (fake) 15.0",
                15,
                ArchiveFormat::Custom,
            ),
            dump: self.clone(),
        }))
    }
}

#[derive(Debug)]
struct Prepared {
    source: DumpSource,
    dump: Source,
}

#[async_trait]
impl PreparedDump for Prepared {
    fn source(&self) -> &DumpSource {
        &self.source
    }

    async fn start(self: Box<Self>) -> Result<Box<dyn DumpStream>, DumpError> {
        Ok(Box::new(Stream {
            next: 0,
            dump: self.dump,
        }))
    }
}

#[derive(Debug)]
struct Stream {
    next: usize,
    dump: Source,
}

#[async_trait]
impl DumpStream for Stream {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, DumpError> {
        if self.next == self.dump.chunks {
            self.dump.gate.open();
            return if self.dump.fail {
                Err(DumpError::tool_failed(
                    "pg_dump",
                    ToolExit::Code(1),
                    "pg_dump: error: connection lost (fake)",
                ))
            } else {
                Ok(None)
            };
        }
        self.next += 1;
        Ok(Some(Source::chunk(self.next - 1)))
    }

    async fn abort(self: Box<Self>) {}
}

/// A store whose data objects take no byte before the gate opens.
#[derive(Debug)]
struct Gated {
    inner: Arc<dyn Storage>,
    gate: Arc<Gate>,
}

#[async_trait]
impl Storage for Gated {
    fn info(&self) -> StorageInfo {
        self.inner.info()
    }

    async fn writer(
        &self,
        key: &ObjectKey,
        opts: WriteOptions,
    ) -> Result<Box<dyn ObjectWriter>, StorageError> {
        let inner = self.inner.writer(key, opts).await?;
        let gated = key.as_str().contains("/data.");
        Ok(Box::new(GatedWriter {
            inner,
            gate: gated.then(|| Arc::clone(&self.gate)),
        }))
    }

    async fn reader(
        &self,
        key: &ObjectKey,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        self.inner.reader(key, range).await
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StorageError> {
        self.inner.head(key).await
    }

    async fn list(&self, prefix: Option<&ObjectKey>) -> Result<Vec<ObjectMeta>, StorageError> {
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }
}

#[derive(Debug)]
struct GatedWriter {
    inner: Box<dyn ObjectWriter>,
    gate: Option<Arc<Gate>>,
}

#[async_trait]
impl ObjectWriter for GatedWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        if let Some(g) = &self.gate {
            g.wait().await;
        }
        self.inner.write(chunk).await
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta, StorageError> {
        self.inner.finish().await
    }

    async fn abort(self: Box<Self>) -> Result<(), StorageError> {
        self.inner.abort().await
    }
}

fn gated_repo() -> (Arc<dyn Storage>, Repository, Arc<Gate>) {
    let inner: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let gate = Arc::new(Gate::default());
    let repo = Repository::new(Arc::new(Gated {
        inner: Arc::clone(&inner),
        gate: Arc::clone(&gate),
    }));
    (inner, repo, gate)
}

/// 32 MiB of source against a few MiB of in-memory budget and a store that takes nothing
/// until the source ended (uncompressed, so the store's backlog reaches the source): only
/// the spill file lets the source reach its end. The backup then restores byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_is_read_to_its_end_while_the_store_waits_and_restores_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (_inner, repo, gate) = gated_repo();
    let source = Source {
        chunks: 128,
        fail: false,
        gate,
    };
    let opts = BackupOptions::default()
        .with_compression(Compression::None)
        .with_spill(Some(SpillOptions::new(dir.path(), 64 << 20)));
    let m = tokio::time::timeout(
        Duration::from_secs(120),
        repo.backup(&source, &opts, &NoProgress),
    )
    .await
    .expect("the source waited for the store: nothing took its bytes while the store waited")
    .expect("backup");
    assert_eq!(m.plain_size(), (128 * CHUNK) as u64);
    let restorer = RecordingRestorer::new();
    repo.restore(&m, &restorer, &RestoreOptions::new(), &NoProgress)
        .await
        .expect("restore");
    let got = restorer.recorded();
    assert!(got.finished);
    assert!(got.data == source.bytes(), "the restored bytes differ");
    // The file had no name: nothing is left where it lived.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Without a spill the same source waits on the store: the gate is what the file opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_spill_the_source_waits_for_the_store() {
    let (_inner, repo, gate) = gated_repo();
    let source = Source {
        chunks: 128,
        fail: false,
        gate,
    };
    let opts = BackupOptions::default().with_compression(Compression::None);
    let waited = tokio::time::timeout(
        Duration::from_secs(3),
        repo.backup(&source, &opts, &NoProgress),
    )
    .await;
    assert!(waited.is_err(), "the backup finished with its store shut");
}

/// A source failing after its bytes went to the file: an error, and no backup listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_failing_after_it_spilled_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (inner, repo, gate) = gated_repo();
    let source = Source {
        chunks: 96,
        fail: true,
        gate,
    };
    let opts = BackupOptions::default()
        .with_compression(Compression::None)
        .with_spill(Some(SpillOptions::new(dir.path(), 64 << 20)));
    let err = tokio::time::timeout(
        Duration::from_secs(120),
        repo.backup(&source, &opts, &NoProgress),
    )
    .await
    .expect("the failed backup returned")
    .expect_err("a failed source commits nothing");
    assert!(err.to_string().contains("exited with status 1"), "{err}");
    let listed = Repository::new(Arc::clone(&inner)).list().await.unwrap();
    assert!(listed.backups.is_empty(), "{:?}", listed.backups);
}
