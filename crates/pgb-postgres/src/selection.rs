//! Table-level restore: which entries of an archive's table of contents (`pg_restore --list`)
//! `--table`/`--schema` select, checked against what the archive holds, written as the list
//! pg_restore restores (`--use-list`).
//!
//! A table brings its definition and data (and the `CREATE SCHEMA` of its schema), as
//! pg_restore's `-t` does, but exactly that schema's table; a schema brings every entry in it.

use std::path::Path;

use pgb_core::{DumpError, DumpErrorKind, RestoreOptions};
use tokio::io::AsyncReadExt;

use crate::process::{self, Pipes, ToolProcess};
use crate::toc::{Toc, TocEntry};
use crate::tools::Tool;

/// Entry types a table name can name (what pg_restore's `-t` matches).
const RELATIONS: [&str; 5] = [
    "TABLE",
    "VIEW",
    "MATERIALIZED VIEW",
    "SEQUENCE",
    "FOREIGN TABLE",
];
/// Entries that hold a relation's data.
const DATA: [&str; 3] = ["TABLE DATA", "MATERIALIZED VIEW DATA", "SEQUENCE SET"];
/// Entry types a schema selection brings along (entries of other types in the schema, such
/// as its ACLs, are left out).
const IN_SCHEMA: [&str; 31] = [
    "MATERIALIZED VIEW DATA",
    "SEQUENCE OWNED BY",
    "MATERIALIZED VIEW",
    "CHECK CONSTRAINT",
    "FOREIGN TABLE",
    "FK CONSTRAINT",
    "INDEX ATTACH",
    "ROW SECURITY",
    "SEQUENCE SET",
    "TABLE ATTACH",
    "TABLE DATA",
    "CONSTRAINT",
    "STATISTICS",
    "AGGREGATE",
    "PROCEDURE",
    "COLLATION",
    "CONVERSION",
    "OPERATOR",
    "SEQUENCE",
    "FUNCTION",
    "TRIGGER",
    "DEFAULT",
    "COMMENT",
    "DOMAIN",
    "POLICY",
    "SCHEMA",
    "INDEX",
    "TABLE",
    "RULE",
    "TYPE",
    "VIEW",
];

/// A requested table: (schema, name); no schema matches any.
fn table_parts(t: &str) -> (Option<&str>, &str) {
    match t.split_once('.') {
        Some((s, n)) => (Some(s), n),
        None => (None, t),
    }
}

/// What a selection restores: the `--use-list` text and the ids of its data entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selected {
    pub(crate) list: String,
    pub(crate) data_ids: Vec<u64>,
}

/// Checks that every requested table and schema is in the archive, and returns what the
/// selection restores.
///
/// # Errors
/// `NoMatch` naming the first table or schema the archive does not hold.
pub(crate) fn select(toc: &Toc, opts: &RestoreOptions) -> Result<Selected, DumpError> {
    let kind = |e: &TocEntry, kinds: &[&str]| kinds.contains(&e.desc.as_str());
    let entries: Vec<&TocEntry> = toc
        .entries()
        .iter()
        .filter(|e| kind(e, &IN_SCHEMA))
        .collect();
    let missing = |what: String| {
        Err(DumpError::new(
            DumpErrorKind::NoMatch,
            format!("the backup holds no {what}"),
        ))
    };
    let is_table = |e: &TocEntry, t: &str| {
        let (schema, name) = table_parts(t);
        (kind(e, &RELATIONS) || kind(e, &DATA))
            && e.name == name
            && schema.is_none_or(|s| e.in_schema(s))
    };
    for t in &opts.tables {
        if !entries
            .iter()
            .any(|e| kind(e, &RELATIONS) && is_table(e, t))
        {
            return missing(format!("table {t}"));
        }
    }
    let in_schema = |e: &TocEntry, s: &str| e.in_schema(s) || (e.desc == "SCHEMA" && e.name == s);
    for s in &opts.schemas {
        if !entries.iter().any(|e| in_schema(e, s)) {
            return missing(format!("schema {s}"));
        }
    }
    let chosen: Vec<&TocEntry> = entries
        .iter()
        .copied()
        .filter(|e| {
            opts.tables.iter().any(|t| is_table(e, t))
                || opts.schemas.iter().any(|s| in_schema(e, s))
        })
        .collect();
    // The schemas of the chosen tables must exist in the target: their CREATE SCHEMA too.
    let schemas: Vec<&str> = chosen.iter().filter_map(|e| e.schema.as_deref()).collect();
    let list = entries
        .iter()
        .filter(|e| {
            chosen.iter().any(|c| c.id == e.id)
                || (e.desc == "SCHEMA" && schemas.contains(&e.name.as_str()))
        })
        .map(|e| format!("{}\n", e.line()))
        .collect();
    Ok(Selected {
        list,
        data_ids: chosen
            .iter()
            .filter(|e| kind(e, &DATA))
            .map(|e| e.id)
            .collect(),
    })
}

