//! [`OpendalStorage`]: an OpenDAL operator behind the [`Storage`] contract.

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use opendal::layers::{RetryEvent, RetryInterceptor, RetryLayer, TimeoutLayer};
use opendal::{HttpTransporter, Operator};
use pgb_core::{
    ByteStream, ListStream, ObjectKey, ObjectMeta, ObjectWriter, Storage, StorageError,
    StorageErrorKind, StorageInfo, WriteMode, WriteOptions,
};

use crate::error::{ErrorMapper, Intent};
use crate::options::{AdapterOptions, RetryOptions, WriteStrategy};
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
/// - **Transient faults** (5xx, 429, resets, timeouts) are retried with exponential back-off
///   and jitter, each retry logged at `info` and counted ([`stats`](Self::stats)); every call
///   is bounded by the retry budget ([`RetryOptions::budget`]).
/// - **Downloads resume**: a read whose stream is reset, stalls or ends short is continued with
///   a range request from the last byte received ([`RetryOptions::max_read_resumes`]); bytes
///   are passed on exactly once and in order, so the caller's checksum sees the object as
///   stored.
#[derive(Clone)]
pub struct OpendalStorage {
    op: Operator,
    opts: Arc<AdapterOptions>,
    errors: Arc<ErrorMapper>,
    counters: Arc<Counters>,
}

pub use pgb_core::StorageStats;

#[derive(Debug, Default)]
struct Counters {
    retries: AtomicU64,
    read_resumes: AtomicU64,
    budget_exhausted: AtomicU64,
}

fn budget_message(retry: &RetryOptions) -> String {
    format!(
        "retry budget of {} s exhausted: the store kept failing or did not answer",
        retry.budget.as_secs_f64()
    )
}

/// Runs `fut` within the retry budget; past it, the call fails as unavailable.
async fn budgeted<T>(
    retry: &RetryOptions,
    counters: &Counters,
    op: &'static str,
    key: &str,
    fut: impl Future<Output = Result<T, StorageError>>,
) -> Result<T, StorageError> {
    match tokio::time::timeout(retry.budget, fut).await {
        Ok(res) => res,
        Err(_) => {
            counters.budget_exhausted.fetch_add(1, Ordering::Relaxed);
            Err(StorageError::new(
                StorageErrorKind::Unavailable,
                op,
                key,
                budget_message(retry),
            ))
        }
    }
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

/// Logs and counts each retry, with secrets scrubbed from the error.
struct RetryLog {
    errors: Arc<ErrorMapper>,
    counters: Arc<Counters>,
}

impl RetryInterceptor for RetryLog {
    fn intercept(&self, event: RetryEvent<'_>) {
        let total = self.counters.retries.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(
            total_retries = total,
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
        let counters = Arc::new(Counters::default());
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
                        counters: Arc::clone(&counters),
                    }),
            );
        Self {
            op,
            opts: Arc::new(opts),
            errors,
            counters,
        }
    }

    /// Retries, download resumes and exhausted budgets so far (all clones together).
    pub fn stats(&self) -> StorageStats {
        StorageStats::new(
            self.counters.retries.load(Ordering::Relaxed),
            self.counters.read_resumes.load(Ordering::Relaxed),
            self.counters.budget_exhausted.load(Ordering::Relaxed),
        )
    }

    /// The number of retried requests so far (see [`stats`](Self::stats)).
    pub fn retry_count(&self) -> u64 {
        self.stats().retries
    }

    async fn within<T>(
        &self,
        op: &'static str,
        key: &str,
        fut: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        budgeted(&self.opts.retry, &self.counters, op, key, fut).await
    }

    /// The part size and concurrency a write with this size hint would use.
    pub fn upload_plan(&self, size_hint: Option<u64>) -> UploadPlan {
        self.opts.sizing.plan(size_hint)
    }

    fn err(&self, op: &'static str, key: &str, e: &opendal::Error) -> StorageError {
        self.errors.map(op, key, e, Intent::Plain)
    }
}

/// A listing in progress: the lister once opened, and what its log line and errors name.
struct Listed {
    lister: Option<opendal::Lister>,
    dir: String,
    shown: String,
    count: usize,
}

