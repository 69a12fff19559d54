//! `pgb-core`'s integration tests, one module per area, built as one test binary (each binary
//! links the whole dependency tree; one link instead of 8 saves build time and disk).
//! A new area is a new module here (`scripts/check-test-modules.sh`, run by CI,
//! fails for a file left out).

mod cluster;
mod commit;
mod fault_storage_conformance;
mod incremental;
mod listing;
mod manifest_compat;
mod orchestration;
mod prune;
mod repository_safety;
mod spill;
mod wal_retention;
