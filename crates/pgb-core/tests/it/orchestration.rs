//! Orchestration tests: backup, list, verify, restore, delete and gc against in-memory storage
//! wrapped in [`FaultStorage`], with the testkit's fake dumper and recording restorer.
//!
//! Every fault test checks the invariant oracle of docs/RELIABILITY.md where it applies:
//! one clear error of the right class (I1), no new backup listed and earlier backups intact and
//! verifiable (I2), no object left under the failed backup's folder (I3), the dump killed (I4),
//! and no stray objects such as the write probe (I5).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use pgb_core::{
    ArchiveFormat, BackupId, BackupOptions, Compression, DumpError, DumpErrorKind, DumpSource,
    DumpStream, Dumper, Error, ErrorClass, Leftover, MANIFEST_FORMAT_VERSION, Manifest,
    MemoryStorage, NoProgress, ObjectKey, PreparedDump, Repository, RestoreOptions, RestoreReport,
    Storage, StorageErrorKind, StorageExt, WriteOptions,
};
use pgb_testkit::{FakeDumper, FakeOutcome, FaultStorage, Recorded, RecordingRestorer};
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;

const ALL_COMPRESSIONS: [Compression; 3] = [
    Compression::None,
    Compression::Gzip { level: 6 },
    Compression::Zstd { level: 3 },
];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh in-memory store and a repository on it.
fn memory_repo() -> (Arc<dyn Storage>, Repository) {
    let inner: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let repo = Repository::new(Arc::clone(&inner));
    (inner, repo)
}

/// A fault-injecting view of `inner` and a repository on it.
fn fault_repo(fault: FaultStorage) -> (Arc<FaultStorage>, Repository) {
    let fault = Arc::new(fault);
    let repo = Repository::new(Arc::clone(&fault) as Arc<dyn Storage>);
    (fault, repo)
}

/// Data objects of backups (`backups/<id>/data.*`, not their `.sha256` sidecar): the target of
/// most faults, so that the write probe, the sidecar and the manifest are left alone.
fn is_data(key: &ObjectKey) -> bool {
    key.file_name().starts_with("data.") && !key.file_name().ends_with(".sha256")
}

fn is_manifest(key: &ObjectKey) -> bool {
    key.file_name() == "manifest.json"
}

fn manifest_key(id: &str) -> ObjectKey {
    ObjectKey::parse(&format!("backups/{id}/manifest.json")).expect("valid key")
}

fn opts(c: Compression) -> BackupOptions {
    BackupOptions::default().with_compression(c)
}

fn restore_opts(_: &Manifest) -> RestoreOptions {
    RestoreOptions::new()
}

/// A pseudo-random number for "random offset" cases, printed by the callers on failure.
fn random_below(n: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(12_345, |d| u64::from(d.subsec_nanos()) ^ d.as_secs());
    let mut x = nanos | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x % n.max(1)
}

/// A successful backup through `repo`.
async fn backup_ok(repo: &Repository, dumper: &dyn Dumper, c: Compression) -> Manifest {
    repo.backup(dumper, &opts(c), &NoProgress)
        .await
        .unwrap_or_else(|e| panic!("backup with {c} failed: {e}"))
}

/// A backup that must fail; returns the error after checking it is one line.
async fn backup_err(repo: &Repository, dumper: &dyn Dumper, c: Compression) -> Error {
    match repo.backup(dumper, &opts(c), &NoProgress).await {
        Ok(m) => panic!("backup with {c} must fail, but committed {}", m.id),
        Err(e) => {
            let line = e.to_string();
            assert!(!line.contains('\n'), "I1: the error is one line: {line:?}");
            assert!(!line.is_empty(), "I1: the error names a cause");
            e
        }
    }
}

async fn restore_into(repo: &Repository, m: &Manifest) -> (Result<RestoreReport, Error>, Recorded) {
    let restorer = RecordingRestorer::new();
    let res = repo
        .restore(m, &restorer, &restore_opts(m), &NoProgress)
        .await;
    (res, restorer.recorded())
}

fn assert_class(e: &Error, class: ErrorClass, what: &str) {
    assert_eq!(e.class(), class, "{what}: wrong class for error: {e}");
}

fn assert_integrity(e: &Error, fragments: &[&str], what: &str) {
    assert_class(e, ErrorClass::Integrity, what);
    let msg = e.to_string();
    for f in fragments {
        assert!(
            msg.contains(f),
            "{what}: expected {f:?} in the error: {msg}"
        );
    }
}

/// A restore that must have failed before committing anything: the sink was never finished,
/// never saw the complete plaintext, and was rolled back if it had been started.
fn assert_restore_rolled_back(rec: &Recorded, expected: &[u8], what: &str) {
    assert!(!rec.finished, "{what}: the restore must not be finished");
    assert!(
        rec.data.len() < expected.len(),
        "{what}: the sink received {} of {} plaintext bytes; the last chunk must be held back",
        rec.data.len(),
        expected.len()
    );
    if !rec.data.is_empty() {
        assert!(
            rec.aborted,
            "{what}: a sink that received data must be aborted"
        );
    }
}

/// Every key in the store, sorted.
async fn all_keys(storage: &Arc<dyn Storage>) -> Vec<String> {
    let mut keys: Vec<String> = storage
        .list(None)
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.key.to_string())
        .collect();
    keys.sort();
    keys
}

