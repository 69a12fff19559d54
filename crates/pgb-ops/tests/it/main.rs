//! `pgb-ops`'s integration tests, one module per area, built as one test binary (each binary
//! links the whole dependency tree; one link instead of 3 saves build time and disk).
//! A new area is a new module here (`scripts/check-test-modules.sh`, run by CI,
//! fails for a file left out).

mod check;
mod drill;
mod metrics_alerts;
mod metrics_exposition;
mod metrics_wal_alerts;
mod records_compat;