fn to_meta(key: ObjectKey, meta: &opendal::Metadata) -> ObjectMeta {
    let modified = meta
        .last_modified()
        .map(|t| time::OffsetDateTime::from(std::time::SystemTime::from(t)));
    ObjectMeta::new(key, meta.content_length(), modified)
}

#[async_trait]
impl Storage for OpendalStorage {
    fn stats(&self) -> StorageStats {
        OpendalStorage::stats(self)
    }

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
        self.within("write", key.as_str(), self.open_writer(key, opts))
            .await
    }

    async fn reader(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        self.within("read", key.as_str(), self.open_reader(key, range))
            .await
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StorageError> {
        self.within("head", key.as_str(), async {
            let meta = self
                .op
                .stat(key.as_str())
                .await
                .map_err(|e| self.err("head", key.as_str(), &e))?;
            Ok(to_meta(key.clone(), &meta))
        })
        .await
    }

    async fn list(&self, prefix: Option<&ObjectKey>) -> Result<Vec<ObjectMeta>, StorageError> {
        self.list_stream(prefix).try_collect().await
    }

    /// Streams the listing page by page: one request per page (with its own retries and
    /// budget), made when the caller has taken the previous page's objects.
    fn list_stream<'a>(&'a self, prefix: Option<&'a ObjectKey>) -> ListStream<'a> {
        // Listing `a/b/` (with the slash) is what makes the scope segment-wise: `a/bc` is not
        // under `a/b/`. The filter below re-checks it, whatever the service returns.
        let (dir, shown) = match prefix {
            Some(p) => (format!("{}/", p.as_str()), p.as_str().to_owned()),
            None => ("/".to_owned(), String::new()),
        };
        let start = Listed {
            lister: None,
            dir,
            shown,
            count: 0,
        };
        Box::pin(futures_util::stream::try_unfold(
            start,
            move |mut st| async move {
                let lister = match st.lister.as_mut() {
                    Some(lister) => lister,
                    None => {
                        let opened = self
                            .within("list", &st.shown, async {
                                self.op
                                    .lister_with(&st.dir)
                                    .recursive(true)
                                    .await
                                    .map_err(|e| self.err("list", &st.shown, &e))
                            })
                            .await?;
                        st.lister.insert(opened)
                    }
                };
                loop {
                    let Some(entry) = self
                        .within("list", &st.shown, async {
                            lister
                                .next()
                                .await
                                .transpose()
                                .map_err(|e| self.err("list", &st.shown, &e))
                        })
                        .await?
                    else {
                        tracing::debug!(
                            backend = self.opts.scheme,
                            prefix = st.shown,
                            count = st.count,
                            "listed"
                        );
                        return Ok(None);
                    };
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
                    let meta = to_meta(key, meta);
                    st.count += 1;
                    return Ok(Some((meta, st)));
                }
            },
        ))
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        self.within("delete", key.as_str(), async {
            match self.op.delete(key.as_str()).await {
                Ok(()) => {}
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
                Err(e) => return Err(self.err("delete", key.as_str(), &e)),
            }
            tracing::debug!(backend = self.opts.scheme, key = key.as_str(), "deleted");
            Ok(())
        })
        .await
    }
}

impl OpendalStorage {
    async fn open_writer(
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
            retry: self.opts.retry,
            counters: Arc::clone(&self.counters),
        }))
    }

    async fn open_reader(
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
        let first = open_range(&self.op, path, range.clone())
            .await
            .map_err(|e| self.err("read", path, &e))?;
        let state = ReadState {
            op: self.op.clone(),
            path: path.to_owned(),
            offset: range.start,
            end: range.end,
            cur: Some(first),
            resumes: 0,
            retry: self.opts.retry,
            errors: Arc::clone(&self.errors),
            counters: Arc::clone(&self.counters),
            done: false,
        };
        Ok(futures_util::stream::unfold(state, ReadState::step).boxed())
    }
}

type IoStream = futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>;

