//! The job lock: one run of a named job at a time, across hosts, held in the repository.
//!
//! `locks/jobs/<job>.json` is written create-only and refreshed while the run goes on. A
//! second acquirer finds it and gets [`JobLockError::Held`] with the holder and the expiry.
//! A lock whose expiry (plus the tolerated clock skew) has passed belonged to a crashed
//! holder and is taken over safely: the taker first creates the create-only marker
//! `locks/jobs/<job>.takeover.<token>.json` named after the expired lock's token, so exactly
//! one taker wins, checks that the expired lock is still the one it read, deletes it and
//! creates its own, create-only again.
//!
//! Backup-lease scans (`gc`, `list`) look at `locks/<id>.json` only, never `locks/jobs/`; the
//! `id` and `expires_at` fields still follow the lease record's shape.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use time::OffsetDateTime;

use crate::error::Error;
use crate::key::ObjectKey;
use crate::storage::{Storage, StorageError, StorageErrorKind, StorageExt as _, WriteOptions};

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (pid {})", self.host, self.pid)
    }
}

/// The stored lock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobLockRecord {
    /// `job:<name>`.
    pub id: String,
    /// The job.
    pub job: String,
    /// Who holds it.
    pub holder: Holder,
    /// Random, identifies this acquisition.
    pub token: String,
    /// When it was acquired.
    #[serde(with = "time::serde::rfc3339")]
    pub acquired_at: OffsetDateTime,
    /// Until when it holds without a refresh.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Lock timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLockOptions {
    /// How long the lock holds without a refresh.
    pub ttl: time::Duration,
    /// How often the holder refreshes it.
    pub refresh_every: std::time::Duration,
    /// How far another host's clock may be ahead before it treats the lock as expired.
    pub clock_skew: time::Duration,
}

impl Default for JobLockOptions {
    fn default() -> Self {
        Self {
            ttl: time::Duration::minutes(30),
            refresh_every: std::time::Duration::from_secs(5 * 60),
            clock_skew: time::Duration::minutes(5),
        }
    }
}

/// Why a job lock was not acquired.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobLockError {
    /// Another run holds it.
    #[error(
        "job {job} is already running on {holder}, locked since {}; the lock expires at {} \
         unless refreshed",
        rfc3339(acquired_at),
        rfc3339(expires_at)
    )]
    Held {
        /// The job.
        job: String,
        /// Its holder.
        holder: Holder,
        /// When the holder acquired it.
        acquired_at: OffsetDateTime,
        /// When it expires without a refresh.
        expires_at: OffsetDateTime,
    },
    /// The job name cannot be an object key.
    #[error("job name {0:?} cannot name a lock (use letters, digits, `_` and `-`)")]
    InvalidJob(String),
    /// The repository failed.
    #[error("job lock: {0}")]
    Storage(#[from] StorageError),
}

impl From<JobLockError> for Error {
    fn from(e: JobLockError) -> Self {
        match e {
            JobLockError::Storage(s) => Error::Storage(s),
            other => Error::Locked(Box::new(other)),
        }
    }
}

fn rfc3339(t: &OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn lock_key(job: &str) -> Result<ObjectKey, JobLockError> {
    if job.is_empty()
        || !job
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(JobLockError::InvalidJob(job.to_owned()));
    }
    ObjectKey::parse(&format!("locks/jobs/{job}.json"))
        .map_err(|_| JobLockError::InvalidJob(job.to_owned()))
}

fn marker_key(job: &str, token: &str) -> ObjectKey {
    ObjectKey::parse(&format!("locks/jobs/{job}.takeover.{token}.json"))
        .expect("validated job name and hex token")
}

fn new_token() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    crate::codec::hex(&b)
}

