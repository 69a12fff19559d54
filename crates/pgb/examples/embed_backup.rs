//! A service that takes a backup, verifies it and applies a retention policy.
//!
//! ```sh
//! cargo run -p pgb --example embed_backup -- postgres://postgres@127.0.0.1:5432/shop /tmp/repo
//! ```
//!
//! The password, if any, comes from PGPASSWORD (inherited by pg_dump), never the URL on argv.

use std::sync::Arc;

use pgb::postgres::{ConnConfig, PgDump, PgRestore, ToolLocator};
use pgb::retention::{Count, Policy, RetentionPolicy};
use pgb::{BackupOptions, Event, Repository};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(db), Some(dir)) = (args.next(), args.next()) else {
        eprintln!("usage: embed_backup postgres://user@host:port/db /path/to/repository");
        std::process::exit(2);
    };
    // The service, not the library, decides where tools are searched.
    let tools = ToolLocator::new().with_path(std::env::var_os("PATH"));
    let repo = Repository::new(Arc::new(pgb::local::FsStorage::open(&dir)?));

    // Progress arrives as events; a service would feed metrics or logs from them.
    let progress = |e: &Event| {
        if let Event::Committed { id } = e {
            println!("committed {id}");
        }
    };
    let dumper = PgDump::new(ConnConfig::parse(&db)?, tools.clone());
    let manifest = repo
        .backup(
            &dumper,
            &BackupOptions::default().with_label("service"),
            &progress,
        )
        .await?;
    println!(
        "{} bytes stored, sha256 {}",
        manifest.stored_size(),
        manifest.dump().map_or("", |a| a.stored_sha256.as_str())
    );

    // Verify it end to end, including pg_restore's table-of-contents check.
    let checker = PgRestore::new(
        ConnConfig::parse("postgres:///")?,
        tools,
        std::env::temp_dir(),
    );
    let report = repo
        .verify(&manifest, Some(&checker), &pgb::NoProgress)
        .await?;
    println!(
        "verified: {} archive entries",
        report.toc_entries.unwrap_or(0)
    );

    // Keep 7 daily and 4 weekly backups of this database.
    let listing = repo.list().await?;
    let backups: Vec<_> = listing
        .backups
        .iter()
        .filter(|m| m.set == manifest.set)
        .map(|m| pgb::retention::Backup::new(m.id.as_str(), m.started_at))
        .collect();
    let policy = Policy::default()
        .with_keep_daily(Count::N(7))
        .with_keep_weekly(Count::N(4));
    let plan = policy.plan(&backups, time::OffsetDateTime::now_utc())?;
    for id in &plan.remove {
        repo.delete_backup(&id.parse()?).await?;
        println!("pruned {id}");
    }
    Ok(())
}
