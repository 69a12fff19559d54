//! Listing a repository and reading manifests.
//!
//! A repository is untrusted input: anyone who may add objects can add a manifest. A backup is
//! listed as usable (counted by prune, chosen as `latest`, reported fresh by `check`) only if
//! its manifest is at most [`layout::MAX_METADATA_BYTES`], parses, authenticates when the
//! repository was opened with an authentication key or passphrase, and every artifact it names
//! exists with the size it records (checked against the one listing, not a request per object).
//! Anything else is listed in [`Listing::invalid`] with its reason: never counted, never deleted.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::task::Poll;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use time::OffsetDateTime;

use super::Repository;
use super::lease::live_leases;
use crate::crypto::mac_verify;
use crate::error::Error;
use crate::key::ObjectKey;
use crate::layout;
use crate::manifest::{BackupId, Manifest};
use crate::storage::{ObjectMeta, Storage, StorageErrorKind, StorageExt};

/// How many manifests are read at once while listing.
const MANIFEST_READS: usize = 16;
/// A backup that started further in the future than this is never chosen as `latest` (a
/// clock ahead by more than this, or a forged date); prune quarantines it as well.
const FUTURE_TOLERANCE: time::Duration = time::Duration::minutes(15);

/// A manifest as read (or why not), and whether it authenticates.
type ManifestRead = (Result<Manifest, Error>, Result<(), String>);

/// What the listing loop waits for: a finished manifest read or the next listed object.
enum Next<R> {
    Read(R),
    Listed(Option<Result<ObjectMeta, crate::storage::StorageError>>),
}

/// A folder with a manifest that cannot be used: unreadable, unknown version, over the size
/// limit, failing authentication, or naming data objects that are missing or of the wrong
/// size. Listed with its reason; never counted by prune and never deleted by it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct InvalidBackup {
    /// The backup's folder name.
    pub id: String,
    /// Why it is unusable.
    pub problem: String,
}

/// Objects of a backup that never committed (no manifest): not a backup, garbage for `gc`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Leftover {
    /// The folder name (an id).
    pub id: String,
    /// Its objects.
    pub keys: Vec<ObjectKey>,
    /// The newest modification time among them, where known.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_modified: Option<OffsetDateTime>,
}

/// The content of a repository.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Listing {
    /// Usable backups, oldest first (by start time, then id).
    pub backups: Vec<Manifest>,
    /// Folders whose manifest cannot be used, with the reason.
    pub invalid: Vec<InvalidBackup>,
    /// Folders without a manifest.
    pub leftovers: Vec<Leftover>,
    /// Backups running now (a live lease and no manifest yet): never counted or touched.
    pub in_progress: Vec<String>,
    /// The objects under each usable backup's `verified/` folder (its verification records),
    /// from the same listing: reading the evidence needs no listing per backup.
    pub evidence: BTreeMap<BackupId, Vec<ObjectMeta>>,
    /// The manifests among `invalid` that failed authentication only, so that `latest`
    /// can report a wrong key as a key problem rather than as an empty repository.
    pub(crate) unauthenticated: Vec<Manifest>,
}

impl Listing {
    /// The newest usable backup, optionally of one database only, as of now.
    pub fn latest(&self, database: Option<&str>) -> Option<&Manifest> {
        self.latest_at(database, OffsetDateTime::now_utc())
    }

    /// The newest usable backup (optionally of one database) that started no later than
    /// `now` plus a tolerance for clock skew: a future-dated backup is never `latest`.
    pub fn latest_at(&self, database: Option<&str>, now: OffsetDateTime) -> Option<&Manifest> {
        self.backups.iter().rev().find(|m| {
            database.is_none_or(|d| m.database == d) && m.started_at <= now + FUTURE_TOLERANCE
        })
    }

    /// [`Listing::latest`] among logical backups (dumps): what a restore into a database or a
    /// drill takes, since a physical base backup restores into a data directory.
    pub fn latest_logical(&self, database: Option<&str>) -> Option<&Manifest> {
        let now = OffsetDateTime::now_utc();
        self.backups.iter().rev().find(|m| {
            m.physical.is_none()
                && database.is_none_or(|d| m.database == d)
                && m.started_at <= now + FUTURE_TOLERANCE
        })
    }