/// Opens `range` of `path` as a byte stream (one GET, with the retry layer's retries).
async fn open_range(op: &Operator, path: &str, range: Range<u64>) -> opendal::Result<IoStream> {
    let reader = op.reader(path).await?;
    Ok(reader.into_bytes_stream(range).await?.boxed())
}

/// A download that resumes: when the stream breaks (reset, stall, body cut short), the rest is
/// requested again from the last byte received, a bounded number of times, each time within
/// the retry budget. Bytes go out exactly once, in order; a server sending more than asked is
/// an integrity error, never passed on.
struct ReadState {
    op: Operator,
    path: String,
    offset: u64,
    end: u64,
    cur: Option<IoStream>,
    resumes: usize,
    retry: RetryOptions,
    errors: Arc<ErrorMapper>,
    counters: Arc<Counters>,
    done: bool,
}

impl ReadState {
    async fn step(mut self) -> Option<(Result<Bytes, StorageError>, Self)> {
        if self.done {
            return None;
        }
        loop {
            if self.offset >= self.end {
                // Everything asked for arrived; anything after it is not read.
                self.done = true;
                return None;
            }
            let Some(cur) = self.cur.as_mut() else {
                let (op, path, range) = (self.op.clone(), self.path.clone(), self.offset..self.end);
                let errors = Arc::clone(&self.errors);
                let opened = budgeted(
                    &self.retry,
                    &self.counters,
                    "read",
                    &self.path,
                    async move {
                        open_range(&op, &path, range)
                            .await
                            .map_err(|e| errors.map("read", &path, &e, Intent::Plain))
                    },
                )
                .await;
                match opened {
                    Ok(s) => self.cur = Some(s),
                    Err(e) => return self.fail(e),
                }
                continue;
            };
            match cur.next().await {
                Some(Ok(bytes)) => {
                    let left = self.end - self.offset;
                    if bytes.len() as u64 > left {
                        let e = StorageError::new(
                            StorageErrorKind::Integrity,
                            "read",
                            self.path.as_str(),
                            format!(
                                "the server sent more than the {left} bytes asked for at offset {}",
                                self.offset
                            ),
                        );
                        return self.fail(e);
                    }
                    self.offset += bytes.len() as u64;
                    return Some((Ok(bytes), self));
                }
                Some(Err(io)) if resumable(&io) => {
                    let why = self.errors.redact(&io.to_string());
                    if let Err(e) = self.resume(&why).await {
                        return self.fail(e);
                    }
                }
                Some(Err(io)) => {
                    let e = self.map_io(io);
                    return self.fail(e);
                }
                None => {
                    // The stream ended before the range did (a body cut short without an error).
                    let why = format!("stream ended at offset {} of {}", self.offset, self.end);
                    if let Err(e) = self.resume(&why).await {
                        return self.fail(e);
                    }
                }
            }
        }
    }

    /// Drops the broken stream so that the next step re-requests from `offset`.
    async fn resume(&mut self, why: &str) -> Result<(), StorageError> {
        self.cur = None;
        if self.resumes >= self.retry.max_read_resumes {
            return Err(StorageError::new(
                StorageErrorKind::Unavailable,
                "read",
                self.path.as_str(),
                format!(
                    "download broke off at byte {} of {} after {} resumes ({why})",
                    self.offset, self.end, self.resumes
                ),
            ));
        }
        self.resumes += 1;
        self.counters.read_resumes.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            backend = self.errors.scheme,
            key = self.path.as_str(),
            offset = self.offset,
            end = self.end,
            resume = self.resumes,
            error = why,
            "download broke off; resuming with a range request"
        );
        let shift = u32::try_from(self.resumes - 1).unwrap_or(u32::MAX).min(16);
        let delay = self
            .retry
            .min_delay
            .saturating_mul(1 << shift)
            .min(self.retry.max_delay);
        tokio::time::sleep(delay).await;
        Ok(())
    }

    fn fail(mut self, e: StorageError) -> Option<(Result<Bytes, StorageError>, Self)> {
        self.done = true;
        self.cur = None;
        Some((Err(e), self))
    }

    fn map_io(&self, io: std::io::Error) -> StorageError {
        match io
            .get_ref()
            .and_then(|i| i.downcast_ref::<opendal::Error>())
        {
            Some(e) => self.errors.map("read", &self.path, e, Intent::Plain),
            None => {
                let msg = self.errors.redact(&io.to_string());
                StorageError::from_io(
                    "read",
                    self.path.clone(),
                    std::io::Error::new(io.kind(), msg),
                )
            }
        }
    }
}

