//! The repository job lock on a real local repository: one holder at a time (also when two
//! acquire at once), a typed error naming the holder and expiry, exit class Locked, refresh,
//! takeover of an expired lock by exactly one taker, release.

use std::sync::Arc;
use std::time::Duration;

use pgb_core::{
    ErrorClass, Holder, JobLock, JobLockError, JobLockOptions, ObjectKey, Storage, StorageExt,
    WriteOptions, read_job_lock,
};
use pgb_storage_local::FsStorage;

fn holder(host: &str, pid: u32) -> Holder {
    Holder {
        host: host.into(),
        pid,
    }
}

fn repo() -> (tempfile::TempDir, Arc<dyn Storage>) {
    let dir = tempfile::tempdir().unwrap();
    let s: Arc<dyn Storage> = Arc::new(FsStorage::open(dir.path()).unwrap());
    (dir, s)
}

fn short() -> JobLockOptions {
    JobLockOptions {
        ttl: time::Duration::seconds(2),
        refresh_every: Duration::from_millis(300),
        clock_skew: time::Duration::ZERO,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_acquirer_gets_the_holder_and_expiry_then_the_lock_after_release() {
    let (_d, s) = repo();
    let a = JobLock::acquire(
        Arc::clone(&s),
        "shop",
        holder("web-1", 4242),
        JobLockOptions::default(),
    )
    .await
    .unwrap();
    assert!(
        s.exists(&ObjectKey::parse("locks/jobs/shop.json").unwrap())
            .await
            .unwrap()
    );
    let err = JobLock::acquire(
        Arc::clone(&s),
        "shop",
        holder("web-2", 7),
        JobLockOptions::default(),
    )
    .await
    .unwrap_err();
    let JobLockError::Held {
        holder: h,
        expires_at,
        ..
    } = &err
    else {
        panic!("expected Held, got {err:?}");
    };
    assert_eq!(h, &holder("web-1", 4242));
    assert_eq!(*expires_at, a.record().expires_at);
    let msg = err.to_string();
    assert!(
        msg.contains("job shop is already running on web-1 (pid 4242)"),
        "{msg}"
    );
    assert!(msg.contains("expires at"), "{msg}");
    assert!(
        msg.contains(&format!(
            "expires at {}",
            expires_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        )),
        "{msg}"
    );
    // As an operation error it is of the Locked class (exit code 8).
    let core: pgb_core::Error = err.into();
    assert_eq!(core.class(), ErrorClass::Locked);

    // Other jobs are independent.
    let other = JobLock::acquire(
        Arc::clone(&s),
        "crm",
        holder("web-2", 7),
        JobLockOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        read_job_lock(s.as_ref(), "shop")
            .await
            .unwrap()
            .unwrap()
            .holder
            .host,
        "web-1"
    );
    a.release().await.unwrap();
    assert!(read_job_lock(s.as_ref(), "shop").await.unwrap().is_none());
    let b = JobLock::acquire(
        Arc::clone(&s),
        "shop",
        holder("web-2", 7),
        JobLockOptions::default(),
    )
    .await
    .unwrap();
    b.release().await.unwrap();
    other.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_many_concurrent_acquirers_exactly_one_wins() {
    let (_d, s) = repo();
    for round in 0..5 {
        let tasks: Vec<_> = (0..8u32)
            .map(|i| {
                let s = Arc::clone(&s);
                tokio::spawn(async move {
                    JobLock::acquire(
                        s,
                        "shop",
                        holder(&format!("host-{i}"), i),
                        JobLockOptions::default(),
                    )
                    .await
                })
            })
            .collect();
        let mut won = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(l) => won.push(l),
                Err(JobLockError::Held { .. }) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}");
        won.pop().unwrap().release().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refreshed_lock_outlives_its_ttl() {
    let (_d, s) = repo();
    let a = JobLock::acquire(Arc::clone(&s), "shop", holder("web-1", 1), short())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await; // twice the TTL, refreshed meanwhile
    let err = JobLock::acquire(Arc::clone(&s), "shop", holder("web-2", 2), short())
        .await
        .unwrap_err();
    assert!(matches!(err, JobLockError::Held { .. }), "{err}");
    let now = read_job_lock(s.as_ref(), "shop").await.unwrap().unwrap();
    assert!(
        now.expires_at > a.record().expires_at,
        "refresh moved the expiry"
    );
    assert!(!a.is_lost());
    a.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_lock_of_a_crashed_holder_is_taken_over_by_exactly_one() {
    let (_d, s) = repo();
    // A holder that crashed: its lock is never refreshed again.
    let crashed = JobLock::acquire(Arc::clone(&s), "shop", holder("dead", 1), short())
        .await
        .unwrap();
    std::mem::drop(crashed); // stops the refresh, leaves the object
    let err = JobLock::acquire(Arc::clone(&s), "shop", holder("web-2", 2), short())
        .await
        .unwrap_err();
    assert!(
        matches!(err, JobLockError::Held { .. }),
        "not yet expired: {err}"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let tasks: Vec<_> = (0..6u32)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                JobLock::acquire(s, "shop", holder(&format!("taker-{i}"), i), short()).await
            })
        })
        .collect();
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(l) => won.push(l),
            Err(JobLockError::Held { holder: h, .. }) => {
                assert!(h.host.starts_with("taker-"), "{h}")
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won.len(), 1);
    let winner = won.pop().unwrap();
    let stored = read_job_lock(s.as_ref(), "shop").await.unwrap().unwrap();
    assert_eq!(stored.token, winner.record().token);
    winner.release().await.unwrap();
    // Release removes the lock and the takeover marker.
    let left = s
        .list(Some(&ObjectKey::parse("locks/jobs").unwrap()))
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_whose_lock_was_taken_over_knows_and_does_not_delete_the_new_one() {
    let (_d, s) = repo();
    let opts = JobLockOptions {
        refresh_every: Duration::from_secs(3600), // a stalled holder: no refresh
        ..short()
    };
    let stalled = JobLock::acquire(Arc::clone(&s), "shop", holder("slow", 1), opts)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let taker = JobLock::acquire(Arc::clone(&s), "shop", holder("new", 2), short())
        .await
        .unwrap();
    // The stalled holder's release must not remove the taker's lock.
    stalled.release().await.unwrap();
    let stored = read_job_lock(s.as_ref(), "shop").await.unwrap().unwrap();
    assert_eq!(stored.holder.host, "new");
    taker.release().await.unwrap();
}

#[tokio::test]
async fn an_unreadable_lock_blocks_until_it_is_old_and_job_names_are_checked() {
    let (_d, s) = repo();
    s.put(
        &ObjectKey::parse("locks/jobs/shop.json").unwrap(),
        "garbage".into(),
        WriteOptions::create_new(),
    )
    .await
    .unwrap();
    let err = JobLock::acquire(
        Arc::clone(&s),
        "shop",
        holder("web", 1),
        JobLockOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("unreadable lock"), "{err}");
    let err = JobLock::acquire(
        Arc::clone(&s),
        "../etc",
        holder("web", 1),
        JobLockOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, JobLockError::InvalidJob(_)));
}
