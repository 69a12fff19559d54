//! Extracting a base backup into a data directory while it streams: each file written and
//! hashed as it passes (on a thread of its own), checked against `backup_manifest` at the
//! end. Entries that would land outside the directory are refused (absolute paths, `..`, a
//! link pointing outside, a symlink on the way); on any failure everything extracted is
//! removed again.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::check::{Tally, bad_archive};
use super::tar::{EntryHeader, EntryKind, TarError, TarEvent, TarReader};
use crate::dump::{DumpError, DumpErrorKind, RestoreReport, RestoreSink};

/// Mode bits kept from the archive: owner and group only (PostgreSQL refuses a data
/// directory others can read).
const MODE_MASK: u32 = 0o750;

/// What an extraction wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Extracted {
    /// Entries written (files, directories, links).
    pub(crate) entries: u64,
    /// File bytes written.
    pub(crate) bytes: u64,
    /// Files checked against `backup_manifest`.
    pub(crate) checked: u64,
}

/// The path of an entry inside the target, or why it is refused.
fn inside(path: &[u8]) -> Result<&Path, String> {
    let p = Path::new(OsStr::from_bytes(path));
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err("its path climbs out with `..`".to_owned()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("it is an absolute path".to_owned());
            }
        }
    }
    Ok(p)
}

/// Whether the link target `link`, relative to the entry at `path`, stays inside.
fn link_inside(path: &Path, link: &[u8]) -> bool {
    let l = Path::new(OsStr::from_bytes(link));
    let mut depth = path.components().count().saturating_sub(1) as i64;
    for c in l.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// The first symlink on the way from `dst` to `rel`'s parent.
fn symlink_on_the_way(dst: &Path, rel: &Path) -> Option<PathBuf> {
    let mut at = dst.to_path_buf();
    for c in rel.parent()?.components() {
        if let Component::Normal(n) = c {
            at.push(n);
            if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
                return Some(at);
            }
        }
    }
    None
}

/// Writes the entries of one archive under `dst`.
struct Writer<'a> {
    dst: &'a Path,
    file: Option<std::fs::File>,
    out: Extracted,
    dirs: Vec<(PathBuf, u32)>,
}

impl Writer<'_> {
    fn entry(&mut self, h: &EntryHeader) -> Result<(), String> {
        if h.path.is_empty() {
            return Ok(()); // the archive's root, `./`
        }
        let refuse = |why: String| format!("refusing archive entry {}: {why}", h.shown());
        let rel = inside(&h.path).map_err(refuse)?;
        if let Some(link) = symlink_on_the_way(self.dst, rel) {
            return Err(refuse(format!(
                "it would be written through the symlink {}",
                link.strip_prefix(self.dst).unwrap_or(&link).display()
            )));
        }
        let to = self.dst.join(rel);
        if let Some(parent) = to.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        let io = |e: io::Error| format!("writing {}: {e}", to.display());
        match h.kind {
            EntryKind::Directory => {
                match std::fs::DirBuilder::new().mode(0o700).create(&to) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && to.is_dir() => {}
                    Err(e) => return Err(io(e)),
                }
                // Modes last, so a read-only directory does not stop its content.
                self.dirs.push((to, h.mode & MODE_MASK));
            }
            EntryKind::File => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(h.mode & MODE_MASK)
                    .open(&to)
                    .map_err(io)?;
                self.file = Some(f);
            }
            EntryKind::Symlink => {
                let link = h.link.as_deref().unwrap_or_default();
                if !link_inside(rel, link) {
                    return Err(refuse(format!(
                        "it links to {}, outside the data directory",
                        String::from_utf8_lossy(link)
                    )));
                }
                std::os::unix::fs::symlink(OsStr::from_bytes(link), &to).map_err(io)?;
            }
            EntryKind::HardLink => {
                let link = h.link.as_deref().unwrap_or_default();
                let target =
                    inside(link).map_err(|why| refuse(format!("its link target: {why}")))?;
                if symlink_on_the_way(self.dst, target).is_some() {
                    return Err(refuse("its link target lies behind a symlink".to_owned()));
                }
                std::fs::hard_link(self.dst.join(target), &to).map_err(io)?;
            }
            EntryKind::Other(flag) => {
                return Err(refuse(format!(
                    "it is a special file (tar type {:?}), which a data directory never holds",
                    char::from(flag)
                )));
            }
        }
        self.out.entries += 1;
        Ok(())
    }

    fn data(&mut self, d: &[u8]) -> Result<(), String> {
        if let Some(f) = &mut self.file {
            f.write_all(d).map_err(|e| format!("writing: {e}"))?;
            self.out.bytes += d.len() as u64;
        }
        Ok(())
    }

    fn end(&mut self) {
        self.file = None;
    }

    fn set_dir_modes(&mut self) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt as _;
        self.dirs.sort_by(|a, b| b.0.cmp(&a.0));
        for (d, mode) in self.dirs.drain(..) {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode | 0o700))
                .map_err(|e| format!("setting the mode of {}: {e}", d.display()))?;
        }
        Ok(())
    }
}

