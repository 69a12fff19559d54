//! Incremental base backups in the repository, on `MemoryStorage`: prune keeps every ancestor
//! of a kept incremental (and only the WAL the kept incremental needs), a chain whose parent
//! is gone fails verify and the restore plan naming the parent, and a restore plan lists the
//! chain it combines.

use std::sync::Arc;

use bytes::Bytes;
use pgb_core::physical::{PhysicalRestoreRequest, RecoverySettings, RecoveryTarget};
use pgb_core::retention::Policy;
use pgb_core::wal::WalPushOptions;
use pgb_core::{
    BackupOptions, Error, IntegrityProblem, MemoryStorage, NoProgress, ObjectKey, PruneAction,
    PruneOptions, Repository, Storage, StorageExt, WriteOptions,
};
use pgb_testkit::{FakeDumper, FakeOutcome};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const SEG: u64 = 1 << 20;
const SYSID: u64 = 7_300_000_000_000_000_177;
const DAY0: OffsetDateTime = datetime!(2026-03-01 02:00 UTC);

fn seg(n: u64) -> String {
    pgb_wal::WalFileName::segment(1, n, SEG).to_string()
}

/// A segment of 1 MiB with a valid first page header.
fn segment(segno: u64) -> Bytes {
    let mut d = vec![0u8; SEG as usize];
    d[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
    d[2..4].copy_from_slice(&pgb_wal::XLP_LONG_HEADER.to_le_bytes());
    d[4..8].copy_from_slice(&1u32.to_le_bytes());
    d[8..16].copy_from_slice(&(segno * SEG).to_le_bytes());
    d[24..32].copy_from_slice(&SYSID.to_le_bytes());
    d[32..36].copy_from_slice(&(SEG as u32).to_le_bytes());
    d[36..40].copy_from_slice(&8192u32.to_le_bytes());
    Bytes::from(d)
}

/// A physical backup `day` days after DAY0 from segment `start` to `stop` (a fake backup whose
/// manifest is rewritten into a physical one), incremental on the `chain` given (oldest
/// first, the parent last).
async fn physical(
    storage: &Arc<dyn Storage>,
    repo: &Repository,
    day: i64,
    (start, stop): (u64, u64),
    chain: &[String],
) -> String {
    let m = repo
        .backup(
            &FakeDumper::new(1000, FakeOutcome::Succeed),
            &BackupOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap();
    let key = ObjectKey::parse(&format!("backups/{}/manifest.json", m.id)).unwrap();
    let mut v: serde_json::Value =
        serde_json::from_slice(&storage.get_bytes(&key).await.unwrap()).unwrap();
    let started = DAY0 + Duration::days(day);
    let fmt = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let lsn = |n: u64, off: u64| pgb_wal::Lsn(n * SEG + off).to_string();
    v["set"] = SYSID.to_string().into();
    v["database"] = "*".into();
    v["format"] = "physical".into();
    v["started_at"] = fmt(started).into();
    v["finished_at"] = fmt(started + Duration::minutes(1)).into();
    v["physical"] = serde_json::json!({
        "system_identifier": SYSID.to_string(),
        "timeline": 1,
        "start_lsn": lsn(start, 0x28),
        "stop_timeline": 1,
        "stop_lsn": lsn(stop, 0x100),
        "wal_segment_size": SEG,
        "wal": "archive",
        "start_wal_file": seg(start),
        "stop_wal_file": seg(stop),
        "stop_time": fmt(started + Duration::minutes(1)),
        "backup_manifest_sha256": "0".repeat(64),
        "files": 1000,
        "server_major": 17,
    });
    if let Some(parent) = chain.last() {
        v["physical"]["incremental"] = serde_json::json!({
            "parent": parent,
            "chain": chain,
            "parent_start_lsn": lsn(start - 1, 0x28),
            "parent_backup_manifest_sha256": "0".repeat(64),
        });
    }
    storage.delete(&key).await.unwrap();
    storage
        .put(
            &key,
            serde_json::to_vec(&v).unwrap().into(),
            WriteOptions::create_new(),
        )
        .await
        .unwrap();
    m.id.to_string()
}

/// Segments 1 to 14 archived; a full backup (day 0, segments 2-3), an incremental on it
/// (day 1, 6), an incremental on that (day 2, 10-11). Returns the ids, oldest first.
async fn chain() -> (Arc<dyn Storage>, Repository, Vec<String>) {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let repo = Repository::new(Arc::clone(&storage));
    let opts = WalPushOptions::default().with_system_identifier(Some(SYSID));
    for n in 1..=14 {
        repo.wal().push(&seg(n), segment(n), &opts).await.unwrap();
    }
    let full = physical(&storage, &repo, 0, (2, 3), &[]).await;
    let inc1 = physical(&storage, &repo, 1, (6, 6), std::slice::from_ref(&full)).await;
    let inc2 = physical(&storage, &repo, 2, (10, 11), &[full.clone(), inc1.clone()]).await;
    (storage, repo, vec![full, inc1, inc2])
}

#[tokio::test]
async fn prune_keeps_the_chain_of_a_kept_incremental_and_only_the_wal_it_needs() {
    let (_storage, repo, ids) = chain().await;
    let policy = Policy::default().with_keep_last(1);
    let now = DAY0 + Duration::days(3);
    for dry_run in [true, false] {
        let r = repo
            .prune(
                &policy,
                &PruneOptions::default().with_dry_run(dry_run).with_now(now),
            )
            .await
            .unwrap();
        let d = &r.sets[0].decisions;
        assert_eq!(d.len(), 3);
        assert!(d.iter().all(|d| d.action == PruneAction::Keep), "{d:?}");
        assert!(d[0].parent_of.is_empty());
        let inc2: pgb_core::BackupId = ids[2].parse().unwrap();
        assert_eq!(d[1].parent_of, vec![inc2.clone()], "the first incremental");
        assert_eq!(d[2].parent_of, vec![inc2], "the full backup");
        // The chain's WAL needs are the kept incremental's: from its start on.
        let w = &r.wal[0];
        assert_eq!(w.keep_from, Some(pgb_wal::Lsn(10 * SEG)));
        assert_eq!(
            w.delete
                .iter()
                .map(|r| (r.first.clone(), r.last.clone()))
                .collect::<Vec<_>>(),
            [(seg(1), seg(9))]
        );
    }
    assert_eq!(repo.list().await.unwrap().backups.len(), 3);
}

#[tokio::test]
async fn a_missing_parent_fails_verify_and_the_restore_plan_naming_it() {
    let (storage, repo, ids) = chain().await;
    // Only planned: nothing is written there.
    let dir = std::env::temp_dir().join(format!("pgb-incremental-plan-{}", std::process::id()));
    let req = |id: &str| {
        PhysicalRestoreRequest::new(
            id,
            dir.join("restored"),
            RecoverySettings::new(None, RecoveryTarget::EndOfArchive),
        )
    };
    let plan = repo.plan_physical_restore(&req("latest")).await.unwrap();
    assert_eq!(plan.backup.to_string(), ids[2]);
    assert_eq!(
        plan.chain
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ids[..2]
    );
    // The full backup is gone (its manifest deleted by hand).
    storage
        .delete(&ObjectKey::parse(&format!("backups/{}/manifest.json", ids[0])).unwrap())
        .await
        .unwrap();
    let m = repo.manifest(&ids[2].parse().unwrap()).await.unwrap();
    let broken = |e: Error| match e {
        Error::Integrity {
            id,
            problem: IntegrityProblem::BrokenChain { ancestor, why },
        } => (id.to_string(), ancestor, why),
        other => panic!("not a broken chain: {other}"),
    };
    let e = repo.verify(&m, None, &NoProgress).await.unwrap_err();
    assert!(e.to_string().contains("parent chain is broken"), "{e}");
    assert_eq!(
        broken(e),
        (
            ids[2].clone(),
            ids[0].clone(),
            "missing from the repository".to_owned()
        )
    );
    let e = repo.plan_physical_restore(&req(&ids[2])).await.unwrap_err();
    assert_eq!(broken(e).1, ids[0]);
    assert!(!dir.exists());
}
