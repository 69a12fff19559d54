//! Fault injection: a [`Storage`] wrapper that fails, fills up or lies on command, and records
//! every operation (RELIABILITY.md's FaultLayer, for the in-process orchestration tests).

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use pgb_core::{
    ByteStream, ListStream, ObjectKey, ObjectMeta, ObjectWriter, Storage, StorageError,
    StorageErrorKind, StorageInfo, WriteOptions,
};

/// Decides which keys the injected faults apply to.
type KeyFilter = Arc<dyn Fn(&ObjectKey) -> bool + Send + Sync>;

/// What to inject. All counters are 1-based and count only operations on targeted keys.
#[derive(Default, Clone)]
struct Plan {
    only: Option<KeyFilter>,
    fail_write_at: Option<u64>,
    fail_at_byte: Option<u64>,
    full_at_byte: Option<u64>,
    fail_finish_at: Option<u64>,
    fail_every_finish: bool,
    lose_ack_at: Option<u64>,
    fail_head: bool,
    fail_list: bool,
    fail_list_after: Option<u64>,
    fail_delete_at: Option<u64>,
    drop_tail: Option<u64>,
    flip_byte_at: Option<u64>,
    aged: Vec<(ObjectKey, Duration)>,
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field("only", &self.only.as_ref().map(|_| "<filter>"))
            .field("fail_write_at", &self.fail_write_at)
            .field("fail_at_byte", &self.fail_at_byte)
            .field("full_at_byte", &self.full_at_byte)
            .field("fail_finish_at", &self.fail_finish_at)
            .field("fail_every_finish", &self.fail_every_finish)
            .field("lose_ack_at", &self.lose_ack_at)
            .field("fail_head", &self.fail_head)
            .field("fail_list", &self.fail_list)
            .field("fail_list_after", &self.fail_list_after)
            .field("fail_delete_at", &self.fail_delete_at)
            .field("drop_tail", &self.drop_tail)
            .field("flip_byte_at", &self.flip_byte_at)
            .field("aged", &self.aged)
            .finish()
    }
}

/// Counters and the operation log, shared by the storage and its writers.
#[derive(Debug)]
struct State {
    armed: AtomicBool,
    writes: AtomicU64,
    targeted_writes: AtomicU64,
    bytes_written: AtomicU64,
    finishes: AtomicU64,
    targeted_finishes: AtomicU64,
    aborts: AtomicU64,
    deletes: AtomicU64,
    targeted_deletes: AtomicU64,
    injected: AtomicU64,
    log: Mutex<Vec<String>>,
}

impl State {
    fn new() -> Self {
        Self {
            armed: AtomicBool::new(true),
            writes: AtomicU64::new(0),
            targeted_writes: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            finishes: AtomicU64::new(0),
            targeted_finishes: AtomicU64::new(0),
            aborts: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            targeted_deletes: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        }
    }

    fn log(&self, entry: String) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(entry);
    }

    /// Logs `entry`, suffixed with the error if the operation failed.
    fn log_result<T>(&self, entry: String, res: &Result<T, StorageError>) {
        match res {
            Ok(_) => self.log(entry),
            Err(e) => self.log(format!("{entry} FAILED: {e}")),
        }
    }

    fn injected_error(
        &self,
        kind: StorageErrorKind,
        op: &'static str,
        key: &str,
        what: &str,
    ) -> StorageError {
        self.injected.fetch_add(1, Ordering::SeqCst);
        let message = match kind {
            StorageErrorKind::StorageFull => format!("no space left on device ({what}, injected)"),
            _ => format!("{what} (injected fault)"),
        };
        StorageError::new(kind, op, key, message)
    }
}

