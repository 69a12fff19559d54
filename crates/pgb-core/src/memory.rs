//! An in-memory [`Storage`], always compiled so embedders can use it in their own tests.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use crate::key::ObjectKey;
use crate::storage::{
    ByteStream, Capabilities, ObjectMeta, ObjectWriter, Storage, StorageError, StorageErrorKind,
    StorageInfo, WriteMode, WriteOptions,
};

type Objects = Arc<Mutex<BTreeMap<ObjectKey, (Bytes, time::OffsetDateTime)>>>;

/// An in-memory store. Clones share the same objects.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    objects: Objects,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn not_found(op: &'static str, key: &ObjectKey) -> StorageError {
    StorageError::new(
        StorageErrorKind::NotFound,
        op,
        key.as_str(),
        "object not found",
    )
}

#[async_trait]
impl Storage for MemoryStorage {
    fn info(&self) -> StorageInfo {
        StorageInfo::new("memory", "memory://", Capabilities::default())
    }

    async fn writer(
        &self,
        key: &ObjectKey,
        opts: WriteOptions,
    ) -> Result<Box<dyn ObjectWriter>, StorageError> {
        Ok(Box::new(MemoryWriter {
            objects: Arc::clone(&self.objects),
            key: key.clone(),
            mode: opts.mode,
            buf: BytesMut::new(),
        }))
    }

    async fn reader(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        let data = {
            let map = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
            map.get(key)
                .map(|(b, _)| b.clone())
                .ok_or_else(|| not_found("read", key))?
        };
        let data = match range {
            Some(r) => {
                let end = (r.end as usize).min(data.len());
                let start = (r.start as usize).min(end);
                data.slice(start..end)
            }
            None => data,
        };
        Ok(Box::pin(futures_util::stream::iter([Ok(data)])))
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StorageError> {
        let map = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(key)
            .map(|(b, t)| ObjectMeta::new(key.clone(), b.len() as u64, Some(*t)))
            .ok_or_else(|| not_found("head", key))
    }

    async fn list(&self, prefix: Option<&ObjectKey>) -> Result<Vec<ObjectMeta>, StorageError> {
        let map = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(map
            .iter()
            .filter(|(k, _)| prefix.is_none_or(|p| k.starts_with(p) && *k != p))
            .map(|(k, (b, t))| ObjectMeta::new(k.clone(), b.len() as u64, Some(*t)))
            .collect())
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        Ok(())
    }
}

#[derive(Debug)]
struct MemoryWriter {
    objects: Objects,
    key: ObjectKey,
    mode: WriteMode,
    buf: BytesMut,
}

#[async_trait]
impl ObjectWriter for MemoryWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        self.buf.extend_from_slice(&chunk);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta, StorageError> {
        let mut map = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        if self.mode == WriteMode::CreateNew && map.contains_key(&self.key) {
            return Err(StorageError::new(
                StorageErrorKind::AlreadyExists,
                "write",
                self.key.as_str(),
                "object already exists",
            ));
        }
        let size = self.buf.len() as u64;
        let now = time::OffsetDateTime::now_utc();
        map.insert(self.key.clone(), (self.buf.freeze(), now));
        Ok(ObjectMeta::new(self.key, size, Some(now)))
    }

    async fn abort(self: Box<Self>) -> Result<(), StorageError> {
        Ok(())
    }
}
