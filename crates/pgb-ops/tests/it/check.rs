//! `check`, verification evidence and the verified-backup retention rule, on real repositories
//! (local disk) filled by the real backup pipeline with pgb-testkit's deterministic dumper.
//! Needs no database server.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use pgb_core::retention::{Backup as RetBackup, Policy, RetentionPolicy};
use pgb_core::{
    AuthKey, BackupOptions, Manifest, NoProgress, ObjectKey, Repository, StorageExt, WriteOptions,
};
use pgb_ops::{
    CheckOptions, CheckStatus, nagios, newest_verified, protect_newest_verified, record_verified,
    verified_ids,
};
use pgb_storage_local::FsStorage;
use pgb_testkit::{FakeDumper, FakeOutcome, FaultStorage};
use time::OffsetDateTime;

async fn repo() -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::open(dir.path()).unwrap();
    (dir, Repository::new(Arc::new(storage)))
}

async fn backup(repo: &Repository, size: u64) -> Manifest {
    repo.backup(
        &FakeDumper::new(size, FakeOutcome::Succeed),
        &BackupOptions::default(),
        &NoProgress,
    )
    .await
    .expect("backup")
}

#[tokio::test]
async fn an_empty_repository_is_critical_and_an_unreadable_one_unknown() {
    let (_dir, repo) = repo().await;
    let r = pgb_ops::check(&repo, &CheckOptions::new(OffsetDateTime::now_utc())).await;
    assert_eq!(r.status, CheckStatus::Critical);
    assert_eq!(r.status.code(), 2);
    assert!(
        nagios(&r).starts_with("PGB CRITICAL - no complete backups"),
        "{}",
        nagios(&r)
    );

    // A repository that cannot be listed (unreachable endpoint, no permission): UNKNOWN.
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::open(dir.path()).unwrap();
    let repo = Repository::new(Arc::new(FaultStorage::new(Arc::new(storage)).fail_list()));
    let r = pgb_ops::check(&repo, &CheckOptions::new(OffsetDateTime::now_utc())).await;
    assert_eq!(r.status, CheckStatus::Unknown, "{r:?}");
    assert_eq!(r.status.code(), 3);
    assert!(
        nagios(&r).starts_with("PGB UNKNOWN - cannot read the repository"),
        "{}",
        nagios(&r)
    );
}

#[tokio::test]
async fn a_check_of_one_database_sees_only_its_sets() {
    let (_dir, repo) = repo().await;
    backup(&repo, 10_000).await;
    let now = OffsetDateTime::now_utc();
    let mine = pgb_ops::check(&repo, &CheckOptions::new(now).with_database("fakedb")).await;
    assert_eq!(mine.status, CheckStatus::Ok, "{mine:?}");
    assert_eq!(mine.sets.len(), 1);
    assert_eq!(mine.sets[0].database, "fakedb");
    // Another job's database in the same repository has no backups: CRITICAL, naming it.
    let other = pgb_ops::check(&repo, &CheckOptions::new(now).with_database("shop")).await;
    assert_eq!(other.status, CheckStatus::Critical);
    assert!(other.sets.is_empty(), "{other:?}");
    assert!(
        other
            .summary()
            .contains("no complete backups of database shop"),
        "{}",
        other.summary()
    );
}

#[tokio::test]
async fn check_goes_critical_when_the_newest_backup_ages_past_max_age() {
    let (_dir, repo) = repo().await;
    let m = backup(&repo, 200_000).await;
    let now = OffsetDateTime::now_utc();
    let opts = CheckOptions::new(now).with_max_age(Duration::from_secs(3600));
    let r = pgb_ops::check(&repo, &opts).await;
    assert_eq!(r.status, CheckStatus::Ok, "{r:?}");
    assert_eq!(r.sets.len(), 1);
    let newest = r.sets[0].newest.as_ref().unwrap();
    assert_eq!(newest.id, m.id.to_string());
    assert_eq!(newest.stored_size, m.stored_size());
    let line = nagios(&r);
    assert!(line.starts_with("PGB OK - 1 backup set"), "{line}");
    assert!(
        line.contains(&format!("'size {}'={}B;;;0;", m.set, m.stored_size())),
        "{line}"
    );
    assert!(line.contains(";;3600;0;"), "{line}");

    // Two hours later, with no new backup: CRITICAL, naming the backup and the limit.
    let later =
        CheckOptions::new(now + time::Duration::hours(2)).with_max_age(Duration::from_secs(3600));
    let r = pgb_ops::check(&repo, &later).await;
    assert_eq!(r.status, CheckStatus::Critical, "{r:?}");
    let line = nagios(&r);
    assert!(line.starts_with("PGB CRITICAL - "), "{line}");
    assert!(
        line.contains(&format!("newest backup {} is 2h old (max 60m)", m.id)),
        "{line}"
    );
}

