//! Files beside the database (an application's uploads): a directory archived as a tar stream
//! into a backup's pipeline ([`FilesDump`]), and extracted again ([`FilesRestore`]) only once
//! the stored checksum matched.
//!
//! Symlinks and special files are stored as such, never followed; extraction recreates files,
//! directories and symlinks, skips device nodes and FIFOs, refuses entries that would land
//! outside the target directory (`..`, absolute paths, a symlink on the way) and drops
//! setuid, setgid, sticky and world-writable bits unless asked to keep them; all of which it
//! reports in [`FilesRestored`] (the library prints nothing).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::dump::{
    ArchiveFormat, DumpError, DumpErrorKind, DumpSource, DumpStream, PreparedDump, RestoreReport,
    RestoreSink,
};

const CHUNK: usize = 256 * 1024;

fn io_error(what: impl std::fmt::Display) -> DumpError {
    DumpError::new(DumpErrorKind::Io, what.to_string())
}

/// A directory to archive into a backup: the caller checks nothing; [`FilesDump::new`] does.
#[derive(Debug, Clone)]
pub struct FilesDump {
    path: PathBuf,
    source: DumpSource,
}

impl FilesDump {
    /// Archives `path`, which must be a directory.
    ///
    /// # Errors
    /// `NoMatch` when `path` is not a directory (missing, a file, unreadable).
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, DumpError> {
        let path = path.into();
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(DumpError::new(
                    DumpErrorKind::NoMatch,
                    format!("files directory {} is not a directory", path.display()),
                ));
            }
            Err(e) => {
                return Err(DumpError::new(
                    DumpErrorKind::NoMatch,
                    format!("files directory {}: {e}", path.display()),
                ));
            }
        }
        let source = DumpSource::new("files", "local", "", "tar", 0, ArchiveFormat::Plain);
        Ok(Self { path, source })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The archive as a prepared dump for the pipeline.
    pub fn prepared(&self) -> Box<dyn PreparedDump> {
        Box::new(self.clone())
    }
}

#[async_trait]
impl PreparedDump for FilesDump {
    fn source(&self) -> &DumpSource {
        &self.source
    }

    async fn start(self: Box<Self>) -> Result<Box<dyn DumpStream>, DumpError> {
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let path = self.path.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut b = tar::Builder::new(ChannelWriter {
                tx,
                buf: Vec::with_capacity(CHUNK),
            });
            b.follow_symlinks(false);
            b.mode(tar::HeaderMode::Complete);
            append_tree(&mut b, &path)?;
            let mut w = b.into_inner()?;
            w.flush()
        });
        Ok(Box::new(FilesStream {
            rx,
            task: Some(task),
            path: self.path,
        }))
    }
}

/// Appends `root` as `.` and everything under it, in name order, symlinks as links. A socket
/// is skipped with a warning: tar cannot hold one, it is recreated by the program listening on
/// it, and one in an uploads directory must not fail the whole backup (the database's dump
/// included), which tar's own `append_dir_all` does.
fn append_tree<W: Write>(b: &mut tar::Builder<W>, root: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt as _;
    b.append_dir(".", root)?;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut entries = std::fs::read_dir(root.join(&rel))?.collect::<io::Result<Vec<_>>>()?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            let inner = rel.join(e.file_name());
            let name = Path::new(".").join(&inner);
            let kind = e.file_type()?;
            if kind.is_socket() {
                tracing::warn!(path = %e.path().display(), "a socket is not archived (tar cannot hold one)");
                continue;
            }
            if kind.is_dir() {
                b.append_dir(&name, e.path())?;
                stack.push(inner);
            } else {
                b.append_path_with_name(e.path(), &name)?;
            }
        }
    }
    Ok(())
}

/// Sends what tar writes into a channel, in chunks.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the backup stopped reading"))
    }
}

#[derive(Debug)]
struct FilesStream {
    rx: mpsc::Receiver<Bytes>,
    task: Option<tokio::task::JoinHandle<io::Result<()>>>,
    path: PathBuf,
}

#[async_trait]
impl DumpStream for FilesStream {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, DumpError> {
        if let Some(chunk) = self.rx.recv().await {
            return Ok(Some(chunk));
        }
        // The archiver finished (or failed): only a clean end is the end of the archive.
        let Some(task) = self.task.take() else {
            return Ok(None);
        };
        match task.await {
            Ok(Ok(())) => Ok(None),
            Ok(Err(e)) => Err(io_error(format_args!(
                "archiving {}: {e}",
                self.path.display()
            ))),
            Err(e) => Err(io_error(format_args!("archiver task: {e}"))),
        }
    }

    async fn abort(mut self: Box<Self>) {
        self.rx.close();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// How many names a [`Listed`] keeps; the count goes on.
const MAX_NAMED: usize = 100;

/// Mode bits a files restore drops unless asked to keep them: setuid, setgid, sticky and
/// write for others.
const UNSAFE_MODE_BITS: u32 = 0o7002;

/// Some of the things a restore noticed: the first 100 of them, and how many in all
/// (an uploads directory may hold millions of files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<T> {
    /// The first ones, in the order they were met (directories after files: they are
    /// created last).
    pub shown: Vec<T>,
    /// How many in all.
    pub total: u64,
}

impl<T> Default for Listed<T> {
    fn default() -> Self {
        Self {
            shown: Vec::new(),
            total: 0,
        }
    }
}

impl<T> Listed<T> {
    fn push(&mut self, item: T) {
        if self.shown.len() < MAX_NAMED {
            self.shown.push(item);
        }
        self.total += 1;
    }

