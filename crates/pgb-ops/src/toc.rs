//! The tables of an archive's table of contents, read with `pg_restore --list` while the
//! drill's verify pass streams the archive.

use std::sync::{Arc, PoisonError};

use async_trait::async_trait;
use pgb_core::{ArchiveChecker, ArchiveInfo, DumpError, RestoreSink};
use pgb_postgres::{Listing, PgArchiveCheck, ToolLocator};
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

/// An [`ArchiveChecker`] that captures the archive's table list: pgb-postgres's
/// `pg_restore --list` check, keeping the listing it printed.
#[derive(Debug, Clone)]
pub(crate) struct TocLister {
    check: PgArchiveCheck,
    listing: Listing,
}

impl TocLister {
    pub(crate) fn new(locator: ToolLocator) -> Self {
        let listing = Listing::default();
        Self {
            check: PgArchiveCheck::new(locator).with_listing(Arc::clone(&listing)),
            listing,
        }
    }

    /// The tables of the listing, once a check finished; `None` for an archive without a
    /// table of contents (plain SQL).
    pub(crate) fn take(&self) -> Option<Vec<TocTable>> {
        self.listing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map(|text| parse_toc_tables(&text))
    }
}

#[async_trait]
impl ArchiveChecker for TocLister {
    async fn check(&self, archive: &ArchiveInfo) -> Result<Box<dyn RestoreSink>, DumpError> {
        self.check.check(archive).await
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