/// The oracle: the repository holds exactly `backups` (complete, each verifying, their stored
/// objects byte-identical to what their manifests promise), no invalid manifests, no leftovers,
/// and no object other than those backups' manifests and data (no probe, no partial data).
async fn assert_repo_holds_exactly(storage: &Arc<dyn Storage>, backups: &[&Manifest], what: &str) {
    let repo = Repository::new(Arc::clone(storage));
    let listing = repo.list().await.expect("list");
    let listed: BTreeSet<String> = listing.backups.iter().map(|m| m.id.to_string()).collect();
    let wanted: BTreeSet<String> = backups.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(listed, wanted, "{what}: I2: the listed backups");
    assert!(
        listing.leftovers.is_empty(),
        "{what}: I3: leftovers {:?}",
        listing.leftovers
    );
    assert!(
        listing.invalid.is_empty(),
        "{what}: invalid {:?}",
        listing.invalid
    );
    // Each backup's folder holds its manifest, its data object and, optionally, a
    // `sha256sum -c` sidecar; nothing else exists anywhere (no probe, lease or partial object).
    let mut expected_keys: Vec<String> = Vec::new();
    for m in backups {
        expected_keys.push(manifest_key(m.id.as_str()).to_string());
        expected_keys.push(m.dump().unwrap().key.clone());
        let sidecar = ObjectKey::parse(&format!("{}.sha256", m.dump().unwrap().key)).expect("key");
        if let Ok(line) = storage.get_bytes(&sidecar).await {
            let name = m.dump().unwrap().key().expect("key").file_name().to_owned();
            assert_eq!(
                String::from_utf8_lossy(&line),
                format!("{}  {name}\n", m.dump().unwrap().stored_sha256),
                "{what}: the sidecar of {} matches the manifest",
                m.id
            );
            expected_keys.push(sidecar.to_string());
        }
    }
    expected_keys.sort();
    assert_eq!(
        all_keys(storage).await,
        expected_keys,
        "{what}: I3/I5: no stray objects"
    );
    for m in backups {
        let stored = storage
            .get_bytes(&m.dump().unwrap().key().expect("key"))
            .await
            .expect("read data");
        assert_eq!(
            sha256_hex(&stored),
            m.dump().unwrap().stored_sha256,
            "{what}: I2: {} is byte-identical",
            m.id
        );
        let report = repo
            .verify(m, None, &NoProgress)
            .await
            .unwrap_or_else(|e| panic!("{what}: I2: {} still verifies: {e}", m.id));
        assert_eq!(report.stored_size, m.stored_size());
    }
}

