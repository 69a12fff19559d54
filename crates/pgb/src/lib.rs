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
//! | [`open_repository`], [`open_storage`] (at the top) | `pgb-open`: repository URLs | always (backends by the features above) |
//! | `ops` | `pgb-ops`: drills, checks, reports, metrics | `ops` |
//! | `config` | `pgb-config`: the TOML config and its layers | `config` |
//! | `jobs` | `pgb-jobs`: a configured job run through the library (`JobPlan`) | `jobs` |
//!
//! [`open_repository`] opens a repository from a URL exactly as the `pgb` command does
//! (`file:///path`, `s3://bucket/prefix`, `gs://...`, `az://...`), with credentials and settings
//! from an [`EnvLookup`] you pass: the process environment, a map, your own config.
//!
//! The library never prints, reads the environment, creates a runtime or installs handlers:
//! your service owns those. Runnable examples live in `crates/pgb/examples/`:
//! `embed_backup` (a service opening a repository by URL, taking a backup, verifying and
//! pruning it) and `custom_policy` (the retention engine on its own).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use pgb::retention::Policy;
//! let dir = tempfile::tempdir()?;
//! let url = format!("file://{}", dir.path().display());
//! let env = |name: &str| std::env::var(name).ok(); // or a map, or your config
//! let repo = pgb::open_repository(&url, &env)?;
//! repo.preflight().await?;
//! assert!(repo.list().await?.backups.is_empty());
//! let policy = Policy::default().with_keep_daily(pgb::retention::Count::N(7));
//! let report = repo.prune(&policy, &pgb::PruneOptions::default().with_dry_run(true)).await?;
//! assert!(report.sets.is_empty());
//! # Ok(()) }
//! ```

pub use pgb_core as core;
pub use pgb_core::*;
pub use pgb_open::{
    EnvLookup, OpenError, StorageOptions, open_repository, open_repository_with, open_storage,
    open_storage_with, redact_url,
};

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

#[cfg(feature = "ops")]
pub use pgb_ops as ops;

#[cfg(feature = "config")]
pub use pgb_config as config;

/// A configured job run through the library, as `pgb run JOB` does (lock, hooks, backup,
/// verify, prune, notifications):
///
/// ```no_run
/// # async fn run(text: &str) -> Result<(), Box<dyn std::error::Error>> {
/// let env = |name: &str| std::env::var(name).ok(); // credentials, key variables
/// let plan = pgb::jobs::JobPlan::from_config(text, "pgb.toml".as_ref(), "nightly", &env)?;
/// let report = plan.run(&pgb::NoProgress, std::future::pending()).await?;
/// # let _ = report; Ok(()) }
/// ```
///
/// `crates/pgb-jobs/examples/run_configured_job.rs` is the runnable version the tests run.
#[cfg(feature = "jobs")]
pub use pgb_jobs as jobs;
