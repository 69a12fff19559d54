//! `pgb-postgres`'s integration tests, one module per area, built as one test binary (each binary
//! links the whole dependency tree; one link instead of 6 saves build time and disk).
//! A new area is a new module here (`scripts/check-test-modules.sh`, run by CI,
//! fails for a file left out).

// Public, so helpers a given module does not use do not trip the `dead_code` lint.
pub mod common;

mod cancel;
mod child_env;
mod cluster;
mod migrations;
mod postgres;
mod sql;
