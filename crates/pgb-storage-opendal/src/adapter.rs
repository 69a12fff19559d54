//! [`OpendalStorage`]: an OpenDAL operator behind the [`Storage`] contract.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use opendal::layers::{RetryEvent, RetryInterceptor, RetryLayer, TimeoutLayer};
use opendal::{HttpTransporter, Operator};
use pgb_core::{
    ByteStream, ObjectKey, ObjectMeta, ObjectWriter, Storage, StorageError, StorageErrorKind,
    StorageInfo, WriteMode, WriteOptions,
};

use crate::error::{ErrorMapper, Intent};
use crate::options::{AdapterOptions, WriteStrategy};
use crate::sizing::UploadPlan;

/// An object store reached through OpenDAL (S3, GCS, Azure Blob), implementing
/// [`pgb_core::Storage`].
///
/// Backend crates build it from their typed configs (`S3Config::build`, ...); the adapter adds
/// the production layers itself, so every backend, and every conformance run, uses the same
/// stack: a per-attempt timeout *under* a retry layer that retries only temporary failures,
/// request by request and part by part. A consumed input stream is never replayed: a write
/// that fails after retries fails the whole object.
///
/// # Behavior
///
/// - **Writes** stream with bounded memory: data is cut into parts of
///   [`UploadPlan::part_size`] (chosen from [`WriteOptions::size_hint`]) with at most
///   [`UploadPlan::concurrency`] parts in flight; `write` waits when they are all busy. Small
///   objects go up in one request. Nothing is visible before `finish`: a dropped or aborted
///   writer never completes its multipart upload, block list or resumable session.
/// - **Create-only** writes are conditional requests (`If-None-Match: *`, `ifGenerationMatch=0`)
///   checked by the server; a refused one is [`StorageErrorKind::AlreadyExists`].
/// - **`finish`** checks the stored size against the bytes written
///   ([`StorageErrorKind::Integrity`] on a mismatch, and the object is removed).
/// - **Listing** is recursive and segment-scoped: prefix `a/b` lists `a/b/`, never `a/bc`.
/// - **Deleting** a missing key is `Ok(())`.
/// - **Errors** are single lines naming the cause, with credentials scrubbed.
#[derive(Clone)]
pub struct OpendalStorage {
    op: Operator,
    opts: Arc<AdapterOptions>,
    errors: Arc<ErrorMapper>,
}

impl fmt::Debug for OpendalStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The operator's own Debug may show its configuration; print only our identity.
        f.debug_struct("OpendalStorage")
            .field("scheme", &self.opts.scheme)
            .field("location", &self.opts.location)
            .field("capabilities", &self.opts.capabilities)
            .finish_non_exhaustive()
    }
}

/// Logs each retry as a tracing event, with secrets scrubbed from the error.
struct RetryLog {
    errors: Arc<ErrorMapper>,
}

impl RetryInterceptor for RetryLog {
    fn intercept(&self, event: RetryEvent<'_>) {
        tracing::warn!(
            backend = self.errors.scheme,
            operation = %event.op,
            attempt = event.attempt,
            retry_after_ms = event.retry_after.as_millis() as u64,
            error = %self.errors.redact(&event.err.to_string()),
            "retrying storage request"
        );
    }
}

impl OpendalStorage {
    /// Wraps an operator built by a backend crate. Not a stable API: it exists so that the
    /// backend crates can share this adapter, and it is the only place an OpenDAL type crosses a
    /// crate boundary. Use `S3Config::build` and its siblings instead.
    #[doc(hidden)]
    pub fn __from_operator(op: Operator, opts: AdapterOptions) -> Self {
        let errors = Arc::new(ErrorMapper {
            scheme: opts.scheme,
            endpoint: opts.endpoint.clone(),
            retries: opts.retry.max_retries,
            secrets: opts.secrets().to_vec(),
        });
        // One HTTP client per storage, not OpenDAL's process-wide default: pooled connections
        // belong to the tokio runtime that opened them, and a client shared across runtimes
        // (one per test, or an embedder's several) hands out connections whose runtime is
        // gone ("dispatch task is gone"), which then look like network failures.
        let client = reqwest::Client::builder()
            .connect_timeout(opts.timeouts.request.min(Duration::from_secs(10)))
            .build()
            .unwrap_or_default();
        let ctx = op.base_context().with_http_transport(HttpTransporter::new(
            opendal_http_transport_reqwest::ReqwestTransport::new(client),
        ));
        // Order matters: the timeout wraps each attempt and the retry wraps the timeout, as
        // OpenDAL's docs require (a timeout above the retry would drop its state mid-body).
        let op = op
            .with_context(ctx)
            .layer(
                TimeoutLayer::new()
                    .with_timeout(opts.timeouts.request)
                    .with_io_timeout(opts.timeouts.io),
            )
            .layer(
                RetryLayer::new()
                    .with_max_times(opts.retry.max_retries)
                    .with_min_delay(opts.retry.min_delay)
                    .with_max_delay(opts.retry.max_delay)
                    .with_jitter()
                    .with_notify(RetryLog {
                        errors: Arc::clone(&errors),
                    }),
            );
        Self {
            op,
            opts: Arc::new(opts),
            errors,
        }
    }