/// A [`Storage`] wrapper for fault-injection tests: it fails the k-th write, fails at byte N,
/// runs out of space, fails `finish`, `head`, `list` (or breaks a listing off midway) or
/// `delete`, or *lies* (drops the tail
/// of an object or flips one byte while reporting success), and records every operation.
///
/// With nothing configured (or after [`FaultStorage::disarm`]) it forwards every call
/// unchanged, so it honours the [`Storage`] contract of the store it wraps.
///
/// # Targeting
///
/// Faults apply to every key unless [`FaultStorage::only_keys`] restricts them, e.g. to data
/// objects so that the repository's write probe and the manifest are left alone. The counters
/// behind `fail_write_at(k)`, `fail_finish_at(k)` and `fail_delete_at(k)` are 1-based and count
/// only calls on targeted keys, across all writers. Byte offsets (`fail_at_byte`,
/// `storage_full_at_byte`, `flip_byte_at`) are offsets within one object.
///
/// # The operation log
///
/// [`FaultStorage::ops`] returns one line per operation, in the order they completed:
/// `writer <key>`, `write <key> <len>`, `finish <key> <size>`, `abort <key>`, `read <key>`,
/// `head <key>`, `list <prefix or *>`, `delete <key>`. A failed operation has
/// ` FAILED: <error>` appended; an injected one says `(injected fault)` in that error.
///
/// ```ignore
/// let inner: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
/// let fault = Arc::new(
///     FaultStorage::new(Arc::clone(&inner))
///         .only_keys(|k| k.file_name().starts_with("data."))
///         .fail_write_at(3),
/// );
/// let repo = Repository::new(Arc::clone(&fault) as Arc<dyn Storage>);
/// assert!(repo.backup(&dumper, &opts, &NoProgress).await.is_err());
/// assert_eq!(fault.count_ops("finish backups/"), 0);
/// ```
#[derive(Debug)]
pub struct FaultStorage {
    inner: Arc<dyn Storage>,
    plan: Arc<Plan>,
    state: Arc<State>,
}

