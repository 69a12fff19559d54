//! `pg_restore --list` as an [`ArchiveChecker`]: no database involved.

use async_trait::async_trait;
use bytes::Bytes;
use pgb_core::{
    ArchiveChecker, ArchiveFormat, ArchiveInfo, DumpError, DumpErrorKind, RestoreReport,
    RestoreSink,
};
use tokio::io::AsyncReadExt;

use crate::process::{self, Pipes, ToolProcess};
use crate::restore::{ChildSink, tool_for};
use crate::toc::Toc;
use crate::tools::ToolLocator;

/// Checks archives without a connection: a custom-format archive is read by
/// `pg_restore --list` from stdin (its table of contents must parse; the entries are
/// counted), a plain SQL dump must end with pg_dump's completion trailer.
#[derive(Debug, Clone)]
pub struct PgArchiveCheck {
    locator: ToolLocator,
    capture: Option<TocCapture>,
    spool_dir: std::path::PathBuf,
}

/// Where a [`PgArchiveCheck`] made [`with_toc_capture`](PgArchiveCheck::with_toc_capture)
/// leaves the table of contents it read: clones share one slot.
#[derive(Debug, Clone, Default)]
pub struct TocCapture(std::sync::Arc<std::sync::Mutex<Option<Toc>>>);

impl TocCapture {
    /// The table of contents of the last archive checked since the last `take`; `None`
    /// when none was read (a plain SQL archive has none).
    pub fn take(&self) -> Option<Toc> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    fn put(&self, toc: Toc) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(toc);
    }
}

impl PgArchiveCheck {
    /// A checker with tools found by `locator`.
    pub fn new(locator: ToolLocator) -> Self {
        Self {
            locator,
            capture: None,
            spool_dir: std::path::PathBuf::from("/tmp"),
        }
    }

    /// Where the check of a directory-format backup puts its table of contents (default
    /// `/tmp`).
    pub fn with_spool_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.spool_dir = dir.into();
        self
    }

    /// Also leaves the table of contents `pg_restore --list` printed in `capture`, for
    /// callers that need more than the entry count (a restore drill's table list).
    pub fn with_toc_capture(mut self, capture: TocCapture) -> Self {
        self.capture = Some(capture);
        self
    }

    /// Checks a directory-format dump on disk (see [`PgDumpDirectory`](crate::PgDumpDirectory)):
    /// `pg_restore --list` must read its table of contents and every `TABLE DATA` entry must
    /// have its data file. Returns the number of table-of-contents entries.
    ///
    /// # Errors
    /// `ToolNotFound`/`VersionMismatch` for pg_restore, `BadArchive` for an unreadable table
    /// of contents or a missing data file.
    pub async fn check_directory(
        &self,
        archive: &ArchiveInfo,
        dir: &std::path::Path,
    ) -> Result<u64, DumpError> {
        let toc = crate::directory::check_directory(&self.locator, archive, dir).await?;
        Ok(toc.len() as u64)
    }
}

#[async_trait]
impl ArchiveChecker for PgArchiveCheck {
    async fn check_directory(
        &self,
        archive: &ArchiveInfo,
        files: &[String],
    ) -> Result<Option<Box<dyn RestoreSink>>, DumpError> {
        let parent = crate::restore::private_dir(&self.spool_dir, "pgb-check")?;
        let dir = parent.join("dump");
        let io = |e: std::io::Error| DumpError::new(DumpErrorKind::Io, e.to_string());
        std::fs::create_dir(&dir).map_err(io)?;
        // Empty stand-ins: the check is that the table of contents names no file the backup
        // lacks (their content was checked against the manifest's digests).
        for f in files.iter().filter(|f| f.as_str() != "toc.dat") {
            if f.contains('/') || f.starts_with('.') {
                continue;
            }
            std::fs::File::create(dir.join(f)).map_err(io)?;
        }
        let file = tokio::fs::File::create(dir.join("toc.dat"))
            .await
            .map_err(io)?;
        Ok(Some(Box::new(DirectoryCheck {
            parent,
            dir,
            file: Some(file),
            locator: self.locator.clone(),
            archive: *archive,
            capture: self.capture.clone(),
        })))
    }