/// No object under `backups/` was ever published by this fault storage except those listed
/// (`finish` of a data object or manifest): the failed backup's encoders and writers never
/// completed.
fn assert_nothing_published(fault: &FaultStorage, what: &str) {
    let published: Vec<String> = fault
        .ops_starting_with("finish backups/")
        .into_iter()
        .filter(|op| !op.contains("FAILED"))
        .collect();
    assert!(
        published.is_empty(),
        "{what}: nothing may be published, yet: {published:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Dumpers beyond the testkit's fake
// ---------------------------------------------------------------------------------------------

/// A dumper producing pseudo-random (incompressible) bytes from a seed: two seeds give two
/// different dumps of the same size.
#[derive(Debug, Clone)]
struct SeededDumper {
    size: u64,
    seed: u64,
}

impl SeededDumper {
    fn bytes(&self) -> Vec<u8> {
        let mut x = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..self.size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }
}

#[derive(Debug)]
struct VecStream(Vec<Bytes>);

#[async_trait]
impl DumpStream for VecStream {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, DumpError> {
        Ok(if self.0.is_empty() {
            None
        } else {
            Some(self.0.remove(0))
        })
    }
    async fn abort(self: Box<Self>) {}
}

fn fake_source() -> DumpSource {
    DumpSource::new(
        "fakedb",
        "fake:5432",
        "15.0",
        "pg_dump (fake) 15.0",
        15,
        ArchiveFormat::Custom,
    )
}

/// A prepared dump that starts with the outcome its dumper decided at `prepare`.
#[derive(Debug)]
struct Prepared {
    source: DumpSource,
    start: Result<Vec<Bytes>, DumpError>,
}

#[async_trait]
impl PreparedDump for Prepared {
    fn source(&self) -> &DumpSource {
        &self.source
    }
    async fn start(self: Box<Self>) -> Result<Box<dyn DumpStream>, DumpError> {
        Ok(Box::new(VecStream(self.start?)))
    }
}

#[async_trait]
impl Dumper for SeededDumper {
    async fn prepare(&self) -> Result<Box<dyn PreparedDump>, DumpError> {
        let chunks = self
            .bytes()
            .chunks(64 * 1024)
            .map(Bytes::copy_from_slice)
            .collect();
        Ok(Box::new(Prepared {
            source: fake_source(),
            start: Ok(chunks),
        }))
    }
}

/// A dumper whose preflight (`prepare`) or spawn (`start`) fails.
#[derive(Debug)]
struct BrokenDumper {
    at_prepare: bool,
}

#[async_trait]
impl Dumper for BrokenDumper {
    async fn prepare(&self) -> Result<Box<dyn PreparedDump>, DumpError> {
        if self.at_prepare {
            Err(DumpError::new(
                DumpErrorKind::DatabaseNotFound,
                "database \"nosuchdb\" does not exist",
            )
            .with_stderr("pg_dump: error: database \"nosuchdb\" does not exist"))
        } else {
            Ok(Box::new(Prepared {
                source: fake_source(),
                start: Err(DumpError::new(
                    DumpErrorKind::ToolNotFound,
                    "cannot spawn pg_dump: no such file",
                )),
            }))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Happy path
// ---------------------------------------------------------------------------------------------

/// RELIABILITY 21 (happy path, in memory): every compression round-trips, and the manifest
/// records what is really stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_round_trips_with_every_compression() {
    let (inner, repo) = memory_repo();
    let mut done = Vec::new();
    for c in ALL_COMPRESSIONS {
        let dumper = FakeDumper::new(3 * MIB + 123, FakeOutcome::Succeed);
        let expected = dumper.expected_bytes();
        let m = backup_ok(&repo, &dumper, c).await;
        assert!(
            !dumper.was_aborted(),
            "{c}: a successful dump is not killed"
        );

        // The manifest, against independently computed values.
        let stored = inner
            .get_bytes(&m.dump().unwrap().key().expect("data key"))
            .await
            .expect("read data object");
        assert_eq!(m.format_version, MANIFEST_FORMAT_VERSION, "{c}");
        assert!(m.format_version <= MANIFEST_FORMAT_VERSION);
        assert!(
            m.encryption.is_none() && m.mac.is_none(),
            "{c}: not encrypted"
        );
        assert_eq!(m.compression, c);
        assert_eq!(m.stored_size(), stored.len() as u64, "{c}: stored_size");
        assert_eq!(
            m.dump().unwrap().stored_sha256,
            sha256_hex(&stored),
            "{c}: stored_sha256"
        );
        assert_eq!(m.plain_size(), expected.len() as u64, "{c}: plain_size");
        assert_eq!(
            m.dump().unwrap().plain_sha256,
            sha256_hex(&expected),
            "{c}: plain_sha256"
        );
        assert_eq!(m.database, "fakedb");
        assert_eq!(m.pg_dump_major, 15);
        assert_eq!(m.format, ArchiveFormat::Custom);
        assert!(m.started_at <= m.finished_at, "{c}: timestamps in order");
        assert_eq!(
            m.dump().unwrap().key,
            format!("backups/{}/data.dump{}", m.id, c.extension())
        );
        if c != Compression::None {
            assert!(
                m.stored_size() < m.plain_size(),
                "{c}: the data is compressed"
            );
        }
        // What is stored is what the repository reads back as the manifest.
        let stored_manifest: serde_json::Value = serde_json::from_slice(
            &inner
                .get_bytes(&manifest_key(m.id.as_str()))
                .await
                .expect("read manifest"),
        )
        .expect("manifest is JSON");
        assert_eq!(stored_manifest["format_version"], 3);
        assert_eq!(
            stored_manifest["artifacts"][0]["stored_sha256"],
            m.dump().unwrap().stored_sha256.as_str()
        );
        assert_eq!(repo.manifest(&m.id).await.expect("manifest"), m);

        // Verify, with and without an archive checker.
        let report = repo.verify(&m, None, &NoProgress).await.expect("verify");
        assert_eq!(
            (report.stored_size, report.plain_size),
            (m.stored_size(), m.plain_size())
        );
        let checker = RecordingRestorer::new();
        repo.verify(&m, Some(&checker), &NoProgress)
            .await
            .expect("verify with checker");
        let checked = checker.recorded();
        assert!(
            checked.finished && !checked.aborted,
            "{c}: checker finished"
        );
        assert!(checked.data == expected, "{c}: checker saw the exact dump");

        // Restore.
        let (res, rec) = restore_into(&repo, &m).await;
        res.unwrap_or_else(|e| panic!("{c}: restore failed: {e}"));
        assert!(rec.finished, "{c}: restore finished");
        assert!(!rec.aborted, "{c}: restore not aborted");
        assert!(
            rec.data == expected,
            "{c}: restored {} bytes, expected exactly the dump's {}",
            rec.data.len(),
            expected.len()
        );
        done.push(m);
    }
    let refs: Vec<&Manifest> = done.iter().collect();
    assert_repo_holds_exactly(&inner, &refs, "after three backups").await;
}

// ---------------------------------------------------------------------------------------------
// Dump failures
// ---------------------------------------------------------------------------------------------

/// RELIABILITY 1 and 12: pg_dump fails mid-stream (and before its first byte).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_failing_mid_stream_commits_nothing() {
    let (inner, repo) = memory_repo();
    let earlier = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    for c in ALL_COMPRESSIONS {
        for fail_after in [0, 3 * MIB / 2] {
            let what = format!("{c}, fail after {fail_after} bytes");
            let (fault, frepo) = fault_repo(FaultStorage::new(Arc::clone(&inner)));
            let dumper = FakeDumper::new(3 * MIB, FakeOutcome::FailAfter(fail_after));
            let err = backup_err(&frepo, &dumper, c).await;
            assert_class(&err, ErrorClass::Runtime, &what);
            assert!(
                err.stderr_tail()
                    .is_some_and(|t| t.contains("pg_dump: error: connection lost (fake)")),
                "{what}: stderr tail passed through: {:?}",
                err.stderr_tail()
            );
            assert!(
                err.to_string().contains("exited with status 1"),
                "{what}: {err}"
            );
            assert!(dumper.was_aborted(), "{what}: I4: the dump is killed");
            assert_nothing_published(&fault, &what);
            assert!(
                fault.count_ops("abort backups/") >= 1,
                "{what}: the data writer is aborted: {:?}",
                fault.ops()
            );
            assert_repo_holds_exactly(&inner, &[&earlier], &what).await;
        }
    }
}

/// RELIABILITY 3: pg_dump exits 0 but wrote nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_dump_is_refused() {
    let (inner, repo) = memory_repo();
    let earlier = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    for c in ALL_COMPRESSIONS {
        let (fault, frepo) = fault_repo(FaultStorage::new(Arc::clone(&inner)));
        let err = backup_err(&frepo, &FakeDumper::new(MIB, FakeOutcome::Empty), c).await;
        assert_class(&err, ErrorClass::Runtime, "empty dump");
        assert!(
            matches!(&err, Error::Dump(d) if d.kind() == DumpErrorKind::Empty),
            "{c}: {err:?}"
        );
        assert!(err.to_string().contains("wrote nothing"), "{c}: {err}");
        assert_nothing_published(&fault, "empty dump");
        assert_repo_holds_exactly(&inner, &[&earlier], "empty dump").await;
    }
}

/// RELIABILITY 4: a dumper whose preflight fails causes zero storage writes; one that cannot
/// be spawned leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dumper_preflight_failure_writes_nothing() {
    let (inner, _) = memory_repo();
    let (fault, frepo) = fault_repo(FaultStorage::new(Arc::clone(&inner)));
    let err = backup_err(
        &frepo,
        &BrokenDumper { at_prepare: true },
        Compression::default(),
    )
    .await;
    assert_class(&err, ErrorClass::Database, "prepare fails");
    assert!(err.stderr_tail().is_some_and(|t| t.contains("nosuchdb")));
    assert_eq!(fault.writes(), 0, "zero storage writes: {:?}", fault.ops());
    assert_eq!(
        fault.finishes(),
        0,
        "zero storage writes: {:?}",
        fault.ops()
    );
    assert_eq!(fault.count_ops("writer "), 0, "{:?}", fault.ops());
    assert!(all_keys(&inner).await.is_empty());

    let (fault, frepo) = fault_repo(FaultStorage::new(Arc::clone(&inner)));
    let err = backup_err(
        &frepo,
        &BrokenDumper { at_prepare: false },
        Compression::default(),
    )
    .await;
    assert_class(&err, ErrorClass::Database, "start fails");
    assert_nothing_published(&fault, "start fails");
    assert_repo_holds_exactly(&inner, &[], "start fails").await;
}

// ---------------------------------------------------------------------------------------------
// Storage failures while backing up
// ---------------------------------------------------------------------------------------------

/// RELIABILITY 6 and 12: the k-th storage write fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_write_failure_commits_nothing() {
    let (inner, repo) = memory_repo();
    let earlier = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    let cases = [
        (Compression::None, 1),
        (Compression::None, 3),
        (Compression::Gzip { level: 6 }, 1),
        (Compression::Zstd { level: 3 }, 1),
    ];
    for (c, k) in cases {
        let what = format!("{c}, write #{k} fails");
        let (fault, frepo) = fault_repo(
            FaultStorage::new(Arc::clone(&inner))
                .only_keys(is_data)
                .fail_write_at(k),
        );
        let dumper = FakeDumper::new(4 * MIB, FakeOutcome::Succeed);
        let err = backup_err(&frepo, &dumper, c).await;
        assert!(
            matches!(&err, Error::Storage(s) if s.kind() == StorageErrorKind::Unavailable),
            "{what}: {err:?}"
        );
        assert!(err.to_string().contains("injected"), "{what}: {err}");
        assert_eq!(fault.injected(), 1, "{what}: the fault fired once");
        assert!(dumper.was_aborted(), "{what}: I4: the dump is killed");
        assert_nothing_published(&fault, &what);
        assert_repo_holds_exactly(&inner, &[&earlier], &what).await;
    }
}