impl FaultStorage {
    /// Wraps `inner`; with no further configuration it only forwards and records.
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        Self {
            inner,
            plan: Arc::new(Plan::default()),
            state: Arc::new(State::new()),
        }
    }

    fn with_plan(mut self, f: impl FnOnce(&mut Plan)) -> Self {
        f(Arc::make_mut(&mut self.plan));
        self
    }

    /// Restricts every fault to keys for which `filter` returns true (default: all keys).
    /// Operations on other keys are still forwarded and logged.
    #[must_use]
    pub fn only_keys(self, filter: impl Fn(&ObjectKey) -> bool + Send + Sync + 'static) -> Self {
        self.with_plan(|p| p.only = Some(Arc::new(filter)))
    }

    /// Fails the `k`-th `write` call (1-based, across all targeted writers) with
    /// [`StorageErrorKind::Unavailable`]; the chunk is not forwarded.
    #[must_use]
    pub fn fail_write_at(self, k: u64) -> Self {
        self.with_plan(|p| p.fail_write_at = Some(k))
    }

    /// Fails the write that would carry an object past byte `n` with
    /// [`StorageErrorKind::Unavailable`], after forwarding the bytes before offset `n`
    /// (a connection reset mid-body).
    #[must_use]
    pub fn fail_at_byte(self, n: u64) -> Self {
        self.with_plan(|p| p.fail_at_byte = Some(n))
    }

    /// Like [`FaultStorage::fail_at_byte`], but the error is
    /// [`StorageErrorKind::StorageFull`] ("no space left on device").
    #[must_use]
    pub fn storage_full_at_byte(self, n: u64) -> Self {
        self.with_plan(|p| p.full_at_byte = Some(n))
    }

    /// Fails the `k`-th `finish` (close) of a targeted writer with
    /// [`StorageErrorKind::Unavailable`]. The inner write is aborted, so nothing is visible.
    #[must_use]
    pub fn fail_finish_at(self, k: u64) -> Self {
        self.with_plan(|p| p.fail_finish_at = Some(k))
    }

    /// Fails every `finish` of a targeted writer (see [`FaultStorage::fail_finish_at`]).
    #[must_use]
    pub fn fail_finish(self) -> Self {
        self.with_plan(|p| p.fail_every_finish = true)
    }

    /// Loses the acknowledgement of the `k`-th `finish` of a targeted writer (counted like
    /// [`FaultStorage::fail_finish_at`]): the object IS written, then the caller gets the error
    /// a client sees after its connection dropped before the answer and it retried: for a
    /// create-only write [`StorageErrorKind::AlreadyExists`] (the retry found the object its
    /// first attempt made), otherwise [`StorageErrorKind::Unavailable`].
    #[must_use]
    pub fn lose_ack_at(self, k: u64) -> Self {
        self.with_plan(|p| p.lose_ack_at = Some(k))
    }

    /// Fails every `head` (stat) of a targeted key with [`StorageErrorKind::Unavailable`].
    #[must_use]
    pub fn fail_head(self) -> Self {
        self.with_plan(|p| p.fail_head = true)
    }

    /// Fails every `list` with [`StorageErrorKind::Unavailable`] (whatever the prefix).
    #[must_use]
    pub fn fail_list(self) -> Self {
        self.with_plan(|p| p.fail_list = true)
    }

    /// Breaks every listing after it streamed `n` objects: the object after them is replaced
    /// by an [`StorageErrorKind::Unavailable`] error that ends the stream (a page request
    /// that kept failing); a listing of at most `n` objects is whole. `list` fails the same
    /// way.
    #[must_use]
    pub fn fail_list_after(self, n: u64) -> Self {
        self.with_plan(|p| p.fail_list_after = Some(n))
    }

    /// Fails the `k`-th `delete` of a targeted key (1-based) with
    /// [`StorageErrorKind::Unavailable`]; the object is left in place.
    #[must_use]
    pub fn fail_delete_at(self, k: u64) -> Self {
        self.with_plan(|p| p.fail_delete_at = Some(k))
    }

    /// Lies: silently stores a targeted object without its last `k` bytes, while `finish`
    /// reports the full size it was given. `head`, `list` and reads tell the truth.
    #[must_use]
    pub fn drop_tail(self, k: u64) -> Self {
        self.with_plan(|p| p.drop_tail = Some(k))
    }

    /// Lies: silently stores a targeted object with the byte at offset `n` inverted
    /// (`!b`), reporting success. The size is unchanged.
    #[must_use]
    pub fn flip_byte_at(self, n: u64) -> Self {
        self.with_plan(|p| p.flip_byte_at = Some(n))
    }

    /// Reports the modification time of every object under `prefix` (segment-wise) as `by`
    /// older than the store says, in `head` and `list`: a way to make leftovers look old for
    /// grace-period tests without waiting. Applies whatever [`FaultStorage::only_keys`] says.
    #[must_use]
    pub fn age_objects(self, prefix: &ObjectKey, by: Duration) -> Self {
        let prefix = prefix.clone();
        self.with_plan(|p| p.aged.push((prefix, by)))
    }

    /// Stops injecting faults (lies and ageing included); the storage then only forwards and
    /// records. Affects writers already open.
    pub fn disarm(&self) {
        self.state.armed.store(false, Ordering::SeqCst);
    }

    /// Resumes injecting faults after [`FaultStorage::disarm`]. Counters are not reset.
    pub fn arm(&self) {
        self.state.armed.store(true, Ordering::SeqCst);
    }

    /// The operation log so far (see the type's documentation for the format).
    pub fn ops(&self) -> Vec<String> {
        self.state
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The log lines that start with `prefix`, e.g. `"delete "` or `"finish backups/"`.
    pub fn ops_starting_with(&self, prefix: &str) -> Vec<String> {
        self.ops()
            .into_iter()
            .filter(|op| op.starts_with(prefix))
            .collect()
    }

    /// How many log lines start with `prefix`.
    pub fn count_ops(&self, prefix: &str) -> usize {
        self.ops_starting_with(prefix).len()
    }

    /// `write` calls seen (all keys, successful or not).
    pub fn writes(&self) -> u64 {
        self.state.writes.load(Ordering::SeqCst)
    }

    /// Bytes handed to `write` (all keys, before any lie).
    pub fn bytes_written(&self) -> u64 {
        self.state.bytes_written.load(Ordering::SeqCst)
    }

    /// `finish` calls seen (all keys, successful or not).
    pub fn finishes(&self) -> u64 {
        self.state.finishes.load(Ordering::SeqCst)
    }

    /// `abort` calls seen, including writers dropped without `finish` or `abort`.
    pub fn aborts(&self) -> u64 {
        self.state.aborts.load(Ordering::SeqCst)
    }

    /// `delete` calls seen (all keys, successful or not).
    pub fn deletes(&self) -> u64 {
        self.state.deletes.load(Ordering::SeqCst)
    }

    /// How many faults (errors or lies) were injected so far.
    pub fn injected(&self) -> u64 {
        self.state.injected.load(Ordering::SeqCst)
    }

    fn active_for(&self, key: &ObjectKey) -> bool {
        is_active(&self.plan, &self.state, key)
    }

    fn injected_error(&self, op: &'static str, key: &str, what: &str) -> StorageError {
        self.state
            .injected_error(StorageErrorKind::Unavailable, op, key, what)
    }

    fn age(&self, mut meta: ObjectMeta) -> ObjectMeta {
        if !self.active_for(&meta.key) {
            return meta;
        }
        for (prefix, by) in &self.plan.aged {
            if meta.key.starts_with(prefix) {
                meta.last_modified = meta.last_modified.map(|t| t - *by);
            }
        }
        meta
    }
}

