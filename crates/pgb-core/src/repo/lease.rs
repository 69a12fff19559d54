//! Backup leases: `locks/<id>.json`, telling `gc` which backups are running.

use std::sync::Arc;

use bytes::Bytes;
use time::OffsetDateTime;

use crate::error::Error;
use crate::layout;
use crate::manifest::BackupId;
use crate::storage::{Storage, StorageErrorKind, StorageExt, WriteOptions};

/// How long a lease lasts without a refresh, how often it is refreshed, and how much clock
/// skew between hosts is tolerated before another host treats it as expired.
const LEASE_TTL: time::Duration = time::Duration::minutes(30);
const LEASE_REFRESH: std::time::Duration = std::time::Duration::from_secs(5 * 60);
const CLOCK_SKEW: time::Duration = time::Duration::minutes(15);

#[derive(serde::Serialize, serde::Deserialize)]
struct LeaseRecord {
    id: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

async fn write_lease(storage: &dyn Storage, id: &str) -> Result<(), Error> {
    let rec = LeaseRecord {
        id: id.to_owned(),
        expires_at: OffsetDateTime::now_utc() + LEASE_TTL,
    };
    let body = serde_json::to_vec(&rec).expect("lease serializes");
    storage
        .put(
            &layout::lease_key(id),
            Bytes::from(body),
            WriteOptions::default(),
        )
        .await?;
    Ok(())
}

/// A backup's lease: written at start, refreshed in the background, deleted at the end.
pub(super) struct Lease {
    storage: Arc<dyn Storage>,
    id: String,
    refresher: tokio::task::JoinHandle<()>,
}

impl Lease {
    pub(super) async fn acquire(storage: Arc<dyn Storage>, id: &BackupId) -> Result<Self, Error> {
        write_lease(storage.as_ref(), id.as_str()).await?;
        let (s, i) = (Arc::clone(&storage), id.to_string());
        let refresher = tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE_REFRESH).await;
                if let Err(e) = write_lease(s.as_ref(), &i).await {
                    tracing::warn!(backup = %i, error = %e, "could not refresh the backup lease");
                }
            }
        });
        Ok(Self {
            storage,
            id: id.to_string(),
            refresher,
        })
    }

    pub(super) async fn release(self) {
        self.refresher.abort();
        let _ = self.storage.delete(&layout::lease_key(&self.id)).await;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A cancelled backup stops refreshing; its lease then simply expires.
        self.refresher.abort();
    }
}

/// Ids with a lease that has not expired, even on a clock up to `CLOCK_SKEW` ahead of the
/// writer's. Never deletes anything (expired leases are `gc`'s, under its rules).
pub(super) async fn live_leases(
    storage: &dyn Storage,
    now: OffsetDateTime,
) -> Result<Vec<String>, Error> {
    let prefix = layout::locks_prefix();
    let mut live = Vec::new();
    for meta in storage.list(Some(&prefix)).await? {
        // Only `locks/<id>.json`: job locks live one level further down and are not leases.
        if meta
            .key
            .strip_prefix(&prefix)
            .is_none_or(|rest| rest.contains('/'))
        {
            continue;
        }
        let Ok(Some(bytes)) = storage.get_bytes_limited(&meta.key, LEASE_MAX_BYTES).await else {
            continue;
        };
        if let Ok(rec) = serde_json::from_slice::<LeaseRecord>(&bytes)
            && rec.expires_at + CLOCK_SKEW > now
        {
            live.push(rec.id);
        }
    }
    Ok(live)
}

/// A lease is a few dozen bytes; anything much larger under its name is not one.
const LEASE_MAX_BYTES: u64 = 64 * 1024;

/// What `locks/<id>.json` holds right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LeaseState {
    /// No lease.
    Absent,
    /// A lease of this id that has not expired (with the clock-skew tolerance).
    Live,
    /// A lease of this id that expired.
    Expired,
    /// Something else under the lease's name: not provably pgb's.
    Unreadable,
}

/// Reads the lease of backup `id` as of `now`.
pub(super) async fn lease_state(
    storage: &dyn Storage,
    id: &str,
    now: OffsetDateTime,
) -> Result<LeaseState, Error> {
    let bytes = match storage
        .get_bytes_limited(&layout::lease_key(id), LEASE_MAX_BYTES)
        .await
    {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(LeaseState::Unreadable),
        Err(e) if e.kind() == StorageErrorKind::NotFound => return Ok(LeaseState::Absent),
        Err(e) => return Err(e.into()),
    };
    Ok(match serde_json::from_slice::<LeaseRecord>(&bytes) {
        Ok(rec) if rec.id != id => LeaseState::Unreadable,
        Ok(rec) if rec.expires_at + CLOCK_SKEW > now => LeaseState::Live,
        Ok(_) => LeaseState::Expired,
        Err(_) => LeaseState::Unreadable,
    })
}
