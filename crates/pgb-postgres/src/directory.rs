//! `pg_dump -Fd -j N -Z0` into a spool directory, and the check that such a directory holds
//! every data file its table of contents names.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use pgb_core::{ArchiveFormat, ArchiveInfo, DumpError, DumpErrorKind, DumpSource};
use tokio::io::AsyncReadExt;

use crate::conn::ConnConfig;
use crate::dump::{preflight, table_estimates};
use crate::process::{self, Pipes, ToolProcess};
use crate::restore::tool_for;
use crate::tools::{Tool, ToolLocator};

/// A directory-format dump of one database, `pg_dump -Fd -j N -Z0` (uncompressed: pgb
/// compresses each file in its pipeline), which pg_dump cannot stream: it writes a spool
/// directory, which [`PreparedDirectoryDump::run`] returns once pg_dump succeeded and the
/// directory was checked to hold every data file of its table of contents.
#[derive(Debug, Clone)]
pub struct PgDumpDirectory {
    conn: ConnConfig,
    locator: ToolLocator,
    jobs: u32,
    spool_dir: PathBuf,
    options: crate::DumpOptions,
}

impl PgDumpDirectory {
    /// Dumps the database `conn` names with tools found by `locator`, one job.
    pub fn new(conn: ConnConfig, locator: ToolLocator) -> Self {
        Self {
            conn,
            locator,
            jobs: 1,
            spool_dir: PathBuf::from("/tmp"),
            options: crate::DumpOptions::new(),
        }
    }

    /// Sets the selection and pass-through options.
    pub fn with_options(mut self, options: crate::DumpOptions) -> Self {
        self.options = options;
        self
    }

    /// Where [`pgb_core::DirectoryDumper`]'s runs put their spool directory (default `/tmp`).
    pub fn with_spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = dir.into();
        self
    }

    /// Sets pg_dump's parallel jobs (at least 1; each is a connection to the server).
    pub fn with_jobs(mut self, jobs: u32) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Preflight, as [`pgb_core::Dumper::prepare`] does for a streamed dump: server reachable,
    /// a pg_dump at least as new, each table's estimated rows.
    ///
    /// # Errors
    /// `ToolNotFound`, `VersionMismatch`, `Unreachable`, `AuthFailed`, `DatabaseNotFound`,
    /// `Connection`.
    pub async fn prepare(&self) -> Result<PreparedDirectoryDump, DumpError> {
        let p = preflight(
            &self.locator,
            &self.conn,
            "pg_dump",
            ArchiveFormat::Directory,
        )
        .await?;
        let estimates = table_estimates(&p.psql, &self.conn).await?;
        let heads = crate::migrations::scan(&p.psql, &self.conn, self.options.migrations()).await;
        Ok(PreparedDirectoryDump {
            source: p
                .source
                .with_table_estimates(estimates)
                .with_options(self.options.args().to_vec())
                .with_migrations(heads.heads),
            tool: p.tool,
            conn: self.conn.clone(),
            jobs: self.jobs,
            locator: self.locator.clone(),
        })
    }
}

/// A directory-format dump that passed preflight.
#[derive(Debug)]
pub struct PreparedDirectoryDump {
    source: DumpSource,
    tool: Tool,
    conn: ConnConfig,
    jobs: u32,
    locator: ToolLocator,
}

impl PreparedDirectoryDump {
    /// What will be dumped, with which tool.
    pub fn source(&self) -> &DumpSource {
        &self.source
    }

