//! Table-level restore: which entries of an archive's table of contents (`pg_restore --list`)
//! `--table`/`--schema` select, checked against what the archive holds, written as the list
//! pg_restore restores (`--use-list`).
//!
//! A table brings what it needs to exist (its schema, the types, domains, functions and
//! sequences it depends on) and what belongs to it (data, owned sequences and their values,
//! defaults, constraints, indexes, triggers, comments), from the dependencies the archive
//! records; a schema brings every entry in it.

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

/// What a table brings along because it needs it: the definitions its entries depend on
/// (`pg_restore --list --verbose`'s `depends on:`), followed transitively.
const NEEDED: [&str; 20] = [
    "SCHEMA",
    "TYPE",
    "SHELL TYPE",
    "DOMAIN",
    "FUNCTION",
    "PROCEDURE",
    "AGGREGATE",
    "COLLATION",
    "SEQUENCE",
    "OPERATOR",
    "OPERATOR CLASS",
    "OPERATOR FAMILY",
    "CONVERSION",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "EXTENSION",
    "PROCEDURAL LANGUAGE",
    "CAST",
    "TRANSFORM",
    "ACCESS METHOD",
];
/// What a table brings along because it belongs to it (depends on it): its data, owned
/// sequences and their values, defaults, constraints, indexes, triggers, rules, policies,
/// comments, ACLs (applied only when privileges are kept), statistics.
const ATTACHED: [&str; 20] = [
    "TABLE DATA",
    "MATERIALIZED VIEW DATA",
    "SEQUENCE",
    "SEQUENCE OWNED BY",
    "SEQUENCE SET",
    "DEFAULT",
    "CONSTRAINT",
    "CHECK CONSTRAINT",
    "FK CONSTRAINT",
    "INDEX",
    "INDEX ATTACH",
    "TRIGGER",
    "RULE",
    "POLICY",
    "ROW SECURITY",
    "COMMENT",
    "ACL",
    "SECURITY LABEL",
    "STATISTICS",
    "STATISTICS DATA",
];
/// Entries whose data is a file of a directory-format archive (`<id>.dat`).
const DATA_FILES: [&str; 2] = ["TABLE DATA", "MATERIALIZED VIEW DATA"];

/// A requested table: (schema, name); no schema matches any.
fn table_parts(t: &str) -> (Option<&str>, &str) {
    match t.split_once('.') {
        Some((s, n)) => (Some(s), n),
        None => (None, t),
    }
}

/// An entry as people name it: `TABLE public.language`, `FK CONSTRAINT public.film
/// film_language_id_fkey`.
fn describe(e: &TocEntry) -> String {
    match &e.schema {
        Some(s) => format!("{} {s}.{}", e.desc, e.name),
        None => format!("{} {}", e.desc, e.name),
    }
}

/// What a selection restores: the `--use-list` text and the ids of its data entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selected {
    pub(crate) list: String,
    pub(crate) data_ids: Vec<u64>,
    /// Entries of the selected tables left out because they need a table that is not
    /// selected (a foreign key to it), each with what it needs.
    pub(crate) skipped: Vec<String>,
}

