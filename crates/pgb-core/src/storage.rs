//! The storage contract every backend implements.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_core::stream::BoxStream;
use futures_util::StreamExt;

use crate::key::ObjectKey;

/// A stream of byte chunks that owns everything it needs.
pub type ByteStream = BoxStream<'static, Result<Bytes, StorageError>>;

/// A listing in progress ([`Storage::list_stream`]): objects as the store returns them, page
/// by page; an error ends it.
pub type ListStream<'a> = BoxStream<'a, Result<ObjectMeta, StorageError>>;

/// What went wrong in a storage operation, coarse enough to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// The object (or bucket/container) does not exist.
    NotFound,
    /// A create-only write found an existing object.
    AlreadyExists,
    /// Credentials were refused or lack a permission.
    PermissionDenied,
    /// The backend cannot do what was asked (for example create-only on a store without it).
    Unsupported,
    /// No space left (local disk full, quota).
    StorageFull,
    /// The endpoint could not be reached, or kept failing after retries.
    Unavailable,
    /// The backend's configuration is invalid (URL, missing credentials, bucket name).
    Config,
    /// Data read back does not match what was written (size or checksum).
    Integrity,
    /// Anything else.
    Other,
}

/// The one error type of the [`Storage`] contract.
///
/// Its `Display` is a single line that names the operation, the key and the cause. It must never
/// contain credentials: backends redact before constructing it.
#[derive(Debug, thiserror::Error)]
#[error("{op} {key}: {message}")]
pub struct StorageError {
    kind: StorageErrorKind,
    op: &'static str,
    key: String,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StorageError {
    /// Builds an error. `op` is a short verb (`"write"`, `"read"`, `"list"`...).
    pub fn new(
        kind: StorageErrorKind,
        op: &'static str,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            op,
            key: key.into(),
            message: message.into(),
            source: None,
        }
    }

    /// Attaches an underlying cause (kept out of `Display`).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind, for decisions.
    pub fn kind(&self) -> StorageErrorKind {
        self.kind
    }

    /// Maps an I/O error onto a storage error kind.
    pub fn from_io(op: &'static str, key: impl Into<String>, err: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match err.kind() {
            K::NotFound => StorageErrorKind::NotFound,
            K::AlreadyExists => StorageErrorKind::AlreadyExists,
            K::PermissionDenied => StorageErrorKind::PermissionDenied,
            K::StorageFull | K::QuotaExceeded => StorageErrorKind::StorageFull,
            K::Unsupported => StorageErrorKind::Unsupported,
            _ => StorageErrorKind::Other,
        };
        let message = match kind {
            StorageErrorKind::StorageFull => format!("no space left on device ({err})"),
            _ => err.to_string(),
        };
        Self::new(kind, op, key, message)
    }
}

/// Whether a write may replace an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WriteMode {
    /// Replace any existing object.
    #[default]
    Overwrite,
    /// Fail with [`StorageErrorKind::AlreadyExists`] if the object exists.
    CreateNew,
}

/// Options for [`Storage::writer`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct WriteOptions {
    /// Overwrite or create-only.
    pub mode: WriteMode,
    /// Expected final size, used by multipart backends to choose a part size.
    pub size_hint: Option<u64>,
}

impl WriteOptions {
    /// Create-only writes (manifests, locks).
    pub fn create_new() -> Self {
        Self {
            mode: WriteMode::CreateNew,
            size_hint: None,
        }
    }

    /// Sets the expected size.
    pub fn with_size_hint(mut self, size: u64) -> Self {
        self.size_hint = Some(size);
        self
    }
}

/// What the network did to one storage so far (shared by its clones): for logs, reports and
/// benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct StorageStats {
    /// Requests retried after a transient failure (each retry counts once).
    pub retries: u64,
    /// Downloads continued with a range request after their stream broke.
    pub read_resumes: u64,
    /// Calls that gave up because the retry budget ran out.
    pub budget_exhausted: u64,
}

impl StorageStats {
    /// Builds stats.
    pub fn new(retries: u64, read_resumes: u64, budget_exhausted: u64) -> Self {
        Self {
            retries,
            read_resumes,
            budget_exhausted,
        }
    }

    /// What happened between `earlier` and `self` (counters only grow).
    pub fn since(self, earlier: Self) -> Self {
        Self {
            retries: self.retries.saturating_sub(earlier.retries),
            read_resumes: self.read_resumes.saturating_sub(earlier.read_resumes),
            budget_exhausted: self
                .budget_exhausted
                .saturating_sub(earlier.budget_exhausted),
        }
    }
}

/// Metadata of a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectMeta {
    /// The object's key.
    pub key: ObjectKey,
    /// Its size in bytes.
    pub size: u64,
    /// Last modification time, where the backend reports one.
    pub last_modified: Option<time::OffsetDateTime>,
}

impl ObjectMeta {
    /// Builds metadata.
    pub fn new(key: ObjectKey, size: u64, last_modified: Option<time::OffsetDateTime>) -> Self {
        Self {
            key,
            size,
            last_modified,
        }
    }
}