/// RELIABILITY 11: the disk fills up at byte N; also a connection reset at byte N.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_full_or_reset_mid_object_commits_nothing() {
    let (inner, repo) = memory_repo();
    let earlier = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    for full in [true, false] {
        let what = if full { "storage full" } else { "reset" };
        let at = 3 * MIB / 2 + 7;
        let fault = FaultStorage::new(Arc::clone(&inner)).only_keys(is_data);
        let fault = if full {
            fault.storage_full_at_byte(at)
        } else {
            fault.fail_at_byte(at)
        };
        let (fault, frepo) = fault_repo(fault);
        let dumper = FakeDumper::new(4 * MIB, FakeOutcome::Succeed);
        let err = backup_err(&frepo, &dumper, Compression::None).await;
        let kind = if full {
            StorageErrorKind::StorageFull
        } else {
            StorageErrorKind::Unavailable
        };
        assert!(
            matches!(&err, Error::Storage(s) if s.kind() == kind),
            "{what}: {err:?}"
        );
        if full {
            assert_class(&err, ErrorClass::Runtime, what);
            assert!(
                err.to_string().contains("no space left on device"),
                "{what}: {err}"
            );
        }
        assert!(dumper.was_aborted(), "{what}: I4: the dump is killed");
        assert!(
            fault.count_ops("abort backups/") == 1,
            "{what}: the temp/partial object is discarded: {:?}",
            fault.ops()
        );
        assert_nothing_published(&fault, what);
        assert_repo_holds_exactly(&inner, &[&earlier], what).await;
    }
}

/// RELIABILITY 9: close/commit of the data object fails after all data was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_finish_failure_commits_nothing() {
    let (inner, repo) = memory_repo();
    let earlier = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    for c in ALL_COMPRESSIONS {
        let (fault, frepo) = fault_repo(
            FaultStorage::new(Arc::clone(&inner))
                .only_keys(is_data)
                .fail_finish(),
        );
        let err = backup_err(&frepo, &FakeDumper::new(2 * MIB, FakeOutcome::Succeed), c).await;
        assert!(matches!(err, Error::Storage(_)), "{c}: {err:?}");
        assert!(err.to_string().contains("close failed"), "{c}: {err}");
        assert_eq!(fault.count_ops("finish backups/"), 1, "{:?}", fault.ops());
        assert_nothing_published(&fault, "finish fails");
        assert_repo_holds_exactly(&inner, &[&earlier], "finish fails").await;
    }
}

/// RELIABILITY 13 (in process): the manifest cannot be written after the data was: the data is
/// removed and nothing becomes visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_write_failure_commits_nothing() {
    let (inner, repo) = memory_repo();
    let earlier = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    let (fault, frepo) = fault_repo(
        FaultStorage::new(Arc::clone(&inner))
            .only_keys(is_manifest)
            .fail_finish(),
    );
    let err = backup_err(
        &frepo,
        &FakeDumper::new(2 * MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    assert!(err.to_string().contains("manifest.json"), "{err}");
    let data_finish = fault
        .ops()
        .iter()
        .position(|op| op.starts_with("finish backups/") && op.contains("/data."))
        .expect("the data object was published first");
    let data_delete = fault
        .ops()
        .iter()
        .position(|op| op.starts_with("delete backups/") && op.contains("/data."))
        .expect("and removed after the manifest failed");
    assert!(data_finish < data_delete);
    assert_repo_holds_exactly(&inner, &[&earlier], "manifest fails").await;
}

/// RELIABILITY 8/10 (stat side): the post-upload stat fails. The backup must fail and must not
/// leave its published data object behind without a manifest (I3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_head_failure_after_upload_leaves_nothing() {
    let (inner, repo) = memory_repo();
    let earlier = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    let (fault, frepo) = fault_repo(
        FaultStorage::new(Arc::clone(&inner))
            .only_keys(is_data)
            .fail_head(),
    );
    let err = backup_err(
        &frepo,
        &FakeDumper::new(2 * MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    assert!(err.to_string().contains("stat failed"), "{err}");
    assert_eq!(fault.count_ops("finish backups/"), 1);
    assert_repo_holds_exactly(&inner, &[&earlier], "head fails after upload").await;
}

/// A failing `list` makes listing, `latest` and gc fail loudly instead of seeing an empty
/// repository (and gc deletes nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_list_failure_is_an_error_not_an_empty_repository() {
    let (inner, repo) = memory_repo();
    let earlier = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    let (fault, frepo) = fault_repo(FaultStorage::new(Arc::clone(&inner)).fail_list());
    let err = frepo.list().await.expect_err("list must fail");
    assert!(err.to_string().contains("list failed"), "{err}");
    assert!(frepo.resolve("latest", None).await.is_err());
    assert!(
        frepo
            .gc(time::OffsetDateTime::now_utc(), time::Duration::ZERO, false)
            .await
            .is_err()
    );
    assert_eq!(fault.deletes(), 0);
    assert_repo_holds_exactly(&inner, &[&earlier], "list fails").await;
}

// ---------------------------------------------------------------------------------------------
// Lying storage
// ---------------------------------------------------------------------------------------------

/// RELIABILITY 10: the store drops the tail of the object but reports success: the size check
/// after upload fails the backup and removes the short object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_dropping_bytes_fails_the_backup() {
    let (inner, repo) = memory_repo();
    let earlier = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    let cases = [
        (Compression::None, 1024),
        (Compression::Gzip { level: 6 }, 1),
        (Compression::Zstd { level: 3 }, 16),
    ];
    for (c, k) in cases {
        let what = format!("{c}, last {k} bytes dropped");
        let (fault, frepo) = fault_repo(
            FaultStorage::new(Arc::clone(&inner))
                .only_keys(is_data)
                .drop_tail(k),
        );
        let err = backup_err(&frepo, &FakeDumper::new(3 * MIB, FakeOutcome::Succeed), c).await;
        assert_integrity(&err, &["bytes after upload"], &what);
        assert!(fault.injected() >= 1, "{what}: the lie happened");
        assert_repo_holds_exactly(&inner, &[&earlier], &what).await;
    }
}

