//! Evidence records across pgb versions, from fixture files (tests/fixtures/records, see its
//! README) copied into a local repository: records written by an earlier pgb and by a newer
//! one that added fields read as valid, altered ones as altered, oversized ones are refused
//! without being read. Needs no database server.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use pgb_core::{AuthKey, BackupId, ObjectKey, Repository, StorageExt, WriteOptions};
use pgb_ops::{CheckOptions, CheckStatus, DrillOutcome, DrillReport, drill_history, verified_ids};
use pgb_storage_local::FsStorage;
use pgb_testkit::FaultStorage;

/// The backup of `fixtures/records/backup`, which every fixture record is evidence for.
const ID: &str = "20261205T003730Z-2de381";
/// When the fixture drills ran: the first at 01:37:30, the second at 02:37:30.
const DRILLS_DONE: time::OffsetDateTime = time::macros::datetime!(2026-12-05 03:00:00 UTC);

fn key() -> AuthKey {
    "a1".repeat(32).parse().unwrap()
}

fn id() -> BackupId {
    ID.parse().unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/records/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn put(repo: &Repository, key: &str, bytes: Vec<u8>) {
    repo.storage()
        .put(
            &ObjectKey::parse(key).unwrap(),
            bytes.into(),
            WriteOptions::create_new(),
        )
        .await
        .unwrap();
}

/// A local repository holding the fixture backup, behind a (fault-free) recording wrapper.
async fn fixture_repo() -> (tempfile::TempDir, Repository, Arc<FaultStorage>) {
    let dir = tempfile::tempdir().unwrap();
    let fs = FsStorage::open(dir.path()).unwrap();
    let fault = Arc::new(FaultStorage::new(Arc::new(fs)));
    let repo = Repository::new(Arc::clone(&fault) as Arc<dyn pgb_core::Storage>);
    for name in ["manifest.json", "data.dump.zst", "data.dump.zst.sha256"] {
        put(
            &repo,
            &format!("backups/{ID}/{name}"),
            fixture(&format!("backup/{name}")),
        )
        .await;
    }
    let listing = repo.list().await.unwrap();
    assert_eq!(listing.backups.len(), 1, "{listing:?}");
    assert_eq!(listing.backups[0].id, id());
    (dir, repo, fault)
}

fn verified_key() -> String {
    format!("backups/{ID}/verified/20261205T004730Z.json")
}

fn drill_key() -> String {
    format!("drills/{ID}/20261205T013730Z.json")
}

async fn verified(repo: &Repository, auth: Option<&AuthKey>) -> BTreeSet<BackupId> {
    let listing = repo.list().await.unwrap();
    verified_ids(repo, &listing, auth).await.unwrap()
}

async fn check(repo: &Repository, auth: Option<AuthKey>) -> pgb_ops::CheckReport {
    let mut opts =
        CheckOptions::new(DRILLS_DONE).with_max_drill_age(Duration::from_secs(24 * 3600));
    if let Some(k) = auth {
        opts = opts.with_auth_key(k);
    }
    pgb_ops::check(repo, &opts).await
}

/// A verify record from `file` counts as evidence; an authenticated one also with the key.
async fn assert_verify_record_valid(file: &str, authenticated: bool) {
    let (_dir, repo, _) = fixture_repo().await;
    put(&repo, &verified_key(), fixture(file)).await;
    assert_eq!(
        verified(&repo, None).await,
        BTreeSet::from([id()]),
        "{file}"
    );
    let with_key = verified(&repo, Some(&key())).await;
    if authenticated {
        assert_eq!(with_key, BTreeSet::from([id()]), "{file}");
        // The wrong key: not evidence.
        let other: AuthKey = "b2".repeat(32).parse().unwrap();
        assert!(verified(&repo, Some(&other)).await.is_empty(), "{file}");
    } else {
        // With a key, an unauthenticated record is not evidence.
        assert!(with_key.is_empty(), "{file}");
    }
}

/// A drill record from `file` is listed with its report, verifies the backup and is the
/// drill `check` sees. Returns the report read.
async fn assert_drill_record_valid(file: &str, authenticated: bool) -> DrillReport {
    let (_dir, repo, _) = fixture_repo().await;
    put(&repo, &drill_key(), fixture(file)).await;
    let auth = authenticated.then(key);
    let history = drill_history(&repo, auth.as_ref()).await.unwrap();
    assert_eq!(history.len(), 1, "{file}");
    assert_eq!(history[0].problem, None, "{file}: {history:?}");
    assert_eq!(history[0].authenticated, authenticated, "{file}");
    let report = history[0].report.clone().expect(file);
    assert_eq!(report.backup_id, id());
    assert!(report.passed(), "{file}");

    assert_eq!(
        verified(&repo, auth.as_ref()).await,
        BTreeSet::from([id()]),
        "{file}"
    );
    let c = check(&repo, auth).await;
    assert_eq!(c.status, CheckStatus::Ok, "{file}: {c:#?}");
    let last = c.sets[0].last_drill.as_ref().expect(file);
    assert_eq!(last.backup_id, ID);
    assert_eq!(last.outcome, DrillOutcome::Passed);
    report
}

/// A drill record from `file` is listed as unusable with `problem`, is no evidence, and
/// `check` warns that no drill was recorded.
async fn assert_drill_record_unusable(repo: &Repository, auth: Option<AuthKey>, problem: &str) {
    let history = drill_history(repo, auth.as_ref()).await.unwrap();
    assert_eq!(history.len(), 1);
    assert!(history[0].report.is_none(), "{history:?}");
    let found = history[0].problem.as_deref().unwrap_or_default();
    assert!(found.contains(problem), "{found}");
    assert!(verified(repo, auth.as_ref()).await.is_empty());
    let c = check(repo, auth).await;
    assert_eq!(c.status, CheckStatus::Warning, "{c:#?}");
    assert!(c.sets[0].last_drill.is_none());
    assert_eq!(c.sets[0].findings[0].message, "no drill recorded");
}

#[tokio::test]
async fn records_written_by_the_landed_version_still_read_as_valid() {
    assert_verify_record_valid("landed/verified.json", false).await;
    assert_verify_record_valid("landed/verified-auth.json", true).await;
    let plain = assert_drill_record_valid("landed/drill.json", false).await;
    let authed = assert_drill_record_valid("landed/drill-auth.json", true).await;
    assert_eq!(plain.rto_ms, 95431);
    assert_eq!(authed.rpo_s, 7200);
    // Nested fields and escapes come through as written.
    assert_eq!(authed.checks[3].detail, "no estimates \"quoted\" é");
    assert!(authed.checks[3].skipped);
}

#[tokio::test]
async fn records_from_a_newer_pgb_with_fields_this_one_does_not_know_read_as_valid() {
    // Fields added to the body (also inside a check) by a newer pgb, sealed as written.
    assert_verify_record_valid("newer/verified.json", false).await;
    assert_verify_record_valid("newer/verified-auth.json", true).await;
    let plain = assert_drill_record_valid("newer/drill.json", false).await;
    let authed = assert_drill_record_valid("newer/drill-auth.json", true).await;
    // The fields this version knows are read as they are in the landed records.
    assert_eq!(plain.rto_ms, 95431);
    assert_eq!(authed.rpo_s, 7200);
    assert_eq!(authed.checks[2].detail, "all 3 tables of the archive exist");

    // The newer record is the newest drill of the backup when both are there.
    let (_dir, repo, _) = fixture_repo().await;
    put(&repo, &drill_key(), fixture("landed/drill-auth.json")).await;
    put(
        &repo,
        &format!("drills/{ID}/20261205T023730Z.json"),
        fixture("newer/drill-auth.json"),
    )
    .await;
    let history = drill_history(&repo, Some(&key())).await.unwrap();
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|e| e.problem.is_none()), "{history:?}");
}

