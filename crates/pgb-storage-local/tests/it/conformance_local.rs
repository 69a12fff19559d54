//! The storage conformance suite on a temporary directory, plus local-only guarantees.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use pgb_core::{ObjectKey, Storage, StorageExt, WriteOptions};
use pgb_storage_local::FsStorage;

async fn local() -> Option<Arc<dyn Storage>> {
    // Leaked on purpose: the directory must outlive the case; it lives under the OS temp dir.
    let dir = tempfile::tempdir().expect("tempdir").keep();
    Some(Arc::new(FsStorage::open(dir).expect("open")))
}

pgb_testkit::storage_conformance!(local);

#[tokio::test]
async fn files_are_0600_and_directories_0700_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::open_or_create(dir.path().join("repo")).unwrap();
    let key = ObjectKey::parse("backups/a/data.dump.zst").unwrap();
    store
        .put(&key, "x".into(), WriteOptions::default())
        .await
        .unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("repo")), 0o700);
    assert_eq!(mode(&dir.path().join("repo/backups")), 0o700);
    assert_eq!(mode(&dir.path().join("repo/backups/a")), 0o700);
    assert_eq!(
        mode(&dir.path().join("repo/backups/a/data.dump.zst")),
        0o600
    );
}

#[tokio::test]
async fn staging_files_are_hidden_and_stale_ones_swept() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::open(dir.path()).unwrap();
    let key = ObjectKey::parse("obj").unwrap();
    let mut w = store.writer(&key, WriteOptions::default()).await.unwrap();
    w.write("partial".into()).await.unwrap();
    // While the write is in progress, its bytes are only in the (hidden) staging dir.
    assert!(store.list(None).await.unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(dir.path().join(".pgb-staging"))
            .unwrap()
            .count(),
        1
    );
    // Simulate a killed process: the writer is leaked, never dropped.
    std::mem::forget(w);
    assert_eq!(store.sweep_staging(std::time::Duration::ZERO), 1);
    assert_eq!(
        std::fs::read_dir(dir.path().join(".pgb-staging"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn deleting_the_last_object_removes_empty_folders() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::open(dir.path()).unwrap();
    let key = ObjectKey::parse("backups/id/manifest.json").unwrap();
    store
        .put(&key, "{}".into(), WriteOptions::default())
        .await
        .unwrap();
    store.delete(&key).await.unwrap();
    assert!(!dir.path().join("backups").exists());
    assert!(dir.path().exists());
}