/// Checks that every requested table and schema is in the archive, and returns what the
/// selection restores.
///
/// A table brings what it needs to exist, from the dependencies of a verbose listing
/// (`pg_restore --list --verbose`): the schemas, types, domains, functions and sequences it
/// (and what it brings) depends on, transitively, and the entries that belong to it: its
/// data, owned sequences with their `SEQUENCE OWNED BY` and values (`SEQUENCE SET`),
/// defaults, constraints, indexes, triggers (with the functions they call), rules, policies,
/// comments and ACLs. An entry that belongs to a selected table but needs a table that is not
/// selected (a foreign key to it) is left out and named in [`Selected::skipped`].
///
/// # Errors
/// `NoMatch` naming the first table or schema the archive does not hold, or the first table
/// a selected table needs to exist (its parent, a table a function it needs depends on) that
/// is not selected.
pub(crate) fn select(toc: &Toc, opts: &RestoreOptions) -> Result<Selected, DumpError> {
    let kind = |e: &TocEntry, kinds: &[&str]| kinds.contains(&e.desc.as_str());
    let entries: Vec<&TocEntry> = toc
        .entries()
        .iter()
        .filter(|e| kind(e, &IN_SCHEMA) || kind(e, &NEEDED) || kind(e, &ATTACHED))
        .collect();
    let missing = |what: String| {
        Err(DumpError::new(
            DumpErrorKind::NoMatch,
            format!("the backup holds no {what}"),
        ))
    };
    let is_table = |e: &TocEntry, t: &str| {
        let (schema, name) = table_parts(t);
        kind(e, &RELATIONS) && e.name == name && schema.is_none_or(|s| e.in_schema(s))
    };
    for t in &opts.tables {
        if !entries.iter().any(|e| is_table(e, t)) {
            return missing(format!("table {t}"));
        }
    }
    let in_schema = |e: &TocEntry, s: &str| e.in_schema(s) || (e.desc == "SCHEMA" && e.name == s);
    for s in &opts.schemas {
        if !entries.iter().any(|e| in_schema(e, s)) {
            return missing(format!("schema {s}"));
        }
    }
    let by_id: std::collections::HashMap<u64, &TocEntry> =
        entries.iter().map(|e| (e.id, *e)).collect();
    let tables: Vec<&TocEntry> = entries
        .iter()
        .copied()
        .filter(|e| opts.tables.iter().any(|t| is_table(e, t)))
        .collect();
    let mut chosen: std::collections::BTreeSet<u64> = entries
        .iter()
        .filter(|e| kind(e, &IN_SCHEMA) && opts.schemas.iter().any(|s| in_schema(e, s)))
        .map(|e| e.id)
        .collect();
    // The schemas of the chosen tables must exist in the target: their CREATE SCHEMA too.
    let table_schemas: Vec<&str> = tables.iter().filter_map(|e| e.schema.as_deref()).collect();
    chosen.extend(
        entries
            .iter()
            .filter(|e| e.desc == "SCHEMA" && table_schemas.contains(&e.name.as_str()))
            .map(|e| e.id),
    );
    let mut skipped = Vec::new();
    // Each table and its data (by name too: a listing without dependencies still has it).
    let mut closure: std::collections::BTreeSet<u64> = entries
        .iter()
        .filter(|e| {
            kind(e, &DATA_FILES)
                && tables
                    .iter()
                    .any(|t| t.name == e.name && t.schema == e.schema)
        })
        .chain(tables.iter())
        .map(|e| e.id)
        .collect();
    let mut rejected = std::collections::BTreeSet::new();
    loop {
        let before = closure.len();
        // What the chosen entries need, transitively.
        let mut work: Vec<u64> = closure.iter().copied().collect();
        while let Some(id) = work.pop() {
            let Some(e) = by_id.get(&id) else { continue };
            for d in &e.deps {
                if closure.contains(d) {
                    continue;
                }
                let Some(dep) = by_id.get(d) else { continue };
                if kind(dep, &NEEDED) {
                    closure.insert(*d);
                    work.push(*d);
                } else if kind(dep, &RELATIONS) {
                    return Err(DumpError::new(
                        DumpErrorKind::NoMatch,
                        format!(
                            "{} needs {}, which the selection leaves out; select it too",
                            describe(e),
                            describe(dep)
                        ),
                    ));
                }
            }
        }
        // What belongs to them (not to a schema: its comment or ACL is the schema owner's).
        for e in &entries {
            if closure.contains(&e.id) || rejected.contains(&e.id) || !kind(e, &ATTACHED) {
                continue;
            }
            let belongs = e
                .deps
                .iter()
                .any(|d| closure.contains(d) && by_id.get(d).is_some_and(|x| x.desc != "SCHEMA"));
            if !belongs {
                continue;
            }
            let lacking = e
                .deps
                .iter()
                .filter_map(|d| by_id.get(d))
                .find(|x| !closure.contains(&x.id) && !kind(x, &NEEDED));
            match lacking {
                None => {
                    closure.insert(e.id);
                }
                Some(x) => {
                    rejected.insert(e.id);
                    if e.deps.iter().any(|d| tables.iter().any(|t| t.id == *d)) {
                        skipped.push(format!("{} (it needs {})", describe(e), describe(x)));
                    }
                }
            }
        }
        if closure.len() == before {
            break;
        }
    }
    for n in &skipped {
        tracing::warn!(entry = %n, "left out of the table restore: it needs a table that is not selected");
    }
    chosen.extend(closure);
    let list = entries
        .iter()
        .filter(|e| chosen.contains(&e.id))
        .map(|e| format!("{}\n", e.line()))
        .collect();
    Ok(Selected {
        list,
        data_ids: entries
            .iter()
            .filter(|e| chosen.contains(&e.id) && kind(e, &DATA_FILES))
            .map(|e| e.id)
            .collect(),
        skipped,
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

/// `pg_restore --list --verbose` of an archive file or directory (each entry followed by the
/// ids it depends on).
pub(crate) async fn list(tool: &Tool, archive: &Path) -> Result<String, DumpError> {
    let mut cmd = process::command(tool, None);
    cmd.args(["--list", "--verbose"]).arg(archive);
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

    /// A verbose listing (`depends on:`) shaped like Pagila's `film`.
    const FILM: &str = "850; 1247 16386 TYPE public mpaa_rating postgres\n\
        851; 1247 16398 DOMAIN public year postgres\n\
        230; 1255 16400 FUNCTION public last_updated() postgres\n\
        215; 1259 16410 TABLE public language postgres\n\
        217; 1259 16420 TABLE public film postgres\n;\tdepends on: 850 851\n\
        216; 1259 16419 SEQUENCE public film_film_id_seq postgres\n;\tdepends on: 217\n\
        3400; 0 0 SEQUENCE OWNED BY public film_film_id_seq postgres\n;\tdepends on: 216\n\
        3200; 2604 16423 DEFAULT public film film_id postgres\n;\tdepends on: 216 217\n\
        3401; 0 16420 TABLE DATA public film postgres\n;\tdepends on: 217\n\
        3403; 0 16410 TABLE DATA public language postgres\n;\tdepends on: 215\n\
        3402; 0 0 SEQUENCE SET public film_film_id_seq postgres\n;\tdepends on: 216\n\
        3210; 2606 16430 CONSTRAINT public film film_pkey postgres\n;\tdepends on: 217\n\
        3211; 2606 16431 CONSTRAINT public language language_pkey postgres\n;\tdepends on: 215\n\
        3220; 1259 16440 INDEX public idx_title postgres\n;\tdepends on: 217\n\
        3230; 2620 16450 TRIGGER public film last_updated postgres\n;\tdepends on: 230 217\n\
        3240; 2606 16460 FK CONSTRAINT public film film_language_id_fkey postgres\n;\tdepends on: 3211 217\n\
        240; 1259 16470 TABLE public stats postgres\n\
        241; 1255 16480 FUNCTION public film_count() postgres\n;\tdepends on: 217\n\
        3250; 2604 16490 DEFAULT public stats films postgres\n;\tdepends on: 241 240\n";

    fn ids(sel: &Selected) -> Vec<u64> {
        sel.list
            .lines()
            .map(|l| l.split_once(';').unwrap().0.parse().unwrap())
            .collect()
    }

    #[test]
    fn a_table_brings_what_it_needs_and_what_belongs_to_it() {
        let toc = Toc::parse(FILM);
        let opts = RestoreOptions::new().with_tables(vec!["public.film".into()]);
        let sel = select(&toc, &opts).unwrap();
        assert_eq!(
            ids(&sel),
            [
                850, 851, 230, 217, 216, 3400, 3200, 3401, 3402, 3210, 3220, 3230
            ],
            "types, the trigger's function, the sequence with its value, default, index, trigger"
        );
        assert_eq!(sel.data_ids, [3401], "SEQUENCE SET has no data file");
        assert_eq!(
            sel.skipped,
            [
                "FK CONSTRAINT public.film film_language_id_fkey (it needs CONSTRAINT public.language language_pkey)"
            ]
        );
        let opts =
            RestoreOptions::new().with_tables(vec!["public.film".into(), "public.language".into()]);
        let sel = select(&toc, &opts).unwrap();
        assert!(ids(&sel).contains(&3240), "with language, the foreign key");
        assert!(sel.skipped.is_empty());
        let opts = RestoreOptions::new().with_tables(vec!["public.stats".into()]);
        let e = select(&toc, &opts).unwrap_err();
        assert_eq!(e.kind(), DumpErrorKind::NoMatch);
        assert_eq!(
            e.to_string(),
            "FUNCTION public.film_count() needs TABLE public.film, which the selection leaves out; select it too"
        );
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
