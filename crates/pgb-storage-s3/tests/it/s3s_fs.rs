//! The storage conformance suite and credential checks against s3s-fs, an S3 server that
//! verifies SigV4 signatures (moto accepts any key pair, so only here can a wrong secret be
//! proven to fail). Skips loudly without `PGB_TEST_S3S_*` (start one with
//! `scripts/services/s3s.sh start DIR` and source `DIR/s3s.env`).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pgb_core::{ObjectKey, Storage, StorageError, StorageErrorKind, StorageExt, WriteOptions};
use pgb_storage_s3::{RetryOptions, S3Config, S3Credentials};

/// A wrong secret for the wrong-credentials tests: it must never show in an error.
const WRONG_SECRET: &str = "pgb-wrong-secret-never-in-messages";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The server's settings (endpoint, bucket, region, key id, secret), or `None` (loud skip).
fn server() -> Option<(String, String, String, String, String)> {
    let vars = [
        "PGB_TEST_S3S_ENDPOINT",
        "PGB_TEST_S3S_BUCKET",
        "PGB_TEST_S3S_ACCESS_KEY_ID",
        "PGB_TEST_S3S_SECRET_ACCESS_KEY",
    ];
    let [Some(endpoint), Some(bucket), Some(key_id), Some(secret)] = vars.map(env) else {
        return pgb_testkit::require_or_skip(
            "the s3s-fs server",
            "PGB_TEST_S3S_* are unset (scripts/services/s3s.sh start DIR; source DIR/s3s.env)",
        );
    };
    let region = env("PGB_TEST_S3S_REGION").unwrap_or_else(|| "us-east-1".to_owned());
    Some((endpoint, bucket, region, key_id, secret))
}

fn config(prefix: &str, secret: Option<&str>) -> Option<S3Config> {
    let (endpoint, bucket, region, key_id, good_secret) = server()?;
    Some(
        S3Config::new(bucket)
            .with_prefix(prefix)
            .with_endpoint(endpoint)
            .with_region(region)
            .with_credentials(S3Credentials::static_keys(
                key_id,
                secret.map_or(good_secret, str::to_owned),
            ))
            .with_retry(
                RetryOptions::default()
                    .with_max_retries(1)
                    .with_delays(Duration::from_millis(10), Duration::from_millis(50)),
            ),
    )
}

async fn s3s() -> Option<Arc<dyn Storage>> {
    let storage = config("pgb-tests", None)?
        .build()
        .expect("build the S3 storage");
    Some(Arc::new(storage))
}

pgb_testkit::storage_conformance!(s3s);

fn assert_denied(what: &str, err: &StorageError) {
    assert_eq!(
        err.kind(),
        StorageErrorKind::PermissionDenied,
        "{what}: {err}"
    );
    let text = err.to_string();
    assert!(!text.contains('\n'), "{what}: one line: {text}");
    assert!(
        text.contains("access denied"),
        "{what}: names the cause: {text}"
    );
    let mut chain = format!("{text} {err:?}");
    let mut src = std::error::Error::source(err);
    while let Some(e) = src {
        write!(chain, " {e} {e:?}").expect("write to a String");
        src = e.source();
    }
    assert!(
        !chain.contains(WRONG_SECRET),
        "{what}: secret leaked: {chain}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_permission_denied_for_every_operation() {
    let Some(good) = config("pgb-tests/wrong-secret", None) else {
        return;
    };
    let good = good.build().expect("build");
    let k = ObjectKey::parse("db/probe").expect("key");
    good.put(&k, Bytes::from_static(b"data"), WriteOptions::default())
        .await
        .expect("the right secret writes");

    let bad = config("pgb-tests/wrong-secret", Some(WRONG_SECRET))
        .expect("server")
        .build()
        .expect("build");
    let err = bad
        .put(
            &ObjectKey::parse("db/other").expect("key"),
            Bytes::from_static(b"x"),
            WriteOptions::default(),
        )
        .await
        .expect_err("a write with a wrong secret");
    assert_denied("write", &err);
    let err = bad
        .put(&k, Bytes::from_static(b"x"), WriteOptions::create_new())
        .await
        .expect_err("a create-only write with a wrong secret");
    assert_denied("create-only write", &err);
    let err = bad.head(&k).await.expect_err("head with a wrong secret");
    // A HEAD answer has no body: the status alone must still say "denied".
    assert_denied("head", &err);
    let err = bad.list(None).await.expect_err("list with a wrong secret");
    assert_denied("list", &err);
    let err = bad
        .delete(&k)
        .await
        .expect_err("delete with a wrong secret");
    assert_denied("delete", &err);

    // Nothing the wrong secret tried took effect.
    assert_eq!(good.head(&k).await.expect("still there").size, 4);
    assert_eq!(
        good.head(&ObjectKey::parse("db/other").expect("key"))
            .await
            .expect_err("never written")
            .kind(),
        StorageErrorKind::NotFound
    );
    good.delete(&k).await.expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_access_key_is_permission_denied() {
    let Some((endpoint, bucket, region, _, _)) = server() else {
        return;
    };
    let bad = S3Config::new(bucket)
        .with_prefix("pgb-tests/unknown-key")
        .with_endpoint(endpoint)
        .with_region(region)
        .with_credentials(S3Credentials::static_keys(
            "pgb-no-such-access-key",
            WRONG_SECRET,
        ))
        .build()
        .expect("build");
    let err = bad
        .put(
            &ObjectKey::parse("k").expect("key"),
            Bytes::from_static(b"x"),
            WriteOptions::default(),
        )
        .await
        .expect_err("a write with an unknown key id");
    assert_denied("write", &err);
}