    fn extend(&mut self, items: impl IntoIterator<Item = T>) {
        for item in items {
            self.push(item);
        }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// A file or directory restored with other permission bits than the archive holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModeChange {
    /// Its path inside the target (`.` for the target itself).
    pub path: String,
    /// The permission bits in the archive.
    pub archived: u32,
    /// The permission bits it was given.
    pub restored: u32,
}

/// An archive entry that was not extracted because it would have landed outside the target.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefusedEntry {
    /// Its path as the archive names it.
    pub path: String,
    /// Why: `..` in its path, an absolute path, a symlink on the way.
    pub reason: String,
}

/// How a files restore treats its target and the archive's permission bits.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct FilesRestoreOptions {
    /// Replace the content of a non-empty target (else such a target is refused).
    pub clean: bool,
    /// Keep setuid, setgid, sticky and world-writable bits as archived (else they are
    /// dropped, and every file whose bits changed is reported).
    pub keep_modes: bool,
    /// Paths the restore must never replace, with what they are (`the repository`): a target
    /// that is one of them or holds one is refused.
    pub protected: Vec<(PathBuf, String)>,
}

impl FilesRestoreOptions {
    /// No `clean`, no `keep_modes`, nothing protected.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`FilesRestoreOptions::clean`].
    pub fn with_clean(mut self, clean: bool) -> Self {
        self.clean = clean;
        self
    }

    /// Sets [`FilesRestoreOptions::keep_modes`].
    pub fn with_keep_modes(mut self, keep: bool) -> Self {
        self.keep_modes = keep;
        self
    }

    /// Adds a path the restore must not replace, described as `what`.
    pub fn with_protected(mut self, path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        self.protected.push((path.into(), what.into()));
        self
    }
}

/// What a files restore did: where the files went, and what the caller should tell the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FilesRestored {
    /// The archived directory, as the backup names it (filled in by the repository).
    pub source: String,
    /// Where the files are now: the target, absolute, symlinks resolved.
    pub destination: PathBuf,
    /// Files and directories whose setuid, setgid, sticky or world-writable bits were dropped.
    pub modes_changed: Listed<ModeChange>,
    /// Entries not extracted because they would have landed outside the target.
    pub refused: Listed<RefusedEntry>,
    /// Device nodes and FIFOs, archived as such and not recreated.
    pub special_skipped: Listed<String>,
    /// Staging folders of earlier, killed restores into the same target, removed.
    pub stale_removed: Vec<PathBuf>,
    /// Anything else worth a warning (the previous content could not be removed).
    pub warnings: Vec<String>,
}

/// Where each of several files archives of one backup is restored, under the restore's
/// target: the base name of its directory (`/srv/app/uploads` → `uploads`), or `files-N`
/// where there is none (`/`). Base names that collide (`a/uploads`, `b/uploads`; compared
/// ignoring case, for case-insensitive file systems) all get the number of their archive
/// (`files-N`) appended: `uploads-1`, `uploads-2`. `names` are the `files` artifacts' names in
/// manifest order; so a backup restores into the same names on every run.
pub(crate) fn destination_names(names: &[&str]) -> Vec<String> {
    let bases: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Path::new(n).file_name().map_or_else(
                || format!("files-{}", i + 1),
                |b| b.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let key = |s: &str| s.to_lowercase();
    let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut out: Vec<Option<String>> = vec![None; bases.len()];
    // Unique base names keep them, as before.
    for (i, b) in bases.iter().enumerate() {
        if bases.iter().filter(|o| key(o) == key(b)).count() == 1 {
            taken.insert(key(b));
            out[i] = Some(b.clone());
        }
    }
    for (i, b) in bases.iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        let mut name = format!("{b}-{}", i + 1);
        let mut k = 2;
        while taken.contains(&key(&name)) {
            name = format!("{b}-{}-{k}", i + 1);
            k += 1;
        }
        taken.insert(key(&name));
        out[i] = Some(name);
    }
    out.into_iter().flatten().collect()
}

/// Whether `name` has the form of a staging folder of a files restore: `.NAME.pgb-` and 12
/// lowercase hex digits.
fn is_staging_name(name: &[u8]) -> bool {
    let Some(rest) = name.strip_prefix(b".") else {
        return false;
    };
    if rest.len() < 1 + 5 + 12 {
        return false;
    }
    let (head, hex) = rest.split_at(rest.len() - 12);
    head.ends_with(b".pgb-")
        && hex
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// Whether `name` is a staging folder of a restore into a target named `target_name`.
fn is_staging_of(name: &[u8], target_name: &[u8]) -> bool {
    let mut prefix = Vec::with_capacity(target_name.len() + 6);
    prefix.push(b'.');
    prefix.extend_from_slice(target_name);
    prefix.extend_from_slice(b".pgb-");
    name.len() == prefix.len() + 12 && name.starts_with(&prefix) && is_staging_name(name)
}

/// A fresh staging name beside a target named `target_name`.
fn staging_name(target_name: &std::ffi::OsStr) -> std::ffi::OsString {
    let mut rnd = [0u8; 6];
    let _ = getrandom::fill(&mut rnd);
    let mut s = std::ffi::OsString::from(".");
    s.push(target_name);
    s.push(format!(".pgb-{}", crate::codec::hex(&rnd)));
    s
}

/// `target` absolute and free of `.`, `..` and symlinks: the part that exists canonicalized,
/// the part still to be created appended (a name that does not exist is no symlink, so its
/// `..` is lexical).
fn resolve(target: &Path) -> io::Result<PathBuf> {
    use std::path::Component;
    let abs = if target.is_absolute() {
        target.to_path_buf()
    } else {
        std::env::current_dir()?.join(target)
    };
    let mut out = PathBuf::from("/");
    let mut missing = 0usize;
    for c in abs.components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
                missing = missing.saturating_sub(1);
            }
            Component::Normal(name) => {
                let next = out.join(name);
                if missing > 0 {
                    missing += 1;
                    out = next;
                    continue;
                }
                match std::fs::symlink_metadata(&next) {
                    Ok(_) => out = std::fs::canonicalize(&next)?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        missing = 1;
                        out = next;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(out)
}

fn refused(what: impl std::fmt::Display) -> DumpError {
    DumpError::new(DumpErrorKind::Refused, what.to_string())
}

/// Removes the staging folders of earlier restores into `target` (`.NAME.pgb-XXXXXXXXXXXX`
/// beside it, exactly that form, real directories) whose restore is gone: every restore holds
/// an exclusive `flock` on its staging folder from the moment it creates it, which the kernel
/// releases however the process ends (SIGKILL, OOM, power loss), and no sooner; a folder whose
/// lock can be taken is therefore abandoned. (Neither a process id, reused and meaningless
/// across containers sharing the directory, nor an age, wrong for a restore that runs for
/// hours, can tell.) A folder whose lock cannot be checked is left alone. Returns the folders
/// removed, and warnings for those that could not be.
fn remove_stale_staging(target: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let (mut removed, mut warnings) = (Vec::new(), Vec::new());
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        return (removed, warnings);
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return (removed, warnings);
    };
    for e in entries.flatten() {
        let fname = e.file_name();
        if !is_staging_of(fname.as_encoded_bytes(), name.as_encoded_bytes()) {
            continue;
        }
        let path = e.path();
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_dir());
        if !is_dir {
            continue;
        }
        let Ok(dir) = std::fs::File::open(&path) else {
            continue;
        };
        if dir.try_lock().is_err() {
            continue; // a live restore's, or a file system without locks: left alone
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => warnings.push(format!(
                "could not remove {}, left by an interrupted files restore: {e}",
                path.display()
            )),
        }
    }
    (removed, warnings)
}

