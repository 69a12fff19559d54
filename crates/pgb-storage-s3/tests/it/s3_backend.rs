//! S3-specific behaviour against the emulator (moto): create-only manifests, multipart
//! uploads that are dropped, and the error kinds and messages of common misconfigurations.
//!
//! moto does not check SigV4 signatures, so "bad credentials" cannot be proven here (see
//! docs/configuration.md); the other errors can.

use std::time::Duration;

use bytes::Bytes;
use pgb_core::{ObjectKey, Storage, StorageError, StorageErrorKind, StorageExt, WriteOptions};
use pgb_storage_s3::{RetryOptions, S3Config, S3Credentials, Timeouts};

const SECRET: &str = "pgb-test-secret-never-in-messages";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

fn key(s: &str) -> ObjectKey {
    ObjectKey::parse(s).expect("valid key")
}

/// A config for the emulator, or `None` (loud skip) without one.
fn emulator() -> Option<S3Config> {
    let (Some(endpoint), Some(bucket)) = (env("PGB_TEST_S3_ENDPOINT"), env("PGB_TEST_S3_BUCKET"))
    else {
        return pgb_testkit::require_or_skip(
            "the S3 emulator",
            "PGB_TEST_S3_ENDPOINT and PGB_TEST_S3_BUCKET are unset",
        );
    };
    Some(
        S3Config::new(bucket)
            .with_prefix(unique("pgb-tests/backend"))
            .with_endpoint(endpoint)
            .with_region(env("PGB_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".to_owned()))
            .with_credentials(S3Credentials::static_keys(
                env("PGB_TEST_S3_ACCESS_KEY_ID").unwrap_or_else(|| "test".to_owned()),
                SECRET,
            ))
            .with_retry(
                RetryOptions::default()
                    .with_max_retries(1)
                    .with_delays(Duration::from_millis(10), Duration::from_millis(50)),
            ),
    )
}

fn assert_clean_message(err: &StorageError) {
    let text = err.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    let mut chain = text.clone();
    let mut src = std::error::Error::source(err);
    while let Some(e) = src {
        chain.push_str(&e.to_string());
        src = e.source();
    }
    assert!(!chain.contains(SECRET), "secret leaked: {chain}");
}

