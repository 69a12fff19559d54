//! Azure-specific behaviour against Azurite: create-only manifests (409 from the server),
//! block-list uploads that are dropped, connection strings, and the error kinds of a bad key,
//! a missing container and an unreachable endpoint. Azurite checks SharedKey signatures, so a
//! wrong key is really refused.

use std::time::Duration;

use bytes::Bytes;
use pgb_core::{ObjectKey, Storage, StorageError, StorageErrorKind, StorageExt, WriteOptions};
use pgb_storage_azure::{AzureConfig, AzureCredentials, RetryOptions, Timeouts};

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

struct Emu {
    endpoint: String,
    account: String,
    key: String,
    container: String,
}

fn emulator() -> Option<Emu> {
    let (Some(endpoint), Some(account), Some(key), Some(container)) = (
        env("PGB_TEST_AZURE_ENDPOINT"),
        env("PGB_TEST_AZURE_ACCOUNT"),
        env("PGB_TEST_AZURE_KEY"),
        env("PGB_TEST_AZURE_CONTAINER"),
    ) else {
        return pgb_testkit::require_or_skip(
            "the Azure Blob emulator",
            "PGB_TEST_AZURE_ENDPOINT, _ACCOUNT, _KEY or _CONTAINER is unset",
        );
    };
    Some(Emu {
        endpoint,
        account,
        key,
        container,
    })
}

fn quick_retry() -> RetryOptions {
    RetryOptions::default()
        .with_max_retries(1)
        .with_delays(Duration::from_millis(10), Duration::from_millis(50))
}

impl Emu {
    fn config(&self) -> AzureConfig {
        AzureConfig::new(&self.account, &self.container)
            .with_prefix(unique("pgb-tests/backend"))
            .with_endpoint(&self.endpoint)
            .with_credentials(AzureCredentials::AccountKey(self.key.clone()))
            .with_retry(quick_retry())
    }
}

fn chain(err: &StorageError) -> String {
    let mut text = err.to_string();
    let mut src = std::error::Error::source(err);
    while let Some(e) = src {
        text.push_str(" | ");
        text.push_str(&e.to_string());
        src = e.source();
    }
    text
}

async fn cleanup(storage: &dyn Storage) {
    for m in storage.list(None).await.unwrap_or_default() {
        let _ = storage.delete(&m.key).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_manifest_write_is_refused() {
    let Some(emu) = emulator() else { return };
    let storage = emu.config().build().expect("build");
    let k = key("db/20260101T000000Z-abcd/manifest.json");
    storage
        .put(&k, Bytes::from_static(b"first"), WriteOptions::create_new())
        .await
        .expect("first");
    let err = storage
        .put(
            &k,
            Bytes::from_static(b"second"),
            WriteOptions::create_new(),
        )
        .await
        .expect_err("second create-only write");
    assert_eq!(err.kind(), StorageErrorKind::AlreadyExists, "{err}");
    assert!(!err.to_string().contains('\n'));
    assert_eq!(&storage.get_bytes(&k).await.expect("read")[..], b"first");
    cleanup(&storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_block_list_write_is_refused() {
    let Some(emu) = emulator() else { return };
    let storage = emu.config().build().expect("build");
    let k = key("big");
    let body = Bytes::from(vec![5u8; 20 * 1024 * 1024]);
    let opts = WriteOptions::create_new().with_size_hint(body.len() as u64);
    storage
        .put(&k, body.clone(), opts.clone())
        .await
        .expect("first");
    let err = storage
        .put(&k, Bytes::from(vec![6u8; 20 * 1024 * 1024]), opts)
        .await
        .expect_err("create-only block list over an existing blob");
    assert_eq!(err.kind(), StorageErrorKind::AlreadyExists, "{err}");
    assert!(storage.get_bytes(&k).await.expect("read") == body);
    cleanup(&storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_block_upload_leaves_nothing_visible() {
    let Some(emu) = emulator() else { return };
    let storage = emu.config().build().expect("build");
    let k = key("dropped-blocks");
    {
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
async fn bad_key_is_permission_denied_without_leaking_it() {
    let Some(emu) = emulator() else { return };
    // A well-formed key that is not the account's.
    let wrong = "d3Jvbmcta2V5LWZvci1wZ2ItdGVzdHMtb25seS0wMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=";
    let storage = emu
        .config()
        .with_credentials(AzureCredentials::AccountKey(wrong.to_owned()))
        .build()
        .expect("build");
    let err = storage
        .put(
            &key("probe"),
            Bytes::from_static(b"x"),
            WriteOptions::default(),
        )
        .await
        .expect_err("wrong key");
    assert_eq!(err.kind(), StorageErrorKind::PermissionDenied, "{err}");
    let text = chain(&err);
    assert!(err.to_string().contains("access denied"), "{text}");
    assert!(!text.contains(wrong), "{text}");
    assert!(!err.to_string().contains('\n'));
    let err = storage.head(&key("probe")).await.expect_err("wrong key");
    assert_eq!(err.kind(), StorageErrorKind::PermissionDenied, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_container_is_a_config_error() {
    let Some(emu) = emulator() else { return };
    let mut cfg = emu.config();
    cfg.container = unique("pgb-no-such-container");
    let storage = cfg.build().expect("build");
    let err = storage
        .put(
            &key("probe"),
            Bytes::from_static(b"x"),
            WriteOptions::default(),
        )
        .await
        .expect_err("missing container");
    assert_eq!(err.kind(), StorageErrorKind::Config, "{err}");
    assert!(
        err.to_string().contains("container does not exist"),
        "{err}"
    );
    assert!(!chain(&err).contains(&emu.key));
    let err = storage
        .list(None)
        .await
        .expect_err("list of a missing container");
    assert_eq!(err.kind(), StorageErrorKind::Config, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_string_works() {
    let Some(emu) = emulator() else { return };
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};BlobEndpoint={};",
        emu.account, emu.key, emu.endpoint
    );
    let storage = AzureConfig::new("", &emu.container)
        .with_prefix(unique("pgb-tests/conn"))
        .with_credentials(AzureCredentials::ConnectionString(conn))
        .with_retry(quick_retry())
        .build()
        .expect("build");
    let k = key("hello");
    storage
        .put(&k, Bytes::from_static(b"hi"), WriteOptions::default())
        .await
        .expect("put");
    assert_eq!(&storage.get_bytes(&k).await.expect("get")[..], b"hi");
    assert!(!format!("{storage:?}").contains(&emu.key));
    cleanup(&storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_is_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let endpoint = format!("http://127.0.0.1:{port}/devstoreaccount1");
    let secret = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS1ub3QtcmVhbA==";
    let storage = AzureConfig::new("devstoreaccount1", "c")
        .with_endpoint(&endpoint)
        .with_credentials(AzureCredentials::AccountKey(secret.to_owned()))
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
    assert!(!chain(&err).contains(secret));
}