/// Why an archive entry at `path` would land outside the target, if it would.
fn escapes(path: &Path) -> Option<&'static str> {
    use std::path::Component;
    path.components().find_map(|c| match c {
        Component::ParentDir => Some("its path climbs out with `..`"),
        Component::RootDir | Component::Prefix(_) => Some("it is an absolute path"),
        _ => None,
    })
}

/// The first symlink already extracted on the way from `dst` to `path` (a later entry through
/// it would be written wherever it points).
fn symlink_on_the_way(dst: &Path, path: &Path) -> Option<PathBuf> {
    let mut at = dst.to_path_buf();
    let parent = path.parent()?;
    for c in parent.components() {
        if let std::path::Component::Normal(n) = c {
            at.push(n);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => return Some(at),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
    None
}

/// What the extractor found besides the files it wrote.
#[derive(Debug, Default)]
struct Extracted {
    /// The mode of the archive's root entry (`./`), already stripped unless kept.
    root_mode: Option<u32>,
    modes_changed: Listed<ModeChange>,
    refused: Listed<RefusedEntry>,
    special_skipped: Listed<String>,
}

/// Extracts the tar stream `reader` into `dst` (an empty directory).
fn extract(reader: impl Read, dst: &Path, keep_modes: bool) -> io::Result<Extracted> {
    use tar::EntryType;
    let mut out = Extracted::default();
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(false);
    let mask = if keep_modes { 0 } else { UNSAFE_MODE_BITS };
    let mut directories = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        let path = entry.path()?.into_owned();
        let shown = path.display().to_string();
        if kind.is_fifo() || kind.is_character_special() || kind.is_block_special() {
            // Device nodes and FIFOs are archived as such but not recreated.
            tracing::debug!(path = %shown, "not restoring a special file");
            out.special_skipped.push(shown);
            continue;
        }
        let escape = escapes(&path).map(str::to_owned).or_else(|| {
            if !kind.is_hard_link() {
                return None;
            }
            match entry.link_name() {
                Ok(Some(l)) => escapes(&l).map(|r| format!("it links to a file outside ({r})")),
                _ => None,
            }
        });
        if let Some(reason) = escape {
            tracing::debug!(path = %shown, reason, "archive entry refused");
            out.refused.push(RefusedEntry {
                path: shown,
                reason,
            });
            continue;
        }
        let mode = entry.header().mode().map(|m| m & 0o7777).ok();
        let has_mode = matches!(
            kind,
            EntryType::Regular
                | EntryType::Continuous
                | EntryType::GNUSparse
                | EntryType::Directory
        );
        let restored = mode.map(|m| m & !mask);
        let is_root = path
            .components()
            .all(|c| matches!(c, std::path::Component::CurDir));
        let change = match (mode, restored) {
            (Some(archived), Some(restored)) if has_mode && archived != restored => {
                Some(ModeChange {
                    path: if is_root { ".".to_owned() } else { shown },
                    archived,
                    restored,
                })
            }
            _ => None,
        };
        if is_root {
            // The target itself: its mode is applied when the staging folder is complete.
            if kind.is_dir() {
                out.root_mode = restored;
                out.modes_changed.extend(change);
            }
            continue;
        }
        entry.set_mask(mask);
        if kind.is_dir() {
            // Directories last, deepest first, so that a read-only one does not stop its
            // content from being written (as tar's own `unpack` does).
            directories.push((path, entry, change));
            continue;
        }
        if unpack(&mut entry, &path, dst, &mut out.refused)? {
            out.modes_changed.extend(change);
        }
    }
    directories.sort_by(|a, b| b.0.cmp(&a.0));
    for (path, mut entry, change) in directories {
        if unpack(&mut entry, &path, dst, &mut out.refused)? {
            out.modes_changed.extend(change);
        }
    }
    // tar stops at the first zero block of the end marker: read the rest (the second block,
    // padding), so that the sender is not cut off before the archive has been verified.
    io::copy(&mut archive.into_inner(), &mut io::sink())?;
    Ok(out)
}

/// Unpacks one entry inside `dst`, unless a symlink extracted earlier lies on its way; whether
/// it was.
fn unpack<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    path: &Path,
    dst: &Path,
    refused: &mut Listed<RefusedEntry>,
) -> io::Result<bool> {
    if let Some(link) = symlink_on_the_way(dst, path) {
        let rel = link
            .strip_prefix(dst)
            .unwrap_or(&link)
            .display()
            .to_string();
        refused.push(RefusedEntry {
            path: path.display().to_string(),
            reason: format!("it would be written through the symlink {rel}"),
        });
        return Ok(false);
    }
    // tar's own checks stay: `..` and symlinks are refused again there.
    if !entry.unpack_in(dst)? {
        refused.push(RefusedEntry {
            path: path.display().to_string(),
            reason: "it would land outside the target".to_owned(),
        });
        return Ok(false);
    }
    Ok(true)
}