async fn cleanup(storage: &dyn Storage) {
    for m in storage.list(None).await.unwrap_or_default() {
        let _ = storage.delete(&m.key).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_manifest_write_is_refused() {
    let Some(cfg) = emulator() else { return };
    let storage = cfg.build().expect("build");
    let k = key("db/20260101T000000Z-abcd/manifest.json");
    storage
        .put(
            &k,
            Bytes::from_static(b"{\"v\":1}"),
            WriteOptions::create_new(),
        )
        .await
        .expect("first manifest");
    let err = storage
        .put(
            &k,
            Bytes::from_static(b"{\"v\":2}"),
            WriteOptions::create_new(),
        )
        .await
        .expect_err("second create-only write must be refused");
    assert_eq!(err.kind(), StorageErrorKind::AlreadyExists, "{err}");
    assert_clean_message(&err);
    assert_eq!(
        &storage.get_bytes(&k).await.expect("read")[..],
        b"{\"v\":1}"
    );
    cleanup(&storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_multipart_write_is_refused() {
    let Some(cfg) = emulator() else { return };
    let storage = cfg.build().expect("build");
    let k = key("big");
    let body = Bytes::from(vec![7u8; 12 * 1024 * 1024]);
    let opts = WriteOptions::create_new().with_size_hint(body.len() as u64);
    storage
        .put(&k, body.clone(), opts.clone())
        .await
        .expect("first");
    let err = storage
        .put(&k, Bytes::from(vec![8u8; 12 * 1024 * 1024]), opts)
        .await
        .expect_err("create-only multipart over an existing key");
    assert_eq!(err.kind(), StorageErrorKind::AlreadyExists, "{err}");
    let back = storage.get_bytes(&k).await.expect("read");
    assert!(back == body, "the first object is unchanged");
    cleanup(&storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_multipart_writer_leaves_nothing_visible() {
    let Some(cfg) = emulator() else { return };
    let storage = cfg.build().expect("build");
    let k = key("dropped-multipart");
    {
        // 8 MiB parts: 20 MiB written means two parts uploaded and the upload left open.
        let mut w = storage
            .writer(&k, WriteOptions::default().with_size_hint(64 * 1024 * 1024))
            .await
            .expect("writer");
        for _ in 0..20 {
            w.write(Bytes::from(vec![1u8; 1024 * 1024]))
                .await
                .expect("write");
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = storage.head(&k).await.expect_err("nothing visible");
    assert_eq!(err.kind(), StorageErrorKind::NotFound, "{err}");
    assert!(storage.list(None).await.expect("list").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bucket_is_a_config_error() {
    let Some(mut cfg) = emulator() else { return };
    cfg.bucket = unique("pgb-no-such-bucket");
    let storage = cfg.build().expect("build");
    let err = storage
        .put(
            &key("probe"),
            Bytes::from_static(b"x"),
            WriteOptions::default(),
        )
        .await
        .expect_err("write to a missing bucket");
    assert_eq!(err.kind(), StorageErrorKind::Config, "{err}");
    assert!(err.to_string().contains("bucket does not exist"), "{err}");
    assert_clean_message(&err);
    let err = storage
        .list(None)
        .await
        .expect_err("list of a missing bucket");
    assert_eq!(err.kind(), StorageErrorKind::Config, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_is_unavailable() {
    // Needs no emulator: a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let storage = S3Config::new("bucket")
        .with_endpoint(&endpoint)
        .with_credentials(S3Credentials::static_keys("id", SECRET))
        .with_retry(
            RetryOptions::default()
                .with_max_retries(2)
                .with_delays(Duration::from_millis(10), Duration::from_millis(20)),
        )
        .with_timeouts(Timeouts::new(
            Duration::from_secs(5),
            Duration::from_secs(5),
        ))
        .build()
        .expect("build");
    let started = std::time::Instant::now();
    let err = storage.head(&key("k")).await.expect_err("unreachable");
    assert_eq!(err.kind(), StorageErrorKind::Unavailable, "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("cannot reach endpoint {endpoint}")),
        "{text}"
    );
    assert!(text.contains("after 2 retries"), "{text}");
    assert_clean_message(&err);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by the retry policy"
    );
    let err = storage
        .put(&key("k"), Bytes::from_static(b"x"), WriteOptions::default())
        .await
        .expect_err("unreachable write");
    assert_eq!(err.kind(), StorageErrorKind::Unavailable, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_check_catches_nothing_on_a_good_upload() {
    let Some(cfg) = emulator() else { return };
    let storage = cfg.build().expect("build");
    let k = key("sized");
    let meta = storage
        .put(&k, Bytes::from(vec![3u8; 100_001]), WriteOptions::default())
        .await
        .expect("put");
    assert_eq!(meta.size, 100_001);
    assert_eq!(storage.head(&k).await.expect("head").size, 100_001);
    cleanup(&storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_and_storage_class_headers_are_accepted() {
    // moto accepts the headers without encrypting anything: this proves the requests are
    // well-formed (including multipart ones), not that data is encrypted at rest.
    use pgb_storage_s3::S3Encryption;
    let Some(cfg) = emulator() else { return };
    for (i, enc) in [
        S3Encryption::S3Managed,
        S3Encryption::Kms { key_id: None },
        S3Encryption::Kms {
            key_id: Some("arn:aws:kms:us-east-1:123456789012:key/pgb-test".into()),
        },
    ]
    .into_iter()
    .enumerate()
    {
        let storage = cfg
            .clone()
            .with_encryption(enc.clone())
            .with_storage_class("STANDARD_IA")
            .build()
            .expect("build");
        let k = key(&format!("enc/{i}"));
        let body = Bytes::from(vec![9u8; 11 * 1024 * 1024]);
        storage
            .put(
                &k,
                body.clone(),
                WriteOptions::default().with_size_hint(body.len() as u64),
            )
            .await
            .unwrap_or_else(|e| panic!("{enc:?}: {e}"));
        assert!(
            storage.get_bytes(&k).await.expect("read") == body,
            "{enc:?}"
        );
        cleanup(&storage).await;
    }
}
