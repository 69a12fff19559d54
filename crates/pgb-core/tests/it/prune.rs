//! `Repository::prune`: per set, complete backups only, never the newest of a set, labels
//! honoured, manifest first, dry run deletes nothing, a bad policy deletes nothing.

use std::sync::Arc;

use pgb_core::retention::{Backup, Plan, Policy, RetentionError, RetentionPolicy};
use pgb_core::{
    BackupOptions, Error, ErrorClass, MemoryStorage, NoProgress, ObjectKey, PruneAction,
    PruneOptions, PruneReport, Repository, Storage, StorageExt, WriteOptions,
};
use pgb_testkit::{FakeDumper, FakeOutcome};
use time::OffsetDateTime;

fn repo() -> (Arc<dyn Storage>, Repository) {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    (Arc::clone(&storage), Repository::new(storage))
}

/// Takes a backup with `labels`; returns its id.
async fn backup(repo: &Repository, labels: &[&str]) -> String {
    let opts = labels
        .iter()
        .fold(BackupOptions::default(), |o, l| o.with_label(*l));
    let m = repo
        .backup(
            &FakeDumper::new(10_000, FakeOutcome::Succeed),
            &opts,
            &NoProgress,
        )
        .await
        .expect("backup");
    m.id.to_string()
}

fn manifest_key(id: &str) -> ObjectKey {
    ObjectKey::parse(&format!("backups/{id}/manifest.json")).unwrap()
}

/// Moves backup `id` into another backup set by rewriting its (unauthenticated) manifest.
async fn move_to_set(storage: &Arc<dyn Storage>, id: &str, set: &str) {
    let key = manifest_key(id);
    let mut m: serde_json::Value =
        serde_json::from_slice(&storage.get_bytes(&key).await.unwrap()).unwrap();
    m["set"] = set.into();
    storage.delete(&key).await.unwrap();
    storage
        .put(
            &key,
            serde_json::to_vec(&m).unwrap().into(),
            WriteOptions::create_new(),
        )
        .await
        .unwrap();
}

async fn ids(repo: &Repository) -> Vec<String> {
    let listing = repo.list().await.unwrap();
    listing.backups.iter().map(|m| m.id.to_string()).collect()
}

fn keep_last(n: u32) -> Policy {
    Policy::default().with_keep_last(n)
}

/// `(id, action, deleted)` of every decision, in report order.
fn decisions(report: &PruneReport) -> Vec<(String, PruneAction, bool)> {
    report
        .sets
        .iter()
        .flat_map(|s| &s.decisions)
        .map(|d| (d.id.to_string(), d.action, d.deleted))
        .collect()
}

#[tokio::test]
async fn prune_deletes_what_the_policy_does_not_keep_and_explains_it() {
    let (storage, repo) = repo();
    let mut all = Vec::new();
    for _ in 0..3 {
        all.push(backup(&repo, &[]).await);
    }
    let report = repo
        .prune(&keep_last(1), &PruneOptions::default())
        .await
        .unwrap();
    assert_eq!(
        decisions(&report),
        [
            (all[2].clone(), PruneAction::Keep, false),
            (all[1].clone(), PruneAction::Remove, true),
            (all[0].clone(), PruneAction::Remove, true),
        ],
        "newest first, every backup decided"
    );
    let kept = &report.sets[0].decisions[0];
    assert_eq!(kept.reasons.len(), 1);
    assert_eq!(kept.reasons[0].to_string(), "last #1");
    assert!(!kept.newest_guard);
    assert_eq!(report.deleted(), 2);
    assert_eq!(ids(&repo).await, [all[2].clone()]);
    // Manifest and data are gone: no leftover of a pruned backup.
    let left = storage.list(None).await.unwrap();
    assert!(
        left.iter()
            .all(|o| !o.key.as_str().contains(&all[0]) && !o.key.as_str().contains(&all[1])),
        "{left:?}"
    );
    // The report is the JSON the CLI prints.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["sets"][0]["decisions"][1]["action"], "remove");
    assert_eq!(
        json["sets"][0]["decisions"][0]["reasons"][0]["rule"],
        "last"
    );
}

#[tokio::test]
async fn a_dry_run_decides_the_same_and_deletes_nothing() {
    let (_, repo) = repo();
    for _ in 0..3 {
        backup(&repo, &[]).await;
    }
    let before = ids(&repo).await;
    let dry = repo
        .prune(&keep_last(1), &PruneOptions::default().with_dry_run(true))
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.deleted(), 0);
    assert_eq!(dry.removals().count(), 2);
    assert_eq!(ids(&repo).await, before);
    let real = repo
        .prune(&keep_last(1), &PruneOptions::default())
        .await
        .unwrap();
    let strip = |r: &PruneReport| -> Vec<(String, PruneAction)> {
        decisions(r).into_iter().map(|(i, a, _)| (i, a)).collect()
    };
    assert_eq!(strip(&dry), strip(&real));
}

