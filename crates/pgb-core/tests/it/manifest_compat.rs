//! Manifest compatibility: backups written by earlier pgb versions (format 1 unencrypted,
//! format 2 encrypted; fixtures in `tests/fixtures/`, written by pgb 0.1.0 at commit cadfe23)
//! still list, authenticate, verify and restore; and a manifest written by a *newer* pgb with
//! an extra optional field authenticates and restores here, while any changed byte that
//! matters still fails authentication.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use pgb_core::{
    AuthKey, BackupOptions, Compression, Decryption, Encryption, Error, ErrorClass, Manifest,
    MemoryStorage, NoProgress, ObjectKey, Repository, RestoreOptions, Storage, StorageExt,
    WriteOptions, generate_identity,
};
use pgb_testkit::{FakeDumper, FakeOutcome, RecordingRestorer};
use sha2::{Digest, Sha256};

const FIXTURE_PASSPHRASE: &str = "pgb-fixture-passphrase";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Loads a fixture repository (a folder tree) into memory.
async fn load_fixture(name: &str) -> Arc<dyn Storage> {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("fixture folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&root).expect("inside root");
            let key = ObjectKey::parse(rel.to_str().expect("utf-8")).expect("key");
            let bytes = std::fs::read(&path).expect("read fixture");
            storage
                .put(&key, Bytes::from(bytes), WriteOptions::default())
                .await
                .expect("put");
        }
    }
    storage
}

