//! A repository is untrusted input: prune and `latest` count only usable backups (manifest
//! within the size limit, authenticated when the repository has a key, every data object
//! present with its size), prune touches only the sets it is given, and gc deletes only what
//! it can prove is pgb's own leftover, never a backup committed while it ran.

use std::sync::Arc;

use pgb_core::retention::Policy;
use pgb_core::{
    AuthKey, BackupOptions, Decryption, Encryption, MemoryStorage, NoProgress, ObjectKey,
    PruneOptions, Repository, Storage, StorageExt, WriteOptions, generate_identity, layout,
};
use pgb_testkit::{FakeDumper, FakeOutcome};
use time::OffsetDateTime;

fn memory() -> Arc<dyn Storage> {
    Arc::new(MemoryStorage::new())
}

async fn backup(repo: &Repository, opts: &BackupOptions) -> String {
    repo.backup(
        &FakeDumper::new(20_000, FakeOutcome::Succeed),
        opts,
        &NoProgress,
    )
    .await
    .expect("backup")
    .id
    .to_string()
}

fn key(s: &str) -> ObjectKey {
    ObjectKey::parse(s).unwrap()
}

async fn put(storage: &Arc<dyn Storage>, k: &str, body: Vec<u8>) {
    storage
        .put(&key(k), body.into(), WriteOptions::default())
        .await
        .unwrap();
}