async fn read_record(
    storage: &dyn Storage,
    key: &ObjectKey,
) -> Result<Option<Result<JobLockRecord, ()>>, StorageError> {
    match storage.get_bytes(key).await {
        Ok(b) => Ok(Some(serde_json::from_slice(&b).map_err(|_| ()))),
        Err(e) if e.kind() == StorageErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A held job lock. Refreshed in the background until [`JobLock::release`]; dropping it
/// without release stops the refresh, so the lock expires.
pub struct JobLock {
    storage: Arc<dyn Storage>,
    key: ObjectKey,
    record: JobLockRecord,
    marker: Option<ObjectKey>,
    lost: Arc<AtomicBool>,
    refresher: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for JobLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobLock")
            .field("key", &self.key)
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl JobLock {
    /// Acquires the lock of `job` for `holder`.
    ///
    /// # Errors
    /// [`JobLockError::Held`] when another run holds a lock that has not expired;
    /// [`JobLockError::Storage`] when the repository fails.
    pub async fn acquire(
        storage: Arc<dyn Storage>,
        job: &str,
        holder: Holder,
        opts: JobLockOptions,
    ) -> Result<Self, JobLockError> {
        let mut marker = None;
        let res = Self::try_acquire(Arc::clone(&storage), job, holder, opts, &mut marker).await;
        // A taker that won the takeover marker but then lost the lock itself (another acquirer
        // created it in between) removes its marker: nothing else ever would.
        if res.is_err()
            && let Some(m) = marker
        {
            let _ = storage.delete(&m).await;
        }
        res
    }

    async fn try_acquire(
        storage: Arc<dyn Storage>,
        job: &str,
        holder: Holder,
        opts: JobLockOptions,
        marker: &mut Option<ObjectKey>,
    ) -> Result<Self, JobLockError> {
        let key = lock_key(job)?;
        let token = new_token();
        let make = |now: OffsetDateTime| JobLockRecord {
            id: format!("job:{job}"),
            job: job.to_owned(),
            holder: holder.clone(),
            token: token.clone(),
            acquired_at: now,
            expires_at: now + opts.ttl,
        };
        for _attempt in 0..5 {
            let record = make(OffsetDateTime::now_utc());
            let body = Bytes::from(serde_json::to_vec(&record).expect("lock serializes"));
            match storage
                .put(&key, body.clone(), WriteOptions::create_new())
                .await
            {
                Ok(_) => return Ok(Self::start(storage, key, record, marker.take(), opts)),
                Err(e) if e.kind() == StorageErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
            let now = OffsetDateTime::now_utc();
            let existing = match read_record(storage.as_ref(), &key).await? {
                None => continue, // released meanwhile: try again
                Some(r) => r,
            };
            let expired_token = match existing {
                Ok(r) if r.expires_at + opts.clock_skew > now => {
                    return Err(JobLockError::Held {
                        job: job.to_owned(),
                        holder: r.holder,
                        acquired_at: r.acquired_at,
                        expires_at: r.expires_at,
                    });
                }
                Ok(r) => r.token,
                // Unreadable: judge by its age.
                Err(()) => {
                    let meta = storage.head(&key).await?;
                    let age_ok = meta
                        .last_modified
                        .is_some_and(|t| t + opts.ttl + opts.clock_skew <= now);
                    if !age_ok {
                        return Err(JobLockError::Held {
                            job: job.to_owned(),
                            holder: Holder {
                                host: "unknown (unreadable lock)".into(),
                                pid: 0,
                            },
                            acquired_at: meta.last_modified.unwrap_or(now),
                            expires_at: meta.last_modified.unwrap_or(now) + opts.ttl,
                        });
                    }
                    format!("unreadable-{}", meta.size)
                }
            };
            // Expired: one taker wins the marker named after the expired lock.
            let mk = marker_key(job, &expired_token);
            match storage.put(&mk, body, WriteOptions::create_new()).await {
                Ok(_) => {}
                Err(e) if e.kind() == StorageErrorKind::AlreadyExists => {
                    // Someone else is taking over; look again shortly.
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            // Still the expired lock we judged?
            let still = match read_record(storage.as_ref(), &key).await? {
                Some(Ok(r)) => r.token == expired_token,
                Some(Err(())) => expired_token.starts_with("unreadable-"),
                None => true,
            };
            if !still {
                let _ = storage.delete(&mk).await;
                continue;
            }
            tracing::warn!(
                job,
                "taking over an expired job lock (its holder stopped refreshing)"
            );
            storage.delete(&key).await?;
            *marker = Some(mk);
        }
        // Contended beyond reason: report the current holder.
        match read_record(storage.as_ref(), &key).await? {
            Some(Ok(r)) => Err(JobLockError::Held {
                job: job.to_owned(),
                holder: r.holder,
                acquired_at: r.acquired_at,
                expires_at: r.expires_at,
            }),
            _ => Err(JobLockError::Storage(StorageError::new(
                StorageErrorKind::Other,
                "lock",
                key.as_str(),
                "could not acquire the job lock after 5 attempts",
            ))),
        }
    }

    fn start(
        storage: Arc<dyn Storage>,
        key: ObjectKey,
        record: JobLockRecord,
        marker: Option<ObjectKey>,
        opts: JobLockOptions,
    ) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let (s, k, r, l) = (
            Arc::clone(&storage),
            key.clone(),
            record.clone(),
            Arc::clone(&lost),
        );
        let refresher = tokio::spawn(async move {
            loop {
                tokio::time::sleep(opts.refresh_every).await;
                match read_record(s.as_ref(), &k).await {
                    Ok(Some(Ok(cur))) if cur.token == r.token => {}
                    Ok(_) => {
                        tracing::error!(job = %r.job, "the job lock was taken over; stop the run");
                        l.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(job = %r.job, error = %e, "could not read the job lock");
                        continue;
                    }
                }
                let fresh = JobLockRecord {
                    expires_at: OffsetDateTime::now_utc() + opts.ttl,
                    ..r.clone()
                };
                let body = Bytes::from(serde_json::to_vec(&fresh).expect("lock serializes"));
                if let Err(e) = s.put(&k, body, WriteOptions::default()).await {
                    tracing::warn!(job = %r.job, error = %e, "could not refresh the job lock");
                }
            }
        });
        Self {
            storage,
            key,
            record,
            marker,
            lost,
            refresher,
        }
    }

    /// The lock as acquired.
    pub fn record(&self) -> &JobLockRecord {
        &self.record
    }

    /// Whether another run took the lock over (this one stalled past its expiry): the run
    /// should stop without committing.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Stops refreshing and deletes the lock if it is still ours.
    ///
    /// # Errors
    /// The repository failed; the lock then expires on its own.
    pub async fn release(self) -> Result<(), JobLockError> {
        self.refresher.abort();
        if let Some(Ok(cur)) = read_record(self.storage.as_ref(), &self.key).await?
            && cur.token == self.record.token
        {
            self.storage.delete(&self.key).await?;
        }
        if let Some(m) = &self.marker {
            let _ = self.storage.delete(m).await;
        }
        Ok(())
    }
}

impl Drop for JobLock {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

/// The current lock of `job`, if any (expired or not), for status displays.
///
/// # Errors
/// The repository failed, or the job name is invalid.
pub async fn read_job_lock(
    storage: &dyn Storage,
    job: &str,
) -> Result<Option<JobLockRecord>, JobLockError> {
    let key = lock_key(job)?;
    Ok(read_record(storage, &key).await?.and_then(Result::ok))
}
