//! The migration keys of a job: `migrations` (frameworks), `migrations_query`,
//! `expected_migration` and `expected_migration_command`, and one clear line for each bad value.

use std::path::Path;

use pgb_config::{ConfigError, Environment, JobSettings, LoadedConfig, ResolvedJob};

fn resolve(extra: &str, env: &[(&str, &str)]) -> Result<ResolvedJob, ConfigError> {
    let text = format!("[jobs.shop]\nrepository = \"/var/backups/pgb\"\n{extra}\n");
    let cfg = LoadedConfig::parse(&text, Path::new("pgb.toml"))?;
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let var = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let exe = |p: &Path| p == Path::new("/usr/bin/app-status");
    cfg.resolve(
        "shop",
        &Environment {
            var: &var,
            is_executable: &exe,
        },
        &JobSettings::default(),
    )
}

#[test]
fn the_keys_resolve_with_their_defaults() {
    let j = resolve("", &[]).unwrap();
    assert_eq!(j.migrations.frameworks, None, "every framework by default");
    assert_eq!(j.migrations.query, None);
    let j = resolve(
        "migrations = [\"Prisma\", \"flyway\"]\nmigrations_query = \"select v from app_version\"\n\
         expected_migration = \"prisma:20240501_init\"",
        &[],
    )
    .unwrap();
    assert_eq!(
        j.migrations.frameworks.as_deref(),
        Some(&["prisma".to_owned(), "flyway".to_owned()][..])
    );
    assert_eq!(
        j.migrations.query.as_deref(),
        Some("select v from app_version")
    );
    assert_eq!(
        j.migrations.expected.as_deref(),
        Some("prisma:20240501_init")
    );
    let j = resolve(
        "migrations = []\nexpected_migration_command = [\"/usr/bin/app-status\", \"--head\"]",
        &[],
    )
    .unwrap();
    assert_eq!(j.migrations.frameworks.as_deref(), Some(&[][..]));
    assert_eq!(
        j.migrations.expected_command.unwrap().argv,
        ["/usr/bin/app-status", "--head"]
    );
    // The environment layer: PGB_EXPECTED_MIGRATION.
    let j = resolve("", &[("PGB_EXPECTED_MIGRATION", "flyway:3")]).unwrap();
    assert_eq!(j.migrations.expected.as_deref(), Some("flyway:3"));
}

#[test]
fn bad_values_are_one_line_naming_the_key() {
    for (extra, key, says) in [
        (
            "migrations = [\"prisma\", \"flyaway\"]",
            "migrations",
            "unknown migration framework \"flyaway\"",
        ),
        (
            "migrations_query = \" \"",
            "migrations_query",
            "an empty query",
        ),
        (
            "expected_migration = \"prisma:\"",
            "expected_migration",
            "names no head",
        ),
        (
            "expected_migration_command = [\"no-such-status\"]",
            "expected_migration_command",
            "not an executable",
        ),
        (
            "expected_migration = \"3\"\nexpected_migration_command = [\"/usr/bin/app-status\"]",
            "expected_migration_command",
            "not both",
        ),
        (
            "expected_migrations = \"3\"",
            "expected_migrations",
            "unknown",
        ),
    ] {
        let e = resolve(extra, &[]).unwrap_err().to_string();
        assert!(!e.contains('\n'), "one line: {e}");
        assert!(e.contains(key) && e.contains(says), "{extra}: {e}");
        assert!(e.starts_with("pgb.toml:"), "{e}");
    }
    let e = resolve("migrations = [\"flyaway\"]", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("prisma, alembic, rails, golang-migrate"),
        "names the known: {e}"
    );
}