/// RELIABILITY 10 and 16: the store flips a byte but reports success and the right size. The
/// backup commits (there is no read-back), but verify detects the mismatch, and restore fails
/// with an integrity error without ever completing or handing over the whole dump.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_flipping_a_byte_is_caught_by_verify_and_restore() {
    let (inner, repo) = memory_repo();
    let earlier = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    for (c, at) in [
        (Compression::None, 3 * MIB / 2),
        (Compression::Gzip { level: 6 }, 100),
        (Compression::Zstd { level: 3 }, 100),
    ] {
        let what = format!("{c}, byte {at} flipped");
        let (fault, frepo) = fault_repo(
            FaultStorage::new(Arc::clone(&inner))
                .only_keys(is_data)
                .flip_byte_at(at),
        );
        let dumper = FakeDumper::new(3 * MIB, FakeOutcome::Succeed);
        let expected = dumper.expected_bytes();
        let m = backup_ok(&frepo, &dumper, c).await;
        assert_eq!(fault.injected(), 1, "{what}: the lie happened");
        assert!(
            at < m.stored_size(),
            "{what}: the flip is inside the object"
        );

        let err = repo
            .verify(&m, None, &NoProgress)
            .await
            .expect_err("verify must fail");
        assert_integrity(&err, &["checksum mismatch", m.id.as_str()], &what);

        let checker = RecordingRestorer::new();
        let err = repo
            .verify(&m, Some(&checker), &NoProgress)
            .await
            .expect_err("verify with a checker must fail");
        assert_integrity(&err, &["checksum mismatch"], &what);
        let checked = checker.recorded();
        assert!(checked.aborted && !checked.finished, "{what}: {checked:?}");

        // By default the stored object is checked before the restorer is even started.
        let (res, rec) = restore_into(&repo, &m).await;
        let err = res.expect_err("restore must fail");
        assert_integrity(&err, &["checksum mismatch"], &what);
        assert_eq!(rec, Recorded::default(), "{what}: no database touched");

        // Streaming only (`--no-verify-first`): caught at the end of the stream, rolled back,
        // and the sink never received the complete plaintext.
        let restorer = RecordingRestorer::new();
        let res = repo
            .restore(
                &m,
                &restorer,
                &restore_opts(&m).with_verify_first(false),
                &NoProgress,
            )
            .await;
        let rec = restorer.recorded();
        let err = res.expect_err("restore must fail");
        assert_integrity(&err, &["checksum mismatch"], &what);
        assert!(rec.aborted, "{what}: the restore is rolled back");
        assert_restore_rolled_back(&rec, &expected, &what);

        // The earlier backup is untouched; remove the corrupt one for the next round.
        repo.delete_backup(&m.id).await.expect("delete");
        assert_repo_holds_exactly(&inner, &[&earlier], &what).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Corrupted stored objects
// ---------------------------------------------------------------------------------------------

async fn put_over(storage: &Arc<dyn Storage>, key: &ObjectKey, bytes: Vec<u8>) {
    storage
        .put(key, Bytes::from(bytes), WriteOptions::default())
        .await
        .expect("overwrite");
}

/// Runs verify (with and without a checker) and restore on a corrupted backup; both must fail
/// with an integrity error containing `fragments`, and the restore must not commit. Returns the
/// verify error's message.
async fn assert_corruption_caught(
    repo: &Repository,
    m: &Manifest,
    expected: &[u8],
    fragments: &[&str],
    what: &str,
) -> String {
    let err = repo
        .verify(m, None, &NoProgress)
        .await
        .expect_err("verify must fail");
    assert_integrity(&err, fragments, &format!("{what}: verify"));
    let message = err.to_string();

    let checker = RecordingRestorer::new();
    let err = repo
        .verify(m, Some(&checker), &NoProgress)
        .await
        .expect_err("verify with checker must fail");
    assert_integrity(&err, fragments, &format!("{what}: verify with checker"));
    assert!(!checker.recorded().finished, "{what}: checker not finished");

    let (res, rec) = restore_into(repo, m).await;
    let err = res.expect_err("restore must fail");
    assert_integrity(&err, fragments, &format!("{what}: restore"));
    assert_restore_rolled_back(&rec, expected, &format!("{what}: restore"));
    message
}

/// RELIABILITY 16 and 17: bit flip, truncation (random offset and at the 1 MiB pipeline chunk
/// boundary), one byte appended, another backup's object swapped in, and the data object
/// missing, for every compression; verify and restore both refuse with distinct messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_data_object_matrix() {
    for c in ALL_COMPRESSIONS {
        let (inner, repo) = memory_repo();
        let dumper = FakeDumper::new(2 * MIB + 5, FakeOutcome::Succeed);
        let expected = dumper.expected_bytes();
        let m = backup_ok(&repo, &dumper, c).await;
        // Sized so that its object cannot coincide with one of the truncation cuts below.
        let other = backup_ok(&repo, &FakeDumper::new(MIB + 333, FakeOutcome::Succeed), c).await;
        let key = m.dump().unwrap().key().expect("key");
        let original = inner.get_bytes(&key).await.expect("read").to_vec();
        let len = original.len() as u64;
        let mut messages = Vec::new();

        // A bit flip in the middle.
        let mut flipped = original.clone();
        flipped[original.len() / 2] ^= 0x10;
        put_over(&inner, &key, flipped).await;
        messages.push(
            assert_corruption_caught(
                &repo,
                &m,
                &expected,
                &["checksum mismatch"],
                &format!("{c}: bit flip"),
            )
            .await,
        );

        // Truncation at a random offset, and at the pipeline's chunk boundary.
        let mut random = 1 + random_below(len - 1);
        if random == MIB || random == other.stored_size() {
            random -= 1; // keep every case's message distinct
        }
        let mut cuts = vec![random];
        if len > MIB + 1 {
            cuts.push(MIB);
        }
        for cut in cuts {
            put_over(&inner, &key, original[..cut as usize].to_vec()).await;
            messages.push(
                assert_corruption_caught(
                    &repo,
                    &m,
                    &expected,
                    &["truncated", &format!("{cut} bytes")],
                    &format!("{c}: truncated at {cut} of {len}"),
                )
                .await,
            );
        }

        // One byte appended.
        let mut appended = original.clone();
        appended.push(0);
        put_over(&inner, &key, appended).await;
        messages.push(
            assert_corruption_caught(
                &repo,
                &m,
                &expected,
                &["appended", &format!("{} bytes", len + 1)],
                &format!("{c}: appended"),
            )
            .await,
        );

        // Another backup's (valid, differently sized) object swapped in.
        let other_bytes = inner
            .get_bytes(&other.dump().unwrap().key().expect("key"))
            .await
            .expect("read");
        put_over(&inner, &key, other_bytes.to_vec()).await;
        messages.push(
            assert_corruption_caught(
                &repo,
                &m,
                &expected,
                &[&format!("the manifest says {len}")],
                &format!("{c}: swapped"),
            )
            .await,
        );

        // The data object is missing.
        inner.delete(&key).await.expect("delete");
        messages.push(
            assert_corruption_caught(
                &repo,
                &m,
                &expected,
                &["incomplete", "missing", m.id.as_str()],
                &format!("{c}: missing"),
            )
            .await,
        );

        let distinct: BTreeSet<&String> = messages.iter().collect();
        assert_eq!(
            distinct.len(),
            messages.len(),
            "{c}: every case has its own message: {messages:#?}"
        );

        // Put it back: everything verifies again, the other backup was never affected.
        put_over(&inner, &key, original).await;
        assert_repo_holds_exactly(&inner, &[&m, &other], &format!("{c}: repaired")).await;
    }
}