/// Writes a `--use-list` file (0600).
pub(crate) async fn write_list(path: &Path, list: &str) -> Result<(), DumpError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |e: std::io::Error| {
        DumpError::new(
            DumpErrorKind::Io,
            format!("writing {}: {e}", path.display()),
        )
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true).mode(0o600);
    let mut f = tokio::fs::OpenOptions::from(opts)
        .open(path)
        .await
        .map_err(io)?;
    tokio::io::AsyncWriteExt::write_all(&mut f, list.as_bytes())
        .await
        .map_err(io)?;
    tokio::io::AsyncWriteExt::flush(&mut f).await.map_err(io)
}

/// `pg_restore --list` of an archive file or directory.
pub(crate) async fn list(tool: &Tool, archive: &Path) -> Result<String, DumpError> {
    let mut cmd = process::command(tool, None);
    cmd.arg("--list").arg(archive);
    let mut p = ToolProcess::spawn(cmd, "pg_restore", Pipes::STDOUT)?;
    let mut stdout = p.take_stdout().expect("piped");
    let mut text = String::new();
    let read = stdout.read_to_string(&mut text).await;
    p.wait()
        .await
        .map_err(|e| e.with_kind(DumpErrorKind::BadArchive))?;
    read.map_err(|e| DumpError::new(DumpErrorKind::Io, format!("reading pg_restore --list: {e}")))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = ";\n; Archive created at ...\n;\n\
        215; 1259 16390 TABLE public orders postgres\n\
        216; 1259 16395 TABLE sales orders postgres\n\
        217; 1259 16399 TABLE public items postgres\n\
        3345; 0 16390 TABLE DATA public orders postgres\n\
        3346; 0 16395 TABLE DATA sales orders postgres\n\
        3347; 0 16399 TABLE DATA public items postgres\n\
        6; 2615 16394 SCHEMA - sales postgres\n\
        3200; 2606 16401 CONSTRAINT public items items_pkey postgres\n";

    #[test]
    fn tables_select_their_data_and_unknown_ones_are_refused() {
        let toc = Toc::parse(LISTING);
        assert_eq!(toc.len(), 8);
        let ids = |opts: &RestoreOptions| select(&toc, opts).unwrap().data_ids;
        let opts = RestoreOptions::new().with_tables(vec!["public.orders".into()]);
        assert_eq!(ids(&opts), [3345]);
        assert_eq!(
            select(&toc, &opts).unwrap().list,
            "215; 1259 16390 TABLE public orders postgres\n3345; 0 16390 TABLE DATA public orders postgres\n"
        );
        let opts = RestoreOptions::new().with_tables(vec!["orders".into()]);
        assert_eq!(ids(&opts), [3345, 3346]);
        let opts = RestoreOptions::new().with_tables(vec!["sales.orders".into()]);
        let list = select(&toc, &opts).unwrap().list;
        assert!(
            list.contains("SCHEMA - sales"),
            "its schema comes along: {list}"
        );
        let opts = RestoreOptions::new().with_schemas(vec!["public".into()]);
        assert_eq!(ids(&opts), [3345, 3347]);
        assert!(select(&toc, &opts).unwrap().list.contains("items_pkey"));
        let opts = RestoreOptions::new().with_tables(vec!["public.nope".into()]);
        let e = select(&toc, &opts).unwrap_err();
        assert_eq!(e.kind(), DumpErrorKind::NoMatch);
        assert_eq!(e.to_string(), "the backup holds no table public.nope");
        let opts = RestoreOptions::new().with_schemas(vec!["nope".into()]);
        assert!(select(&toc, &opts).is_err());
    }

    #[test]
    fn names_with_spaces_select_their_entries() {
        // From `pg_restore --list` of a real archive (PostgreSQL 15).
        let toc = Toc::parse(
            "6; 2615 31796 SCHEMA - my schema postgres\n\
             215; 1259 31797 TABLE my schema order lines postgres\n\
             216; 1259 31805 TABLE public order postgres\n\
             3383; 0 0 ACL public TABLE order postgres\n\
             3372; 0 31797 TABLE DATA my schema order lines postgres\n\
             3373; 0 31805 TABLE DATA public order postgres\n",
        );
        let opts = RestoreOptions::new().with_tables(vec!["my schema.order lines".into()]);
        let sel = select(&toc, &opts).unwrap();
        assert_eq!(sel.data_ids, [3372]);
        assert!(
            sel.list
                .starts_with("6; 2615 31796 SCHEMA - my schema postgres\n")
        );
        let opts = RestoreOptions::new().with_tables(vec!["order".into()]);
        assert_eq!(select(&toc, &opts).unwrap().data_ids, [3373]);
        // A schema brings its tables and data, not its ACLs.
        let opts = RestoreOptions::new().with_schemas(vec!["public".into()]);
        let sel = select(&toc, &opts).unwrap();
        assert_eq!(sel.data_ids, [3373]);
        assert!(!sel.list.contains("ACL"), "{}", sel.list);
    }
}
