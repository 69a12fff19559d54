//! [`Toc`]: an archive's table of contents as `pg_restore --list` prints it, parsed once for
//! the whole workspace (the archive check's entry count, a restore's `--table`/`--schema`
//! selection, a drill's table list).
//!
//! pg_restore prints each entry as `<id>; <catalog oid> <object oid> <desc> <schema> <name>
//! <owner>` with every field unquoted and separated by one space (`-` for no schema), so a
//! name may contain spaces. The parser takes the longest known `<desc>`, the owner as the last
//! word, and the schema as the longest schema the archive itself names (its `SCHEMA` entries)
//! that starts the rest, else its first word; the name is what remains.

/// Entry types pg_dump writes (what `<desc>` can be).
const DESCS: [&str; 62] = [
    "ACCESS METHOD",
    "ACL",
    "AGGREGATE",
    "BLOB",
    "BLOB METADATA",
    "BLOBS",
    "CAST",
    "CHECK CONSTRAINT",
    "COLLATION",
    "COMMENT",
    "CONSTRAINT",
    "CONVERSION",
    "DATABASE",
    "DATABASE PROPERTIES",
    "DEFAULT",
    "DEFAULT ACL",
    "DOMAIN",
    "ENCODING",
    "EVENT TRIGGER",
    "EXTENSION",
    "FK CONSTRAINT",
    "FOREIGN DATA WRAPPER",
    "FOREIGN SERVER",
    "FOREIGN TABLE",
    "FUNCTION",
    "INDEX",
    "INDEX ATTACH",
    "LARGE OBJECT",
    "LARGE OBJECTS",
    "MATERIALIZED VIEW",
    "MATERIALIZED VIEW DATA",
    "OPERATOR",
    "OPERATOR CLASS",
    "OPERATOR FAMILY",
    "POLICY",
    "PROCEDURAL LANGUAGE",
    "PROCEDURE",
    "PUBLICATION",
    "PUBLICATION TABLE",
    "PUBLICATION TABLES IN SCHEMA",
    "ROW SECURITY",
    "RULE",
    "SCHEMA",
    "SEARCHPATH",
    "SECURITY LABEL",
    "SEQUENCE",
    "SEQUENCE OWNED BY",
    "SEQUENCE SET",
    "SERVER",
    "SHELL TYPE",
    "STATISTICS",
    "STATISTICS DATA",
    "STDSTRINGS",
    "SUBSCRIPTION",
    "TABLE",
    "TABLE ATTACH",
    "TABLE DATA",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "TRANSFORM",
    "TRIGGER",
    "TYPE",
];

/// One entry of a table of contents.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TocEntry {
    /// The dump id (the number `--use-list` and `<id>.dat` files refer to).
    pub id: u64,
    /// The entry type: `TABLE`, `TABLE DATA`, `SCHEMA`, `INDEX`, ...
    pub desc: String,
    /// Its schema; `None` for objects outside one (`-`: schemas, extensions, ...).
    pub schema: Option<String>,
    /// Its name as pg_dump tags it, unquoted (`orders`; `orders orders_pkey` for a constraint;
    /// `TABLE orders` for a comment or ACL).
    pub name: String,
    /// Its owner (empty when it has none).
    pub owner: String,
    /// The dump ids it depends on (`;\tdepends on: 214 215` after it in
    /// `pg_restore --list --verbose`; empty without `--verbose`).
    pub deps: Vec<u64>,
    line: String,
}

impl TocEntry {
    /// The line as `pg_restore --list` printed it (what a `--use-list` file lists).
    pub fn line(&self) -> &str {
        &self.line
    }

    /// Whether its schema is `schema`.
    pub fn in_schema(&self, schema: &str) -> bool {
        self.schema.as_deref() == Some(schema)
    }
}

/// An archive's table of contents: every entry `pg_restore --list` printed, in its order
/// (comment lines, and entries commented out with `;`, left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Toc {
    entries: Vec<TocEntry>,
}