    /// The part size and concurrency a write with this size hint would use.
    pub fn upload_plan(&self, size_hint: Option<u64>) -> UploadPlan {
        self.opts.sizing.plan(size_hint)
    }

    fn err(&self, op: &'static str, key: &str, e: &opendal::Error) -> StorageError {
        self.errors.map(op, key, e, Intent::Plain)
    }
}

fn to_meta(key: ObjectKey, meta: &opendal::Metadata) -> ObjectMeta {
    let modified = meta
        .last_modified()
        .map(|t| time::OffsetDateTime::from(std::time::SystemTime::from(t)));
    ObjectMeta::new(key, meta.content_length(), modified)
}

#[async_trait]
impl Storage for OpendalStorage {
    fn info(&self) -> StorageInfo {
        StorageInfo::new(
            self.opts.scheme,
            self.opts.location.clone(),
            self.opts.capabilities,
        )
    }

    async fn writer(
        &self,
        key: &ObjectKey,
        opts: WriteOptions,
    ) -> Result<Box<dyn ObjectWriter>, StorageError> {
        let path = key.as_str();
        let create_new = opts.mode == WriteMode::CreateNew;
        let plan = self.opts.sizing.plan(opts.size_hint);
        let mut intent = if create_new {
            Intent::CreateNew
        } else {
            Intent::Plain
        };

        // Where the service cannot enforce create-only atomically (declared in the
        // capabilities), or where we must know the generation anyway (GCS), look first. On GCS
        // the write below is still conditional, so real GCS refuses a racing creator too.
        let needs_stat = self.opts.write_strategy == WriteStrategy::GenerationConditional
            || (create_new && !self.opts.capabilities.create_new);
        let mut version: Option<String> = None;
        if needs_stat {
            match self.op.stat(path).await {
                Ok(_) if create_new => {
                    return Err(StorageError::new(
                        StorageErrorKind::AlreadyExists,
                        "write",
                        path,
                        "object already exists (create-only write refused)",
                    ));
                }
                Ok(meta) => version = meta.version().map(str::to_owned),
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
                Err(e) => return Err(self.err("write", path, &e)),
            }
        }

        let mut w = self
            .op
            .writer_with(path)
            .chunk(usize::try_from(plan.part_size).unwrap_or(usize::MAX))
            .concurrent(plan.concurrency);
        if let Some(ct) = &self.opts.content_type {
            w = w.content_type(ct);
        }
        match (self.opts.write_strategy, &version) {
            (WriteStrategy::GenerationConditional, Some(v)) if !create_new => {
                w = w.if_version_match(v);
                intent = Intent::ConditionalOverwrite;
            }
            (WriteStrategy::GenerationConditional, None) if !create_new => {
                w = w.if_not_exists(true);
                intent = Intent::ConditionalOverwrite;
            }
            _ => w = w.if_not_exists(create_new),
        }
        let inner = w
            .await
            .map_err(|e| self.errors.map("write", path, &e, intent))?;
        tracing::debug!(
            backend = self.opts.scheme,
            key = path,
            part_size = plan.part_size,
            concurrency = plan.concurrency,
            create_new,
            "opened writer"
        );
        Ok(Box::new(OpendalWriter {
            inner: Some(inner),
            op: self.op.clone(),
            errors: Arc::clone(&self.errors),
            key: key.clone(),
            written: 0,
            plan,
            intent,
        }))
    }

    async fn reader(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        let path = key.as_str();
        let meta = self
            .op
            .stat(path)
            .await
            .map_err(|e| self.err("read", path, &e))?;
        let size = meta.content_length();
        let range = range.unwrap_or(0..size);
        if range.start > range.end || range.end > size {
            return Err(StorageError::new(
                StorageErrorKind::Other,
                "read",
                path,
                format!(
                    "range {}..{} is outside the object ({size} bytes)",
                    range.start, range.end
                ),
            ));
        }
        if range.is_empty() {
            return Ok(futures_util::stream::empty().boxed());
        }
        let reader = self
            .op
            .reader(path)
            .await
            .map_err(|e| self.err("read", path, &e))?;
        let stream = reader
            .into_bytes_stream(range)
            .await
            .map_err(|e| self.err("read", path, &e))?;
        let errors = Arc::clone(&self.errors);
        let key = path.to_owned();
        Ok(stream
            .map_err(move |io| {
                match io
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<opendal::Error>())
                {
                    Some(e) => errors.map("read", &key, e, Intent::Plain),
                    None => {
                        let msg = errors.redact(&io.to_string());
                        StorageError::from_io(
                            "read",
                            key.clone(),
                            std::io::Error::new(io.kind(), msg),
                        )
                    }
                }
            })
            .boxed())
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StorageError> {
        let meta = self
            .op
            .stat(key.as_str())
            .await
            .map_err(|e| self.err("head", key.as_str(), &e))?;
        Ok(to_meta(key.clone(), &meta))
    }

