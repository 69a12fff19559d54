//! Files beside the database (an application's uploads): a directory archived as a tar stream
//! into a backup's pipeline ([`FilesDump`]), and extracted again ([`FilesRestore`]) only once
//! the stored checksum matched.
//!
//! Symlinks and special files are stored as such, never followed; extraction recreates files,
//! directories and symlinks, skips device nodes and FIFOs, and refuses entries that would land
//! outside the target directory (tar's own `unpack_in` checks).

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
            b.append_dir_all(".", &path)?;
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

/// Extracts a files archive into `target`: into a private directory beside it while the
/// stream arrives, moved into place only at [`RestoreSink::finish`] (after the checksum
/// matched). A non-empty `target` is refused unless `clean`, which removes its content first
/// (at `finish`, never before the archive is verified).
#[derive(Debug)]
pub struct FilesRestore {
    target: PathBuf,
    staging: PathBuf,
    clean: bool,
    tx: Option<mpsc::Sender<Bytes>>,
    task: Option<tokio::task::JoinHandle<io::Result<()>>>,
}

impl FilesRestore {
    /// Starts a restore into `target`.
    ///
    /// # Errors
    /// `TargetNotEmpty` for a non-empty `target` without `clean`; `Io`.
    pub fn begin(target: impl Into<PathBuf>, clean: bool) -> Result<Self, DumpError> {
        let target = target.into();
        let non_empty = std::fs::read_dir(&target)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if non_empty && !clean {
            return Err(DumpError::new(
                DumpErrorKind::TargetNotEmpty,
                format!("files target {} is not empty", target.display()),
            ));
        }
        let parent = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut rnd = [0u8; 6];
        let _ = getrandom::fill(&mut rnd);
        let name = target
            .file_name()
            .map_or_else(|| "files".to_owned(), |n| n.to_string_lossy().into_owned());
        let staging = parent.join(format!(".{name}.pgb-{}", crate::codec::hex(&rnd)));
        std::fs::create_dir(&staging)
            .map_err(|e| io_error(format_args!("creating {}: {e}", staging.display())))?;
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let dst = staging.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut archive = tar::Archive::new(ChannelReader {
                rx,
                cur: Bytes::new(),
            });
            archive.set_preserve_permissions(true);
            archive.set_overwrite(false);
            for entry in archive.entries()? {
                let mut entry = entry?;
                let kind = entry.header().entry_type();
                if kind.is_fifo() || kind.is_character_special() || kind.is_block_special() {
                    // Device nodes and FIFOs are archived as such but not recreated.
                    tracing::warn!(path = %entry.path()?.display(), "not restoring a special file");
                    continue;
                }
                // Refuses paths that would land outside `dst`, through `..` or a symlink.
                entry.unpack_in(&dst)?;
            }
            Ok(())
        });
        Ok(Self {
            target,
            staging,
            clean,
            tx: Some(tx),
            task: Some(task),
        })
    }

    fn remove_staging(&self) {
        let _ = std::fs::remove_dir_all(&self.staging);
    }
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

    async fn finish(mut self: Box<Self>) -> Result<RestoreReport, DumpError> {
        self.tx = None;
        let res = match self.task.take() {
            Some(t) => t
                .await
                .map_err(|e| io_error(format_args!("extractor task: {e}")))?,
            None => Err(io::Error::other("extracting files stopped")),
        };
        res.map_err(|e| io_error(format_args!("extracting files: {e}")))?;
        // Verified and extracted: replace the target.
        if self.clean && self.target.exists() {
            std::fs::remove_dir_all(&self.target)
                .map_err(|e| io_error(format_args!("removing {}: {e}", self.target.display())))?;
        } else if self.target.exists() {
            // Empty (checked at begin): make room for the rename.
            let _ = std::fs::remove_dir(&self.target);
        }
        std::fs::rename(&self.staging, &self.target).map_err(|e| {
            io_error(format_args!(
                "moving the restored files to {}: {e}",
                self.target.display()
            ))
        })?;
        Ok(RestoreReport::new(
            self.target.display().to_string(),
            true,
            "tar",
        ))
    }

    async fn abort(mut self: Box<Self>) {
        self.tx = None;
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        self.remove_staging();
    }
}
