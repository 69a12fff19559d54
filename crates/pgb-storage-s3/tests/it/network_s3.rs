//! The adapter's network behaviour, through `pgb-faultproxy` in front of the S3 emulator
//! (moto): retries are counted, the retry budget ends a call, and downloads resume with range
//! requests after their stream was cut, passing every byte exactly once.

use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use pgb_core::{ObjectKey, Storage, StorageErrorKind, StorageExt, WriteOptions};
use pgb_faultproxy::{Fault, FaultProxy, Match, Rule, Store};
use pgb_storage_s3::{AddressingStyle, RetryOptions, S3Config, S3Credentials, S3Storage};

const MIB: usize = 1 << 20;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("pgb-tests/network-{}-{nanos}", std::process::id())
}

/// A proxy in front of the emulator and a storage that goes through it, or `None` (loud skip).
/// The proxy's faulted exchanges once `n` are logged (or after 5 s): it logs an exchange
/// after answering it, so the client can hold the answer before the log does.
async fn faulted(proxy: &FaultProxy, n: usize) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while proxy.faulted().len() < n && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proxy.faulted().len()
}

fn through_proxy(retry: RetryOptions) -> Option<(FaultProxy, S3Storage)> {
    let (Some(endpoint), Some(bucket)) = (env("PGB_TEST_S3_ENDPOINT"), env("PGB_TEST_S3_BUCKET"))
    else {
        return pgb_testkit::require_or_skip(
            "the S3 emulator (PGB_TEST_S3_*)",
            "scripts/services/s3.sh start DIR",
        );
    };
    let proxy = FaultProxy::start(&endpoint, Store::S3).expect("start the proxy");
    let storage = S3Config::new(bucket)
        .with_prefix(unique())
        .with_endpoint(proxy.url())
        .with_addressing(AddressingStyle::Path)
        .with_region(env("PGB_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".to_owned()))
        .with_credentials(S3Credentials::static_keys("test", "test-secret-key"))
        .with_retry(retry)
        .build()
        .expect("build");
    Some((proxy, storage))
}