#[tokio::test]
async fn altered_records_read_as_altered() {
    // A field added to a landed record after it was sealed.
    let (_dir, repo, _) = fixture_repo().await;
    put(
        &repo,
        &verified_key(),
        fixture("tampered/verified-injected-field.json"),
    )
    .await;
    assert!(verified(&repo, None).await.is_empty());

    // A changed field with its checksum recomputed: the MAC catches it.
    let (_dir, repo, _) = fixture_repo().await;
    put(
        &repo,
        &verified_key(),
        fixture("tampered/verified-auth-forged.json"),
    )
    .await;
    assert!(verified(&repo, Some(&key())).await.is_empty());

    // A field this version does not know, changed after the newer pgb sealed it.
    let (_dir, repo, _) = fixture_repo().await;
    put(
        &repo,
        &drill_key(),
        fixture("tampered/drill-unknown-field-changed.json"),
    )
    .await;
    assert_drill_record_unusable(&repo, None, "checksum mismatch: the record was altered").await;

    // A known field changed in an authenticated landed record.
    let (_dir, repo, _) = fixture_repo().await;
    put(
        &repo,
        &drill_key(),
        fixture("tampered/drill-auth-altered.json"),
    )
    .await;
    assert_drill_record_unusable(&repo, Some(key()), "checksum mismatch").await;
}

#[tokio::test]
async fn a_record_over_16_mib_is_unusable_and_never_read() {
    let (_dir, repo, fault) = fixture_repo().await;
    // Valid records padded with whitespace to 17 MiB: refused for their size alone.
    let pad = |mut bytes: Vec<u8>| {
        bytes.resize(17 << 20, b' ');
        bytes
    };
    put(&repo, &drill_key(), pad(fixture("landed/drill.json"))).await;
    put(&repo, &verified_key(), pad(fixture("landed/verified.json"))).await;

    assert_drill_record_unusable(
        &repo,
        None,
        &format!(
            "record {}: record is 17825792 bytes, over the 16 MiB limit for records; not read",
            drill_key()
        ),
    )
    .await;
    // Listed, never read: the listed size was enough to refuse them.
    assert_eq!(fault.count_ops("read drills/"), 0, "{:?}", fault.ops());
    assert_eq!(
        fault.count_ops(&format!("read backups/{ID}/verified/")),
        0,
        "{:?}",
        fault.ops()
    );

    // A record of exactly the limit is still read.
    let (_dir, repo, _) = fixture_repo().await;
    let mut at_limit = fixture("landed/drill.json");
    at_limit.resize(16 << 20, b' ');
    put(&repo, &drill_key(), at_limit).await;
    let history = drill_history(&repo, None).await.unwrap();
    assert_eq!(history[0].problem, None, "{history:?}");
}