    /// The newest logical backup (dump) of the server with this system identifier whose
    /// snapshot was taken at or before `at` (a dump's data is as of its `started_at`): the
    /// cheaper way back to `at` where losing what happened since the dump is acceptable.
    /// Backups that did not record a system identifier never match.
    pub fn logical_at_or_before(
        &self,
        system_identifier: u64,
        at: OffsetDateTime,
    ) -> Option<&Manifest> {
        self.backups.iter().rev().find(|m| {
            m.physical.is_none()
                && m.source_system_identifier == Some(system_identifier)
                && m.started_at <= at
        })
    }
}

impl Repository {
    /// Lists usable backups, unusable manifests (with the reason) and leftovers of
    /// uncommitted backups. One listing of `backups/`, streamed: each manifest is read (and
    /// authenticated) as soon as the listing shows it, at most 16 at a time, while the
    /// listing goes on; the artifacts are checked against the whole listing once it is
    /// complete. A listing that fails midway fails the whole call.
    ///
    /// # Errors
    /// Storage failures while listing or reading manifests.
    pub async fn list(&self) -> Result<Listing, Error> {
        let prefix = layout::backups_prefix();
        let mut dirs: BTreeMap<String, Vec<ObjectMeta>> = BTreeMap::new();
        let mut manifests: HashSet<String> = HashSet::new();
        let mut waiting: VecDeque<(String, ObjectMeta)> = VecDeque::new();
        let mut reads = FuturesUnordered::new();
        let mut read: BTreeMap<String, ManifestRead> = BTreeMap::new();
        let mut listed = Some(self.storage.list_stream(Some(&prefix)));
        loop {
            while reads.len() < MANIFEST_READS
                && let Some((dir, meta)) = waiting.pop_front()
            {
                reads.push(async move {
                    let m = self.read_manifest_meta(&dir, &meta).await;
                    let authenticated = match &m {
                        Ok(m) => self.authenticated(m).await,
                        Err(_) => Ok(()),
                    };
                    (dir, m, authenticated)
                });
            }
            if listed.is_none() && reads.is_empty() {
                break;
            }
            // Whichever is ready first: a manifest read, or the next listed object.
            let next = std::future::poll_fn(|cx| {
                if let Poll::Ready(Some(done)) = reads.poll_next_unpin(cx) {
                    return Poll::Ready(Next::Read(done));
                }
                if let Some(stream) = listed.as_mut()
                    && let Poll::Ready(item) = stream.poll_next_unpin(cx)
                {
                    return Poll::Ready(Next::Listed(item));
                }
                Poll::Pending
            })
            .await;
            match next {
                Next::Read((dir, m, authenticated)) => match m {
                    Err(e @ (Error::BackupNotFound(_) | Error::Manifest { .. })) => {
                        read.insert(dir, (Err(e), authenticated));
                    }
                    Err(e) => return Err(e),
                    Ok(m) => {
                        read.insert(dir, (Ok(m), authenticated));
                    }
                },
                Next::Listed(None) => listed = None,
                Next::Listed(Some(meta)) => {
                    let meta = meta?;
                    let Some(rest) = meta.key.strip_prefix(&prefix) else {
                        continue;
                    };
                    let Some((dir, _)) = rest.split_once('/') else {
                        continue;
                    };
                    if meta.key.file_name() == layout::MANIFEST && manifests.insert(dir.to_owned())
                    {
                        waiting.push_back((dir.to_owned(), meta.clone()));
                    }
                    dirs.entry(dir.to_owned()).or_default().push(meta);
                }
            }
        }
        drop(listed);
        let mut listing = Listing::default();
        for (dir, objects) in dirs {
            let Some((read, authenticated)) = read.remove(&dir) else {
                listing.leftovers.push(Leftover {
                    last_modified: objects.iter().filter_map(|m| m.last_modified).max(),
                    keys: objects.into_iter().map(|m| m.key).collect(),
                    id: dir,
                });
                continue;
            };
            match read {
                Ok(m) => {
                    let verdict = match self.data_present(&m, &objects) {
                        Ok(()) => authenticated.map_err(|p| (p, true)),
                        Err(p) => Err((p, false)),
                    };
                    match verdict {
                        Ok(()) => {
                            let records = layout::verified_prefix(&m.id);
                            let evidence: Vec<ObjectMeta> = objects
                                .iter()
                                .filter(|o| o.key.starts_with(&records))
                                .cloned()
                                .collect();
                            if !evidence.is_empty() {
                                listing.evidence.insert(m.id.clone(), evidence);
                            }
                            listing.backups.push(m);
                        }
                        Err((problem, authentication)) => {
                            tracing::warn!(backup = %dir, %problem, "unusable backup");
                            listing.invalid.push(InvalidBackup { id: dir, problem });
                            if authentication {
                                listing.unauthenticated.push(m);
                            }
                        }
                    }
                }
                // Deleted between listing and reading (a concurrent prune): not a backup.
                Err(Error::BackupNotFound(_)) => {}
                Err(Error::Manifest { problem, .. }) => {
                    listing.invalid.push(InvalidBackup { id: dir, problem });
                }
                Err(e) => return Err(e),
            }
        }
        listing
            .backups
            .sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
        let live = live_leases(self.storage.as_ref(), OffsetDateTime::now_utc()).await?;
        listing.in_progress = live
            .into_iter()
            .filter(|id| !listing.backups.iter().any(|m| m.id.as_str() == id))
            .collect();
        Ok(listing)
    }