/// What a backend can promise; the conformance suite reads it instead of guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// `WriteMode::CreateNew` is enforced atomically by the backend.
    pub create_new: bool,
    /// Range reads are supported.
    pub range_read: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            create_new: true,
            range_read: true,
        }
    }
}

impl Capabilities {
    /// Declares whether create-only writes are enforced.
    pub fn with_create_new(mut self, yes: bool) -> Self {
        self.create_new = yes;
        self
    }
}

/// Identity of a storage backend for logs and reports. Never contains secrets.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StorageInfo {
    /// URL scheme (`file`, `s3`, `gs`, `az`, `memory`).
    pub scheme: &'static str,
    /// Redacted location, e.g. `file:///var/backups/pgb` or `s3://bucket/prefix`.
    pub location: String,
    /// What the backend can promise.
    pub capabilities: Capabilities,
}

impl StorageInfo {
    /// Builds an info record.
    pub fn new(
        scheme: &'static str,
        location: impl Into<String>,
        capabilities: Capabilities,
    ) -> Self {
        Self {
            scheme,
            location: location.into(),
            capabilities,
        }
    }
}

/// A place to keep objects: local disk, S3, GCS, Azure Blob, memory.
///
/// # Contract
///
/// - **Atomic visibility.** A reader, `head` or `list` sees either nothing or the complete object
///   under a key; never a partial one.
/// - **Cancellation safety.** Dropping a returned future, or an [`ObjectWriter`] before
///   [`ObjectWriter::finish`] returns, never makes a partial object visible. Invisible garbage
///   (staging files, incomplete multipart uploads) may remain for a later clean-up.
/// - **Create-only.** [`WriteMode::CreateNew`] fails with [`StorageErrorKind::AlreadyExists`]
///   when the key exists. A backend that cannot enforce it says so in
///   [`Capabilities::create_new`]; it never silently overwrites.
/// - **Uniform errors.** A missing key is always [`StorageErrorKind::NotFound`]; deleting a
///   missing key is `Ok(())`.
/// - **Listing** is recursive and scoped segment-wise: prefix `a/b` matches `a/b/c`, never
///   `a/bc`. Order is unspecified (object stores list in key order, a local directory walk
///   in directory order). [`Storage::list_stream`] yields each object once as it is listed
///   (a page at a time on object stores), so a caller can act on the first objects while
///   the rest are still being listed; [`Storage::list`] is the same listing collected.
/// - **No secrets** in `Debug`, `Display`, errors or logs.
///
/// The pgb-testkit conformance suite checks all of this; every backend runs it.
#[async_trait]
pub trait Storage: fmt::Debug + Send + Sync + 'static {
    /// Identity and capabilities.
    fn info(&self) -> StorageInfo;

    /// What the network did so far (retries, resumed downloads, exhausted retry budgets), for
    /// logs and reports; all zero for stores without a network.
    fn stats(&self) -> StorageStats {
        StorageStats::default()
    }

    /// Opens a writer. Nothing is visible under `key` until [`ObjectWriter::finish`] succeeds.
    ///
    /// # Errors
    /// `Config`, `PermissionDenied`, `Unavailable`; `AlreadyExists` may be reported here or at
    /// `finish` for create-only writes.
    async fn writer(
        &self,
        key: &ObjectKey,
        opts: WriteOptions,
    ) -> Result<Box<dyn ObjectWriter>, StorageError>;

    /// Streams an object, or the byte `range` of it.
    ///
    /// # Errors
    /// `NotFound` if absent; errors while streaming arrive as stream items.
    async fn reader(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError>;

    /// The object's metadata.
    ///
    /// # Errors
    /// `NotFound` if absent.
    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StorageError>;

    /// Every object under `prefix` (or everything), recursively.
    ///
    /// # Errors
    /// `PermissionDenied`, `Unavailable`, ...; an absent prefix is an empty list.
    async fn list(&self, prefix: Option<&ObjectKey>) -> Result<Vec<ObjectMeta>, StorageError>;

    /// The listing of [`Storage::list`] as a stream: each object under `prefix` once, as the
    /// store returns it (a page at a time on object stores, a folder at a time on disk), so
    /// memory and the time to the first object do not grow with the number of objects. Order
    /// is unspecified. An error is the stream's last item; dropping the stream stops the
    /// listing.
    ///
    /// The default lists everything with [`Storage::list`] and yields it: right for stores
    /// that hold their listing in memory anyway. Backends with paged or incremental listings
    /// implement it natively (and `list` as this stream collected).
    fn list_stream<'a>(&'a self, prefix: Option<&'a ObjectKey>) -> ListStream<'a> {
        Box::pin(
            futures_util::stream::once(self.list(prefix)).flat_map(|listed| match listed {
                Ok(all) => futures_util::stream::iter(all.into_iter().map(Ok)).left_stream(),
                Err(e) => futures_util::stream::iter([Err(e)]).right_stream(),
            }),
        )
    }

    /// Deletes an object. Deleting a missing key is `Ok(())`.
    ///
    /// # Errors
    /// `PermissionDenied`, `Unavailable`, ...
    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError>;
}