/// RELIABILITY 16: another backup's object *of the same size* swapped in (a valid archive of a
/// different dump): only the checksum can tell, and it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_size_object_swap_is_a_checksum_mismatch() {
    for c in ALL_COMPRESSIONS {
        let (inner, repo) = memory_repo();
        let target = SeededDumper {
            size: 2 * MIB,
            seed: 1,
        };
        let m = backup_ok(&repo, &target, c).await;
        let other = backup_ok(
            &repo,
            &SeededDumper {
                size: 2 * MIB,
                seed: 2,
            },
            c,
        )
        .await;
        let other_bytes = inner
            .get_bytes(&other.dump().unwrap().key().expect("key"))
            .await
            .expect("read");
        put_over(
            &inner,
            &m.dump().unwrap().key().expect("key"),
            other_bytes.to_vec(),
        )
        .await;
        let fragment = if other.stored_size() == m.stored_size() {
            "checksum mismatch"
        } else {
            // Random data compresses to the same size in practice, but do not depend on it.
            "truncated or appended"
        };
        if c == Compression::None {
            assert_eq!(other.stored_size(), m.stored_size());
        }
        assert_corruption_caught(
            &repo,
            &m,
            &target.bytes(),
            &[fragment],
            &format!("{c}: same-size swap"),
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------------------------

/// RELIABILITY 15: a corrupt manifest and one of an unknown format version are listed as invalid
/// (the others still listed, `latest` unaffected), and resolving them fails clearly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_future_manifests_are_invalid_not_backups() {
    let (inner, repo) = memory_repo();
    let good = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    let corrupt = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    let future = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;

    // Truncated JSON.
    let key = manifest_key(corrupt.id.as_str());
    let bytes = inner.get_bytes(&key).await.expect("read");
    put_over(&inner, &key, bytes[..bytes.len() / 2].to_vec()).await;
    // A manifest from a future pgb.
    let key = manifest_key(future.id.as_str());
    let mut json: serde_json::Value =
        serde_json::from_slice(&inner.get_bytes(&key).await.expect("read")).expect("json");
    json["format_version"] = serde_json::json!(99);
    put_over(&inner, &key, serde_json::to_vec(&json).expect("json")).await;

    let listing = repo.list().await.expect("list still works");
    let ids: Vec<String> = listing.backups.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(
        ids,
        [good.id.to_string()],
        "only the good backup is a backup"
    );
    assert!(listing.leftovers.is_empty());
    assert_eq!(listing.invalid.len(), 2, "{:?}", listing.invalid);
    let problem = |id: &str| {
        listing
            .invalid
            .iter()
            .find(|i| i.id == id)
            .unwrap_or_else(|| panic!("{id} listed as invalid: {:?}", listing.invalid))
            .problem
            .clone()
    };
    assert!(
        problem(corrupt.id.as_str()).contains("not a pgb manifest"),
        "{}",
        problem(corrupt.id.as_str())
    );
    assert!(
        problem(future.id.as_str()).contains("unknown manifest format version 99"),
        "{}",
        problem(future.id.as_str())
    );

    // `latest` is the good one even though both invalid ones are newer.
    assert_eq!(
        repo.resolve("latest", None).await.expect("latest").id,
        good.id
    );

    let err = repo
        .resolve(future.id.as_str(), None)
        .await
        .expect_err("resolve must refuse");
    assert_integrity(
        &err,
        &["format version 99", "upgrade pgb", future.id.as_str()],
        "future manifest",
    );
    let err = repo
        .resolve(corrupt.id.as_str(), None)
        .await
        .expect_err("resolve must refuse");
    assert_integrity(
        &err,
        &["not a pgb manifest", corrupt.id.as_str()],
        "corrupt manifest",
    );
    repo.verify(&good, None, &NoProgress)
        .await
        .expect("the good backup still verifies");

    // An unknown id is NotFound, not Integrity.
    let err = repo
        .resolve("20200101T000000Z-abcdef", None)
        .await
        .expect_err("unknown id");
    assert_class(&err, ErrorClass::NotFound, "unknown id");
}

// ---------------------------------------------------------------------------------------------
// Delete, gc and latest
// ---------------------------------------------------------------------------------------------

/// RELIABILITY 26: delete removes the manifest first, then the data; an interrupted delete never
/// leaves a manifest without its data, and a re-run completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_manifest_first_and_resumes() {
    let (inner, repo) = memory_repo();
    let keep = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    let a = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    let b = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;

    // Order of a clean delete: the manifest, then everything else in the folder.
    let folder: Vec<String> = all_keys(&inner)
        .await
        .into_iter()
        .filter(|k| k.starts_with(&format!("backups/{}/", a.id)))
        .collect();
    assert!(folder.contains(&a.dump().unwrap().key), "{folder:?}");
    let (fault, frepo) = fault_repo(FaultStorage::new(Arc::clone(&inner)));
    frepo.delete_backup(&a.id).await.expect("delete");
    let deletes = fault.ops_starting_with("delete ");
    assert_eq!(
        deletes.first(),
        Some(&format!("delete backups/{}/manifest.json", a.id)),
        "manifest first: {deletes:?}"
    );
    let mut rest: Vec<String> = deletes[1..]
        .iter()
        .map(|d| d.trim_start_matches("delete ").to_owned())
        .collect();
    rest.sort();
    let mut others: Vec<String> = folder
        .into_iter()
        .filter(|k| !k.ends_with("/manifest.json"))
        .collect();
    others.sort();
    assert_eq!(rest, others, "then the rest of the folder, data included");
    assert_eq!(fault.writes(), 0, "a delete writes nothing");
    assert_repo_holds_exactly(&inner, &[&keep, &b], "after delete").await;

    // Interrupted after the manifest: the 2nd delete fails.
    let (fault, frepo) = fault_repo(FaultStorage::new(Arc::clone(&inner)).fail_delete_at(2));
    let err = frepo
        .delete_backup(&b.id)
        .await
        .expect_err("the 2nd delete fails");
    assert!(err.to_string().contains("delete failed"), "{err}");
    assert_eq!(fault.count_ops("delete "), 2, "{:?}", fault.ops());
    let listing = repo.list().await.expect("list");
    assert!(
        listing.backups.iter().all(|m| m.id != b.id),
        "a half-deleted backup is not a backup"
    );
    for m in &listing.backups {
        assert!(
            inner
                .exists(&m.dump().unwrap().key().expect("key"))
                .await
                .expect("head"),
            "no manifest without its data: {}",
            m.id
        );
    }
    assert_eq!(
        listing
            .leftovers
            .iter()
            .map(|l| l.id.clone())
            .collect::<Vec<_>>(),
        [b.id.to_string()],
        "the rest of the half-deleted backup is a leftover"
    );

    // A re-run completes it (the manifest is already gone: deleting it again is fine).
    fault.disarm();
    frepo.delete_backup(&b.id).await.expect("re-run");
    assert_repo_holds_exactly(&inner, &[&keep], "after re-run").await;
}