/// A copy of `id`'s manifest under a newer id (a year later), rewritten to name the new
/// folder, without copying any data and without a valid MAC: what someone who may add objects
/// but not delete them can do.
async fn forge_from(storage: &Arc<dyn Storage>, id: &str, n: u32, copy_data: bool) -> String {
    let text = String::from_utf8(
        storage
            .get_bytes(&key(&format!("backups/{id}/manifest.json")))
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let year: u32 = id[..4].parse().unwrap();
    let forged = format!("{}{}-f0f0f{n}", year + 1, &id[4..16]);
    if copy_data {
        for o in storage
            .list(Some(&key(&format!("backups/{id}"))))
            .await
            .unwrap()
        {
            if o.key.file_name() == "manifest.json" {
                continue;
            }
            let body = storage.get_bytes(&o.key).await.unwrap().to_vec();
            put(storage, &o.key.as_str().replace(id, &forged), body).await;
        }
    }
    let mut v: serde_json::Value = serde_json::from_str(&text.replace(id, &forged)).unwrap();
    // A year later: newest of all, so a policy counting it would keep it first.
    for field in ["started_at", "finished_at"] {
        let t = v[field].as_str().unwrap().to_owned();
        v[field] = format!("{}{}", year + 1, &t[4..]).into();
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("mac");
    }
    put(
        storage,
        &format!("backups/{forged}/manifest.json"),
        serde_json::to_vec(&v).unwrap(),
    )
    .await;
    forged
}

#[tokio::test]
async fn forged_data_less_manifests_are_unusable_and_prune_keeps_the_genuine_backups() {
    let storage = memory();
    let repo = Repository::new(Arc::clone(&storage));
    let mut genuine = Vec::new();
    for _ in 0..3 {
        genuine.push(backup(&repo, &BackupOptions::default()).await);
    }
    let mut forged = Vec::new();
    for n in 0..3 {
        forged.push(forge_from(&storage, &genuine[2], n, false).await);
    }

    let listing = repo.list().await.unwrap();
    let usable: Vec<String> = listing.backups.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(usable, genuine, "only the genuine backups are usable");
    assert_eq!(listing.invalid.len(), 3, "{:?}", listing.invalid);
    assert!(
        listing
            .invalid
            .iter()
            .all(|i| forged.contains(&i.id) && i.problem.contains("is missing")),
        "{:?}",
        listing.invalid
    );
    assert_eq!(
        listing.latest(None).map(|m| m.id.to_string()),
        Some(genuine[2].clone()),
        "latest is never a forgery"
    );

    let report = repo
        .prune(
            &Policy::default().with_keep_last(3),
            &PruneOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.deleted(), 0, "{report:?}");
    assert_eq!(report.invalid.len(), 3);
    let after = repo.list().await.unwrap();
    assert_eq!(after.backups.len(), 3, "the genuine backups are all kept");
    for f in &forged {
        assert!(
            storage
                .exists(&key(&format!("backups/{f}/manifest.json")))
                .await
                .unwrap(),
            "prune never deletes an unusable manifest (it is evidence)"
        );
    }
}

#[tokio::test]
async fn with_an_authentication_key_a_copied_backup_without_a_valid_mac_is_unusable() {
    let storage = memory();
    let auth = AuthKey::generate().unwrap();
    let (_identity, recipient) = generate_identity();
    let enc = Encryption::to_recipients([recipient])
        .unwrap()
        .with_auth_key(auth.clone());
    let writer = Repository::new(Arc::clone(&storage));
    let genuine = backup(&writer, &BackupOptions::default().with_encryption(enc)).await;
    // Data and manifest copied under a newer id: complete, but the MAC does not follow.
    let forged = forge_from(&storage, &genuine, 0, true).await;

    let keyed = Repository::new(Arc::clone(&storage))
        .with_decryption(Decryption::none().with_auth_key(auth.clone()));
    let listing = keyed.list().await.unwrap();
    assert_eq!(
        listing
            .backups
            .iter()
            .map(|m| m.id.to_string())
            .collect::<Vec<_>>(),
        std::slice::from_ref(&genuine)
    );
    assert_eq!(listing.invalid.len(), 1);
    assert_eq!(listing.invalid[0].id, forged);
    assert!(
        listing.invalid[0].problem.contains("authentication"),
        "{:?}",
        listing.invalid
    );
    assert_eq!(
        keyed.resolve("latest", None).await.unwrap().id.to_string(),
        genuine
    );
    // keep-last 1 with the key keeps the genuine backup, and does not touch the forgery.
    let report = keyed
        .prune(
            &Policy::default().with_keep_last(1),
            &PruneOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.deleted(), 0);

    // An unencrypted, unauthenticated backup is a possible substitute for a repository with
    // a key: unusable there.
    let plain = backup(&writer, &BackupOptions::default()).await;
    let listing = keyed.list().await.unwrap();
    assert!(
        listing
            .invalid
            .iter()
            .any(|i| i.id == plain && i.problem.contains("not authenticated")),
        "{:?}",
        listing.invalid
    );
}

#[tokio::test]
async fn a_truncated_data_object_makes_its_backup_unusable() {
    let storage = memory();
    let repo = Repository::new(Arc::clone(&storage));
    let first = backup(&repo, &BackupOptions::default()).await;
    let second = backup(&repo, &BackupOptions::default()).await;
    let m = repo.resolve(&second, None).await.unwrap();
    let data = m.dump().unwrap().key().unwrap();
    let mut body = storage.get_bytes(&data).await.unwrap().to_vec();
    body.truncate(body.len() / 2);
    storage.delete(&data).await.unwrap();
    put(&storage, data.as_str(), body).await;

    let listing = repo.list().await.unwrap();
    assert_eq!(listing.backups.len(), 1);
    assert_eq!(listing.backups[0].id.to_string(), first);
    assert!(listing.invalid[0].problem.contains("the manifest says"));
    assert_eq!(
        repo.resolve("latest", None).await.unwrap().id.to_string(),
        first,
        "latest falls back to the newest restorable backup"
    );
}

#[tokio::test]
async fn a_future_dated_backup_is_never_latest() {
    let storage = memory();
    let repo = Repository::new(Arc::clone(&storage));
    let genuine = backup(&repo, &BackupOptions::default()).await;
    // A complete copy dated a year ahead (data copied, so it is otherwise usable).
    let future = forge_from(&storage, &genuine, 0, true).await;
    let listing = repo.list().await.unwrap();
    assert_eq!(listing.backups.len(), 2, "{:?}", listing.invalid);
    assert_eq!(
        listing.latest(None).map(|m| m.id.to_string()),
        Some(genuine.clone())
    );
    assert_ne!(
        repo.resolve("latest", None).await.unwrap().id.to_string(),
        future
    );
}

#[tokio::test]
async fn a_manifest_over_the_size_limit_is_unusable_without_being_read_whole() {
    let storage = memory();
    let repo = Repository::new(Arc::clone(&storage));
    let genuine = backup(&repo, &BackupOptions::default()).await;
    let id = "20300101T000000Z-abcdef";
    let huge = vec![b' '; usize::try_from(layout::MAX_METADATA_BYTES).unwrap() + 1];
    put(&storage, &format!("backups/{id}/manifest.json"), huge).await;
    let listing = repo.list().await.unwrap();
    assert_eq!(listing.backups.len(), 1);
    assert_eq!(listing.backups[0].id.to_string(), genuine);
    assert_eq!(listing.invalid[0].id, id);
    assert!(
        listing.invalid[0].problem.contains("over the limit"),
        "{:?}",
        listing.invalid
    );
}

#[tokio::test]
async fn prune_with_sets_plans_and_deletes_only_those_sets() {
    let storage = memory();
    let repo = Repository::new(Arc::clone(&storage));
    let mut all = Vec::new();
    for _ in 0..4 {
        all.push(backup(&repo, &BackupOptions::default()).await);
    }
    let set = repo.list().await.unwrap().backups[0].retention_set();
    let report = repo
        .prune(
            &Policy::default().with_keep_last(1),
            &PruneOptions::default().with_sets(["another-host:5432/other".to_owned()]),
        )
        .await
        .unwrap();
    assert!(
        report.sets.is_empty(),
        "a set that is not named is not planned"
    );
    assert_eq!(repo.list().await.unwrap().backups.len(), 4);
    let report = repo
        .prune(
            &Policy::default().with_keep_last(1),
            &PruneOptions::default().with_sets([set]),
        )
        .await
        .unwrap();
    assert_eq!(report.deleted(), 3);
}

#[test]
fn a_selection_is_part_of_the_retention_set() {
    let full = pgb_core::retention_set("db:5432/*", &[], &[], &[]);
    let some = pgb_core::retention_set("db:5432/*", &["shop*".to_owned()], &[], &[]);
    let schema = pgb_core::retention_set("db:5432/shop", &[], &[], &["--schema=app".to_owned()]);
    assert_eq!(full, "db:5432/*");
    assert_eq!(some, "db:5432/* include=shop*");
    assert_eq!(schema, "db:5432/shop --schema=app");
}

#[tokio::test]
async fn gc_leaves_what_pgb_did_not_write() {
    let storage = memory();
    let repo = Repository::new(Arc::clone(&storage));
    let kept = backup(&repo, &BackupOptions::default()).await;
    // Not a backup id; an id folder with a foreign object; a lock file that is not a lease.
    put(&storage, "backups/mysql/dump.sql", b"not ours".to_vec()).await;
    put(
        &storage,
        "backups/20260101T000000Z-abcdef/notes.txt",
        b"not ours".to_vec(),
    )
    .await;
    put(&storage, "locks/readme.txt", b"not ours".to_vec()).await;
    put(
        &storage,
        "locks/20260101T000000Z-abcdef.json",
        b"{}".to_vec(),
    )
    .await;
    // A genuine leftover: a data object of a backup that never committed.
    put(
        &storage,
        "backups/20260101T000000Z-012345/data.dump.zst",
        b"partial".to_vec(),
    )
    .await;
    let now = OffsetDateTime::now_utc() + time::Duration::seconds(1);

    let dry = repo.gc(now, time::Duration::ZERO, true).await.unwrap();
    assert_eq!(dry.leftovers.len(), 1, "{dry:?}");
    assert_eq!(dry.leftovers[0].id, "20260101T000000Z-012345");
    assert_eq!(dry.skipped.len(), 4, "{:?}", dry.skipped);
    let report = repo.gc(now, time::Duration::ZERO, false).await.unwrap();
    assert_eq!(report.leftovers.len(), 1);
    for k in [
        "backups/mysql/dump.sql",
        "backups/20260101T000000Z-abcdef/notes.txt",
        "locks/readme.txt",
        "locks/20260101T000000Z-abcdef.json",
    ] {
        assert!(storage.exists(&key(k)).await.unwrap(), "{k} was deleted");
    }
    assert!(
        !storage
            .exists(&key("backups/20260101T000000Z-012345/data.dump.zst"))
            .await
            .unwrap()
    );
    assert_eq!(repo.list().await.unwrap().backups[0].id.to_string(), kept);
}

#[tokio::test]
async fn gc_removes_only_expired_leases_older_than_the_grace_and_dry_run_lists_them() {
    let storage = memory();
    let repo = Repository::new(Arc::clone(&storage));
    let expired = "20260101T000000Z-aaaaaa";
    let live = "20260101T000000Z-bbbbbb";
    put(
        &storage,
        &format!("locks/{expired}.json"),
        format!(r#"{{"id":"{expired}","expires_at":"2026-01-01T00:30:00Z"}}"#).into_bytes(),
    )
    .await;
    put(
        &storage,
        &format!("locks/{live}.json"),
        format!(r#"{{"id":"{live}","expires_at":"2999-01-01T00:00:00Z"}}"#).into_bytes(),
    )
    .await;
    let now = OffsetDateTime::now_utc() + time::Duration::seconds(1);
    // Within a one-hour grace: the expired lease was written just now, so it stays.
    let graced = repo.gc(now, time::Duration::hours(1), false).await.unwrap();
    assert!(graced.expired_leases.is_empty(), "{graced:?}");
    let dry = repo.gc(now, time::Duration::ZERO, true).await.unwrap();
    assert_eq!(
        dry.expired_leases,
        [key(&format!("locks/{expired}.json"))],
        "a dry run lists the lease it would delete"
    );
    assert!(
        storage
            .exists(&key(&format!("locks/{expired}.json")))
            .await
            .unwrap()
    );
    let done = repo.gc(now, time::Duration::ZERO, false).await.unwrap();
    assert_eq!(done.expired_leases.len(), 1);
    assert!(
        !storage
            .exists(&key(&format!("locks/{expired}.json")))
            .await
            .unwrap()
    );
    assert!(
        storage
            .exists(&key(&format!("locks/{live}.json")))
            .await
            .unwrap(),
        "a live lease is never collected"
    );
}

/// A storage whose listings of `backups/` and size checks take a while, as on an object store:
/// backups commit between gc's listing and its next step.
#[derive(Debug)]
struct SlowListing(Arc<dyn Storage>);

#[async_trait::async_trait]
impl Storage for SlowListing {
    fn info(&self) -> pgb_core::StorageInfo {
        self.0.info()
    }
    async fn writer(
        &self,
        key: &ObjectKey,
        opts: WriteOptions,
    ) -> Result<Box<dyn pgb_core::ObjectWriter>, pgb_core::StorageError> {
        self.0.writer(key, opts).await
    }
    async fn reader(
        &self,
        key: &ObjectKey,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<pgb_core::ByteStream, pgb_core::StorageError> {
        self.0.reader(key, range).await
    }
    async fn head(&self, key: &ObjectKey) -> Result<pgb_core::ObjectMeta, pgb_core::StorageError> {
        // A backup checks each object's size after writing it: its data is then visible
        // for a while before its manifest.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        self.0.head(key).await
    }
    async fn list(
        &self,
        prefix: Option<&ObjectKey>,
    ) -> Result<Vec<pgb_core::ObjectMeta>, pgb_core::StorageError> {
        let listed = self.0.list(prefix).await;
        if prefix.is_some_and(|p| p.as_str() == "backups") {
            tokio::time::sleep(std::time::Duration::from_millis(15)).await;
        }
        listed
    }
    async fn delete(&self, key: &ObjectKey) -> Result<(), pgb_core::StorageError> {
        self.0.delete(key).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_racing_thirty_backups_never_leaves_a_committed_backup_without_its_data() {
    let storage: Arc<dyn Storage> = Arc::new(SlowListing(memory()));
    let repo = Repository::new(Arc::clone(&storage));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let (repo, stop) = (repo.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut rounds = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let now = OffsetDateTime::now_utc() + time::Duration::minutes(1);
                repo.gc(now, time::Duration::ZERO, false).await.unwrap();
                rounds += 1;
                tokio::task::yield_now().await;
            }
            rounds
        })
    };
    let mut backups = Vec::new();
    for _ in 0..30 {
        let repo = repo.clone();
        backups.push(tokio::spawn(async move {
            repo.backup(
                &FakeDumper::new(300_000, FakeOutcome::Succeed),
                &BackupOptions::default(),
                &NoProgress,
            )
            .await
        }));
    }
    let mut committed = 0;
    for b in backups {
        // A backup may fail because gc removed its objects mid-upload (its lease protects
        // it, so it should not); what must never happen is a listed backup without data.
        if b.await.unwrap().is_ok() {
            committed += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = collector.await.unwrap();
    assert!(rounds > 1, "gc ran concurrently ({rounds} rounds)");
    let listing = repo.list().await.unwrap();
    assert!(listing.invalid.is_empty(), "{:?}", listing.invalid);
    assert_eq!(listing.backups.len(), committed);
    assert_eq!(committed, 30, "every backup committed");
    for m in &listing.backups {
        repo.verify(m, None, &NoProgress)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", m.id));
    }
}