/// A streaming write in progress.
///
/// # Contract
///
/// `write` applies back-pressure, so memory stays bounded (chunk or part size × concurrency).
/// `finish` publishes the object atomically and returns its metadata; `abort` discards
/// everything best-effort. Both consume the writer. Dropping it without either is an abort.
#[async_trait]
pub trait ObjectWriter: fmt::Debug + Send {
    /// Appends a chunk.
    ///
    /// # Errors
    /// Any storage failure; the writer must then be aborted or dropped.
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError>;

    /// Publishes the object.
    ///
    /// # Errors
    /// `AlreadyExists` for a create-only write whose key appeared, or any storage failure;
    /// nothing is visible after an error.
    async fn finish(self: Box<Self>) -> Result<ObjectMeta, StorageError>;

    /// Discards the write.
    ///
    /// # Errors
    /// Clean-up failures; the object is never visible either way.
    async fn abort(self: Box<Self>) -> Result<(), StorageError>;
}

macro_rules! forward_storage {
    ($ty:ty) => {
        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<T: Storage + ?Sized> Storage for $ty {
            fn info(&self) -> StorageInfo {
                (**self).info()
            }
            fn stats(&self) -> StorageStats {
                (**self).stats()
            }
            async fn writer(
                &self,
                key: &ObjectKey,
                opts: WriteOptions,
            ) -> Result<Box<dyn ObjectWriter>, StorageError> {
                (**self).writer(key, opts).await
            }
            async fn reader(
                &self,
                key: &ObjectKey,
                range: Option<Range<u64>>,
            ) -> Result<ByteStream, StorageError> {
                (**self).reader(key, range).await
            }
            async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StorageError> {
                (**self).head(key).await
            }
            async fn list(
                &self,
                prefix: Option<&ObjectKey>,
            ) -> Result<Vec<ObjectMeta>, StorageError> {
                (**self).list(prefix).await
            }
            fn list_stream<'a>(&'a self, prefix: Option<&'a ObjectKey>) -> ListStream<'a> {
                (**self).list_stream(prefix)
            }
            async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
                (**self).delete(key).await
            }
        }
    };
}
forward_storage!(Arc<T>);
forward_storage!(Box<T>);

/// Conveniences on top of [`Storage`]. Implemented for every storage; do not implement it.
#[async_trait]
pub trait StorageExt: Storage {
    /// Writes a whole small object.
    ///
    /// # Errors
    /// As [`Storage::writer`] and [`ObjectWriter::finish`].
    async fn put(
        &self,
        key: &ObjectKey,
        data: Bytes,
        opts: WriteOptions,
    ) -> Result<ObjectMeta, StorageError> {
        let mut w = self.writer(key, opts).await?;
        if let Err(e) = w.write(data).await {
            let _ = w.abort().await;
            return Err(e);
        }
        w.finish().await
    }

    /// Drives a stream into a writer: aborts on the first error, finishes only after a clean end.
    ///
    /// # Errors
    /// The first error of the stream or the writer.
    async fn put_stream(
        &self,
        key: &ObjectKey,
        mut stream: ByteStream,
        opts: WriteOptions,
    ) -> Result<ObjectMeta, StorageError> {
        let mut w = self.writer(key, opts).await?;
        while let Some(item) = stream.next().await {
            let res = match item {
                Ok(chunk) => w.write(chunk).await,
                Err(e) => Err(e),
            };
            if let Err(e) = res {
                let _ = w.abort().await;
                return Err(e);
            }
        }
        w.finish().await
    }

    /// Reads a whole (small) object into memory.
    ///
    /// # Errors
    /// `NotFound` if absent, or a read failure.
    async fn get_bytes(&self, key: &ObjectKey) -> Result<Bytes, StorageError> {
        let mut stream = self.reader(key, None).await?;
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(Bytes::from(buf))
    }

    /// Reads a whole object into memory, but at most `limit` bytes: `Ok(None)` when the object
    /// is larger (the read stops there, so memory stays bounded whatever the object's size).
    /// What pgb reads from a repository is untrusted input: manifests and records go through
    /// this with [`crate::layout::MAX_METADATA_BYTES`].
    ///
    /// # Errors
    /// `NotFound` if absent, or a read failure.
    async fn get_bytes_limited(
        &self,
        key: &ObjectKey,
        limit: u64,
    ) -> Result<Option<Bytes>, StorageError> {
        let mut stream = self.reader(key, None).await?;
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if (buf.len() + chunk.len()) as u64 > limit {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Some(Bytes::from(buf)))
    }

    /// Whether the key exists.
    ///
    /// # Errors
    /// Any failure other than `NotFound`.
    async fn exists(&self, key: &ObjectKey) -> Result<bool, StorageError> {
        match self.head(key).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == StorageErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl<S: Storage + ?Sized> StorageExt for S {}