fn leftover_ids(leftovers: &[Leftover]) -> Vec<&str> {
    leftovers.iter().map(|l| l.id.as_str()).collect()
}

/// Produces a leftover the way a crash between data and manifest would: the manifest write
/// fails and so does the clean-up of the data. Returns the leftover's id.
async fn make_leftover(inner: &Arc<dyn Storage>) -> String {
    let before: BTreeSet<String> = Repository::new(Arc::clone(inner))
        .list()
        .await
        .expect("list")
        .leftovers
        .into_iter()
        .map(|l| l.id)
        .collect();
    let (fault, frepo) = fault_repo(
        FaultStorage::new(Arc::clone(inner))
            .only_keys(|k| is_data(k) || is_manifest(k))
            .fail_finish_at(2) // 1: data, 2: manifest
            .fail_delete_at(1), // the clean-up of the data
    );
    backup_err(
        &frepo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    assert_eq!(fault.injected(), 2, "{:?}", fault.ops());
    let after: Vec<String> = Repository::new(Arc::clone(inner))
        .list()
        .await
        .expect("list")
        .leftovers
        .into_iter()
        .map(|l| l.id)
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(after.len(), 1, "one new leftover: {after:?}");
    after.into_iter().next().expect("one")
}

/// RELIABILITY 13, 22 and 23 (gc side): gc removes leftovers older than the grace period, keeps
/// younger ones, never touches complete backups (however old), and a dry run removes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_only_old_leftovers() {
    let (inner, repo) = memory_repo();
    let complete = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    let old = make_leftover(&inner).await;
    let young = make_leftover(&inner).await;
    assert_ne!(old, young);

    let dir = |id: &str| ObjectKey::parse(&format!("backups/{id}")).expect("key");
    let two_hours = Duration::from_secs(2 * 3600);
    let (fault, frepo) = fault_repo(
        FaultStorage::new(Arc::clone(&inner))
            .age_objects(&dir(&old), two_hours)
            .age_objects(&dir(complete.id.as_str()), two_hours),
    );
    let now = time::OffsetDateTime::now_utc();
    let grace = time::Duration::hours(1);

    let planned = frepo.gc(now, grace, true).await.expect("dry run");
    assert_eq!(leftover_ids(&planned.leftovers), [old.as_str()]);
    assert_eq!(fault.deletes(), 0, "a dry run deletes nothing");

    let removed = frepo.gc(now, grace, false).await.expect("gc");
    assert_eq!(leftover_ids(&removed.leftovers), [old.as_str()]);
    for op in fault.ops_starting_with("delete ") {
        assert!(
            op.starts_with(&format!("delete backups/{old}/")),
            "gc deleted only the old leftover: {op}"
        );
    }
    let listing = repo.list().await.expect("list");
    assert_eq!(
        leftover_ids(&listing.leftovers),
        [young.as_str()],
        "the young leftover is kept"
    );
    assert_eq!(listing.backups.len(), 1);
    repo.verify(&complete, None, &NoProgress)
        .await
        .expect("the complete backup is intact");

    // Once the young one is past the grace period too, it goes; the backup still stays.
    let removed = repo
        .gc(now + time::Duration::hours(2), grace, false)
        .await
        .expect("gc later");
    assert_eq!(leftover_ids(&removed.leftovers), [young.as_str()]);
    assert_repo_holds_exactly(&inner, &[&complete], "after gc").await;
}

