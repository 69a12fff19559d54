//! The storage conformance suite against a GCS emulator (fake-gcs-server), through the same
//! layered operator production uses. Skips loudly without `PGB_TEST_GCS_*` (start one with
//! `scripts/services/gcs.sh start DIR` and source `DIR/gcs.env`).
//!
//! The emulator accepts `ifGenerationMatch` without enforcing it, so the storage is declared
//! with `create_new_enforced = false`: the suite reports create-only as not proven here.

use std::sync::Arc;

use pgb_core::Storage;
use pgb_storage_gcs::{GcsConfig, GcsCredentials};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn gcs() -> Option<Arc<dyn Storage>> {
    let (Some(endpoint), Some(bucket)) = (env("PGB_TEST_GCS_ENDPOINT"), env("PGB_TEST_GCS_BUCKET"))
    else {
        return pgb_testkit::require_or_skip(
            "the GCS emulator",
            "PGB_TEST_GCS_ENDPOINT and PGB_TEST_GCS_BUCKET are unset (scripts/services/gcs.sh start DIR; source DIR/gcs.env)",
        );
    };
    let storage = GcsConfig::new(bucket)
        .with_prefix("pgb-tests")
        .with_endpoint(endpoint)
        .with_credentials(GcsCredentials::Anonymous)
        .with_create_new_enforced(false)
        .build()
        .expect("build the GCS storage");
    Some(Arc::new(storage))
}

pgb_testkit::storage_conformance!(gcs);
