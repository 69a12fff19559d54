//! The tables of an archive's table of contents, read with `pg_restore --list` (parsed by
//! [`pgb_postgres::Toc`]) while the drill's verify pass streams the archive.

use async_trait::async_trait;
use pgb_core::{ArchiveChecker, ArchiveInfo, DumpError, RestoreSink};
use pgb_postgres::{PgArchiveCheck, Toc, TocCapture, ToolLocator};
use serde::{Deserialize, Serialize};

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

/// The `TABLE` entries of a table of contents, sorted, without duplicates.
pub(crate) fn toc_tables(toc: &Toc) -> Vec<TocTable> {
    let mut out: Vec<TocTable> = toc
        .tables()
        .map(|e| TocTable {
            schema: e.schema.clone().unwrap_or_default(),
            name: e.name.clone(),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// An [`ArchiveChecker`] that captures the archive's table list: pgb-postgres's
/// `pg_restore --list` check, keeping the table of contents it read.
#[derive(Debug, Clone)]
pub(crate) struct TocLister {
    check: PgArchiveCheck,
    capture: TocCapture,
}

impl TocLister {
    /// A lister with tools found by `locator`; a directory-format table of contents is
    /// checked in `spool_dir`.
    pub(crate) fn new(locator: ToolLocator, spool_dir: &std::path::Path) -> Self {
        let capture = TocCapture::default();
        Self {
            check: PgArchiveCheck::new(locator)
                .with_spool_dir(spool_dir)
                .with_toc_capture(capture.clone()),
            capture,
        }
    }

    /// The tables of the table of contents, once a check finished; `None` for an archive
    /// without one (plain SQL).
    pub(crate) fn take(&self) -> Option<Vec<TocTable>> {
        self.capture.take().map(|toc| toc_tables(&toc))
    }
}

#[async_trait]
impl ArchiveChecker for TocLister {
    async fn check(&self, archive: &ArchiveInfo) -> Result<Box<dyn RestoreSink>, DumpError> {
        self.check.check(archive).await
    }

    async fn check_directory(
        &self,
        archive: &ArchiveInfo,
        files: &[String],
    ) -> Result<Option<Box<dyn RestoreSink>>, DumpError> {
        ArchiveChecker::check_directory(&self.check, archive, files).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_of_a_listing() {
        let toc = Toc::parse(
            "\
;
; Archive created at 2026-11-30 02:00:00 UTC
;     dbname: app
6; 2615 16380 SCHEMA - sales alice
215; 1259 16386 TABLE public orders alice
216; 1259 16390 TABLE sales order lines alice
217; 1259 16392 SEQUENCE public orders_id_seq alice
3345; 0 16386 TABLE DATA public orders alice
3350; 2606 16400 CONSTRAINT public orders orders_pkey alice
",
        );
        let table = |schema: &str, name: &str| TocTable {
            schema: schema.into(),
            name: name.into(),
        };
        assert_eq!(
            toc_tables(&toc),
            vec![table("public", "orders"), table("sales", "order lines")]
        );
    }
}