    /// Runs pg_dump into a new private directory under `spool_dir` and checks the result.
    ///
    /// On any failure, and if the returned future is dropped, the directory is removed: no
    /// partial plaintext dump is left on disk.
    ///
    /// # Errors
    /// `Io` if the directory cannot be made, `Failed` with pg_dump's exit and stderr,
    /// `BadArchive` if a data file the table of contents names is missing.
    pub async fn run(self, spool_dir: &Path) -> Result<DirectoryDump, DumpError> {
        let mut rnd = [0u8; 8];
        let _ = getrandom::fill(&mut rnd);
        let name: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        // A private parent, so nobody else can read the dump while it is written.
        let parent = spool_dir.join(format!("pgb-dump-{name}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&parent)
            .map_err(|e| {
                DumpError::new(
                    DumpErrorKind::Io,
                    format!(
                        "cannot create a spool directory in {}: {e}",
                        spool_dir.display()
                    ),
                )
            })?;
        let mut dump = DirectoryDump {
            path: parent.join("dump"),
            parent,
            files: Vec::new(),
            toc_entries: 0,
        };
        let mut cmd = process::command(&self.tool, Some(&self.conn));
        cmd.args(["-w", "-Fd", "-Z0"])
            .arg(format!("--jobs={}", self.jobs))
            .arg("-f")
            .arg(&dump.path)
            .args(&self.source.options)
            .arg(format!("--dbname={}", self.conn.redacted()));
        ToolProcess::spawn(cmd, "pg_dump", Pipes::NONE)?
            .wait()
            .await?;
        dump.toc_entries = check_directory(&self.locator, &self.source.archive(), &dump.path)
            .await?
            .len() as u64;
        dump.files = list_files(&dump.path)?;
        Ok(dump)
    }
}

/// One file of a directory-format dump.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpoolFile {
    /// Its name in the dump directory (`toc.dat`, `3345.dat`, ...).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A finished, checked directory-format dump on local disk. Dropping it removes the directory
/// (it is plaintext): keep it while its files are uploaded.
#[derive(Debug)]
pub struct DirectoryDump {
    parent: PathBuf,
    path: PathBuf,
    files: Vec<SpoolFile>,
    toc_entries: u64,
}

impl DirectoryDump {
    /// The dump directory (what `pg_restore` takes).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its files, sorted by name.
    pub fn files(&self) -> &[SpoolFile] {
        &self.files
    }

    /// Entries in its table of contents.
    pub fn toc_entries(&self) -> u64 {
        self.toc_entries
    }
}

impl Drop for DirectoryDump {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.parent);
    }
}