/// RELIABILITY 13 and 22: `latest` is the newest *complete* backup; a newer leftover, a newer
/// failed backup and a newer invalid manifest are ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_ignores_newer_incomplete_backups() {
    let (inner, repo) = memory_repo();
    let err = repo
        .resolve("latest", None)
        .await
        .expect_err("empty repository");
    assert_class(&err, ErrorClass::NotFound, "latest of nothing");

    let a = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    let b = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::None,
    )
    .await;
    assert!(a.started_at <= b.started_at);
    assert_eq!(repo.resolve("latest", None).await.expect("latest").id, b.id);

    // A leftover of a crashed backup started after b (same second at worst: ids then differ
    // only by their random suffix), and one whose id is an hour newer still.
    let leftover = make_leftover(&inner).await;
    assert!(
        leftover[..16] >= b.id.as_str()[..16],
        "the leftover started no earlier than b"
    );
    let future = BackupId::generate(time::OffsetDateTime::now_utc() + time::Duration::hours(1));
    put_over(
        &inner,
        &ObjectKey::parse(&format!("backups/{future}/data.dump.zst")).expect("key"),
        b"partial".to_vec(),
    )
    .await;
    assert_eq!(repo.list().await.expect("list").leftovers.len(), 2);
    backup_err(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::FailAfter(MIB / 2)),
        Compression::default(),
    )
    .await;
    let latest = repo.resolve("latest", None).await.expect("latest");
    assert_eq!(latest.id, b.id, "the newest complete backup");
    assert_eq!(
        repo.resolve("latest", Some("fakedb"))
            .await
            .expect("latest of db")
            .id,
        b.id
    );
    let err = repo
        .resolve("latest", Some("otherdb"))
        .await
        .expect_err("no backup of otherdb");
    assert_class(&err, ErrorClass::NotFound, "latest of another database");

    let (res, rec) = restore_into(&repo, &latest).await;
    res.expect("restore latest");
    assert!(rec.finished);
    assert!(rec.data == FakeDumper::new(MIB, FakeOutcome::Succeed).expected_bytes());
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

/// RELIABILITY 24: two concurrent backups to the same repository get distinct ids, never
/// overwrite each other, and both verify and restore.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_backups_get_distinct_ids_and_both_verify() {
    let (inner, repo) = memory_repo();
    let d1 = FakeDumper::new(3 * MIB, FakeOutcome::Succeed);
    let d2 = FakeDumper::new(2 * MIB + 1, FakeOutcome::Succeed);
    let r1 = repo.clone();
    let r2 = repo.clone();
    let (j1, j2) = {
        let (d1, d2) = (d1.clone(), d2.clone());
        (
            tokio::spawn(async move {
                r1.backup(&d1, &opts(Compression::Zstd { level: 3 }), &NoProgress)
                    .await
            }),
            tokio::spawn(async move {
                r2.backup(&d2, &opts(Compression::Gzip { level: 6 }), &NoProgress)
                    .await
            }),
        )
    };
    let m1 = j1.await.expect("join").expect("backup 1");
    let m2 = j2.await.expect("join").expect("backup 2");
    assert_ne!(m1.id, m2.id, "distinct ids");
    assert_ne!(m1.dump().unwrap().key, m2.dump().unwrap().key);
    assert_repo_holds_exactly(&inner, &[&m1, &m2], "two concurrent backups").await;
    for (m, d) in [(&m1, &d1), (&m2, &d2)] {
        let (res, rec) = restore_into(&repo, m).await;
        res.expect("restore");
        assert!(rec.finished);
        assert!(
            rec.data == d.expected_bytes(),
            "{}: no mix of the two",
            m.id
        );
    }
}

/// RELIABILITY test 10 with `verify_upload`: a store that flips a byte while keeping the size
/// is caught before the manifest is written, so the corrupt backup never exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_upload_catches_a_flipped_byte_before_commit() {
    let (inner, repo) = memory_repo();
    let earlier = backup_ok(
        &repo,
        &FakeDumper::new(MIB, FakeOutcome::Succeed),
        Compression::default(),
    )
    .await;
    let (fault, frepo) = fault_repo(
        FaultStorage::new(Arc::clone(&inner))
            .only_keys(is_data)
            .flip_byte_at(100),
    );
    let opts = BackupOptions::default().with_verify_upload(true);
    let err = frepo
        .backup(
            &FakeDumper::new(2 * MIB, FakeOutcome::Succeed),
            &opts,
            &NoProgress,
        )
        .await
        .expect_err("the read-back check must fail the backup");
    assert_eq!(fault.injected(), 1, "the lie happened");
    assert_integrity(&err, &["read back after upload"], "verify_upload");
    assert_repo_holds_exactly(&inner, &[&earlier], "verify_upload").await;
}
