//! The commit protocol when the store's answer is lost (issue 13, RELIABILITY test 7's worst
//! case): a create-only manifest write that the store applied, whose acknowledgement never
//! arrived, must end in a committed backup, never in "failed" plus a manifest without data.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use pgb_core::{
    BackupOptions, ByteStream, Error, MemoryStorage, NoProgress, ObjectKey, ObjectMeta,
    ObjectWriter, Repository, Storage, StorageError, StorageExt, StorageInfo, WriteOptions,
};
use pgb_testkit::{FakeDumper, FakeOutcome, FaultStorage};

const MIB: u64 = 1 << 20;

fn is_manifest(key: &ObjectKey) -> bool {
    key.file_name() == "manifest.json"
}

async fn keys(storage: &dyn Storage) -> Vec<String> {
    let mut keys: Vec<String> = storage
        .list(None)
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.key.to_string())
        .collect();
    keys.sort();
    keys
}

/// The store applies the manifest write, the answer is lost, the client's retry is told
/// "already exists": the backup is committed (not reported as failed), its data is still
/// there, it is listed and it verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_applied_but_unacknowledged_is_a_committed_backup() {
    let inner: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let fault = Arc::new(
        FaultStorage::new(Arc::clone(&inner))
            .only_keys(is_manifest)
            .lose_ack_at(1),
    );
    let repo = Repository::new(Arc::clone(&fault) as Arc<dyn Storage>);
    let manifest = repo
        .backup(
            &FakeDumper::new(2 * MIB, FakeOutcome::Succeed),
            &BackupOptions::default(),
            &NoProgress,
        )
        .await
        .expect("an applied manifest write is a committed backup");
    assert_eq!(fault.injected(), 1, "the lost acknowledgement was injected");
    assert_eq!(
        fault.count_ops("delete backups/"),
        0,
        "nothing of the committed backup was deleted: {:?}",
        fault.ops()
    );

    let plain = Repository::new(Arc::clone(&inner));
    let listing = plain.list().await.expect("list");
    assert_eq!(listing.backups.len(), 1);
    assert_eq!(listing.backups[0].id, manifest.id);
    assert!(listing.leftovers.is_empty() && listing.invalid.is_empty());
    let report = plain
        .verify(&listing.backups[0], None, &NoProgress)
        .await
        .expect("the committed backup verifies: its data is there");
    assert_eq!(report.stored_size, manifest.stored_size());
}

/// A storage on which another writer creates a different manifest at the same key just before
/// ours (the create-only write then fails with "already exists").
#[derive(Debug)]
struct RacingManifest {
    inner: Arc<dyn Storage>,
    armed: AtomicBool,
}

const THEIRS: &[u8] = b"{\"format_version\":1,\"note\":\"somebody else's manifest\"}";

#[async_trait]
impl Storage for RacingManifest {
    fn info(&self) -> StorageInfo {
        self.inner.info()
    }
    async fn writer(
        &self,
        key: &ObjectKey,
        opts: WriteOptions,
    ) -> Result<Box<dyn ObjectWriter>, StorageError> {
        if is_manifest(key)
            && opts.mode == pgb_core::WriteMode::CreateNew
            && self.armed.swap(false, Ordering::SeqCst)
        {
            self.inner
                .put(key, Bytes::from_static(THEIRS), WriteOptions::create_new())
                .await?;
        }
        self.inner.writer(key, opts).await
    }
    async fn reader(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
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

/// A different manifest already at the key: the backup fails cleanly, the other manifest is
/// byte for byte untouched, and the data beside it is not deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_manifest_fails_without_touching_it() {
    let inner: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let racing = Arc::new(RacingManifest {
        inner: Arc::clone(&inner),
        armed: AtomicBool::new(true),
    });
    let repo = Repository::new(racing as Arc<dyn Storage>);
    let err = repo
        .backup(
            &FakeDumper::new(MIB, FakeOutcome::Succeed),
            &BackupOptions::default(),
            &NoProgress,
        )
        .await
        .expect_err("a conflicting manifest fails the backup");
    let Error::ManifestConflict { id } = &err else {
        panic!("expected a manifest conflict, got {err}");
    };
    assert!(!err.to_string().contains('\n'));
    let manifest = ObjectKey::parse(&format!("backups/{id}/manifest.json")).expect("key");
    assert_eq!(
        inner.get_bytes(&manifest).await.expect("theirs is kept"),
        Bytes::from_static(THEIRS)
    );
    let left = keys(inner.as_ref()).await;
    assert!(
        left.iter()
            .any(|k| k.starts_with(&format!("backups/{id}/data."))),
        "the data next to a manifest is never deleted: {left:?}"
    );
}

/// The store never got the manifest (a plain failure, verified absent on read-back): the data
/// is cleaned up as before, so a failed backup leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_write_failure_with_nothing_stored_cleans_up() {
    let inner: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let fault = Arc::new(
        FaultStorage::new(Arc::clone(&inner))
            .only_keys(is_manifest)
            .fail_finish(),
    );
    let repo = Repository::new(Arc::clone(&fault) as Arc<dyn Storage>);
    let err = repo
        .backup(
            &FakeDumper::new(MIB, FakeOutcome::Succeed),
            &BackupOptions::default(),
            &NoProgress,
        )
        .await
        .expect_err("the manifest was not written");
    assert_eq!(err.class(), pgb_core::ErrorClass::Repository, "{err}");
    let left = keys(inner.as_ref()).await;
    assert!(
        left.iter().all(|k| !k.starts_with("backups/")),
        "nothing of the failed backup is left: {left:?}"
    );
    assert_eq!(fault.injected(), 1, "{:?}", fault.ops());
}