#[tokio::test]
async fn size_anomalies_are_reported() {
    let (_dir, repo) = repo().await;
    for size in [1_000_000, 1_100_000, 900_000, 1_050_000, 1_000_000] {
        backup(&repo, size).await;
    }
    let small = backup(&repo, 400_000).await;
    let now = OffsetDateTime::now_utc();
    // 60% below the median (1,000,000) of the previous five: a drop over 50% warns.
    let r = pgb_ops::check(
        &repo,
        &CheckOptions::new(now).with_max_size_drop_percent(50),
    )
    .await;
    assert_eq!(r.status, CheckStatus::Warning, "{r:?}");
    assert!(
        r.sets[0].findings[0]
            .message
            .contains("60% smaller than the median of the previous 5"),
        "{:?}",
        r.sets[0].findings
    );
    // A 70% threshold tolerates it.
    let r = pgb_ops::check(
        &repo,
        &CheckOptions::new(now).with_max_size_drop_percent(70),
    )
    .await;
    assert_eq!(r.status, CheckStatus::Ok, "{r:?}");
    // Below an absolute minimum: critical.
    let r = pgb_ops::check(
        &repo,
        &CheckOptions::new(now).with_min_size(small.stored_size() + 1),
    )
    .await;
    assert_eq!(r.status, CheckStatus::Critical, "{r:?}");
    // The report is JSON for monitoring and webhooks.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["status"], "CRITICAL");
    assert_eq!(json["sets"][0]["backups"], 6);
}

#[tokio::test]
async fn a_missing_drill_warns_when_drills_are_expected() {
    let (_dir, repo) = repo().await;
    backup(&repo, 100_000).await;
    let r = pgb_ops::check(
        &repo,
        &CheckOptions::new(OffsetDateTime::now_utc())
            .with_max_drill_age(Duration::from_secs(86400)),
    )
    .await;
    assert_eq!(r.status, CheckStatus::Warning);
    assert_eq!(r.sets[0].findings[0].message, "no drill recorded");
}

