//! The dependency rules of docs/architecture.md, enforced: each crate's `[dependencies]` may
//! name only the pgb crates its row allows, and none of the crates its row forbids. A new
//! arrow between crates (or a forbidden one, such as a library taking clap or a pure crate
//! taking tokio) fails here, and the table in the docs is updated with the code.

use std::collections::BTreeSet;
use std::path::Path;

/// (crate, pgb crates it may depend on, other crates it must not depend on).
const RULES: &[(&str, &[&str], &[&str])] = &[
    ("pgb-retention", &[], &["tokio", "opendal", "clap"]),
    ("pgb-wal", &[], &["tokio", "opendal", "clap", "time"]),
    (
        "pgb-core",
        &["pgb-retention", "pgb-wal"],
        &["opendal", "clap", "tracing-subscriber"],
    ),
    ("pgb-storage-local", &["pgb-core"], &["opendal", "clap"]),
    ("pgb-storage-opendal", &["pgb-core"], &["clap"]),
    (
        "pgb-storage-s3",
        &["pgb-core", "pgb-storage-opendal"],
        &["clap"],
    ),
    (
        "pgb-storage-gcs",
        &["pgb-core", "pgb-storage-opendal"],
        &["clap"],
    ),
    (
        "pgb-storage-azure",
        &["pgb-core", "pgb-storage-opendal"],
        &["clap"],
    ),
    (
        "pgb-postgres",
        &["pgb-core", "pgb-wal"],
        &["opendal", "clap"],
    ),
    ("pgb-testkit", &["pgb-core"], &["opendal"]),
    ("pgb-faultproxy", &[], &["clap"]),
    (
        "pgb-config",
        &["pgb-retention"],
        &["tokio", "clap", "hyper", "reqwest"],
    ),
    ("pgb-scheduler", &[], &["clap", "reqwest"]),
    (
        "pgb-jobs",
        &[
            "pgb",
            "pgb-config",
            "pgb-notify",
            "pgb-ops",
            "pgb-postgres",
            "pgb-scheduler",
        ],
        &["clap", "tracing-subscriber"],
    ),
    (
        "pgb-ops",
        &["pgb-core", "pgb-postgres", "pgb-wal"],
        &["opendal", "clap", "reqwest", "hyper"],
    ),
    ("pgb-metrics", &["pgb-ops"], &["tokio", "hyper", "reqwest"]),
    ("pgb-notify", &[], &["clap", "openssl", "native-tls"]),
    (
        "pgb",
        &[
            "pgb-core",
            "pgb-storage-local",
            "pgb-postgres",
            "pgb-storage-opendal",
            "pgb-storage-s3",
            "pgb-storage-gcs",
            "pgb-storage-azure",
        ],
        &["clap", "tracing-subscriber"],
    ),
    (
        "pgb-cli",
        &[
            "pgb",
            "pgb-config",
            "pgb-scheduler",
            "pgb-jobs",
            "pgb-ops",
            "pgb-metrics",
            "pgb-notify",
        ],
        &["opendal"],
    ),
];

fn dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    doc.get("dependencies")
        .and_then(toml::Value::as_table)
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn every_crate_depends_only_on_what_the_architecture_allows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut seen = BTreeSet::new();
    let mut broken = Vec::new();
    for dir in ["crates", "bins"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let manifest = entry.unwrap().path().join("Cargo.toml");
            if !manifest.exists() {
                continue;
            }
            let name = manifest
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let Some((_, allowed, forbidden)) = RULES.iter().find(|(n, _, _)| *n == name) else {
                broken.push(format!("{name}: no row in the dependency rules"));
                continue;
            };
            seen.insert(name.clone());
            for dep in dependencies(&manifest) {
                if dep.starts_with("pgb") && !allowed.contains(&dep.as_str()) {
                    broken.push(format!("{name} -> {dep}: not allowed by its row"));
                }
                if forbidden.contains(&dep.as_str()) {
                    broken.push(format!("{name} -> {dep}: forbidden by its row"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
    assert_eq!(
        seen.len(),
        RULES.len(),
        "every row names a crate that exists"
    );
}
