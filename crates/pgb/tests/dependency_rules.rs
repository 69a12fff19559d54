//! The dependency rules of docs/architecture.md, enforced from the table itself: every pgb
//! crate a `Cargo.toml` names under `[dependencies]` must appear in the "may depend on" cell
//! of that crate's row, every crate has a row and every row names a crate. The crates each
//! row forbids outside pgb (clap in a library, tokio in a pure crate, the facade below it)
//! are kept here, as they are prose in the table. A new arrow between crates fails here until
//! the table in the docs says so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Crates a row forbids that the "may depend on" check alone would not catch.
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("pgb-retention", &["tokio", "opendal", "clap"]),
    ("pgb-wal", &["tokio", "opendal", "clap", "time"]),
    ("pgb-core", &["opendal", "clap", "tracing-subscriber"]),
    ("pgb-storage-local", &["opendal", "clap"]),
    ("pgb-storage-opendal", &["clap"]),
    ("pgb-storage-s3", &["clap"]),
    ("pgb-storage-gcs", &["clap"]),
    ("pgb-storage-azure", &["clap"]),
    ("pgb-open", &["clap", "tokio"]),
    ("pgb-postgres", &["opendal", "clap"]),
    ("pgb-testkit", &["opendal"]),
    ("pgb-faultproxy", &["clap"]),
    ("pgb-config", &["tokio", "clap", "hyper", "reqwest"]),
    ("pgb-scheduler", &["clap", "reqwest"]),
    ("pgb-jobs", &["pgb", "clap", "tracing-subscriber"]),
    ("pgb-ops", &["pgb", "opendal", "clap", "reqwest", "hyper"]),
    ("pgb-notify", &["clap", "openssl", "native-tls"]),
    ("pgb", &["clap", "tracing-subscriber"]),
    ("pgb-cli", &["opendal"]),
];

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `pgb-storage-{s3,gcs,azure}` → the three names.
fn expand(word: &str) -> Vec<String> {
    match (word.find('{'), word.find('}')) {
        (Some(open), Some(close)) if open < close => word[open + 1..close]
            .split(',')
            .map(|part| format!("{}{}{}", &word[..open], part, &word[close + 1..]))
            .collect(),
        _ => vec![word.to_owned()],
    }
}

/// The pgb crate names a cell mentions (`pgb-core`, `pgb-storage-{s3,gcs}`), prose ignored.
fn pgb_names(cell: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = cell;
    while let Some(at) = rest.find("pgb-") {
        let word = &rest[at..];
        let (mut end, mut depth) = (0, 0);
        for (i, c) in word.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth > 0 => {}
                c if c.is_ascii_alphanumeric() || c == '-' => {}
                _ => break,
            }
            end = i + c.len_utf8();
        }
        names.extend(expand(&word[..end]));
        rest = &word[end..];
    }
    // The facade, named on its own.
    if cell.split([',', ' ']).any(|w| w == "pgb") {
        names.insert("pgb".to_owned());
    }
    names
}

/// The table's rows: crate → the pgb crates its "may depend on" cell names.
fn table() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let section = doc
        .split("## Dependency rules")
        .nth(1)
        .expect("docs/architecture.md has a Dependency rules section");
    let mut rows = BTreeMap::new();
    for line in section.lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() != 3 || cells[0] == "crate" || cells[0].starts_with("---") {
            continue;
        }
        let allowed = pgb_names(cells[1]);
        let names = if cells[0] == "pgb (facade)" {
            vec!["pgb".to_owned()]
        } else {
            expand(cells[0])
        };
        for name in names {
            rows.insert(name, allowed.clone());
        }
    }
    rows
}

fn dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    doc.get("dependencies")
        .and_then(toml::Value::as_table)
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn every_crate_depends_only_on_what_the_architecture_table_allows() {
    let rows = table();
    assert!(rows.len() > 10, "the table was read: {rows:?}");
    let mut seen = BTreeSet::new();
    let mut broken = Vec::new();
    for dir in ["crates", "bins"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let manifest = entry.unwrap().path().join("Cargo.toml");
            if !manifest.exists() {
                continue;
            }
            let text = std::fs::read_to_string(&manifest).unwrap();
            let doc: toml::Table = text.parse().unwrap();
            let name = doc["package"]["name"].as_str().unwrap().to_owned();
            let Some(allowed) = rows.get(&name) else {
                broken.push(format!("{name}: no row in docs/architecture.md's table"));
                continue;
            };
            seen.insert(name.clone());
            let forbidden = FORBIDDEN
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(&[][..], |(_, f)| *f);
            for dep in dependencies(&manifest) {
                let pgb_crate = dep == "pgb" || dep.starts_with("pgb-");
                if pgb_crate && !allowed.contains(&dep) {
                    broken.push(format!(
                        "{name} -> {dep}: not in its row's \"may depend on\""
                    ));
                }
                if forbidden.contains(&dep.as_str()) {
                    broken.push(format!("{name} -> {dep}: forbidden by its row"));
                }
            }
        }
    }
    for name in rows.keys() {
        if !seen.contains(name) {
            broken.push(format!("{name}: a row for a crate that does not exist"));
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn the_table_reader_expands_braces_and_ignores_prose() {
    assert!(
        pgb_names("the facade, pgb-open (URLs)")
            .iter()
            .eq(["pgb-open"])
    );
    let names =
        pgb_names("pgb, pgb-core, pgb-storage-{s3,gcs} (each behind a feature), tokio (rt)");
    let expected: BTreeSet<String> = ["pgb", "pgb-core", "pgb-storage-s3", "pgb-storage-gcs"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(names, expected);
}
