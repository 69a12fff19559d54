//! `Repository::list` over a streamed listing: manifests are read while the listing goes on,
//! and a listing that breaks off midway is an error, never a shorter repository.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use pgb_core::{
    BackupOptions, ByteStream, ListStream, MemoryStorage, NoProgress, ObjectKey, ObjectMeta,
    ObjectWriter, Repository, Storage, StorageError, StorageErrorKind, StorageInfo, WriteOptions,
};
use pgb_testkit::{FakeDumper, FakeOutcome, FaultStorage};
use tokio::sync::Notify;

/// A store whose listing stops after the first manifest and goes on only once some manifest
/// was opened for reading (or fails after a while): a lister that waits for the reads proves
/// they run while it lists.
#[derive(Debug)]
struct Gated {
    inner: Arc<dyn Storage>,
    manifest_read: Notify,
}

fn is_manifest(key: &ObjectKey) -> bool {
    key.file_name() == "manifest.json"
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
        self.inner.writer(key, opts).await
    }
    async fn reader(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        if is_manifest(key) {
            self.manifest_read.notify_one();
        }
        self.inner.reader(key, range).await
    }
    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StorageError> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: Option<&ObjectKey>) -> Result<Vec<ObjectMeta>, StorageError> {
        self.list_stream(prefix).try_collect().await
    }
    fn list_stream<'a>(&'a self, prefix: Option<&'a ObjectKey>) -> ListStream<'a> {
        let pages = async move {
            let mut first = self.inner.list(prefix).await?;
            first.sort_by(|a, b| a.key.cmp(&b.key));
            let cut = first
                .iter()
                .position(|m| is_manifest(&m.key))
                .map_or(first.len(), |i| i + 1);
            let rest = first.split_off(cut);
            Ok::<_, StorageError>((first, rest))
        };
        futures_util::stream::once(pages)
            .flat_map(move |pages| match pages {
                Err(e) => futures_util::stream::iter([Err(e)]).boxed(),
                Ok((first, rest)) => {
                    let gate = futures_util::stream::once(async move {
                        tokio::time::timeout(Duration::from_secs(10), self.manifest_read.notified())
                            .await
                            .map_err(|_| {
                                StorageError::new(
                                    StorageErrorKind::Other,
                                    "list",
                                    "backups",
                                    "no manifest was read while the listing went on",
                                )
                            })
                    })
                    .filter_map(|r| std::future::ready(r.err().map(Err)));
                    futures_util::stream::iter(first.into_iter().map(Ok))
                        .chain(gate)
                        .chain(futures_util::stream::iter(rest.into_iter().map(Ok)))
                        .boxed()
                }
            })
            .boxed()
    }
    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }
}

async fn backups(repo: &Repository, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let m = repo
            .backup(
                &FakeDumper::new(4096, FakeOutcome::Succeed),
                &BackupOptions::default(),
                &NoProgress,
            )
            .await
            .expect("backup");
        ids.push(m.id.to_string());
    }
    ids
}

/// The first manifest is read before the listing has passed it: the listing waits for that
/// read and would fail after 10 s if manifests were read only once it is complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_are_read_while_the_listing_goes_on() {
    let inner: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let ids = backups(&Repository::new(Arc::clone(&inner)), 3).await;
    let gated = Arc::new(Gated {
        inner,
        manifest_read: Notify::new(),
    });
    let listing = Repository::new(gated as Arc<dyn Storage>)
        .list()
        .await
        .expect("the listing goes on once a manifest is read");
    let mut listed: Vec<String> = listing.backups.iter().map(|m| m.id.to_string()).collect();
    listed.sort();
    let mut expected = ids;
    expected.sort();
    assert_eq!(listed, expected);
    assert!(listing.invalid.is_empty() && listing.leftovers.is_empty());
}

/// A listing that breaks off after any number of objects fails the whole listing: never a
/// repository with fewer backups, or backups taken for leftovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_broken_off_midway_is_an_error() {
    let inner: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    backups(&Repository::new(Arc::clone(&inner)), 3).await;
    let objects = inner
        .list(Some(&ObjectKey::parse("backups").expect("key")))
        .await
        .expect("list")
        .len() as u64;
    assert!(objects >= 6, "{objects} objects");
    for n in 0..objects {
        let fault = Arc::new(FaultStorage::new(Arc::clone(&inner)).fail_list_after(n));
        let repo = Repository::new(Arc::clone(&fault) as Arc<dyn Storage>);
        let err = repo.list().await.expect_err("a broken listing fails");
        assert!(
            err.to_string().contains("list broke off"),
            "after {n}: {err}"
        );
        assert_eq!(fault.count_ops("list backups FAILED"), 1, "after {n}");
    }
    let whole = Arc::new(FaultStorage::new(Arc::clone(&inner)).fail_list_after(objects));
    let listing = Repository::new(whole as Arc<dyn Storage>)
        .list()
        .await
        .expect("a listing that ends before the fault is whole");
    assert_eq!(listing.backups.len(), 3);
}