/// A policy that keeps nothing: only a broken policy would, which is what the guard is for.
#[derive(Debug)]
struct RemoveAll;

impl RetentionPolicy for RemoveAll {
    fn plan(&self, backups: &[Backup], _: OffsetDateTime) -> Result<Plan, RetentionError> {
        let mut plan = Policy::default()
            .with_keep_last(1)
            .plan(backups, OffsetDateTime::now_utc())?;
        plan.remove.extend(plan.keep.drain(..).map(|k| k.id));
        Ok(plan)
    }
}

#[tokio::test]
async fn the_newest_backup_of_a_set_is_never_deleted() {
    let (_, repo) = repo();
    let older = backup(&repo, &[]).await;
    let newest = backup(&repo, &[]).await;
    let report = repo
        .prune(&RemoveAll, &PruneOptions::default())
        .await
        .unwrap();
    let d = &report.sets[0].decisions;
    assert_eq!(d[0].id.as_str(), newest);
    assert_eq!(d[0].action, PruneAction::Keep);
    assert!(d[0].newest_guard && d[0].reasons.is_empty());
    assert_eq!(d[1].id.as_str(), older);
    assert_eq!(d[1].action, PruneAction::Remove);
    assert_eq!(ids(&repo).await, [newest]);
}

#[tokio::test]
async fn each_set_is_pruned_on_its_own() {
    let (storage, repo) = repo();
    let a0 = backup(&repo, &[]).await;
    let b0 = backup(&repo, &[]).await;
    let a1 = backup(&repo, &[]).await;
    let b1 = backup(&repo, &[]).await;
    move_to_set(&storage, &b0, "other:5432/db").await;
    move_to_set(&storage, &b1, "other:5432/db").await;
    let report = repo
        .prune(&keep_last(1), &PruneOptions::default())
        .await
        .unwrap();
    assert_eq!(report.sets.len(), 2);
    let mut left = ids(&repo).await;
    left.sort();
    let mut want = vec![a1, b1];
    want.sort();
    assert_eq!(left, want, "the newest of each set survives");
    assert!(!left.contains(&a0) && !left.contains(&b0));
}

#[tokio::test]
async fn labelled_backups_are_kept_by_a_label_rule() {
    let (_, repo) = repo();
    let labelled = backup(&repo, &["pre-migration"]).await;
    backup(&repo, &[]).await;
    let newest = backup(&repo, &[]).await;
    let policy = keep_last(1).with_keep_label("pre-migration");
    let report = repo.prune(&policy, &PruneOptions::default()).await.unwrap();
    let kept = report
        .sets
        .iter()
        .flat_map(|s| &s.decisions)
        .find(|d| d.id.as_str() == labelled)
        .unwrap();
    assert_eq!(kept.action, PruneAction::Keep);
    assert_eq!(kept.labels, ["pre-migration"]);
    assert_eq!(kept.reasons[0].to_string(), "label pre-migration");
    let mut left = ids(&repo).await;
    left.sort();
    let mut want = [labelled, newest];
    want.sort();
    assert_eq!(left, want);
}

#[tokio::test]
async fn unusable_manifests_are_reported_and_left_alone() {
    let (storage, repo) = repo();
    backup(&repo, &[]).await;
    backup(&repo, &[]).await;
    let bad = "20200101T000000Z-abcdef";
    storage
        .put(
            &manifest_key(bad),
            "{not json".into(),
            WriteOptions::create_new(),
        )
        .await
        .unwrap();
    let report = repo
        .prune(&keep_last(1), &PruneOptions::default())
        .await
        .unwrap();
    assert_eq!(report.invalid.len(), 1);
    assert_eq!(report.invalid[0].id, bad);
    assert_eq!(report.deleted(), 1);
    assert!(
        storage.head(&manifest_key(bad)).await.is_ok(),
        "not deleted"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["invalid"][0]["id"], bad);
}

#[tokio::test]
async fn a_policy_that_keeps_nothing_deletes_nothing() {
    let (_, repo) = repo();
    backup(&repo, &[]).await;
    backup(&repo, &[]).await;
    let err = repo
        .prune(&Policy::default(), &PruneOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Policy(RetentionError::NoRule)),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Invalid);
    assert_eq!(ids(&repo).await.len(), 2);
}