/// Extracts a files archive into `target`: into a private staging folder beside it
/// (`.NAME.pgb-XXXXXXXXXXXX`, mode 0700, locked while the restore lives) while the stream
/// arrives, moved into place only at [`RestoreSink::finish`] (after the checksum matched).
///
/// The target is resolved first (made absolute, symlinks, `.` and `..` resolved, a missing
/// one below its nearest existing ancestor), so the staging folder is always beside it and
/// never inside it; refused as unsafe before anything is touched: `/`, a target inside a
/// staging folder, a target that is or holds a [protected](FilesRestoreOptions::protected)
/// path, a target that is not a directory, a non-empty target without `clean`.
///
/// At `finish` an existing target is moved aside (to a staging name), the extracted tree
/// renamed into its place, and the previous content removed: at no moment are both gone. The
/// archive's setuid, setgid, sticky and world-writable bits are dropped unless `keep_modes`.
/// Staging folders of earlier restores into the same target that were killed are removed by
/// the next one (see [`FilesRestored::stale_removed`]).
#[derive(Debug)]
pub struct FilesRestore {
    target: PathBuf,
    staging: PathBuf,
    clean: bool,
    /// The lock on the staging folder: held until it is removed or moved into place.
    lock: Option<std::fs::File>,
    placed: bool,
    stale_removed: Vec<PathBuf>,
    warnings: Vec<String>,
    tx: Option<mpsc::Sender<Bytes>>,
    task: Option<tokio::task::JoinHandle<io::Result<Extracted>>>,
}

impl FilesRestore {
    /// Starts a restore into `target`, replacing a non-empty one if `clean`.
    ///
    /// # Errors
    /// As [`FilesRestore::begin_with`].
    pub fn begin(target: impl Into<PathBuf>, clean: bool) -> Result<Self, DumpError> {
        Self::begin_with(target, &FilesRestoreOptions::new().with_clean(clean))
    }