impl Toc {
    /// Parses `pg_restore --list` output. Lines that are no entry are skipped; an entry
    /// whose type this parser does not know is kept with its first word as the type.
    pub fn parse(listing: &str) -> Self {
        // `;\tdepends on: 1 2` (verbose listings) belongs to the entry above it.
        let mut deps: std::collections::HashMap<u64, Vec<u64>> = std::collections::HashMap::new();
        let mut last: Option<u64> = None;
        for line in listing.lines() {
            if let Some(ids) = line.strip_prefix(";\tdepends on:") {
                if let Some(id) = last {
                    deps.entry(id)
                        .or_default()
                        .extend(ids.split_whitespace().filter_map(|d| d.parse::<u64>().ok()));
                }
            } else {
                last = line
                    .split_once("; ")
                    .and_then(|(id, _)| id.trim().parse::<u64>().ok());
            }
        }
        let raw: Vec<(u64, &str, &str)> = listing
            .lines()
            .filter_map(|line| {
                let (id, rest) = line.split_once("; ")?;
                let id = id.trim().parse::<u64>().ok()?;
                // Skip the catalog oid and the object oid.
                let (_, rest) = rest.split_once(' ')?;
                let (_, rest) = rest.split_once(' ')?;
                Some((id, rest, line))
            })
            .collect();
        // The archive's own schemas (their names may contain spaces).
        let mut schemas: Vec<&str> = raw
            .iter()
            .filter_map(|(_, rest, _)| {
                let (_, body) = split_desc(rest);
                let (before, _) = body.rsplit_once(' ')?;
                rest.starts_with("SCHEMA - ")
                    .then(|| before.strip_prefix("- "))
                    .flatten()
            })
            .collect();
        schemas.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let entries = raw
            .into_iter()
            .map(|(id, rest, line)| {
                let (desc, body) = split_desc(rest);
                let (before, owner) = body.rsplit_once(' ').unwrap_or((body, ""));
                let (schema, name) = if let Some(name) = before.strip_prefix("- ") {
                    (None, name)
                } else if let Some(s) = schemas
                    .iter()
                    .find(|s| before.len() > s.len() && before.starts_with(&format!("{s} ")))
                {
                    (Some(*s), &before[s.len() + 1..])
                } else {
                    match before.split_once(' ') {
                        Some((s, n)) => (Some(s), n),
                        None => (Some(before), ""),
                    }
                };
                TocEntry {
                    id,
                    desc: desc.to_owned(),
                    schema: schema.map(str::to_owned),
                    name: name.to_owned(),
                    owner: owner.to_owned(),
                    deps: deps.remove(&id).unwrap_or_default(),
                    line: line.to_owned(),
                }
            })
            .collect();
        Self { entries }
    }