fn list_files(dir: &Path) -> Result<Vec<SpoolFile>, DumpError> {
    let io = |e: std::io::Error| {
        DumpError::new(
            DumpErrorKind::Io,
            format!("reading the dump directory {}: {e}", dir.display()),
        )
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let meta = entry.metadata().map_err(io)?;
        if meta.is_file() {
            files.push(SpoolFile {
                name: entry.file_name().to_string_lossy().into_owned(),
                size: meta.len(),
            });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Checks a directory-format dump on disk: `pg_restore --list` must read its table of
/// contents, and every `TABLE DATA` entry must have its data file (`<id>.dat`, compressed or
/// not). Returns the table of contents. Needs no database.
pub(crate) async fn check_directory(
    locator: &ToolLocator,
    archive: &ArchiveInfo,
    dir: &Path,
) -> Result<crate::toc::Toc, DumpError> {
    let tool = tool_for(
        locator,
        &ArchiveInfo::new(ArchiveFormat::Custom, archive.tool_major),
    )
    .await?;
    let mut cmd = process::command(&tool, None);
    cmd.arg("--list").arg(dir);
    let mut p = ToolProcess::spawn(cmd, "pg_restore", Pipes::STDOUT)?;
    let mut stdout = p.take_stdout().expect("piped");
    let mut text = String::new();
    let read = stdout.read_to_string(&mut text).await;
    p.wait()
        .await
        .map_err(|e| e.with_kind(DumpErrorKind::BadArchive))?;
    read.map_err(|e| DumpError::new(DumpErrorKind::Io, format!("reading pg_restore --list: {e}")))?;
    let toc = crate::toc::Toc::parse(&text);
    for e in toc.entries().iter().filter(|e| e.desc == "TABLE DATA") {
        let id = e.id;
        let found = ["dat", "dat.gz", "dat.lz4", "dat.zst"]
            .iter()
            .any(|ext| dir.join(format!("{id}.{ext}")).is_file());
        if !found {
            return Err(DumpError::new(
                DumpErrorKind::BadArchive,
                format!(
                    "directory dump {} lacks the data file of entry {id} ({})",
                    dir.display(),
                    e.line()
                ),
            ));
        }
    }
    Ok(toc)
}

#[async_trait::async_trait]
impl pgb_core::DirectoryDumper for PgDumpDirectory {
    async fn prepare(&self) -> Result<Box<dyn pgb_core::PreparedDirectory>, DumpError> {
        let prepared = PgDumpDirectory::prepare(self).await?;
        Ok(Box::new(Spooled {
            prepared,
            spool_dir: self.spool_dir.clone(),
        }))
    }
}

/// A prepared directory dump and where it will spool.
#[derive(Debug)]
struct Spooled {
    prepared: PreparedDirectoryDump,
    spool_dir: PathBuf,
}

#[async_trait::async_trait]
impl pgb_core::PreparedDirectory for Spooled {
    fn source(&self) -> &DumpSource {
        self.prepared.source()
    }

    async fn run(
        self: Box<Self>,
        expected: Option<u64>,
    ) -> Result<Box<dyn pgb_core::DumpedDirectory>, DumpError> {
        if let Some(needed) = expected {
            check_free_space(&self.spool_dir, needed)?;
        }
        let source = self.prepared.source().clone();
        let dump = self.prepared.run(&self.spool_dir).await?;
        Ok(Box::new(Dumped { dump, source }))
    }
}

#[derive(Debug)]
struct Dumped {
    dump: DirectoryDump,
    source: DumpSource,
}

impl pgb_core::DumpedDirectory for Dumped {
    fn files(&self) -> Vec<(String, u64)> {
        self.dump
            .files()
            .iter()
            .map(|f| (f.name.clone(), f.size))
            .collect()
    }

    fn toc_entries(&self) -> u64 {
        self.dump.toc_entries()
    }

    fn open(&self, name: &str) -> Result<Box<dyn pgb_core::PreparedDump>, DumpError> {
        let file = self
            .dump
            .files()
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| {
                DumpError::new(
                    DumpErrorKind::Io,
                    format!("{name} is not a file of the directory dump"),
                )
            })?;
        let mut source = self.source.clone().with_size_estimate(Some(file.size));
        source.table_estimates = Vec::new();
        Ok(Box::new(SpoolFileDump {
            path: self.dump.path().join(name),
            source,
        }))
    }
}

/// One spooled file as a dump stream, for the upload pipeline.
#[derive(Debug)]
struct SpoolFileDump {
    path: PathBuf,
    source: DumpSource,
}

#[async_trait::async_trait]
impl pgb_core::PreparedDump for SpoolFileDump {
    fn source(&self) -> &DumpSource {
        &self.source
    }

    async fn start(self: Box<Self>) -> Result<Box<dyn pgb_core::DumpStream>, DumpError> {
        let file = tokio::fs::File::open(&self.path).await.map_err(|e| {
            DumpError::new(
                DumpErrorKind::Io,
                format!("opening {}: {e}", self.path.display()),
            )
        })?;
        Ok(Box::new(FileStream {
            file,
            path: self.path,
        }))
    }
}

#[derive(Debug)]
struct FileStream {
    file: tokio::fs::File,
    path: PathBuf,
}

#[async_trait::async_trait]
impl pgb_core::DumpStream for FileStream {
    async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, DumpError> {
        let mut buf = bytes::BytesMut::with_capacity(256 * 1024);
        let n = self.file.read_buf(&mut buf).await.map_err(|e| {
            DumpError::new(
                DumpErrorKind::Io,
                format!("reading {}: {e}", self.path.display()),
            )
        })?;
        Ok((n > 0).then(|| buf.freeze()))
    }

    async fn abort(self: Box<Self>) {}
}

/// Refuses a spool directory with less free space than `needed` bytes (the previous dump's
/// size), before pg_dump starts.
fn check_free_space(dir: &Path, needed: u64) -> Result<(), DumpError> {
    let st = rustix::fs::statvfs(dir).map_err(|e| {
        DumpError::new(
            DumpErrorKind::Io,
            format!("cannot read the free space of {}: {e}", dir.display()),
        )
    })?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if free < needed {
        return Err(DumpError::new(
            DumpErrorKind::NoSpace,
            format!(
                "spool directory {} has {} MiB free, the previous dump of this database took {} MiB",
                dir.display(),
                free >> 20,
                needed.div_ceil(1 << 20)
            ),
        ));
    }
    Ok(())
}
