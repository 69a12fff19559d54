//! `pgb-jobs`' integration tests, one module per area, built as one test binary.
//! A new area is a new module here (`scripts/check-test-modules.sh`, run by CI,
//! fails for a file left out).

mod hooks;
mod post_restore;
