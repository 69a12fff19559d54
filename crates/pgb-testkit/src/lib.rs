//! # pgb-testkit
//!
//! Test support shared by pgb's crates and by anyone implementing a backend:
//!
//! - [`storage_conformance!`]: one `#[tokio::test]` per case of the [`Storage`] contract, run by
//!   every backend against a real store (local disk, or S3/GCS/Azure emulators).
//! - [`FakeDumper`] / [`RecordingRestorer`]: deterministic stand-ins for pg_dump and
//!   pg_restore, for fault tests of the orchestration (fakes are for fault injection only: the
//!   real drivers are tested against real PostgreSQL).
//! - [`TempCluster`]: a throwaway PostgreSQL server of its own (WAL archiving, base backups,
//!   point-in-time recovery), run as the OS user `postgres` when the tests run as root, and
//!   [`make_shared_dir`] for the directories its `archive_command` writes.
//! - [`require_or_skip`]: the loud-skip rule: a test whose server is missing prints why and
//!   returns, unless `PGB_TEST_REQUIRE=1`, where it fails.
//!
//! Unlike the production crates this one reads `PGB_TEST_*` environment variables: it is how a
//! test harness is told which servers exist.

mod cluster;
mod conformance;
mod fakes;
mod fault;

pub use cluster::{TempCluster, make_shared_dir, share_with_postgres};
pub use conformance::{Ctx, cases};
pub use fakes::{FakeDumper, FakeOutcome, Recorded, RecordingRestorer};
pub use fault::FaultStorage;

#[doc(hidden)]
pub use tokio as __tokio;

use pgb_core::Storage;

/// Whether `PGB_TEST_REQUIRE=1` is set (CI): a missing server is then a failure.
pub fn required() -> bool {
    std::env::var("PGB_TEST_REQUIRE").is_ok_and(|v| v == "1")
}

/// Returns `None` after printing a loud skip notice, or panics when tests are required.
///
/// # Panics
/// When `PGB_TEST_REQUIRE=1`: a skipped server test must fail CI, not pass silently.
pub fn require_or_skip<T>(what: &str, why: &str) -> Option<T> {
    assert!(
        !required(),
        "PGB_TEST_REQUIRE=1 but {what} is not available: {why}"
    );
    eprintln!(
        "SKIPPED: {what} is not available ({why}); set PGB_TEST_REQUIRE=1 to make this a failure"
    );
    record_skip(what);
    None
}

/// Appends the running test's name and what it lacked to the file `PGB_TEST_SKIP_LOG` names
/// (scripts/test.sh sets it and prints the count and the names at the end), because `cargo
/// test` hides the output of a test that returns early and so counts it as passed.
pub fn record_skip(what: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("PGB_TEST_SKIP_LOG") else {
        return;
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_owned();
    let binary = std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        // One short line per write: appends of this size do not interleave.
        let _ = writeln!(f, "{binary} {test}: {what}");
    }
}

/// Stores compared in tests are trait objects.
pub type DynStorage = std::sync::Arc<dyn Storage>;

/// Expands to one test per conformance case for the storage built by `$factory`, an
/// `async fn() -> Option<Arc<dyn Storage>>` (return `None`, via [`require_or_skip`], when its
/// server is missing).
///
/// ```ignore
/// async fn local() -> Option<Arc<dyn Storage>> { ... }
/// pgb_testkit::storage_conformance!(local);
/// ```
#[macro_export]
macro_rules! storage_conformance {
    ($factory:path) => {
        $crate::storage_conformance!(@cases $factory;
            round_trip_many_chunks, zero_length_object, object_larger_than_three_parts,
            range_read, head_of_missing_key_is_not_found, read_of_missing_key_is_not_found,
            delete_of_missing_key_is_ok, list_is_scoped_by_segment, list_of_missing_prefix_is_empty,
            list_after_delete, odd_keys_round_trip, create_new_refuses_to_overwrite,
            overwrite_replaces, aborted_write_is_invisible, dropped_writer_is_invisible,
            failing_input_stream_leaves_nothing, concurrent_writers_to_different_keys,
            head_reports_size, list_stream_yields_many_objects_once
        );
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[$crate::__tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(storage) = $factory().await else { return };
                let cx = $crate::Ctx::new(storage);
                $crate::cases::$case(&cx).await;
                cx.cleanup().await;
            }
        )*
    };
}