    async fn check(&self, archive: &ArchiveInfo) -> Result<Box<dyn RestoreSink>, DumpError> {
        match archive.format {
            ArchiveFormat::Plain => return Ok(Box::new(PlainCheck::default())),
            ArchiveFormat::Directory => {
                return Err(DumpError::new(
                    DumpErrorKind::Refused,
                    "a directory-format archive is checked on disk (check_directory), not as a stream",
                ));
            }
            _ => {}
        }
        let tool = tool_for(&self.locator, archive).await?;
        let mut cmd = process::command(&tool, None);
        cmd.arg("--list");
        let mut process = ToolProcess::spawn(cmd, "pg_restore", Pipes::BOTH)?;
        let mut stdout = process.take_stdout().expect("piped");
        let capture = self.capture.clone();
        let counter = tokio::spawn(async move {
            let mut text = Vec::new();
            let _ = stdout.read_to_end(&mut text).await;
            let toc = Toc::parse(&String::from_utf8_lossy(&text));
            let entries = toc.len() as u64;
            if let Some(capture) = capture {
                capture.put(toc);
            }
            entries
        });
        Ok(Box::new(ChildSink::new(process, Some(counter), true)))
    }
}

/// A directory-format archive's `toc.dat` into a private spool beside empty stand-ins for the
/// stored data files; at `finish`, [`crate::directory::check_directory`] on it.
#[derive(Debug)]
struct DirectoryCheck {
    parent: std::path::PathBuf,
    dir: std::path::PathBuf,
    file: Option<tokio::fs::File>,
    locator: ToolLocator,
    archive: ArchiveInfo,
    capture: Option<TocCapture>,
}

impl Drop for DirectoryCheck {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.parent);
    }
}

#[async_trait]
impl RestoreSink for DirectoryCheck {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError> {
        let f = self.file.as_mut().expect("open toc");
        tokio::io::AsyncWriteExt::write_all(f, &chunk)
            .await
            .map_err(|e| DumpError::new(DumpErrorKind::Io, format!("spooling toc.dat: {e}")))
    }

    async fn finish(mut self: Box<Self>) -> Result<RestoreReport, DumpError> {
        if let Some(mut f) = self.file.take() {
            tokio::io::AsyncWriteExt::flush(&mut f)
                .await
                .map_err(|e| DumpError::new(DumpErrorKind::Io, format!("spooling toc.dat: {e}")))?;
        }
        let toc =
            crate::directory::check_directory(&self.locator, &self.archive, &self.dir).await?;
        let entries = toc.len() as u64;
        if let Some(capture) = &self.capture {
            capture.put(toc);
        }
        Ok(RestoreReport::default().with_toc_entries(entries))
    }

    async fn abort(self: Box<Self>) {}
}

/// Checks a plain SQL archive: it must end with pg_dump's completion trailer.
#[derive(Debug, Default)]
struct PlainCheck {
    last: Vec<u8>,
}

#[async_trait]
impl RestoreSink for PlainCheck {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError> {
        self.last.extend_from_slice(&chunk);
        let excess = self.last.len().saturating_sub(4096);
        self.last.drain(..excess);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<RestoreReport, DumpError> {
        let text = String::from_utf8_lossy(&self.last);
        if text.contains("-- PostgreSQL database dump complete") {
            Ok(RestoreReport::default())
        } else {
            Err(DumpError::new(
                DumpErrorKind::BadArchive,
                "the SQL dump lacks pg_dump's completion trailer (truncated dump)",
            ))
        }
    }

    async fn abort(self: Box<Self>) {}
}
