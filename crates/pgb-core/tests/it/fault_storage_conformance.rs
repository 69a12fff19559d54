//! `FaultStorage` honours the storage contract when it injects nothing: the conformance suite,
//! run over it twice (unconfigured, and with every fault configured but targeting no key).

use std::sync::Arc;

use pgb_core::{MemoryStorage, Storage};
use pgb_testkit::FaultStorage;

mod unconfigured {
    use super::*;

    async fn storage() -> Option<Arc<dyn Storage>> {
        Some(Arc::new(FaultStorage::new(Arc::new(MemoryStorage::new()))))
    }

    pgb_testkit::storage_conformance!(storage);
}

mod untargeted {
    use super::*;

    async fn storage() -> Option<Arc<dyn Storage>> {
        let fault = FaultStorage::new(Arc::new(MemoryStorage::new()))
            .only_keys(|_| false)
            .fail_write_at(1)
            .fail_at_byte(10)
            .storage_full_at_byte(20)
            .fail_finish()
            .fail_head()
            .fail_delete_at(1)
            .drop_tail(3)
            .flip_byte_at(0);
        Some(Arc::new(fault))
    }

    pgb_testkit::storage_conformance!(storage);
}

mod disarmed {
    use super::*;

    async fn storage() -> Option<Arc<dyn Storage>> {
        let fault = FaultStorage::new(Arc::new(MemoryStorage::new()))
            .fail_write_at(1)
            .fail_finish()
            .fail_head()
            .fail_list()
            .fail_list_after(0)
            .fail_delete_at(1)
            .drop_tail(3)
            .flip_byte_at(0);
        fault.disarm();
        Some(Arc::new(fault))
    }

    pgb_testkit::storage_conformance!(storage);
}