/// Runs the extraction of the chunks `rx` delivers into `dst`.
fn extract(
    mut rx: mpsc::Receiver<Bytes>,
    dst: &Path,
    manifest_sha256: Option<&str>,
) -> Result<Extracted, DumpError> {
    let mut reader = TarReader::new();
    let mut tally = Tally::default();
    let mut w = Writer {
        dst,
        file: None,
        out: Extracted::default(),
        dirs: Vec::new(),
    };
    // A write failure (disk full) is an I/O error; a refused or damaged entry an integrity one.
    let mut write_error: Option<String> = None;
    while let Some(chunk) = rx.blocking_recv() {
        let fed = reader.feed(&chunk, &mut |e| {
            tally.event(&e)?;
            let res = match &e {
                TarEvent::Entry(h) => w.entry(h).map_err(|m| (m, h.kind)),
                TarEvent::Data(d) => w.data(d).map_err(|m| (m, EntryKind::File)),
                TarEvent::EntryEnd => {
                    w.end();
                    Ok(())
                }
            };
            res.map_err(|(m, _)| {
                let refused = m.starts_with("refusing");
                if !refused {
                    write_error = Some(m.clone());
                }
                TarError(m)
            })
        });
        if let Err(e) = fed {
            return Err(match write_error.take() {
                Some(m) => DumpError::new(DumpErrorKind::Io, m),
                None => bad_archive(format!("base backup: {e}")),
            });
        }
    }
    reader
        .finish()
        .map_err(|e| bad_archive(format!("base backup: {e}")))?;
    w.set_dir_modes()
        .map_err(|m| DumpError::new(DumpErrorKind::Io, m))?;
    w.out.checked = tally.finish(manifest_sha256)?;
    Ok(w.out)
}

/// Makes `dir` ready to extract into, as the plan found it: created (mode 0700) when missing,
/// emptied when it is to be replaced. Whether pgb created it (and so removes it again when the
/// restore fails); the error names the directory.
pub(crate) fn prepare_target(dir: &Path, state: &super::TargetDir) -> Result<bool, String> {
    match state {
        super::TargetDir::Missing => {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            Ok(true)
        }
        super::TargetDir::Empty => Ok(false),
        super::TargetDir::Replaced { .. } => {
            empty_dir(dir).map_err(|e| format!("emptying {}: {e}", dir.display()))?;
            Ok(false)
        }
    }
}

/// Removes everything inside `dir` (not `dir` itself).
pub(crate) fn empty_dir(dir: &Path) -> io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let kind = std::fs::symlink_metadata(&p)?.file_type();
        if kind.is_dir() {
            make_writable(&p);
            std::fs::remove_dir_all(&p)?;
        } else {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

/// Gives the owner write and search permission on `dir` and every directory below it (so a
/// read-only directory can be emptied).
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&e.path());
            }
        }
    }
}

/// The extraction of a base backup into a data directory (a [`RestoreSink`]): started on an
/// empty directory; dropped or aborted before [`Extractor::finish_extract`] succeeded, it
/// removes everything it wrote (and the directory, if the restore created it).
#[derive(Debug)]
pub(crate) struct Extractor {
    dir: PathBuf,
    created_dir: bool,
    tx: Option<mpsc::Sender<Bytes>>,
    task: Option<JoinHandle<Result<Extracted, DumpError>>>,
    done: bool,
}

impl Extractor {
    /// Starts extracting into `dir` (empty); `created_dir`: the restore created it.
    pub(crate) fn start(dir: PathBuf, created_dir: bool, manifest_sha256: Option<String>) -> Self {
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let dst = dir.clone();
        let task =
            tokio::task::spawn_blocking(move || extract(rx, &dst, manifest_sha256.as_deref()));
        Self {
            dir,
            created_dir,
            tx: Some(tx),
            task: Some(task),
            done: false,
        }
    }

    async fn outcome(&mut self) -> Result<Extracted, DumpError> {
        self.tx = None;
        match self.task.take() {
            Some(t) => t
                .await
                .map_err(|e| DumpError::new(DumpErrorKind::Io, format!("extraction task: {e}")))?,
            None => Err(DumpError::new(DumpErrorKind::Io, "the extraction stopped")),
        }
    }

    /// Ends the input, waits for the extraction and the check against `backup_manifest`.
    /// On failure, everything extracted is removed.
    pub(crate) async fn finish_extract(&mut self) -> Result<Extracted, DumpError> {
        match self.outcome().await {
            Ok(x) => {
                self.done = true;
                Ok(x)
            }
            Err(e) => {
                self.discard();
                Err(e)
            }
        }
    }

    /// Removes what was extracted (after the extraction thread stopped).
    pub(crate) async fn abort_extract(&mut self) {
        let _ = self.outcome().await;
        self.discard();
    }

    /// Keeps what was extracted even if dropped later (the restore succeeded).
    pub(crate) fn keep(&mut self) {
        self.done = true;
    }

    /// Marks the extraction failed after it finished (a later step failed): dropping removes
    /// what it wrote.
    pub(crate) fn unkeep(&mut self) {
        self.done = false;
    }

    fn discard(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let res = if self.created_dir {
            make_writable(&self.dir);
            std::fs::remove_dir_all(&self.dir)
        } else {
            empty_dir(&self.dir)
        };
        match res {
            Ok(()) => {
                tracing::info!(dir = %self.dir.display(), "removed what the failed restore extracted")
            }
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove what the failed restore extracted")
            }
        }
    }
}

impl Drop for Extractor {
    fn drop(&mut self) {
        self.tx = None;
        if !self.done {
            // The thread may still write: wait for it (it ends once the channel closed).
            if let Some(t) = self.task.take() {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                while !t.is_finished() && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
            self.discard();
        }
    }
}

#[async_trait]
impl RestoreSink for Extractor {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError> {
        let sent = match &self.tx {
            Some(tx) => tx.send(chunk).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        Err(self
            .outcome()
            .await
            .err()
            .unwrap_or_else(|| bad_archive("base backup: data after the end of the archive")))
    }

    async fn finish(mut self: Box<Self>) -> Result<RestoreReport, DumpError> {
        let x = self.finish_extract().await?;
        Ok(
            RestoreReport::new(self.dir.display().to_string(), false, "tar")
                .with_toc_entries(x.checked),
        )
    }

    async fn abort(mut self: Box<Self>) {
        self.abort_extract().await;
    }
}
