//! The storage conformance suite against an Azure Blob emulator (Azurite), through the same
//! layered operator production uses. Skips loudly without `PGB_TEST_AZURE_*` (start one with
//! `scripts/services/azure.sh start DIR` and source `DIR/azure.env`).

use std::sync::Arc;

use pgb_core::Storage;
use pgb_storage_azure::{AzureConfig, AzureCredentials};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn azure() -> Option<Arc<dyn Storage>> {
    let (Some(endpoint), Some(account), Some(key), Some(container)) = (
        env("PGB_TEST_AZURE_ENDPOINT"),
        env("PGB_TEST_AZURE_ACCOUNT"),
        env("PGB_TEST_AZURE_KEY"),
        env("PGB_TEST_AZURE_CONTAINER"),
    ) else {
        return pgb_testkit::require_or_skip(
            "the Azure Blob emulator",
            "PGB_TEST_AZURE_ENDPOINT, _ACCOUNT, _KEY or _CONTAINER is unset (scripts/services/azure.sh start DIR; source DIR/azure.env)",
        );
    };
    let storage = AzureConfig::new(account, container)
        .with_prefix("pgb-tests")
        .with_endpoint(endpoint)
        .with_credentials(AzureCredentials::AccountKey(key))
        .build()
        .expect("build the Azure storage");
    Some(Arc::new(storage))
}

pgb_testkit::storage_conformance!(azure);
