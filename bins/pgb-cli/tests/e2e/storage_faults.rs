//! Storage faults on the real backends (RELIABILITY.md tests 6, 9, 10, 11, 13): a
//! `FaultStorage` wrapping local disk (`FsStorage`) and the S3 emulator (`S3Storage`, skipped
//! loudly without `PGB_TEST_S3_*`), driving `Repository::backup` with the testkit's
//! `FakeDumper`. After every fault: an error, no new backup, no leftover, the earlier backup
//! still verifies, and nothing but complete backups is visible.

use std::sync::Arc;

use pgb::s3::{AddressingStyle, S3Config, S3Credentials};
use pgb::{
    BackupOptions, Compression, ErrorClass, Manifest, NoProgress, ObjectKey, Repository, Storage,
};
use pgb_testkit::{FakeDumper, FakeOutcome, FaultStorage};

const MIB: u64 = 1 << 20;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn unique() -> String {
    let mut rnd = [0u8; 6];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut rnd))
        .expect("urandom");
    rnd.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh local repository (the directory lives until the process ends).
fn local() -> Arc<dyn Storage> {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    Arc::new(pgb::local::FsStorage::open(dir).expect("open"))
}

/// A fresh prefix in the S3 emulator's bucket, or `None` (after a loud skip notice).
fn s3() -> Option<Arc<dyn Storage>> {
    let (Some(endpoint), Some(bucket)) = (env("PGB_TEST_S3_ENDPOINT"), env("PGB_TEST_S3_BUCKET"))
    else {
        return pgb_testkit::require_or_skip(
            "the S3 emulator (PGB_TEST_S3_*)",
            "scripts/services/s3.sh start DIR",
        );
    };
    let storage = S3Config::new(bucket)
        .with_prefix(format!("storage-faults/{}", unique()))
        .with_endpoint(endpoint)
        .with_addressing(AddressingStyle::Path)
        .with_region(env("PGB_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".to_owned()))
        .with_credentials(S3Credentials::static_keys(
            env("PGB_TEST_S3_ACCESS_KEY_ID").unwrap_or_else(|| "test".to_owned()),
            env("PGB_TEST_S3_SECRET_ACCESS_KEY").unwrap_or_else(|| "test".to_owned()),
        ))
        // Small parts, so that a 3 MiB object is a real multipart upload on S3.
        .with_part_size(5 * MIB)
        .build()
        .expect("build the S3 storage");
    Some(Arc::new(storage))
}

fn is_data(key: &ObjectKey) -> bool {
    let name = key.file_name();
    key.as_str().starts_with("backups/") && name.starts_with("data.") && !name.ends_with(".sha256")
}

fn is_manifest(key: &ObjectKey) -> bool {
    key.file_name() == "manifest.json"
}

async fn good_backup(repo: &Repository) -> Manifest {
    repo.backup(
        &FakeDumper::new(3 * MIB, FakeOutcome::Succeed),
        &BackupOptions::default().with_compression(Compression::None),
        &NoProgress,
    )
    .await
    .expect("a backup without faults succeeds")
}

/// The oracle: exactly `earlier` is listed, it still verifies, and no other object (leftover,
/// partial data, probe, lease) is visible.
async fn assert_only(inner: &Arc<dyn Storage>, earlier: &Manifest, what: &str) {
    let repo = Repository::new(Arc::clone(inner));
    let listing = repo.list().await.expect("list");
    let ids: Vec<String> = listing.backups.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(ids, [earlier.id.to_string()], "{what}: the listed backups");
    assert!(
        listing.leftovers.is_empty(),
        "{what}: leftovers {:?}",
        listing.leftovers
    );
    repo.verify(earlier, None, &NoProgress)
        .await
        .unwrap_or_else(|e| panic!("{what}: the earlier backup must still verify: {e}"));
    let mut keys: Vec<String> = inner
        .list(None)
        .await
        .expect("list objects")
        .into_iter()
        .map(|m| m.key.to_string())
        .filter(|k| !k.starts_with(&format!("backups/{}/", earlier.id)))
        .collect();
    keys.sort();
    assert!(
        keys.is_empty(),
        "{what}: objects other than the earlier backup: {keys:?}"
    );
}

/// Runs one fault against a backend: an earlier good backup, then a backup through the
/// fault, which must fail with `class` (the injected storage errors are "unavailable", a
/// repository problem; a full disk is a runtime failure; a lie is an integrity failure) and
/// leave only the earlier backup.
async fn fault_case(
    inner: Arc<dyn Storage>,
    fault: impl FnOnce(FaultStorage) -> FaultStorage,
    opts: BackupOptions,
    class: ErrorClass,
    what: &str,
) {
    let earlier = good_backup(&Repository::new(Arc::clone(&inner))).await;
    let faulty = Arc::new(fault(FaultStorage::new(Arc::clone(&inner))));
    let repo = Repository::new(Arc::clone(&faulty) as Arc<dyn Storage>);
    let dumper = FakeDumper::new(3 * MIB + 17, FakeOutcome::Succeed);
    let err = repo
        .backup(
            &dumper,
            &opts.with_compression(Compression::None),
            &NoProgress,
        )
        .await
        .expect_err("the fault must fail the backup");
    assert!(faulty.injected() > 0, "{what}: the fault was injected");
    assert_eq!(err.class(), class, "{what}: {err}");
    assert!(!err.to_string().contains('\n'), "{what}: one line: {err}");
    assert_only(&inner, &earlier, what).await;
}

macro_rules! on_backends {
    ($($name:ident: $fault:expr, $opts:expr, $class:expr;)*) => {
        mod local_disk {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    fault_case(local(), $fault, $opts, $class, concat!("local: ", stringify!($name))).await;
                }
            )*
        }
        mod s3_emulator {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(s3) = s3() else { return };
                    fault_case(s3, $fault, $opts, $class, concat!("s3: ", stringify!($name))).await;
                }
            )*
        }
    };
}

on_backends! {
    // RELIABILITY 6: a permanent error on the 2nd chunk/part of the data object.
    write_fails_midway: |f| f.only_keys(is_data).fail_write_at(2), BackupOptions::default(), ErrorClass::Repository;
    // RELIABILITY 11: no space left at byte 1 MiB + 1.
    storage_full_midway: |f| f.only_keys(is_data).storage_full_at_byte(MIB + 1), BackupOptions::default(), ErrorClass::Runtime;
    // RELIABILITY 9: the commit of the data object fails after all bytes were sent.
    finish_fails: |f| f.only_keys(is_data).fail_finish(), BackupOptions::default(), ErrorClass::Repository;
    // RELIABILITY 10: the store drops the last KiB but reports success.
    store_drops_the_tail: |f| f.only_keys(is_data).drop_tail(1024), BackupOptions::default(), ErrorClass::Integrity;
    // RELIABILITY 10: the store flips a byte but reports success; --verify-upload catches it.
    store_flips_a_byte: |f| f.only_keys(is_data).flip_byte_at(MIB), BackupOptions::default().with_verify_upload(true), ErrorClass::Integrity;
    // RELIABILITY 13: the manifest write fails: the data is removed, nothing is committed.
    manifest_write_fails: |f| f.only_keys(is_manifest).fail_finish(), BackupOptions::default(), ErrorClass::Repository;
}