    /// Every entry, in the listing's order.
    pub fn entries(&self) -> &[TocEntry] {
        &self.entries
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `TABLE` entries (ordinary and partitioned tables; not their data).
    pub fn tables(&self) -> impl Iterator<Item = &TocEntry> {
        self.entries.iter().filter(|e| e.desc == "TABLE")
    }
}

/// `(desc, rest)`: the longest known entry type that starts `text`, else its first word.
fn split_desc(text: &str) -> (&str, &str) {
    let known = DESCS
        .iter()
        .filter(|d| {
            text.len() > d.len() && text.starts_with(*d) && text[d.len()..].starts_with(' ')
        })
        .max_by_key(|d| d.len());
    let len = match known {
        Some(d) => d.len(),
        None => text.find(' ').unwrap_or(text.len()),
    };
    (&text[..len], text.get(len + 1..).unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pg_restore --list` (PostgreSQL 15.18) of a database with a schema and a table whose
    /// names contain spaces, a table named `we"ird`, partitions, a view's ACL and a comment.
    const LISTING: &str = r#";
; Archive created at 2026-12-05 01:36:42 UTC
;     dbname: toc_sample
;     TOC Entries: 25
;
; Selected TOC Entries:
;
6; 2615 31796 SCHEMA - my schema postgres
857; 1247 31820 TYPE public mood postgres
222; 1255 31818 FUNCTION public f(integer) postgres
2060; 3602 31823 TEXT SEARCH CONFIGURATION public tsc postgres
215; 1259 31797 TABLE my schema order lines postgres
220; 1259 31824 TABLE public parent postgres
221; 1259 31827 TABLE public child postgres
219; 1259 31814 MATERIALIZED VIEW public mv postgres
217; 1259 31809 SEQUENCE public s postgres
218; 1259 31810 VIEW public v postgres
3383; 0 0 ACL public TABLE v postgres
216; 1259 31805 TABLE public we"ird postgres
3384; 0 0 COMMENT public TABLE "we""ird" postgres
3223; 0 0 TABLE ATTACH public child postgres
3372; 0 31797 TABLE DATA my schema order lines postgres
3376; 0 31827 TABLE DATA public child postgres
3373; 0 31805 TABLE DATA public we"ird postgres
3385; 0 0 SEQUENCE SET public s postgres
3227; 2606 31804 CONSTRAINT my schema order lines order lines_pkey postgres
3225; 1259 31808 INDEX my schema idx with space postgres
3375; 0 31814 MATERIALIZED VIEW DATA public mv postgres
;3376; 0 31827 TABLE DATA public child postgres
"#;

    fn find(toc: &Toc, id: u64) -> &TocEntry {
        toc.entries().iter().find(|e| e.id == id).unwrap()
    }

    fn parts(e: &TocEntry) -> (&str, Option<&str>, &str, &str) {
        (&e.desc, e.schema.as_deref(), &e.name, &e.owner)
    }

    #[test]
    fn every_entry_is_typed_with_spaces_and_quotes_in_names() {
        let toc = Toc::parse(LISTING);
        assert_eq!(
            toc.len(),
            21,
            "comments and commented-out entries are no entries"
        );
        let p = |id| parts(find(&toc, id));
        assert_eq!(p(6), ("SCHEMA", None, "my schema", "postgres"));
        assert_eq!(
            p(215),
            ("TABLE", Some("my schema"), "order lines", "postgres")
        );
        assert_eq!(
            p(3372),
            ("TABLE DATA", Some("my schema"), "order lines", "postgres")
        );
        assert_eq!(p(216), ("TABLE", Some("public"), "we\"ird", "postgres"));
        assert_eq!(
            p(3384),
            ("COMMENT", Some("public"), "TABLE \"we\"\"ird\"", "postgres")
        );
        assert_eq!(p(3383), ("ACL", Some("public"), "TABLE v", "postgres"));
        assert_eq!(
            p(2060),
            (
                "TEXT SEARCH CONFIGURATION",
                Some("public"),
                "tsc",
                "postgres"
            )
        );
        assert_eq!(
            p(3375),
            ("MATERIALIZED VIEW DATA", Some("public"), "mv", "postgres")
        );
        assert_eq!(
            p(3223),
            ("TABLE ATTACH", Some("public"), "child", "postgres")
        );
        assert_eq!(
            p(3227),
            (
                "CONSTRAINT",
                Some("my schema"),
                "order lines order lines_pkey",
                "postgres"
            )
        );
        assert_eq!(
            p(3225),
            ("INDEX", Some("my schema"), "idx with space", "postgres")
        );
        assert_eq!(
            find(&toc, 3373).line(),
            "3373; 0 31805 TABLE DATA public we\"ird postgres"
        );
        let tables: Vec<(Option<&str>, &str)> = toc
            .tables()
            .map(|e| (e.schema.as_deref(), e.name.as_str()))
            .collect();
        assert_eq!(
            tables,
            [
                (Some("my schema"), "order lines"),
                (Some("public"), "parent"),
                (Some("public"), "child"),
                (Some("public"), "we\"ird"),
            ]
        );
    }

    #[test]
    fn a_verbose_listing_gives_each_entry_its_dependencies() {
        // `pg_restore --list --verbose` (PostgreSQL 15.18) of a table with a serial column.
        let toc = Toc::parse(
            "215; 1259 16392 TABLE public t postgres\n\
             214; 1259 16391 SEQUENCE public t_id_seq postgres\n\
             ;\tdepends on: 215\n\
             3197; 2604 16395 DEFAULT public t id postgres\n\
             ;\tdepends on: 214 215 215\n\
             ;3343; 0 16392 TABLE DATA public t postgres\n\
             ;\tdepends on: 215\n",
        );
        let deps: Vec<(u64, &[u64])> = toc.entries().iter().map(|e| (e.id, &e.deps[..])).collect();
        assert_eq!(
            deps,
            [
                (215, &[][..]),
                (214, &[215][..]),
                (3197, &[214, 215, 215][..])
            ]
        );
    }

    #[test]
    fn unknown_types_and_missing_owners_are_kept() {
        let toc = Toc::parse(
            "10; 0 0 NEWTHING public x postgres\n11; 0 0 ENCODING - ENCODING \nnot an entry\n",
        );
        assert_eq!(toc.len(), 2);
        assert_eq!(
            parts(&toc.entries()[0]),
            ("NEWTHING", Some("public"), "x", "postgres")
        );
        assert_eq!(parts(&toc.entries()[1]), ("ENCODING", None, "ENCODING", ""));
        assert!(Toc::parse("; only comments\n").is_empty());
    }
}
