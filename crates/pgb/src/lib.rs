//! # pgb
//!
//! PostgreSQL backups for Rust services: one dependency that re-exports pgb's crates.
//!
//! | module | crate | feature |
//! |---|---|---|
//! | [`core`] (also re-exported at the top) | `pgb-core`: `Repository`, `Storage`, `Dumper`, manifest, pipeline | always |
//! | [`retention`] | `pgb-retention`: the pure retention engine | always |
//! | [`local`] | `pgb-storage-local`: `FsStorage` | `local` (default) |
//! | [`postgres`] | `pgb-postgres`: `PgDump`, `PgRestore`, `PgArchiveCheck`, `ConnConfig`, `sql` | `postgres` (default) |
//! | `s3`, `gcs`, `azure` | `pgb-storage-s3/gcs/azure` | `s3`, `gcs`, `azure` |
//!
//! The library never prints, reads the environment, creates a runtime or installs handlers:
//! your service owns those. Runnable examples live in `crates/pgb/examples/`:
//! `embed_backup` (a service taking a backup, verifying and pruning) and `custom_policy`
//! (the retention engine on its own).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let dir = tempfile::tempdir()?;
//! let repo = pgb::Repository::new(Arc::new(pgb::local::FsStorage::open(dir.path())?));
//! repo.preflight().await?;
//! assert!(repo.list().await?.backups.is_empty());
//! # Ok(()) }
//! ```

pub use pgb_core as core;
pub use pgb_core::*;

#[cfg(feature = "local")]
pub use pgb_storage_local as local;

#[cfg(feature = "postgres")]
pub use pgb_postgres as postgres;

#[cfg(feature = "s3")]
pub use pgb_storage_s3 as s3;

#[cfg(feature = "gcs")]
pub use pgb_storage_gcs as gcs;

#[cfg(feature = "azure")]
pub use pgb_storage_azure as azure;