/// Whether a broken download is worth resuming: anything but the store saying no.
fn resumable(io: &std::io::Error) -> bool {
    use opendal::ErrorKind as K;
    match io
        .get_ref()
        .and_then(|i| i.downcast_ref::<opendal::Error>())
    {
        Some(e) => !matches!(
            e.kind(),
            K::NotFound
                | K::PermissionDenied
                | K::ConfigInvalid
                | K::RangeNotSatisfied
                | K::Unsupported
                | K::ConditionNotMatch
        ),
        None => true,
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
    retry: RetryOptions,
    counters: Arc<Counters>,
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
        if self.inner.is_none() {
            return Err(self.closed());
        }
        let (retry, counters) = (self.retry, Arc::clone(&self.counters));
        let key = self.key.clone();
        let errors = Arc::clone(&self.errors);
        let intent = self.intent;
        let w = self.inner.as_mut().expect("checked above");
        // The writer stays in place whatever happens, so that `abort` can still abort the
        // unfinished upload.
        budgeted(&retry, &counters, "write", key.as_str(), async {
            w.write(chunk)
                .await
                .map_err(|e| errors.map("write", key.as_str(), &e, intent))
        })
        .await?;
        self.written += len;
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<ObjectMeta, StorageError> {
        let Some(mut w) = self.inner.take() else {
            return Err(self.closed());
        };
        let closing = budgeted(
            &self.retry,
            &self.counters,
            "write",
            self.key.as_str(),
            async { Ok(w.close().await) },
        )
        .await;
        let closed = match closing {
            Ok(Ok(meta)) => meta,
            failed => {
                // The upload was not completed: abort it (S3 multipart, Azure blocks, GCS
                // session) so that no parts linger; where that fails too, the bucket's
                // lifecycle rule for unfinished uploads removes them.
                let aborted = budgeted(
                    &self.retry,
                    &self.counters,
                    "abort",
                    self.key.as_str(),
                    async { w.abort().await.map_err(|e| self.err("abort", &e)) },
                )
                .await;
                let note = match &aborted {
                    Ok(()) => "the unfinished upload was aborted".to_owned(),
                    Err(_) => "the unfinished upload could not be aborted; the bucket's lifecycle rule for incomplete uploads removes its parts".to_owned(),
                };
                tracing::debug!(
                    key = self.key.as_str(),
                    aborted = aborted.is_ok(),
                    "upload not completed"
                );
                return Err(match failed {
                    // A refused condition is an answer, not a broken upload: no note.
                    Ok(Err(e))
                        if matches!(
                            e.kind(),
                            opendal::ErrorKind::ConditionNotMatch
                                | opendal::ErrorKind::AlreadyExists
                                | opendal::ErrorKind::Conflict
                        ) =>
                    {
                        self.errors.map("write", self.key.as_str(), &e, self.intent)
                    }
                    Ok(Err(e)) => self.errors.map_noted(
                        "write",
                        self.key.as_str(),
                        &e,
                        self.intent,
                        Some(&note),
                    ),
                    _ => StorageError::new(
                        StorageErrorKind::Unavailable,
                        "write",
                        self.key.as_str(),
                        format!("{}; {note}", budget_message(&self.retry)),
                    ),
                });
            }
        };
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
            // The upload "succeeded" but nothing is there: a completion answered 200 with an
            // error document or an empty body that the service layer took for success.
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
                return Err(StorageError::new(
                    StorageErrorKind::Integrity,
                    "write",
                    path,
                    "the store acknowledged the upload but the object does not exist \
                     (unfinished parts are left to the bucket's lifecycle rule for incomplete uploads)",
                ));
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
        budgeted(
            &self.retry,
            &self.counters,
            "abort",
            self.key.as_str(),
            async { w.abort().await.map_err(|e| self.err("abort", &e)) },
        )
        .await
    }
}
