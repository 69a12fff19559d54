//! A service that opens a repository by URL, takes a backup, verifies it and applies a
//! retention policy: the same library operations the `pgb` command runs, nothing re-implemented.
//!
//! ```sh
//! # A database URL (no password: PGPASSWORD or ~/.pgpass) and a repository URL; the storage
//! # credentials come from the environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, AZURE_*).
//! cargo run -p pgb --example embed_backup -- postgres://postgres@127.0.0.1:5432/shop file:///tmp/repo
//! # Object storage needs its feature: --features s3 (gcs, azure) and s3://bucket/prefix.
//! # Without arguments: DATABASE_URL and PGB_REPO.
//! ```
//!
//! `cargo test -p pgb --example embed_backup` (and the workspace test run) runs this code
//! against the test server of `scripts/test.sh` (`PGB_TEST_PG_URL`, `PGB_TEST_PG_BIN`).

use pgb::postgres::{ConnConfig, InheritedEnv, PgArchiveCheck, PgDump, ToolLocator};
use pgb::retention::{Count, Policy};
use pgb::{BackupOptions, EnvLookup, Event, PruneOptions, PruneReport};

/// What one run did.
#[derive(Debug)]
struct Summary {
    backup: pgb::BackupId,
    stored_bytes: u64,
    toc_entries: Option<u64>,
    prune: PruneReport,
}

/// Backs up `db` into the repository at `repo_url`, verifies the backup and keeps 7 daily and
/// 4 weekly backups of each database. The service decides where settings come from (`env`) and
/// where PostgreSQL tools are searched (`tools`); the library reads neither on its own.
async fn run(
    db: &str,
    repo_url: &str,
    env: &dyn EnvLookup,
    tools: ToolLocator,
) -> Result<Summary, Box<dyn std::error::Error>> {
    // A backup may start a new repository: create its directory if it is a missing local one
    // (reading commands open without `with_create`, so a mistyped path is an error).
    let create = pgb::StorageOptions::new().with_create(true);
    let repo = pgb::open_repository_with(repo_url, env, &create)?;

    // Progress arrives as events; a service would feed metrics or logs from them.
    let progress = |e: &Event| {
        if let Event::Committed { id } = e {
            println!("committed {id}");
        }
    };
    let dumper = PgDump::new(ConnConfig::parse(db)?, tools.clone());
    let options = BackupOptions::default().with_label("service");
    let manifest = repo.backup(&dumper, &options, &progress).await?;

    // End to end: sizes, checksums, decompression and pg_restore's table of contents.
    // Checking an archive needs no database connection.
    let checker = PgArchiveCheck::new(tools);
    let verified = repo
        .verify(&manifest, Some(&checker), &pgb::NoProgress)
        .await?;

    // Per backup set, never the newest backup of a set, in-progress backups left alone.
    let policy = Policy::default()
        .with_keep_daily(Count::N(7))
        .with_keep_weekly(Count::N(4));
    let prune = repo.prune(&policy, &PruneOptions::default()).await?;
    Ok(Summary {
        backup: manifest.id.clone(),
        stored_bytes: manifest.stored_size(),
        toc_entries: verified.toc_entries,
        prune,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The process environment, read here by the service: never by the library.
    let env = |name: &str| std::env::var(name).ok();
    let mut args = std::env::args().skip(1);
    let (Some(db), Some(repo)) = (
        args.next().or_else(|| env("DATABASE_URL")),
        args.next().or_else(|| env("PGB_REPO")),
    ) else {
        eprintln!("usage: embed_backup postgres://user@host:port/db REPOSITORY_URL");
        std::process::exit(2);
    };
    // pg_dump and pg_restore inherit libpq's variables, the locale, PATH and HOME from here
    // (the library reads no environment itself).
    let tools = ToolLocator::new()
        .with_path(std::env::var_os("PATH"))
        .with_inherited_env(InheritedEnv::new(std::env::vars_os()));
    let summary = run(&db, &repo, &env, tools).await?;
    println!(
        "backup {}: {} bytes stored, {} archive entries verified",
        summary.backup,
        summary.stored_bytes,
        summary.toc_entries.unwrap_or(0)
    );
    for d in summary.prune.removals() {
        println!("pruned {}", d.id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example end to end against the test server: two runs on the same day, so the
    /// second run's prune (7 daily) removes the first backup and keeps its own.
    #[tokio::test]
    async fn the_example_backs_up_verifies_and_prunes() {
        let (Some(url), Some(bin)) = (
            std::env::var("PGB_TEST_PG_URL")
                .ok()
                .filter(|v| !v.is_empty()),
            std::env::var("PGB_TEST_PG_BIN")
                .ok()
                .filter(|v| !v.is_empty()),
        ) else {
            pgb_testkit::require_or_skip::<()>(
                "PostgreSQL (PGB_TEST_PG_URL, PGB_TEST_PG_BIN)",
                "run scripts/test.sh",
            );
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let repo = format!("file://{}", dir.path().join("repo").display());
        let tools = ToolLocator::new().with_bin_dir(&bin);
        let no_env = |_: &str| None;
        let first = run(&url, &repo, &no_env, tools.clone())
            .await
            .expect("first run");
        assert!(
            first.toc_entries.is_some(),
            "pg_restore read the archive: {first:?}"
        );
        assert_eq!(first.prune.removals().count(), 0, "{first:?}");
        let second = run(&url, &repo, &no_env, tools.clone())
            .await
            .expect("second run");
        let third = run(&url, &repo, &no_env, tools).await.expect("third run");
        // A daily rule with budget left also keeps the oldest backup (restic's semantics), so
        // of three backups on one day the middle one goes. Ids start with the UTC date: across
        // midnight every backup is the newest of its day, or the oldest, and all are kept.
        let day = |id: &pgb::BackupId| id.as_str()[..8].to_owned();
        let same_day = day(&first.backup) == day(&third.backup);
        let removed: Vec<_> = third.prune.removals().map(|d| d.id.clone()).collect();
        let listing = pgb::open_repository(&repo, &no_env)
            .unwrap()
            .list()
            .await
            .unwrap();
        let left: Vec<_> = listing.backups.iter().map(|m| m.id.clone()).collect();
        if same_day {
            assert_eq!(
                removed,
                std::slice::from_ref(&second.backup),
                "{:?}",
                third.prune
            );
            assert_eq!(left, [first.backup, third.backup]);
        } else {
            assert_eq!(left.last(), Some(&third.backup));
        }
    }
}
