//! GCS-specific behaviour against fake-gcs-server: multi-chunk resumable uploads for new and
//! replaced objects, create-only (checked by the adapter; the emulator does not enforce
//! `ifGenerationMatch`), and the error kinds of common misconfigurations.

use std::time::Duration;

use bytes::Bytes;
use pgb_core::{ObjectKey, Storage, StorageErrorKind, StorageExt, WriteOptions};
use pgb_storage_gcs::{GcsConfig, GcsCredentials, RetryOptions, Timeouts};

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

fn emulator() -> Option<GcsConfig> {
    let (Some(endpoint), Some(bucket)) = (env("PGB_TEST_GCS_ENDPOINT"), env("PGB_TEST_GCS_BUCKET"))
    else {
        return pgb_testkit::require_or_skip(
            "the GCS emulator",
            "PGB_TEST_GCS_ENDPOINT and PGB_TEST_GCS_BUCKET are unset",
        );
    };
    Some(
        GcsConfig::new(bucket)
            .with_prefix(unique("pgb-tests/backend"))
            .with_endpoint(endpoint)
            .with_credentials(GcsCredentials::Anonymous)
            .with_create_new_enforced(false)
            .with_retry(
                RetryOptions::default()
                    .with_max_retries(1)
                    .with_delays(Duration::from_millis(10), Duration::from_millis(50)),
            ),
    )
}

fn body(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<_>>(),
    )
}

async fn cleanup(storage: &dyn Storage) {
    for m in storage.list(None).await.unwrap_or_default() {
        let _ = storage.delete(&m.key).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_are_created_and_replaced_in_chunks() {
    let Some(cfg) = emulator() else { return };
    let storage = cfg.build().expect("build");
    let k = key("data.dump.zst");
    // Three and a half 8 MiB chunks, without a size hint (as pgb's backups write data).
    let first = body(28 * 1024 * 1024 + 5, 1);
    let mut w = storage
        .writer(&k, WriteOptions::default())
        .await
        .expect("writer");
    for c in first.chunks(1024 * 1024 + 7) {
        w.write(Bytes::copy_from_slice(c)).await.expect("write");
    }
    assert_eq!(w.finish().await.expect("finish").size, first.len() as u64);
    assert!(storage.get_bytes(&k).await.expect("read") == first);
    // Replacing it takes the generation-conditional path.
    let second = body(17 * 1024 * 1024 + 3, 2);
    storage
        .put(&k, second.clone(), WriteOptions::default())
        .await
        .expect("overwrite");
    assert!(storage.get_bytes(&k).await.expect("read") == second);
    assert_eq!(
        storage.head(&k).await.expect("head").size,
        second.len() as u64
    );
    cleanup(&storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_is_refused_sequentially() {
    let Some(cfg) = emulator() else { return };
    let storage = cfg.build().expect("build");
    assert!(
        !storage.info().capabilities.create_new,
        "the emulator does not enforce ifGenerationMatch: declared honestly"
    );
    let k = key("manifest.json");
    storage
        .put(&k, Bytes::from_static(b"1"), WriteOptions::create_new())
        .await
        .expect("first");
    let err = storage
        .put(&k, Bytes::from_static(b"2"), WriteOptions::create_new())
        .await
        .expect_err("second create-only write");
    assert_eq!(err.kind(), StorageErrorKind::AlreadyExists, "{err}");
    assert_eq!(&storage.get_bytes(&k).await.expect("read")[..], b"1");
    cleanup(&storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_multi_chunk_upload_is_invisible() {
    let Some(cfg) = emulator() else { return };
    let storage = cfg.build().expect("build");
    let k = key("aborted");
    let mut w = storage
        .writer(&k, WriteOptions::default())
        .await
        .expect("writer");
    for _ in 0..3 {
        w.write(body(8 * 1024 * 1024, 3)).await.expect("write");
    }
    w.abort().await.expect("abort");
    let err = storage.head(&k).await.expect_err("nothing visible");
    assert_eq!(err.kind(), StorageErrorKind::NotFound, "{err}");
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
    eprintln!("missing bucket: {err}");
    assert!(
        matches!(
            err.kind(),
            StorageErrorKind::Config | StorageErrorKind::NotFound
        ),
        "{err}"
    );
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_is_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let storage = GcsConfig::new("bucket")
        .with_endpoint(&endpoint)
        .with_credentials(GcsCredentials::Anonymous)
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
    let err = storage.head(&key("k")).await.expect_err("unreachable");
    assert_eq!(err.kind(), StorageErrorKind::Unavailable, "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("cannot reach endpoint {endpoint}")),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
}

#[test]
fn service_account_json_never_appears_in_errors_or_debug() {
    let secret = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw\\n-----END PRIVATE KEY-----\\n";
    let json = format!(
        r#"{{"type":"service_account","client_email":"pgb@p.iam.gserviceaccount.com","private_key":"{secret}"}}"#
    );
    let cfg = GcsConfig::new("b").with_credentials(GcsCredentials::ServiceAccountJson(json));
    assert!(!format!("{cfg:?}").contains("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw"));
    match cfg.build() {
        Ok(s) => assert!(!format!("{s:?}").contains("MIIEvQ")),
        Err(e) => assert!(!e.to_string().contains("MIIEvQ"), "{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_multi_chunk_upload_is_invisible() {
    let Some(cfg) = emulator() else { return };
    let storage = cfg.build().expect("build");
    let k = key("dropped");
    {
        // Two 8 MiB chunks reach the server; the session is never finalized.
        let mut w = storage
            .writer(&k, WriteOptions::default())
            .await
            .expect("writer");
        for _ in 0..3 {
            w.write(body(8 * 1024 * 1024, 4)).await.expect("write");
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = storage.head(&k).await.expect_err("nothing visible");
    assert_eq!(err.kind(), StorageErrorKind::NotFound, "{err}");
    assert!(storage.list(None).await.expect("list").is_empty());
}