    /// Resolves `target` and checks that restoring there is safe, touching nothing. Returns
    /// the resolved target.
    ///
    /// # Errors
    /// `Refused` for `/`, a target inside a staging folder, one that is or holds a protected
    /// path, or that is not a directory; `DirectoryNotEmpty` for a non-empty target without
    /// `clean`; `Io` when it cannot be resolved or read.
    pub fn check_target(target: &Path, opts: &FilesRestoreOptions) -> Result<PathBuf, DumpError> {
        let dest = resolve(target).map_err(|e| {
            if e.kind() == io::ErrorKind::NotADirectory {
                refused(format_args!(
                    "files target {} is below a file, not a directory",
                    target.display()
                ))
            } else {
                io_error(format_args!("files target {}: {e}", target.display()))
            }
        })?;
        let shown = dest.display();
        if dest.parent().is_none() {
            return Err(refused(format_args!(
                "files target {shown} is the root directory, which a restore would replace"
            )));
        }
        if let Some(inside) = dest.ancestors().find(|a| {
            a.file_name()
                .is_some_and(|n| is_staging_name(n.as_encoded_bytes()))
        }) {
            return Err(refused(format_args!(
                "files target {shown} lies inside {}, the staging folder of another files \
                 restore (removed when that restore ends or by the next one beside it)",
                inside.display()
            )));
        }
        for (path, what) in &opts.protected {
            let Ok(p) = resolve(path) else { continue };
            if p.starts_with(&dest) {
                return Err(refused(format_args!(
                    "files target {shown} holds {what} ({}), which replacing it would delete",
                    p.display()
                )));
            }
        }
        match std::fs::metadata(&dest) {
            Ok(m) if !m.is_dir() => Err(refused(format_args!(
                "files target {shown} is not a directory"
            ))),
            Ok(_) => {
                let non_empty = std::fs::read_dir(&dest)
                    .map_err(|e| io_error(format_args!("reading {shown}: {e}")))?
                    .next()
                    .is_some();
                if non_empty && !opts.clean {
                    return Err(DumpError::new(
                        DumpErrorKind::DirectoryNotEmpty,
                        format!("files target {shown} is not empty"),
                    ));
                }
                Ok(dest)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(dest),
            Err(e) => Err(io_error(format_args!("files target {shown}: {e}"))),
        }
    }

    /// Starts a restore into `target` as `opts` say: checks it ([`FilesRestore::check_target`]),
    /// creates its missing parents, removes stale staging folders beside it and creates its
    /// own. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// As [`FilesRestore::check_target`]; `Io`.
    pub fn begin_with(
        target: impl Into<PathBuf>,
        opts: &FilesRestoreOptions,
    ) -> Result<Self, DumpError> {
        let target = Self::check_target(&target.into(), opts)?;
        let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
            return Err(refused(format_args!(
                "files target {} has no parent directory",
                target.display()
            )));
        };
        std::fs::create_dir_all(parent)
            .map_err(|e| io_error(format_args!("creating {}: {e}", parent.display())))?;
        let (stale_removed, warnings) = remove_stale_staging(&target);
        let (staging, lock) = create_staging(parent, name)?;
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let dst = staging.clone();
        let keep_modes = opts.keep_modes;
        let task = tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                rx,
                cur: Bytes::new(),
            };
            extract(reader, &dst, keep_modes)
        });
        Ok(Self {
            target,
            staging,
            clean: opts.clean,
            lock: Some(lock),
            placed: false,
            stale_removed,
            warnings,
            tx: Some(tx),
            task: Some(task),
        })
    }

    /// The resolved target.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Ends the input, waits for the extraction, and moves the tree into place; what
    /// [`RestoreSink::finish`] does, with the full report. Call it only after the archive was
    /// verified.
    ///
    /// # Errors
    /// `Io` when the extraction failed or the target cannot be replaced (a mount point cannot
    /// be moved aside); `DirectoryNotEmpty` when a target that was empty without `clean` is not
    /// any more. The target is left as it was.
    pub async fn finish_files(mut self) -> Result<FilesRestored, DumpError> {
        self.tx = None;
        let extracted = match self.task.take() {
            Some(t) => t
                .await
                .map_err(|e| io_error(format_args!("extractor task: {e}")))?,
            None => Err(io::Error::other("extracting files stopped")),
        }
        .map_err(|e| io_error(format_args!("extracting files: {e}")))?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = extracted.root_mode.unwrap_or(0o755);
            std::fs::set_permissions(&self.staging, std::fs::Permissions::from_mode(mode))
                .map_err(|e| {
                    io_error(format_args!(
                        "setting the mode of {}: {e}",
                        self.target.display()
                    ))
                })?;
        }
        let mut warnings = std::mem::take(&mut self.warnings);
        if let Some(w) = self.replace_target()? {
            warnings.push(w);
        }
        self.placed = true;
        self.lock = None;
        Ok(FilesRestored {
            source: String::new(),
            destination: self.target.clone(),
            modes_changed: extracted.modes_changed,
            refused: extracted.refused,
            special_skipped: extracted.special_skipped,
            stale_removed: std::mem::take(&mut self.stale_removed),
            warnings,
        })
    }

    /// Moves the staging folder into the target's place; an existing target is moved aside
    /// first (and back if the move fails), then removed. Returns a warning when the previous
    /// content could not be removed.
    fn replace_target(&self) -> Result<Option<String>, DumpError> {
        let shown = self.target.display();
        let exists = std::fs::symlink_metadata(&self.target).is_ok();
        if !exists {
            return std::fs::rename(&self.staging, &self.target)
                .map(|()| None)
                .map_err(|e| io_error(format_args!("moving the restored files to {shown}: {e}")));
        }
        if !self.clean && std::fs::read_dir(&self.target).is_ok_and(|mut d| d.next().is_some()) {
            return Err(DumpError::new(
                DumpErrorKind::DirectoryNotEmpty,
                format!("files target {shown} is not empty"),
            ));
        }
        let (Some(parent), Some(name)) = (self.target.parent(), self.target.file_name()) else {
            return Err(io_error(format_args!("files target {shown} has no parent")));
        };
        let aside = parent.join(staging_name(name));
        // Locked like a staging folder, so that a restore beside it leaves it alone until it
        // is removed below (or this process dies: then it is stale).
        let old = std::fs::File::open(&self.target).ok();
        if let Some(f) = &old {
            let _ = f.try_lock();
        }
        std::fs::rename(&self.target, &aside).map_err(|e| {
            let busy = if e.kind() == io::ErrorKind::ResourceBusy {
                " (a mount point cannot be replaced)"
            } else {
                ""
            };
            io_error(format_args!(
                "moving {shown} aside to replace it{busy}: {e}; it is unchanged"
            ))
        })?;
        if let Err(e) = std::fs::rename(&self.staging, &self.target) {
            let back = std::fs::rename(&aside, &self.target);
            return Err(io_error(match back {
                Ok(()) => format!("moving the restored files to {shown}: {e}; it is unchanged"),
                Err(b) => format!(
                    "moving the restored files to {shown}: {e}; its previous content is in {} \
                     and could not be moved back: {b}",
                    aside.display()
                ),
            }));
        }
        let warning = match std::fs::remove_dir_all(&aside) {
            Ok(()) => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => Some(format!(
                "the previous content of {shown} is in {} and could not be removed: {e}",
                aside.display()
            )),
        };
        drop(old);
        Ok(warning)
    }

    /// Stops the extraction and removes the staging folder; what [`RestoreSink::abort`] does.
    pub async fn abort_files(mut self) {
        self.tx = None;
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        self.remove_staging();
    }

    fn remove_staging(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
        self.lock = None;
    }
}

/// Creates and locks a fresh staging folder beside `parent/name`. A restore removing stale
/// folders beside the same target could take the lock of a folder created a moment ago,
/// before it was locked, and remove it: the lock is taken on the open folder and checked to be
/// the one at the path, else another name is tried.
fn create_staging(
    parent: &Path,
    name: &std::ffi::OsStr,
) -> Result<(PathBuf, std::fs::File), DumpError> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
    let mut last = None;
    for _ in 0..3 {
        let staging = parent.join(staging_name(name));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .map_err(|e| io_error(format_args!("creating {}: {e}", staging.display())))?;
        let locked = std::fs::File::open(&staging).and_then(|f| {
            f.try_lock().map_err(io::Error::from)?;
            let (held, there) = (f.metadata()?, std::fs::symlink_metadata(&staging)?);
            if (held.dev(), held.ino()) == (there.dev(), there.ino()) {
                Ok(f)
            } else {
                Err(io::Error::other("replaced while being locked"))
            }
        });
        match locked {
            Ok(f) => return Ok((staging, f)),
            Err(e) => last = Some((staging, e)),
        }
    }
    let (staging, e) = last.expect("tried");
    Err(io_error(format_args!("locking {}: {e}", staging.display())))
}