fn fast() -> RetryOptions {
    RetryOptions::default().with_delays(Duration::from_millis(10), Duration::from_millis(100))
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

async fn put(s: &S3Storage, key: &ObjectKey, data: &[u8]) {
    let mut w = s
        .writer(key, WriteOptions::default())
        .await
        .expect("writer");
    for chunk in data.chunks(MIB) {
        w.write(Bytes::copy_from_slice(chunk)).await.expect("write");
    }
    w.finish().await.expect("finish");
}

async fn read_all(s: &S3Storage, key: &ObjectKey) -> Result<Vec<u8>, pgb_core::StorageError> {
    let chunks: Vec<Bytes> = s.reader(key, None).await?.try_collect().await?;
    Ok(chunks.concat())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_cut_short_resume_from_the_last_byte_received() {
    let Some((proxy, s)) = through_proxy(fast()) else {
        return;
    };
    let key = ObjectKey::parse("obj").unwrap();
    let data = payload(3 * MIB + 123);
    put(&s, &key, &data).await;
    // The first download is cut at half, the resumed one after 100 KiB.
    proxy.add_rule(
        Rule::new(
            Match::method("GET").target_contains("/obj"),
            Fault::TruncateBodyPercent(50),
        )
        .nth(0),
    );
    proxy.add_rule(
        Rule::new(
            Match::method("GET").target_contains("/obj"),
            Fault::TruncateBody(100 * 1024),
        )
        .nth(1),
    );
    let got = read_all(&s, &key).await.expect("the read resumes");
    assert!(got == data, "every byte exactly once, in order");
    let stats = s.stats();
    assert!(stats.retries + stats.read_resumes >= 2, "{stats:?}");
    // Where each download of the object started (no Range header: at 0).
    let starts: Vec<u64> = proxy
        .log()
        .iter()
        .filter(|e| e.method == "GET" && e.target.contains("/obj"))
        .map(|e| {
            e.range.as_deref().map_or(0, |r| {
                r.trim_start_matches("bytes=")
                    .split('-')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("a byte range")
            })
        })
        .collect();
    let half = (data.len() / 2) as u64;
    assert_eq!(starts.len(), 3, "{:?}", proxy.log());
    assert_eq!(starts[0], 0);
    assert!(starts[1] > 0 && starts[1] <= half, "{starts:?}");
    assert_eq!(starts[2], starts[1] + 100 * 1024, "{starts:?}");
    s.delete(&key).await.unwrap();
}

/// An outage longer than one request's retries: the adapter itself re-requests the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_outlives_an_outage_longer_than_the_request_retries() {
    let Some((proxy, s)) = through_proxy(fast()) else {
        return;
    };
    let key = ObjectKey::parse("obj").unwrap();
    let data = payload(MIB + 5);
    put(&s, &key, &data).await;
    let obj = || Match::method("GET").target_contains("/obj");
    proxy.add_rule(Rule::new(obj(), Fault::TruncateBody(100 * 1024)).nth(0));
    // The first attempt and all 4 retries of the continuation fail.
    proxy.add_rule(Rule::new(obj(), Fault::ResetBeforeForward).nths(&[1, 2, 3, 4, 5]));
    let got = read_all(&s, &key).await.expect("resumed");
    assert!(got == data, "every byte exactly once, in order");
    assert!(s.stats().read_resumes >= 1, "{:?}", s.stats());
    s.delete(&key).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_are_bounded() {
    let Some((proxy, s)) = through_proxy(fast().with_max_read_resumes(2)) else {
        return;
    };
    let key = ObjectKey::parse("obj").unwrap();
    put(&s, &key, &payload(MIB)).await;
    let obj = || Match::method("GET").target_contains("/obj");
    proxy.add_rule(Rule::new(obj(), Fault::TruncateBody(1000)).nth(0));
    proxy.add_rule(Rule::new(obj(), Fault::ResetBeforeForward));
    let Err(err) = read_all(&s, &key).await else {
        panic!("a download that never gets further must fail");
    };
    assert_eq!(err.kind(), StorageErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("after 2 resumes"), "{err}");
    assert_eq!(s.stats().read_resumes, 2);
    proxy.clear_faults();
    s.delete(&key).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_retried_and_counted() {
    let Some((proxy, s)) = through_proxy(fast()) else {
        return;
    };
    let key = ObjectKey::parse("small").unwrap();
    proxy.add_rule(Rule::new(Match::method("PUT"), Fault::Status(503)).first(2));
    proxy.add_rule(Rule::new(Match::method("HEAD"), Fault::ResetBeforeForward).first(1));
    proxy.add_rule(Rule::new(Match::method("GET"), Fault::Status(429)).first(1));
    s.put(
        &key,
        Bytes::from_static(b"hello"),
        WriteOptions::create_new(),
    )
    .await
    .expect("retried put");
    assert_eq!(read_all(&s, &key).await.unwrap(), b"hello");
    assert!(s.stats().retries >= 4, "{:?}", s.stats());
    assert_eq!(faulted(&proxy, 4).await, 4, "{:?}", proxy.log());
    s.delete(&key).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_ends_a_call_that_keeps_failing() {
    let retry = fast()
        .with_max_retries(1000)
        .with_budget(Duration::from_secs(1));
    let Some((proxy, s)) = through_proxy(retry) else {
        return;
    };
    proxy.add_rule(Rule::new(Match::any(), Fault::Status(503)));
    let t = std::time::Instant::now();
    let err = s
        .head(&ObjectKey::parse("x").unwrap())
        .await
        .expect_err("budget");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(err.kind(), StorageErrorKind::Unavailable);
    assert!(
        err.to_string().contains("retry budget of 1 s exhausted"),
        "{err}"
    );
    assert!(!err.to_string().contains('\n'));
    assert_eq!(s.stats().budget_exhausted, 1);
    assert!(s.stats().retries >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_fail_at_once() {
    let Some((proxy, s)) = through_proxy(fast()) else {
        return;
    };
    proxy.add_rule(Rule::new(Match::method("PUT"), Fault::Status(403)));
    let err = s
        .put(
            &ObjectKey::parse("x").unwrap(),
            Bytes::from_static(b"x"),
            WriteOptions::default(),
        )
        .await
        .expect_err("forbidden");
    assert_eq!(err.kind(), StorageErrorKind::PermissionDenied, "{err}");
    assert_eq!(s.stats().retries, 0);
    assert_eq!(faulted(&proxy, 1).await, 1);
}