fn is_active(plan: &Plan, state: &State, key: &ObjectKey) -> bool {
    state.armed.load(Ordering::SeqCst) && plan.only.as_ref().is_none_or(|f| f(key))
}

/// Whether the 1-based counter value `n` is the configured `at`.
fn hits(at: Option<u64>, n: u64) -> bool {
    at == Some(n)
}

#[async_trait]
impl Storage for FaultStorage {
    fn info(&self) -> StorageInfo {
        self.inner.info()
    }

    fn stats(&self) -> pgb_core::StorageStats {
        self.inner.stats()
    }

    async fn writer(
        &self,
        key: &ObjectKey,
        opts: WriteOptions,
    ) -> Result<Box<dyn ObjectWriter>, StorageError> {
        let create_new = opts.mode == pgb_core::WriteMode::CreateNew;
        let res = self.inner.writer(key, opts).await;
        self.state.log_result(format!("writer {key}"), &res);
        let inner = res?;
        Ok(Box::new(FaultWriter {
            inner: Some(inner),
            create_new,
            key: key.clone(),
            plan: Arc::clone(&self.plan),
            state: Arc::clone(&self.state),
            received: 0,
            tail: BytesMut::new(),
        }))
    }

    async fn reader(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        let res = self.inner.reader(key, range).await;
        self.state.log_result(format!("read {key}"), &res);
        res
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StorageError> {
        let res = if self.plan.fail_head && self.active_for(key) {
            Err(self.injected_error("head", key.as_str(), "stat failed"))
        } else {
            self.inner.head(key).await.map(|m| self.age(m))
        };
        self.state.log_result(format!("head {key}"), &res);
        res
    }

    async fn list(&self, prefix: Option<&ObjectKey>) -> Result<Vec<ObjectMeta>, StorageError> {
        self.list_stream(prefix).try_collect().await
    }

    /// The inner store's stream, aged, with the listing faults injected; logged once, when
    /// it ends (`list <prefix>`, with ` FAILED: ...` after an error).
    fn list_stream<'a>(&'a self, prefix: Option<&'a ObjectKey>) -> ListStream<'a> {
        let shown = prefix.map_or_else(|| "*".to_owned(), ToString::to_string);
        let armed = self.state.armed.load(Ordering::SeqCst);
        if self.plan.fail_list && armed {
            let res: Result<(), _> = Err(self.injected_error("list", &shown, "list failed"));
            self.state.log_result(format!("list {shown}"), &res);
            return Box::pin(futures_util::stream::iter(res.err().map(Err)));
        }
        let break_after = self.plan.fail_list_after.filter(|_| armed);
        let mut inner = self.inner.list_stream(prefix);
        let mut streamed = 0u64;
        let mut ended = false;
        Box::pin(futures_util::stream::poll_fn(move |cx| {
            if ended {
                return Poll::Ready(None);
            }
            let item = match inner.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(_))) if break_after == Some(streamed) => {
                    Some(Err(self.injected_error("list", &shown, "list broke off")))
                }
                Poll::Ready(item) => item.map(|r| r.map(|m| self.age(m))),
            };
            match &item {
                Some(Ok(_)) => streamed += 1,
                Some(Err(e)) => {
                    self.state.log(format!("list {shown} FAILED: {e}"));
                    ended = true;
                }
                None => {
                    self.state.log(format!("list {shown}"));
                    ended = true;
                }
            }
            Poll::Ready(item)
        }))
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        self.state.deletes.fetch_add(1, Ordering::SeqCst);
        let res = if self.active_for(key) {
            let n = self.state.targeted_deletes.fetch_add(1, Ordering::SeqCst) + 1;
            if hits(self.plan.fail_delete_at, n) {
                Err(self.injected_error("delete", key.as_str(), "delete failed"))
            } else {
                self.inner.delete(key).await
            }
        } else {
            self.inner.delete(key).await
        };
        self.state.log_result(format!("delete {key}"), &res);
        res
    }
}