impl Drop for FilesRestore {
    fn drop(&mut self) {
        self.tx = None;
        self.remove_staging();
    }
}

/// Reads the chunks the restore receives, for tar.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

#[async_trait]
impl RestoreSink for FilesRestore {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError> {
        let tx = self.tx.as_ref().expect("open restore");
        if tx.send(chunk).await.is_err() {
            // The extractor stopped: its error is reported by `finish`.
            return Err(match self.task.take() {
                Some(t) => match t.await {
                    Ok(Err(e)) => io_error(format_args!("extracting files: {e}")),
                    _ => io_error("extracting files stopped"),
                },
                None => io_error("extracting files stopped"),
            });
        }
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<RestoreReport, DumpError> {
        let done = (*self).finish_files().await?;
        Ok(RestoreReport::new(
            done.destination.display().to_string(),
            true,
            "tar",
        ))
    }

    async fn abort(self: Box<Self>) {
        (*self).abort_files().await;
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// A fresh directory under the system's temp directory, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let mut rnd = [0u8; 8];
            getrandom::fill(&mut rnd).unwrap();
            let p = std::env::temp_dir().join(format!("pgb-files-{}", crate::codec::hex(&rnd)));
            std::fs::create_dir(&p).unwrap();
            Self(p)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A tar entry written byte for byte (tar's builder refuses `..` and absolute names, which
    /// is what a crafted archive holds).
    fn raw(
        b: &mut tar::Builder<Vec<u8>>,
        name: &str,
        kind: tar::EntryType,
        mode: u32,
        data: &[u8],
    ) {
        raw_link(b, name, kind, mode, data, "");
    }

    fn raw_link(
        b: &mut tar::Builder<Vec<u8>>,
        name: &str,
        kind: tar::EntryType,
        mode: u32,
        data: &[u8],
        link: &str,
    ) {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn archive(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        f(&mut b);
        b.into_inner().unwrap()
    }

    async fn restore(
        tar: Vec<u8>,
        target: &Path,
        opts: &FilesRestoreOptions,
    ) -> Result<FilesRestored, DumpError> {
        let mut r = FilesRestore::begin_with(target, opts)?;
        for chunk in tar.chunks(1000) {
            r.write(Bytes::copy_from_slice(chunk)).await?;
        }
        r.finish_files().await
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A socket in a files directory is skipped; the rest archives and restores.
    #[tokio::test]
    async fn a_socket_in_a_files_directory_is_skipped_not_fatal() {
        let src = TempDir::new();
        std::fs::create_dir(src.path().join("sub")).unwrap();
        std::fs::write(src.path().join("sub/kept.txt"), b"kept").unwrap();
        let _listener =
            std::os::unix::net::UnixListener::bind(src.path().join("app.sock")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        append_tree(&mut b, src.path()).expect("a socket does not fail the archive");
        let tar = b.into_inner().unwrap();
        let dest = TempDir::new();
        let target = dest.path().join("restored");
        restore(tar, &target, &FilesRestoreOptions::new())
            .await
            .unwrap();
        assert_eq!(std::fs::read(target.join("sub/kept.txt")).unwrap(), b"kept");
        assert!(!target.join("app.sock").exists());
    }

    #[test]
    fn unique_directory_names_restore_under_their_own_name() {
        assert_eq!(
            destination_names(&["/srv/app/uploads", "static/", "/"]),
            ["uploads", "static", "files-3"]
        );
    }

    #[test]
    fn colliding_directory_names_get_their_archive_number() {
        assert_eq!(
            destination_names(&["/a/uploads", "/b/uploads", "/srv/static"]),
            ["uploads-1", "uploads-2", "static"]
        );
        // Case-insensitive file systems would merge Uploads and uploads.
        assert_eq!(
            destination_names(&["/a/Uploads", "/b/uploads"]),
            ["Uploads-1", "uploads-2"]
        );
        // A numbered name never lands on another directory's own name.
        let names = destination_names(&["/a/uploads", "/b/uploads", "/c/uploads-2"]);
        assert_eq!(names, ["uploads-1", "uploads-2-2", "uploads-2"]);
    }

    #[test]
    fn only_pgb_staging_names_count_as_staging_folders() {
        assert!(is_staging_of(b".uploads.pgb-0123456789ab", b"uploads"));
        for other in [
            &b".uploads.pgb-0123456789ab.keep"[..],
            b".uploads.pgb-0123456789AB",
            b".uploads.pgb-0123456789a",
            b".uploads.pgb-0123456789abc",
            b"uploads.pgb-0123456789ab",
            b".uploads2.pgb-0123456789ab",
            b".other.pgb-0123456789ab",
            b".uploads.pgb-nothexnothex",
        ] {
            assert!(
                !is_staging_of(other, b"uploads"),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        assert!(is_staging_name(b".a.b.pgb-ffffffffffff"));
        assert!(!is_staging_name(b"..pgb-ffffffffffff"));
    }

    #[test]
    fn targets_resolve_to_absolute_paths_without_dot_dotdot_or_symlinks() {
        let dir = TempDir::new();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("a")).unwrap();
        std::os::unix::fs::symlink("a", root.join("link")).unwrap();
        assert_eq!(resolve(&root.join("a/..")).unwrap(), root);
        assert_eq!(resolve(&root.join("link/.")).unwrap(), root.join("a"));
        assert_eq!(
            resolve(&root.join("link/new/deeper/../x")).unwrap(),
            root.join("a/new/x")
        );
        assert_eq!(resolve(&root.join("new/../a")).unwrap(), root.join("a"));
        assert_eq!(resolve(Path::new("/")).unwrap(), Path::new("/"));
        assert_eq!(resolve(Path::new("/..")).unwrap(), Path::new("/"));
    }

    #[test]
    fn unsafe_targets_are_refused_before_anything_is_touched() {
        let dir = TempDir::new();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let opts = FilesRestoreOptions::new().with_clean(true);
        let kind = |t: &Path, o: &FilesRestoreOptions| {
            FilesRestore::check_target(t, o).map_err(|e| (e.kind(), e.to_string()))
        };
        let (k, msg) = kind(Path::new("/"), &opts).unwrap_err();
        assert_eq!(k, DumpErrorKind::Refused);
        assert!(msg.contains("root directory"), "{msg}");
        let (k, _) = kind(Path::new("/tmp/.."), &opts).unwrap_err();
        assert_eq!(k, DumpErrorKind::Refused);

        let staging = root.join(".uploads.pgb-0123456789ab");
        std::fs::create_dir(&staging).unwrap();
        std::os::unix::fs::symlink(&staging, root.join("alias")).unwrap();
        for t in [staging.join("x"), root.join("alias/x"), staging.clone()] {
            let (k, msg) = kind(&t, &opts).unwrap_err();
            assert_eq!(k, DumpErrorKind::Refused, "{}", t.display());
            assert!(msg.contains("staging folder"), "{msg}");
        }

        std::fs::create_dir_all(root.join("site/repo")).unwrap();
        let guarded = opts
            .clone()
            .with_protected(root.join("site/repo/../repo"), "the repository");
        for t in [root.join("site"), root.join("site/repo"), root.clone()] {
            let (k, msg) = kind(&t, &guarded).unwrap_err();
            assert_eq!(k, DumpErrorKind::Refused, "{}", t.display());
            assert!(msg.contains("holds the repository"), "{msg}");
        }
        assert!(kind(&root.join("site/uploads"), &guarded).is_ok());

        std::fs::write(root.join("file"), b"x").unwrap();
        for t in [root.join("file"), root.join("file/below")] {
            let (k, msg) = kind(&t, &opts).unwrap_err();
            assert_eq!(k, DumpErrorKind::Refused);
            assert!(msg.contains("not a directory"), "{msg}");
        }
        let (k, _) = kind(&root.join("site"), &FilesRestoreOptions::new()).unwrap_err();
        assert_eq!(k, DumpErrorKind::DirectoryNotEmpty);

        // Nothing was created or removed by any of these.
        assert_eq!(
            names_in(&root),
            [".uploads.pgb-0123456789ab", "alias", "file", "site"]
        );
    }

    #[tokio::test]
    async fn setuid_sticky_and_world_writable_bits_are_dropped_and_reported() {
        use tar::EntryType::{Directory, Regular};
        let tar = || {
            archive(|b| {
                raw(b, "./", Directory, 0o777, b"");
                raw(b, "shared/", Directory, 0o1777, b"");
                raw(b, "shared/run", Regular, 0o4755, b"#!/bin/sh");
                raw(b, "shared/group", Regular, 0o2750, b"g");
                raw(b, "upload.jpg", Regular, 0o666, b"jpg");
                raw(b, "plain.txt", Regular, 0o640, b"ok");
            })
        };
        let dir = TempDir::new();
        let t = dir.path().join("t");
        let done = restore(tar(), &t, &FilesRestoreOptions::new())
            .await
            .unwrap();
        assert_eq!(mode(&t), 0o775);
        assert_eq!(mode(&t.join("shared")), 0o775);
        assert_eq!(mode(&t.join("shared/run")), 0o755);
        assert_eq!(mode(&t.join("shared/group")), 0o750);
        assert_eq!(mode(&t.join("upload.jpg")), 0o664);
        assert_eq!(mode(&t.join("plain.txt")), 0o640);
        let changed: Vec<(&str, u32, u32)> = done
            .modes_changed
            .shown
            .iter()
            .map(|c| (c.path.as_str(), c.archived, c.restored))
            .collect();
        assert_eq!(
            changed,
            [
                (".", 0o777, 0o775),
                ("shared/run", 0o4755, 0o755),
                ("shared/group", 0o2750, 0o750),
                ("upload.jpg", 0o666, 0o664),
                ("shared/", 0o1777, 0o775),
            ]
        );
        assert_eq!(done.modes_changed.total, 5);

        let kept = restore(
            tar(),
            &t,
            &FilesRestoreOptions::new()
                .with_clean(true)
                .with_keep_modes(true),
        )
        .await
        .unwrap();
        assert!(kept.modes_changed.is_empty());
        assert_eq!(mode(&t.join("shared/run")), 0o4755);
        assert_eq!(mode(&t.join("shared")), 0o1777);
        assert_eq!(mode(&t.join("upload.jpg")), 0o666);
    }

    #[tokio::test]
    async fn entries_that_would_escape_the_target_are_named_not_extracted() {
        use tar::EntryType::{Directory, Link, Regular, Symlink};
        let dir = TempDir::new();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let t = dir.path().join("t");
        let tar = archive(|b| {
            raw(b, "./", Directory, 0o755, b"");
            raw(b, "../evil", Regular, 0o644, b"x");
            raw(b, "/etc/pgb-evil", Regular, 0o644, b"x");
            raw(b, "a/../../evil2", Regular, 0o644, b"x");
            raw_link(b, "hard", Link, 0o644, b"", "../outside/secret");
            raw_link(b, "out", Symlink, 0o777, b"", "../outside");
            raw(b, "out/planted", Regular, 0o644, b"x");
            raw(b, "fine.txt", Regular, 0o644, b"kept");
        });
        let done = restore(tar, &t, &FilesRestoreOptions::new()).await.unwrap();
        let refused: Vec<&str> = done.refused.shown.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            refused,
            [
                "../evil",
                "/etc/pgb-evil",
                "a/../../evil2",
                "hard",
                "out/planted"
            ]
        );
        assert!(done.refused.shown[0].reason.contains(".."));
        assert!(done.refused.shown[1].reason.contains("absolute"));
        assert!(done.refused.shown[4].reason.contains("symlink out"));
        assert_eq!(std::fs::read(t.join("fine.txt")).unwrap(), b"kept");
        assert!(names_in(&outside).is_empty(), "nothing written outside");
        assert!(!dir.path().join("evil").exists());
        assert!(!Path::new("/etc/pgb-evil").exists());
    }

    #[tokio::test]
    async fn a_read_only_directory_is_restored_with_its_content() {
        use tar::EntryType::{Directory, Regular};
        let dir = TempDir::new();
        let t = dir.path().join("t");
        let tar = archive(|b| {
            raw(b, "./", Directory, 0o750, b"");
            raw(b, "frozen/", Directory, 0o555, b"");
            raw(b, "frozen/inner/", Directory, 0o500, b"");
            raw(b, "frozen/inner/a.txt", Regular, 0o444, b"a");
        });
        restore(tar, &t, &FilesRestoreOptions::new()).await.unwrap();
        assert_eq!(std::fs::read(t.join("frozen/inner/a.txt")).unwrap(), b"a");
        assert_eq!(mode(&t.join("frozen")), 0o555);
        assert_eq!(mode(&t.join("frozen/inner")), 0o500);
        assert_eq!(mode(&t), 0o750);
        // Let the temp dir go.
        std::fs::set_permissions(
            t.join("frozen/inner"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::fs::set_permissions(t.join("frozen"), std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[tokio::test]
    async fn the_end_of_the_archive_may_arrive_after_the_extractor_finished() {
        use tar::EntryType::{Directory, Regular};
        let dir = TempDir::new();
        let t = dir.path().join("t");
        let tar = archive(|b| {
            raw(b, "./", Directory, 0o755, b"");
            raw(b, "f", Regular, 0o644, b"f");
        });
        let (body, last) = tar.split_at(tar.len() - 512);
        let mut r = FilesRestore::begin_with(&t, &FilesRestoreOptions::new()).unwrap();
        r.write(Bytes::copy_from_slice(body)).await.unwrap();
        // The first block of the end marker is in: tar is done with the entries.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        r.write(Bytes::copy_from_slice(last)).await.unwrap();
        r.finish_files().await.unwrap();
        assert_eq!(std::fs::read(t.join("f")).unwrap(), b"f");
    }

    #[tokio::test]
    async fn clean_replaces_the_content_and_leaves_no_staging_beside_it() {
        use tar::EntryType::{Directory, Regular};
        let dir = TempDir::new();
        let t = dir.path().join("t");
        std::fs::create_dir(&t).unwrap();
        std::fs::write(t.join("old"), b"old").unwrap();
        let tar = archive(|b| {
            raw(b, "./", Directory, 0o755, b"");
            raw(b, "new", Regular, 0o644, b"new");
        });
        let done = restore(tar, &t, &FilesRestoreOptions::new().with_clean(true))
            .await
            .unwrap();
        assert_eq!(done.destination, std::fs::canonicalize(&t).unwrap());
        assert_eq!(names_in(&t), ["new"]);
        assert_eq!(names_in(dir.path()), ["t"]);
    }

    #[tokio::test]
    async fn stale_staging_folders_are_removed_but_live_and_foreign_ones_are_kept() {
        use tar::EntryType::{Directory, Regular};
        let dir = TempDir::new();
        let root = dir.path();
        let stale = root.join(".t.pgb-0123456789ab");
        std::fs::create_dir_all(stale.join("half/restored")).unwrap();
        std::fs::write(stale.join("half/restored/f"), b"x").unwrap();
        // A restore still running: it holds the lock on its folder.
        let live = root.join(".t.pgb-abcdefabcdef");
        std::fs::create_dir(&live).unwrap();
        let live_lock = std::fs::File::open(&live).unwrap();
        live_lock.try_lock().unwrap();
        let foreign = [
            ".t.pgb-0123456789ab.keep",
            ".t.pgb-nothexnothex",
            ".other.pgb-0123456789ab",
            "t.pgb-0123456789ab",
        ];
        for f in foreign {
            std::fs::create_dir(root.join(f)).unwrap();
        }
        // A symlink of the right name is not followed nor removed.
        let elsewhere = root.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("precious"), b"p").unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join(".t.pgb-fedcba987654")).unwrap();

        let tar = archive(|b| {
            raw(b, "./", Directory, 0o755, b"");
            raw(b, "f", Regular, 0o644, b"f");
        });
        let done = restore(tar, &root.join("t"), &FilesRestoreOptions::new())
            .await
            .unwrap();
        assert_eq!(
            done.stale_removed,
            [std::fs::canonicalize(root)
                .unwrap()
                .join(".t.pgb-0123456789ab")]
        );
        assert!(!stale.exists());
        assert!(live.exists(), "a live restore's staging is kept");
        for f in foreign {
            assert!(root.join(f).exists(), "{f} is not pgb's");
        }
        assert!(elsewhere.join("precious").exists());
        assert!(root.join(".t.pgb-fedcba987654").exists());
        drop(live_lock);
    }
}