#[tokio::test]
async fn verification_evidence_is_recorded_beside_the_backup_and_checked() {
    let (_dir, repo) = repo().await;
    let key: AuthKey = "ab".repeat(32).parse().unwrap();
    let a = backup(&repo, 100_000).await;
    let b = backup(&repo, 100_000).await;
    let report = repo.verify(&a, None, &NoProgress).await.unwrap();
    let k = record_verified(&repo, &a, &report, OffsetDateTime::now_utc(), Some(&key))
        .await
        .unwrap();
    assert!(
        k.as_str()
            .starts_with(&format!("backups/{}/verified/", a.id)),
        "{k:?}"
    );

    let listing = repo.list().await.unwrap();
    // The evidence does not disturb the listing.
    assert_eq!(listing.backups.len(), 2);
    assert!(listing.leftovers.is_empty());
    let ids = verified_ids(&repo, &listing, Some(&key)).await.unwrap();
    assert_eq!(ids, BTreeSet::from([a.id.clone()]));
    assert_eq!(newest_verified(&listing, &a.set, &ids).unwrap().id, a.id);

    // The wrong key: the record does not count.
    let other: AuthKey = "cd".repeat(32).parse().unwrap();
    assert!(
        verified_ids(&repo, &listing, Some(&other))
            .await
            .unwrap()
            .is_empty()
    );

    // A forged record (right shape, altered body) does not count either.
    let forged = String::from_utf8(repo.storage().get_bytes(&k).await.unwrap().to_vec())
        .unwrap()
        .replace(a.id.as_str(), b.id.as_str());
    let fk = ObjectKey::parse(&format!("backups/{}/verified/forged.json", b.id)).unwrap();
    repo.storage()
        .put(&fk, forged.into(), WriteOptions::create_new())
        .await
        .unwrap();
    let ids = verified_ids(&repo, &listing, None).await.unwrap();
    assert_eq!(ids, BTreeSet::from([a.id.clone()]));

    // Deleting the backup deletes its evidence.
    repo.delete_backup(&a.id).await.unwrap();
    let listing = repo.list().await.unwrap();
    assert!(
        verified_ids(&repo, &listing, None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn prune_keeps_an_older_verified_backup_when_newer_ones_were_never_verified() {
    let (_dir, repo) = repo().await;
    let old = backup(&repo, 100_000).await;
    let mid = backup(&repo, 100_000).await;
    let new = backup(&repo, 100_000).await;
    let report = repo.verify(&old, None, &NoProgress).await.unwrap();
    record_verified(&repo, &old, &report, OffsetDateTime::now_utc(), None)
        .await
        .unwrap();

    let listing = repo.list().await.unwrap();
    let verified = verified_ids(&repo, &listing, None).await.unwrap();
    let set: Vec<&Manifest> = listing.backups.iter().collect();
    let ret: Vec<RetBackup> = set
        .iter()
        .map(|m| RetBackup::new(m.id.as_str(), m.started_at))
        .collect();
    let policy = Policy::default().with_keep_last(1);
    let mut plan = policy.plan(&ret, OffsetDateTime::now_utc()).unwrap();
    assert!(plan.remove.contains(&old.id.to_string()));
    assert!(plan.remove.contains(&mid.id.to_string()));

    let protected = protect_newest_verified(&mut plan, &set, &verified).unwrap();
    assert_eq!(protected.id, old.id.to_string());
    assert_eq!(protected.reason, "newest verified backup of the set");
    assert_eq!(plan.remove, vec![mid.id.to_string()]);
    assert_eq!(plan.kept_ids().collect::<Vec<_>>(), vec![new.id.as_str()]);

    // Once the newest backup is verified too, the older one is no longer protected.
    let report = repo.verify(&new, None, &NoProgress).await.unwrap();
    record_verified(&repo, &new, &report, OffsetDateTime::now_utc(), None)
        .await
        .unwrap();
    // The evidence is read from a listing: a new one sees the new record.
    let relisted = repo.list().await.unwrap();
    let verified = verified_ids(&repo, &relisted, None).await.unwrap();
    let mut plan = policy.plan(&ret, OffsetDateTime::now_utc()).unwrap();
    assert!(protect_newest_verified(&mut plan, &set, &verified).is_none());
    assert_eq!(plan.remove.len(), 2);
}

/// The daemon lists a repository once for all the jobs that share it: each job's check over
/// that listing says what its own check would, and reads no listing of its own.
#[tokio::test]
async fn one_listing_serves_the_checks_of_every_job_sharing_the_repository() {
    let (_dir, repo) = repo().await;
    backup(&repo, 10_000).await;
    let now = OffsetDateTime::now_utc();
    let listing = repo.list().await;
    let mine_opts = CheckOptions::new(now).with_database("fakedb");
    let other_opts = CheckOptions::new(now).with_database("shop");
    let mine = pgb_ops::check_listed(&repo, listing.as_ref(), &mine_opts).await;
    let other = pgb_ops::check_listed(&repo, listing.as_ref(), &other_opts).await;
    assert_eq!(mine.status, CheckStatus::Ok, "{mine:?}");
    assert_eq!(other.status, CheckStatus::Critical, "{other:?}");
    assert_eq!(
        mine.summary(),
        pgb_ops::check(&repo, &mine_opts).await.summary()
    );
    assert_eq!(
        other.summary(),
        pgb_ops::check(&repo, &other_opts).await.summary()
    );

    // A backup committed after the listing is not seen through it: no second listing.
    let newer = backup(&repo, 20_000).await;
    let again = pgb_ops::check_listed(&repo, listing.as_ref(), &mine_opts).await;
    assert!(
        again.sets[0]
            .newest
            .as_ref()
            .is_some_and(|n| n.id != newer.id.to_string()),
        "{again:?}"
    );
}