    async fn list(&self, prefix: Option<&ObjectKey>) -> Result<Vec<ObjectMeta>, StorageError> {
        // Listing `a/b/` (with the slash) is what makes the scope segment-wise: `a/bc` is not
        // under `a/b/`. The filter below re-checks it, whatever the service returns.
        let (dir, shown) = match prefix {
            Some(p) => (format!("{}/", p.as_str()), p.as_str().to_owned()),
            None => ("/".to_owned(), String::new()),
        };
        let mut lister = self
            .op
            .lister_with(&dir)
            .recursive(true)
            .await
            .map_err(|e| self.err("list", &shown, &e))?;
        let mut out = Vec::new();
        while let Some(entry) = lister.next().await {
            let entry = entry.map_err(|e| self.err("list", &shown, &e))?;
            let meta = entry.metadata();
            let path = entry.path();
            if meta.is_dir() || path.ends_with('/') {
                continue;
            }
            let Ok(key) = ObjectKey::parse(path.trim_start_matches('/')) else {
                tracing::debug!(path, "skipping an object whose name is not a pgb key");
                continue;
            };
            if prefix.is_some_and(|p| !key.starts_with(p) || &key == p) {
                continue;
            }
            out.push(to_meta(key, meta));
        }
        tracing::debug!(
            backend = self.opts.scheme,
            prefix = shown,
            count = out.len(),
            "listed"
        );
        Ok(out)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        match self.op.delete(key.as_str()).await {
            Ok(()) => {}
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
            Err(e) => return Err(self.err("delete", key.as_str(), &e)),
        }
        tracing::debug!(backend = self.opts.scheme, key = key.as_str(), "deleted");
        Ok(())
    }
}

/// A streaming write. Dropping it without `finish` leaves nothing visible: the multipart
/// upload, block list or resumable session is simply never completed (a bucket lifecycle rule
/// removes the parts later).
struct OpendalWriter {
    inner: Option<opendal::Writer>,
    op: Operator,
    errors: Arc<ErrorMapper>,
    key: ObjectKey,
    written: u64,
    plan: UploadPlan,
    intent: Intent,
}

impl fmt::Debug for OpendalWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpendalWriter")
            .field("key", &self.key)
            .field("written", &self.written)
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

impl OpendalWriter {
    fn err(&self, op: &'static str, e: &opendal::Error) -> StorageError {
        self.errors.map(op, self.key.as_str(), e, self.intent)
    }

    fn closed(&self) -> StorageError {
        StorageError::new(
            StorageErrorKind::Other,
            "write",
            self.key.as_str(),
            "writer already failed; abort it",
        )
    }
}

#[async_trait]
impl ObjectWriter for OpendalWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        if chunk.is_empty() {
            return Ok(());
        }
        let len = chunk.len() as u64;
        if let Some(max) = self.plan.max_object_size
            && self.written + len > max
        {
            return Err(StorageError::new(
                StorageErrorKind::Unsupported,
                "write",
                self.key.as_str(),
                format!(
                    "object grows past {max} bytes, the most this upload's part count allows \
                     with {} byte parts; pass a larger size hint",
                    self.plan.part_size
                ),
            ));
        }
        let Some(w) = self.inner.as_mut() else {
            return Err(self.closed());
        };
        match w.write(chunk).await {
            Ok(()) => {
                self.written += len;
                Ok(())
            }
            Err(e) => Err(self.err("write", &e)),
        }
    }

    async fn finish(mut self: Box<Self>) -> Result<ObjectMeta, StorageError> {
        let Some(mut w) = self.inner.take() else {
            return Err(self.closed());
        };
        let closed = w.close().await.map_err(|e| self.err("write", &e))?;
        let path = self.key.as_str();
        // Check what the server says it stored (a stat is cheap next to an upload, and it
        // catches a completed upload that lost data).
        let meta = match self.op.stat(path).await {
            Ok(meta) => {
                let stored = meta.content_length();
                if stored != self.written {
                    let _ = self.op.delete(path).await;
                    return Err(StorageError::new(
                        StorageErrorKind::Integrity,
                        "write",
                        path,
                        format!(
                            "stored size {stored} differs from the {} bytes written; object removed",
                            self.written
                        ),
                    ));
                }
                meta
            }
            Err(e) => {
                tracing::warn!(
                    key = path,
                    error = %self.errors.redact(&e.to_string()),
                    "could not stat the object after upload; trusting the upload's answer"
                );
                closed
            }
        };
        tracing::debug!(key = path, size = self.written, "object written");
        let mut out = to_meta(self.key.clone(), &meta);
        out.size = self.written;
        Ok(out)
    }

    async fn abort(mut self: Box<Self>) -> Result<(), StorageError> {
        let Some(mut w) = self.inner.take() else {
            return Ok(());
        };
        tracing::debug!(
            key = self.key.as_str(),
            written = self.written,
            "aborting write"
        );
        w.abort().await.map_err(|e| self.err("abort", &e))
    }
}
