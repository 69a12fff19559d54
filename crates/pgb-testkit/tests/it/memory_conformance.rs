//! The conformance suite against `MemoryStorage` (the reference backend).

use std::sync::Arc;

use pgb_core::{MemoryStorage, Storage};

async fn memory() -> Option<Arc<dyn Storage>> {
    Some(Arc::new(MemoryStorage::new()))
}

pgb_testkit::storage_conformance!(memory);
