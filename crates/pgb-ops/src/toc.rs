//! The tables of an archive's table of contents, read with `pg_restore --list` while the
//! drill's verify pass streams the archive.

use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use pgb_core::{
    ArchiveFormat, DumpError, DumpErrorKind, RestoreOptions, RestoreReport, RestoreSink, Restorer,
};
use pgb_postgres::ToolLocator;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};

/// A table named in an archive's table of contents.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TocTable {
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for TocTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Parses `pg_restore --list` output: entries like
/// `215; 1259 16386 TABLE public orders alice` (id; catalog oid, object oid, type, schema,
/// name, owner). Names are printed unquoted, so a name with spaces is taken as everything
/// between the schema and the owner.
pub(crate) fn parse_toc_tables(list: &str) -> Vec<TocTable> {
    let mut out = Vec::new();
    for line in list.lines() {
        if line.starts_with(';') {
            continue;
        }
        let Some((_, rest)) = line.split_once("; ") else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        // words: catalog oid, object oid, TYPE..., schema, name, owner
        if words.len() < 5 || words[2] != "TABLE" || words[3] == "DATA" {
            continue;
        }
        let fields = &words[3..];
        let (schema, name) = match fields.len() {
            0 | 1 => continue,
            2 => (fields[0], fields[1].to_owned()),
            n => (fields[0], fields[1..n - 1].join(" ")),
        };
        out.push(TocTable {
            schema: schema.to_owned(),
            name,
        });
    }
    out.sort();
    out.dedup();
    out
}

/// A [`Restorer`] whose archive check captures the table list. It restores nothing.
#[derive(Debug, Clone)]
pub(crate) struct TocLister {
    locator: ToolLocator,
    pub(crate) tables: Arc<Mutex<Option<Vec<TocTable>>>>,
}

impl TocLister {
    pub(crate) fn new(locator: ToolLocator) -> Self {
        Self {
            locator,
            tables: Arc::new(Mutex::new(None)),
        }
    }

    pub(crate) fn take(&self) -> Option<Vec<TocTable>> {
        self.tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[async_trait]
impl Restorer for TocLister {
    async fn begin(&self, _opts: &RestoreOptions) -> Result<Box<dyn RestoreSink>, DumpError> {
        Err(DumpError::new(
            DumpErrorKind::Refused,
            "the table-of-contents lister restores nothing",
        ))
    }

    async fn check_archive(
        &self,
        format: ArchiveFormat,
        archive_major: u32,
    ) -> Result<Box<dyn RestoreSink>, DumpError> {
        if format == ArchiveFormat::Plain {
            // A plain SQL dump has no table of contents; nothing to list.
            return Ok(Box::new(Discard));
        }
        let tool = self
            .locator
            .pick(
                "pg_restore",
                archive_major,
                &format!("the backup (made by pg_dump {archive_major})"),
            )
            .await?;
        let mut child = tokio::process::Command::new(&tool.path)
            .arg("--list")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                DumpError::new(
                    DumpErrorKind::ToolNotFound,
                    format!("cannot run {}: {e}", tool.path.display()),
                )
            })?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let _ = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
            (out, err)
        });
        Ok(Box::new(ListSink {
            stdin: child.stdin.take(),
            child,
            reader,
            tables: Arc::clone(&self.tables),
        }))
    }
}

#[derive(Debug)]
struct Discard;

#[async_trait]
impl RestoreSink for Discard {
    async fn write(&mut self, _chunk: Bytes) -> Result<(), DumpError> {
        Ok(())
    }
    async fn finish(self: Box<Self>) -> Result<RestoreReport, DumpError> {
        Ok(RestoreReport::default())
    }
    async fn abort(self: Box<Self>) {}
}

#[derive(Debug)]
struct ListSink {
    child: Child,
    stdin: Option<ChildStdin>,
    reader: tokio::task::JoinHandle<(Vec<u8>, Vec<u8>)>,
    tables: Arc<Mutex<Option<Vec<TocTable>>>>,
}

#[async_trait]
impl RestoreSink for ListSink {
    async fn write(&mut self, chunk: Bytes) -> Result<(), DumpError> {
        // pg_restore --list stops reading after the table of contents; the rest of the stream
        // is still read (and checked) by the caller, so a closed pipe is not an error.
        if let Some(stdin) = &mut self.stdin
            && stdin.write_all(&chunk).await.is_err()
        {
            self.stdin = None;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<RestoreReport, DumpError> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.shutdown().await;
        }
        let status =
            self.child.wait().await.map_err(|e| {
                DumpError::new(DumpErrorKind::Io, format!("pg_restore --list: {e}"))
            })?;
        let (out, err) = (&mut self.reader)
            .await
            .map_err(|e| DumpError::new(DumpErrorKind::Io, format!("pg_restore --list: {e}")))?;
        if !status.success() {
            let err = String::from_utf8_lossy(&err).trim().to_owned();
            return Err(DumpError::new(
                DumpErrorKind::BadArchive,
                format!("pg_restore --list failed ({status})"),
            )
            .with_stderr(err));
        }
        let text = String::from_utf8_lossy(&out);
        let entries = text
            .lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
            .count() as u64;
        *self.tables.lock().unwrap_or_else(PoisonError::into_inner) = Some(parse_toc_tables(&text));
        Ok(RestoreReport::default().with_toc_entries(entries))
    }

    async fn abort(mut self: Box<Self>) {
        let _ = self.child.kill().await;
        self.reader.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tables_from_a_listing() {
        let list = "\
;
; Archive created at 2026-11-30 02:00:00 UTC
;     dbname: app
215; 1259 16386 TABLE public orders alice
216; 1259 16390 TABLE sales order lines alice
217; 1259 16392 SEQUENCE public orders_id_seq alice
3345; 0 16386 TABLE DATA public orders alice
3350; 2606 16400 CONSTRAINT public orders orders_pkey alice
";
        let t = parse_toc_tables(list);
        assert_eq!(
            t,
            vec![
                TocTable {
                    schema: "public".into(),
                    name: "orders".into()
                },
                TocTable {
                    schema: "sales".into(),
                    name: "order lines".into()
                },
            ]
        );
    }
}