/// A writer that injects the configured write-side faults.
struct FaultWriter {
    /// `None` once the inner writer was consumed (after an injected `finish` failure).
    inner: Option<Box<dyn ObjectWriter>>,
    /// The write was create-only (decides the error a lost acknowledgement turns into).
    create_new: bool,
    key: ObjectKey,
    plan: Arc<Plan>,
    state: Arc<State>,
    /// Bytes received by this writer so far (before any lie).
    received: u64,
    /// Bytes held back for `drop_tail`.
    tail: BytesMut,
}

impl fmt::Debug for FaultWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultWriter")
            .field("key", &self.key)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl FaultWriter {
    fn inner(&mut self) -> Result<&mut Box<dyn ObjectWriter>, StorageError> {
        self.inner.as_mut().ok_or_else(|| {
            StorageError::new(
                StorageErrorKind::Other,
                "write",
                self.key.as_str(),
                "writer already finished or aborted",
            )
        })
    }

    async fn forward(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.inner()?.write(chunk).await
    }

    async fn write_inner(&mut self, mut chunk: Bytes) -> Result<(), StorageError> {
        self.state.writes.fetch_add(1, Ordering::SeqCst);
        self.state
            .bytes_written
            .fetch_add(chunk.len() as u64, Ordering::SeqCst);
        let start = self.received;
        self.received += chunk.len() as u64;
        if !is_active(&self.plan, &self.state, &self.key) {
            return self.forward(chunk).await;
        }
        let n = self.state.targeted_writes.fetch_add(1, Ordering::SeqCst) + 1;
        if hits(self.plan.fail_write_at, n) {
            return Err(self.state.injected_error(
                StorageErrorKind::Unavailable,
                "write",
                self.key.as_str(),
                &format!("write #{n} failed"),
            ));
        }
        let cut = [
            (self.plan.fail_at_byte, StorageErrorKind::Unavailable),
            (self.plan.full_at_byte, StorageErrorKind::StorageFull),
        ]
        .into_iter()
        .filter_map(|(at, kind)| at.map(|at| (at, kind)))
        .filter(|(at, _)| *at < self.received)
        .min_by_key(|(at, _)| *at);
        if let Some((at, kind)) = cut {
            // Forward what fits before byte `at`, then fail like a connection reset or a full
            // disk would.
            let keep = at.saturating_sub(start).min(chunk.len() as u64) as usize;
            self.forward(chunk.slice(..keep)).await?;
            return Err(self.state.injected_error(
                kind,
                "write",
                self.key.as_str(),
                &format!("write failed at byte {at}"),
            ));
        }
        if let Some(at) = self.plan.flip_byte_at
            && (start..self.received).contains(&at)
        {
            let mut owned = BytesMut::from(&chunk[..]);
            let i = (at - start) as usize;
            owned[i] = !owned[i];
            chunk = owned.freeze();
            self.state.injected.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(k) = self.plan.drop_tail {
            self.tail.extend_from_slice(&chunk);
            let excess = self.tail.len().saturating_sub(k as usize);
            let out = self.tail.split_to(excess).freeze();
            return self.forward(out).await;
        }
        self.forward(chunk).await
    }
}

#[async_trait]
impl ObjectWriter for FaultWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        let len = chunk.len();
        let res = self.write_inner(chunk).await;
        self.state
            .log_result(format!("write {} {len}", self.key), &res);
        res
    }

    async fn finish(mut self: Box<Self>) -> Result<ObjectMeta, StorageError> {
        self.state.finishes.fetch_add(1, Ordering::SeqCst);
        let entry = format!("finish {} {}", self.key, self.received);
        let inner = match self.inner.take() {
            Some(w) => w,
            None => {
                let err = StorageError::new(
                    StorageErrorKind::Other,
                    "write",
                    self.key.as_str(),
                    "writer already consumed",
                );
                let res = Err(err);
                self.state.log_result(entry, &res);
                return res;
            }
        };
        let active = is_active(&self.plan, &self.state, &self.key);
        let res = if active {
            let n = self.state.targeted_finishes.fetch_add(1, Ordering::SeqCst) + 1;
            if self.plan.fail_every_finish || hits(self.plan.fail_finish_at, n) {
                // Nothing may be visible after a failed finish: discard the inner write.
                let _ = inner.abort().await;
                Err(self.state.injected_error(
                    StorageErrorKind::Unavailable,
                    "write",
                    self.key.as_str(),
                    "close failed",
                ))
            } else {
                if !self.tail.is_empty() {
                    // The lie: the held-back tail is dropped, success is reported anyway.
                    self.state.injected.fetch_add(1, Ordering::SeqCst);
                }
                let received = self.received;
                let res = inner.finish().await.map(|mut meta| {
                    meta.size = received;
                    meta
                });
                if res.is_ok() && hits(self.plan.lose_ack_at, n) {
                    // Applied, but the answer never arrived: report what the retry saw.
                    let (kind, what) = if self.create_new {
                        (
                            StorageErrorKind::AlreadyExists,
                            "acknowledgement lost; the retry found the object already there",
                        )
                    } else {
                        (StorageErrorKind::Unavailable, "acknowledgement lost")
                    };
                    Err(self
                        .state
                        .injected_error(kind, "write", self.key.as_str(), what))
                } else {
                    res
                }
            }
        } else {
            // Disarmed or untargeted: anything held back for a lie is passed on unchanged.
            let tail = std::mem::take(&mut self.tail).freeze();
            let mut inner = inner;
            let written = if tail.is_empty() {
                Ok(())
            } else {
                inner.write(tail).await
            };
            match written {
                Ok(()) => inner.finish().await,
                Err(e) => {
                    let _ = inner.abort().await;
                    Err(e)
                }
            }
        };
        self.state.log_result(entry, &res);
        res
    }

    async fn abort(mut self: Box<Self>) -> Result<(), StorageError> {
        self.state.aborts.fetch_add(1, Ordering::SeqCst);
        let res = match self.inner.take() {
            Some(w) => w.abort().await,
            None => Ok(()),
        };
        self.state.log_result(format!("abort {}", self.key), &res);
        res
    }
}

impl Drop for FaultWriter {
    fn drop(&mut self) {
        if self.inner.is_some() {
            // Dropped without finish or abort: the inner writer's own drop aborts it.
            self.state.aborts.fetch_add(1, Ordering::SeqCst);
            self.state.log(format!("abort {} (dropped)", self.key));
        }
    }
}
