//! # pgb-storage-local
//!
//! [`FsStorage`]: a [`Storage`] on a local directory, written directly on the filesystem
//! rather than through opendal's fs service, because a backup store needs strict guarantees
//! opendal's fs writer does not give by default (atomic create-only, directory fsync):
//!
//! - every write goes to a staging file under `<root>/.pgb-staging/` (mode 0600), is fsynced,
//!   then published atomically: `rename` for overwrites, `link` for create-only writes (which
//!   fails atomically if the key exists), followed by an fsync of the directory;
//! - nothing partial ever appears under a final name; a dropped or aborted writer removes its
//!   staging file, and staging files older than a day (left by a killed process) are swept
//!   when the storage is opened;
//! - directories are created 0700 and files 0600, whatever the umask.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use pgb_core::{ObjectKey, StorageExt, WriteOptions};
//! let dir = tempfile::tempdir()?;
//! let store = pgb_storage_local::FsStorage::open(dir.path())?;
//! let key = ObjectKey::parse("backups/x/manifest.json")?;
//! store.put(&key, "{}".into(), WriteOptions::create_new()).await?;
//! assert!(store.put(&key, "{}".into(), WriteOptions::create_new()).await.is_err());
//! # Ok(()) }
//! ```

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pgb_core::{
    ByteStream, Capabilities, ObjectKey, ObjectMeta, ObjectWriter, Storage, StorageError,
    StorageErrorKind, StorageInfo, WriteMode, WriteOptions,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

const STAGING: &str = ".pgb-staging";
const STALE_STAGING: Duration = Duration::from_secs(24 * 3600);
const READ_CHUNK: usize = 1 << 20;

/// A crash-safe store in a local directory.
#[derive(Debug, Clone)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    /// Opens (creating, mode 0700, if missing) a store rooted at `root`, and sweeps staging
    /// files a killed process left behind more than a day ago.
    ///
    /// # Errors
    /// When the root cannot be created or is not a directory.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, StorageError> {
        let root = root.as_ref().to_path_buf();
        let shown = root.display().to_string();
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(|e| StorageError::from_io("open", &shown, e))?;
        if !root.is_dir() {
            return Err(StorageError::new(
                StorageErrorKind::Config,
                "open",
                shown,
                "not a directory",
            ));
        }
        let store = Self { root };
        store.sweep_staging(STALE_STAGING);
        Ok(store)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes staging files older than `older_than`; returns how many were removed.
    pub fn sweep_staging(&self, older_than: Duration) -> usize {
        let Ok(entries) = fs::read_dir(self.root.join(STAGING)) else {
            return 0;
        };
        let now = SystemTime::now();
        entries
            .flatten()
            .filter(|e| {
                e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| now.duration_since(t).unwrap_or_default() >= older_than)
            })
            .filter(|e| fs::remove_file(e.path()).is_ok())
            .count()
    }

    fn path(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.as_str())
    }
}

fn mkdirs(root: &Path, dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    // Make the new directory entries durable up to the root.
    let mut d = dir;
    while let Some(parent) = d.parent() {
        fsync_dir(parent)?;
        if parent == root {
            break;
        }
        d = parent;
    }
    Ok(())
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn mtime(meta: &fs::Metadata) -> Option<time::OffsetDateTime> {
    meta.modified().ok().map(time::OffsetDateTime::from)
}

fn random_name() -> String {
    let mut rnd = [0u8; 12];
    let _ = getrandom::fill(&mut rnd);
    rnd.iter().map(|b| format!("{b:02x}")).collect()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        StorageError::new(
            StorageErrorKind::Other,
            "io",
            "",
            format!("blocking task failed: {e}"),
        )
    })?
}

#[async_trait]
impl Storage for FsStorage {
    fn info(&self) -> StorageInfo {
        StorageInfo::new(
            "file",
            format!("file://{}", self.root.display()),
            Capabilities::default(),
        )
    }

