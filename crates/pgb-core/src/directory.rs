//! The contracts of directory-format dumps (`pg_dump -Fd -j N`), which cannot stream: the
//! dump runs into a local spool directory whose files are then uploaded one by one
//! ([`DirectoryDumper`]), and a restore downloads every file into a spool directory before
//! `pg_restore -j N` runs on it ([`DirectorySink`], from
//! [`Restorer::begin_directory`](crate::Restorer::begin_directory)).

use std::fmt;

use async_trait::async_trait;

use crate::dump::{DumpError, DumpSource, PreparedDump, RestoreReport, RestoreSink};

/// Produces a directory-format dump.
///
/// # Contract
///
/// [`DirectoryDumper::prepare`] checks everything it can and starts nothing that writes, like
/// [`Dumper::prepare`](crate::Dumper::prepare). [`PreparedDirectory::run`] runs the dump into
/// a private spool directory and returns only when the tool succeeded and the directory holds
/// every data file of its table of contents. Dropping the returned [`DumpedDirectory`] (or the
/// `run` future) removes the spool directory.
#[async_trait]
pub trait DirectoryDumper: fmt::Debug + Send + Sync + 'static {
    /// Preflight.
    ///
    /// # Errors
    /// As [`Dumper::prepare`](crate::Dumper::prepare).
    async fn prepare(&self) -> Result<Box<dyn PreparedDirectory>, DumpError>;
}

/// A directory-format dump that passed preflight.
#[async_trait]
pub trait PreparedDirectory: fmt::Debug + Send + Sync {
    /// What will be dumped, with which tool (format `Directory`).
    fn source(&self) -> &DumpSource;

    /// Runs the dump into a spool directory and checks it. `expected`: the plain size of the
    /// previous dump of the same database, if any; a spool with less free space than that is
    /// refused before the dump starts.
    ///
    /// # Errors
    /// `NoSpace`, `Io` (spool), `Failed` (the tool), `BadArchive` (a data file is missing).
    async fn run(
        self: Box<Self>,
        expected: Option<u64>,
    ) -> Result<Box<dyn DumpedDirectory>, DumpError>;
}

/// A finished, checked directory-format dump in a spool directory.
pub trait DumpedDirectory: fmt::Debug + Send + Sync {
    /// Its files: (name, size), sorted by name.
    fn files(&self) -> Vec<(String, u64)>;

    /// Entries of its table of contents.
    fn toc_entries(&self) -> u64;

    /// A stream of file `name`, to upload through the pipeline.
    ///
    /// # Errors
    /// `Io` for a name that is not one of [`DumpedDirectory::files`].
    fn open(&self, name: &str) -> Result<Box<dyn PreparedDump>, DumpError>;
}

/// Receives the files of a directory-format archive, then restores it.
///
/// # Contract
///
/// Files may be received concurrently; each is complete only after its stored checksum was
/// verified (its [`RestoreSink::finish`]). [`DirectorySink::finish`] runs the restore on the
/// complete directory; [`DirectorySink::abort`], or dropping the sink, removes the spool and
/// drops a target database the restore created.
#[async_trait]
pub trait DirectorySink: fmt::Debug + Send + Sync {
    /// A sink for file `name` of the archive.
    ///
    /// # Errors
    /// `Refused` for a name that is not a plain file name, `Io`.
    async fn file(&self, name: &str) -> Result<Box<dyn RestoreSink>, DumpError>;

    /// The data files a selective restore needs, read from the table of contents (file
    /// `toc.dat`, received first); `None`: every file. Requested tables or schemas missing from
    /// the archive are a `NoMatch` error. The default needs every file.
    ///
    /// # Errors
    /// `NoMatch`, `BadArchive` for an unreadable table of contents.
    async fn needed(&self) -> Result<Option<Vec<String>>, DumpError> {
        Ok(None)
    }

    /// Restores the complete directory.
    ///
    /// # Errors
    /// `Failed` with the tool's stderr.
    async fn finish(self: Box<Self>) -> Result<RestoreReport, DumpError>;

    /// Removes the spool and rolls back.
    async fn abort(self: Box<Self>);
}