/// Verifies and restores the single backup of `repo`; returns its manifest.
async fn verify_and_restore(repo: &Repository) -> Manifest {
    let listing = repo.list().await.expect("list");
    assert!(listing.invalid.is_empty(), "{:?}", listing.invalid);
    assert_eq!(listing.backups.len(), 1);
    let m = listing.backups[0].clone();
    repo.verify(&m, None, &NoProgress)
        .await
        .unwrap_or_else(|e| panic!("verify: {e}"));
    let restorer = RecordingRestorer::new();
    repo.restore(&m, &restorer, &RestoreOptions::new(), &NoProgress)
        .await
        .unwrap_or_else(|e| panic!("restore: {e}"));
    let rec = restorer.recorded();
    assert!(rec.finished && !rec.aborted);
    let dump = m.dump().expect("a dump artifact");
    assert_eq!(rec.data.len() as u64, dump.plain_size);
    assert_eq!(hex(&Sha256::digest(&rec.data)), dump.plain_sha256);
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_1_backups_still_verify_and_restore() {
    let storage = load_fixture("manifest-v1").await;
    let m = verify_and_restore(&Repository::new(storage)).await;
    assert_eq!(m.format_version, 1);
    assert_eq!(m.labels, ["fixture"]);
    assert!(m.migrations.is_empty(), "no migration heads recorded then");
    assert_eq!(m.compression, Compression::Zstd { level: 3 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_2_backups_still_authenticate_verify_and_restore() {
    let storage = load_fixture("manifest-v2").await;
    let keys = Decryption::none()
        .with_passphrase(FIXTURE_PASSPHRASE.to_owned())
        .expect("passphrase");
    let repo = Repository::new(Arc::clone(&storage)).with_decryption(keys);
    let m = verify_and_restore(&repo).await;
    assert_eq!(m.format_version, 2);
    assert!(m.mac.is_some());

    // A changed byte that matters still fails authentication on the legacy format.
    let key = ObjectKey::parse(&format!("backups/{}/manifest.json", m.id)).expect("key");
    let text = String::from_utf8(storage.get_bytes(&key).await.expect("manifest").to_vec())
        .expect("utf-8");
    let tampered = text.replace("\"labels\": []", "\"labels\": [\"keep-forever\"]");
    assert_ne!(tampered, text);
    storage
        .put(&key, Bytes::from(tampered), WriteOptions::default())
        .await
        .expect("overwrite");
    // Listed as unusable (never counted or `latest`), and refused when named.
    let listing = repo.list().await.expect("list");
    assert!(listing.backups.is_empty());
    assert!(
        listing.invalid[0].problem.contains("fails authentication"),
        "{:?}",
        listing.invalid
    );
    let m = repo.manifest(&m.id).await.expect("read by id");
    let err = repo
        .verify(&m, None, &NoProgress)
        .await
        .expect_err("tampered");
    assert_eq!(err.class(), ErrorClass::Integrity, "{err}");
    assert!(err.to_string().contains("authentication failed"), "{err}");
}

/// Rewrites a stored manifest as a newer pgb would: `edit` the JSON, then (when `sign`) MAC it
/// the way format 3 defines, over every field but `mac`.
async fn rewrite_manifest(
    storage: &Arc<dyn Storage>,
    m: &Manifest,
    key_bytes: &[u8; 32],
    sign: bool,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) {
    let key = ObjectKey::parse(&format!("backups/{}/manifest.json", m.id)).expect("key");
    let mut value: serde_json::Value =
        serde_json::from_slice(&storage.get_bytes(&key).await.expect("manifest")).expect("json");
    let obj = value.as_object_mut().expect("object");
    edit(obj);
    if sign {
        obj.remove("mac");
        let canonical = serde_json::to_vec(&value).expect("json");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key_bytes).expect("key");
        mac.update(&canonical);
        let mac = hex(&mac.finalize().into_bytes());
        value
            .as_object_mut()
            .expect("object")
            .insert("mac".to_owned(), mac.into());
    }
    storage
        .put(
            &key,
            Bytes::from(serde_json::to_vec_pretty(&value).expect("json")),
            WriteOptions::default(),
        )
        .await
        .expect("overwrite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_manifest_with_an_extra_field_authenticates_and_restores() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let auth = AuthKey::generate().expect("key");
    let key_hex = auth.to_hex();
    let key_bytes: [u8; 32] = (0..32)
        .map(|i| u8::from_str_radix(&key_hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect::<Vec<u8>>()
        .try_into()
        .expect("32 bytes");
    let (identity, recipient) = generate_identity();
    let enc = Encryption::to_recipients(&[recipient])
        .expect("recipient")
        .with_auth_key(key_hex.parse().expect("auth key"));
    let writer = Repository::new(Arc::clone(&storage));
    let m = writer
        .backup(
            &FakeDumper::new(300_000, FakeOutcome::Succeed),
            &BackupOptions::default().with_encryption(enc),
            &NoProgress,
        )
        .await
        .expect("backup");
    assert_eq!(m.format_version, 3);
    assert!(
        m.dump().expect("dump").key.ends_with(".age"),
        "encrypted objects carry .age"
    );

    let keys = Decryption::none()
        .with_identity_file_contents(&identity)
        .expect("identity")
        .with_auth_key(key_hex.parse().expect("auth key"));
    let reader = Repository::new(Arc::clone(&storage)).with_decryption(keys);

    // A newer pgb adds an optional field this version does not know, and signs it.
    rewrite_manifest(&storage, &m, &key_bytes, true, |obj| {
        obj.insert(
            "retention_hint".to_owned(),
            serde_json::json!({"keep_until": "2030-01-01T00:00:00Z", "reason": "audit"}),
        );
    })
    .await;
    verify_and_restore(&reader).await;

    // Changing that unknown field without the key is caught...
    rewrite_manifest(&storage, &m, &key_bytes, false, |obj| {
        obj.insert(
            "retention_hint".to_owned(),
            serde_json::json!({"keep_until": "2099-01-01T00:00:00Z", "reason": "audit"}),
        );
    })
    .await;
    let listing = reader.list().await.expect("list");
    assert!(
        listing.backups.is_empty(),
        "an altered manifest is unusable"
    );
    assert!(listing.invalid[0].problem.contains("fails authentication"));
    let listed = reader.manifest(&m.id).await.expect("read by id");
    let err: Error = reader
        .verify(&listed, None, &NoProgress)
        .await
        .expect_err("an altered field fails authentication");
    assert_eq!(err.class(), ErrorClass::Integrity, "{err}");

    // ...and so is a changed known field, such as a label.
    rewrite_manifest(&storage, &m, &key_bytes, true, |obj| {
        obj.remove("retention_hint");
    })
    .await;
    verify_and_restore(&reader).await;
    rewrite_manifest(&storage, &m, &key_bytes, false, |obj| {
        obj.insert("labels".to_owned(), serde_json::json!(["pre-migration"]));
    })
    .await;
    assert!(reader.list().await.expect("list").backups.is_empty());
    let listed = reader.manifest(&m.id).await.expect("read by id");
    let err = reader
        .verify(&listed, None, &NoProgress)
        .await
        .expect_err("an altered label fails authentication");
    assert!(err.to_string().contains("authentication failed"), "{err}");
}

/// Migration heads are an optional field of format 3: a manifest that records them reads them
/// back, they are authenticated like every other field, and a manifest without them (every
/// backup before them) reads with none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_heads_are_recorded_authenticated_and_optional() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let auth = AuthKey::generate().expect("key");
    let key_hex = auth.to_hex();
    let key_bytes: [u8; 32] = (0..32)
        .map(|i| u8::from_str_radix(&key_hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect::<Vec<u8>>()
        .try_into()
        .expect("32 bytes");
    let enc = Encryption::with_passphrase("pw".to_owned())
        .expect("passphrase")
        .with_auth_key(key_hex.parse().expect("auth key"));
    let writer = Repository::new(Arc::clone(&storage));
    let m = writer
        .backup(
            &FakeDumper::new(10_000, FakeOutcome::Succeed),
            &BackupOptions::default().with_encryption(enc),
            &NoProgress,
        )
        .await
        .expect("backup");
    assert!(
        m.migrations.is_empty(),
        "the fake database has no migrations"
    );
    let keys = Decryption::none()
        .with_passphrase("pw".to_owned())
        .expect("passphrase")
        .with_auth_key(key_hex.parse().expect("auth key"));
    let reader = Repository::new(Arc::clone(&storage)).with_decryption(keys);
    let heads = serde_json::json!({"fakedb": [{
        "framework": "prisma",
        "table": "public._prisma_migrations",
        "head": "20240501120000_init",
        "applied": 1
    }]});
    rewrite_manifest(&storage, &m, &key_bytes, true, |obj| {
        obj.insert("migrations".to_owned(), heads.clone());
    })
    .await;
    let read = verify_and_restore(&reader).await;
    let h = &read.migrations_of("fakedb")[0];
    assert_eq!(
        (h.framework, h.head.as_str(), h.applied),
        (
            pgb_core::MigrationFramework::Prisma,
            "20240501120000_init",
            Some(1)
        )
    );
    assert!(read.migrations_of("otherdb").is_empty());
    // A changed head without the key fails authentication.
    rewrite_manifest(&storage, &m, &key_bytes, false, |obj| {
        obj["migrations"]["fakedb"][0]["head"] = "20990101000000_later".into();
    })
    .await;
    assert!(reader.list().await.expect("list").backups.is_empty());
    let listed = reader.manifest(&m.id).await.expect("read by id");
    let err = reader
        .verify(&listed, None, &NoProgress)
        .await
        .expect_err("an altered head fails authentication");
    assert!(err.to_string().contains("authentication failed"), "{err}");
}