    async fn writer(
        &self,
        key: &ObjectKey,
        opts: WriteOptions,
    ) -> Result<Box<dyn ObjectWriter>, StorageError> {
        let root = self.root.clone();
        let staging_dir = root.join(STAGING);
        let staging = staging_dir.join(format!("{}.tmp", random_name()));
        let shown = key.to_string();
        let file = {
            let staging = staging.clone();
            blocking(move || {
                mkdirs(&root, &staging_dir)
                    .map_err(|e| StorageError::from_io("write", &shown, e))?;
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&staging)
                    .map_err(|e| StorageError::from_io("write", &shown, e))
            })
            .await?
        };
        Ok(Box::new(FsWriter {
            root: self.root.clone(),
            target: self.path(key),
            key: key.clone(),
            mode: opts.mode,
            staging: Some(staging),
            file: Some(file),
            size: 0,
        }))
    }

    async fn reader(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        let shown = key.to_string();
        let mut file = tokio::fs::File::open(self.path(key))
            .await
            .map_err(|e| StorageError::from_io("read", &shown, e))?;
        let (start, end) = match range {
            Some(r) => (r.start, Some(r.end)),
            None => (0, None),
        };
        if start > 0 {
            file.seek(io::SeekFrom::Start(start))
                .await
                .map_err(|e| StorageError::from_io("read", &shown, e))?;
        }
        let remaining = end.map(|e| e.saturating_sub(start));
        let stream = futures_util::stream::try_unfold(
            (file, remaining, shown),
            |(mut file, remaining, shown)| async move {
                let want = match remaining {
                    Some(0) => return Ok(None),
                    Some(n) => (n as usize).min(READ_CHUNK),
                    None => READ_CHUNK,
                };
                let mut buf = BytesMut::zeroed(want);
                let n = file
                    .read(&mut buf)
                    .await
                    .map_err(|e| StorageError::from_io("read", &shown, e))?;
                if n == 0 {
                    return Ok(None);
                }
                buf.truncate(n);
                let remaining = remaining.map(|r| r - n as u64);
                Ok(Some((buf.freeze(), (file, remaining, shown))))
            },
        );
        Ok(Box::pin(stream))
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StorageError> {
        let meta = tokio::fs::metadata(self.path(key))
            .await
            .map_err(|e| StorageError::from_io("head", key.as_str(), e))?;
        if !meta.is_file() {
            return Err(StorageError::new(
                StorageErrorKind::NotFound,
                "head",
                key.as_str(),
                "not an object",
            ));
        }
        Ok(ObjectMeta::new(key.clone(), meta.len(), mtime(&meta)))
    }

    async fn list(&self, prefix: Option<&ObjectKey>) -> Result<Vec<ObjectMeta>, StorageError> {
        let root = self.root.clone();
        let start = prefix.map_or_else(|| root.clone(), |p| self.path(p));
        let shown = prefix.map(ToString::to_string).unwrap_or_default();
        blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![start];
            while let Some(dir) = stack.pop() {
                let entries = match fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    // A prefix naming a file lists nothing under it.
                    Err(e) if e.kind() == io::ErrorKind::NotADirectory => continue,
                    Err(e) => return Err(StorageError::from_io("list", &shown, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| StorageError::from_io("list", &shown, e))?;
                    let path = entry.path();
                    if path == root.join(STAGING) {
                        continue;
                    }
                    let meta = entry
                        .metadata()
                        .map_err(|e| StorageError::from_io("list", &shown, e))?;
                    if meta.is_dir() {
                        stack.push(path);
                    } else if meta.is_file() {
                        let rel = path.strip_prefix(&root).expect("under root");
                        if let Ok(key) = ObjectKey::parse(&rel.to_string_lossy()) {
                            out.push(ObjectMeta::new(key, meta.len(), mtime(&meta)));
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        let root = self.root.clone();
        let path = self.path(key);
        let shown = key.to_string();
        blocking(move || {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(StorageError::from_io("delete", &shown, e)),
            }
            // Remove directories the delete left empty, so deleted backups leave no folders.
            let mut dir = path.parent();
            while let Some(d) = dir {
                if d == root || fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            if let Some(parent) = path.parent().filter(|p| p.exists()) {
                fsync_dir(parent).map_err(|e| StorageError::from_io("delete", &shown, e))?;
            }
            Ok(())
        })
        .await
    }
}

/// A write in progress: a staging file, published on `finish`.
#[derive(Debug)]
struct FsWriter {
    root: PathBuf,
    target: PathBuf,
    key: ObjectKey,
    mode: WriteMode,
    staging: Option<PathBuf>,
    file: Option<File>,
    size: u64,
}

impl FsWriter {
    fn io_err(&self, e: io::Error) -> StorageError {
        StorageError::from_io("write", self.key.as_str(), e)
    }
}

#[async_trait]
impl ObjectWriter for FsWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        let mut file = self.file.take().ok_or_else(|| {
            StorageError::new(
                StorageErrorKind::Other,
                "write",
                self.key.as_str(),
                "writer already failed",
            )
        })?;
        let len = chunk.len() as u64;
        let (file, res) = tokio::task::spawn_blocking(move || {
            let res = file.write_all(&chunk);
            (file, res)
        })
        .await
        .map_err(|e| {
            StorageError::new(
                StorageErrorKind::Other,
                "write",
                self.key.as_str(),
                e.to_string(),
            )
        })?;
        self.file = Some(file);
        res.map_err(|e| self.io_err(e))?;
        self.size += len;
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<ObjectMeta, StorageError> {
        let file = self.file.take();
        let staging = self.staging.clone().expect("staging until finish");
        let target = self.target.clone();
        let root = self.root.clone();
        let mode = self.mode;
        let res = tokio::task::spawn_blocking(move || -> io::Result<()> {
            let file = file.ok_or_else(|| io::Error::other("writer already failed"))?;
            file.sync_all()?;
            drop(file);
            let parent = target.parent().expect("target under root");
            mkdirs(&root, parent)?;
            match mode {
                // `link` fails atomically if the target exists: a true create-only publish.
                WriteMode::CreateNew => {
                    fs::hard_link(&staging, &target)?;
                    fs::remove_file(&staging)?;
                }
                _ => fs::rename(&staging, &target)?,
            }
            fsync_dir(parent)?;
            fsync_dir(&root.join(STAGING))
        })
        .await
        .map_err(|e| {
            StorageError::new(
                StorageErrorKind::Other,
                "write",
                self.key.as_str(),
                e.to_string(),
            )
        })?;
        match res {
            Ok(()) => {
                self.staging = None; // published: nothing to clean up on drop
                Ok(ObjectMeta::new(
                    self.key.clone(),
                    self.size,
                    Some(time::OffsetDateTime::now_utc()),
                ))
            }
            Err(e) => {
                let err = match e.kind() {
                    io::ErrorKind::AlreadyExists => StorageError::new(
                        StorageErrorKind::AlreadyExists,
                        "write",
                        self.key.as_str(),
                        "object already exists (create-only write)",
                    ),
                    _ => self.io_err(e),
                };
                Err(err) // Drop removes the staging file.
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<(), StorageError> {
        self.file = None;
        if let Some(staging) = self.staging.take() {
            match tokio::fs::remove_file(&staging).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io_err(e)),
            }
        }
        Ok(())
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        // Cancellation safety: an unfinished write leaves no staging file behind.
        if let Some(staging) = self.staging.take() {
            let _ = fs::remove_file(staging);
        }
    }
}
