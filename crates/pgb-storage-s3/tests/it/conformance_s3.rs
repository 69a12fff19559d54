//! The storage conformance suite against an S3 emulator (moto), through the same layered
//! operator production uses (timeout under retry). Skips loudly without `PGB_TEST_S3_*`
//! (start one with `scripts/services/s3.sh start DIR` and source `DIR/s3.env`).

use std::sync::Arc;

use pgb_core::Storage;
use pgb_storage_s3::{S3Config, S3Credentials};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn s3() -> Option<Arc<dyn Storage>> {
    let (Some(endpoint), Some(bucket)) = (env("PGB_TEST_S3_ENDPOINT"), env("PGB_TEST_S3_BUCKET"))
    else {
        return pgb_testkit::require_or_skip(
            "the S3 emulator",
            "PGB_TEST_S3_ENDPOINT and PGB_TEST_S3_BUCKET are unset (scripts/services/s3.sh start DIR; source DIR/s3.env)",
        );
    };
    let storage = S3Config::new(bucket)
        .with_prefix("pgb-tests")
        .with_endpoint(endpoint)
        .with_region(env("PGB_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".to_owned()))
        .with_credentials(S3Credentials::static_keys(
            env("PGB_TEST_S3_ACCESS_KEY_ID").unwrap_or_else(|| "test".to_owned()),
            env("PGB_TEST_S3_SECRET_ACCESS_KEY").unwrap_or_else(|| "test".to_owned()),
        ))
        .build()
        .expect("build the S3 storage");
    Some(Arc::new(storage))
}

pgb_testkit::storage_conformance!(s3);