    /// Whether every artifact of a parsed manifest is in the listing of its folder with the
    /// recorded size.
    fn data_present(&self, m: &Manifest, objects: &[ObjectMeta]) -> Result<(), String> {
        let sizes: HashMap<&ObjectKey, u64> = objects.iter().map(|o| (&o.key, o.size)).collect();
        for a in &m.artifacts {
            let key = a.key().map_err(|e| e.to_string())?;
            match sizes.get(&key) {
                None => return Err(format!("data object {key} is missing")),
                Some(&size) if size != a.stored_size => {
                    return Err(format!(
                        "data object {key} is {size} bytes, the manifest says {}",
                        a.stored_size
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Whether the manifest authenticates with the keys the repository was opened with. With
    /// no authentication key or passphrase there is nothing to check against.
    async fn authenticated(&self, m: &Manifest) -> Result<(), String> {
        if !self.keys.expects_authentication() {
            return Ok(());
        }
        let unauthenticated = || {
            if self.allow_unauthenticated {
                Ok(())
            } else {
                Err("the manifest is not authenticated, but the repository is opened with an authentication key or passphrase: a possible forgery".to_owned())
            }
        };
        let Some(info) = m.encryption.clone() else {
            return unauthenticated();
        };
        // The passphrase's key derivation (scrypt) takes ~100 ms: off the async threads.
        let keys = std::sync::Arc::clone(&self.keys);
        let id = m.id.to_string();
        let mac_key = tokio::task::spawn_blocking(move || keys.mac_key(&info, &id))
            .await
            .map_err(|e| format!("authentication check failed: {e}"))?
            .map_err(|e| format!("cannot be authenticated with the keys given: {e}"))?;
        match (mac_key, &m.mac) {
            (Some(k), Some(mac)) if mac_verify(&k, m.mac_input(), mac) => Ok(()),
            (Some(_), Some(_)) => {
                Err("the manifest fails authentication: altered, or written without this repository's key".to_owned())
            }
            (Some(_), None) => Err("the manifest carries no authentication code".to_owned()),
            (None, _) => unauthenticated(),
        }
    }

    /// Reads a manifest whose listing entry is `meta`, refusing one over the size limit
    /// without reading it.
    async fn read_manifest_meta(&self, dir: &str, meta: &ObjectMeta) -> Result<Manifest, Error> {
        if meta.size > layout::MAX_METADATA_BYTES {
            return Err(too_large(dir, Some(meta.size)));
        }
        self.read_manifest_at(dir, &meta.key).await
    }

    pub(super) async fn read_manifest_at(
        &self,
        dir: &str,
        key: &ObjectKey,
    ) -> Result<Manifest, Error> {
        let bad = |problem: String| Error::Manifest {
            id: dir.to_owned(),
            problem,
        };
        let bytes = match self
            .storage
            .get_bytes_limited(key, layout::MAX_METADATA_BYTES)
            .await
        {
            Ok(Some(b)) => b,
            Ok(None) => return Err(too_large(dir, None)),
            Err(e) if e.kind() == StorageErrorKind::NotFound => {
                return Err(Error::BackupNotFound(dir.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        let m = Manifest::from_json(&bytes).map_err(|e| bad(e.to_string()))?;
        if m.id.as_str() != dir {
            return Err(bad(format!(
                "manifest names backup {} but lives in {dir}",
                m.id
            )));
        }
        let folder = layout::backup_dir(&m.id);
        if m.artifacts.iter().any(|a| {
            a.key().map_or(true, |k| {
                !k.starts_with(&folder) || k == layout::manifest_key(&m.id)
            })
        }) {
            return Err(bad("manifest points outside its backup folder".to_owned()));
        }
        Ok(m)
    }

    /// Reads one backup's manifest.
    ///
    /// # Errors
    /// `BackupNotFound`, `Manifest` (corrupt, too large or unknown version), storage failures.
    pub async fn manifest(&self, id: &BackupId) -> Result<Manifest, Error> {
        self.read_manifest_at(id.as_str(), &layout::manifest_key(id))
            .await
    }

    /// Resolves `latest` (optionally for one database) or an id to a manifest. `latest` is
    /// the newest usable backup that is not dated in the future.
    ///
    /// # Errors
    /// `BackupNotFound`, `NoBackups`, `Manifest`.
    pub async fn resolve(&self, selector: &str, database: Option<&str>) -> Result<Manifest, Error> {
        self.resolve_kind(selector, database, false).await
    }

    /// [`Repository::resolve`] for a restore into a database: `latest` is the newest logical
    /// backup, never a physical one (which restores into a data directory).
    ///
    /// # Errors
    /// As [`Repository::resolve`].
    pub async fn resolve_logical(
        &self,
        selector: &str,
        database: Option<&str>,
    ) -> Result<Manifest, Error> {
        self.resolve_kind(selector, database, true).await
    }

    async fn resolve_kind(
        &self,
        selector: &str,
        database: Option<&str>,
        logical: bool,
    ) -> Result<Manifest, Error> {
        if selector == "latest" {
            let listing = self.list().await?;
            let found = if logical {
                listing.latest_logical(database)
            } else {
                listing.latest(database)
            };
            if let Some(m) = found {
                return Ok(m.clone());
            }
            // Only base backups: say how to restore them rather than "no backups".
            if logical && let Some(m) = listing.latest(database) {
                return Err(crate::error::Mismatch::Physical { id: m.id.clone() }.into());
            }
            // Nothing usable, but backups that fail authentication: most likely a wrong or
            // missing key. Say so, exactly as verify and restore of that backup would.
            if let Some(m) = listing
                .unauthenticated
                .iter()
                .filter(|m| database.is_none_or(|d| m.database == d))
                .max_by_key(|m| (m.started_at, m.id.clone()))
            {
                let key = m.artifacts[0].key().map_err(|e| Error::Manifest {
                    id: m.id.to_string(),
                    problem: e.to_string(),
                })?;
                self.check_keys(m, &key).await?;
            }
            return Err(Error::NoBackups {
                database: database.map(str::to_owned),
            });
        }
        let id: BackupId = selector
            .parse()
            .map_err(|_| Error::BackupNotFound(selector.to_owned()))?;
        self.manifest(&id).await
    }
}

fn too_large(dir: &str, size: Option<u64>) -> Error {
    let size = size.map_or_else(|| "larger".to_owned(), |s| format!("{s} bytes"));
    Error::Manifest {
        id: dir.to_owned(),
        problem: format!(
            "the manifest is {size}, over the limit of {} bytes; not read",
            layout::MAX_METADATA_BYTES
        ),
    }
}
