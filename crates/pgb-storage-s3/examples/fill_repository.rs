//! Fills an S3 repository with many small backups through the library, for
//! `scripts/bench-list.sh` (timing `pgb list` of 100 to 10,000 backups).
//!
//! Usage: `fill_repository ENDPOINT BUCKET PREFIX COUNT [CONCURRENCY]`, with the key pair in
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` and the region in `AWS_REGION` (default
//! `us-east-1`). Each backup is a committed `Repository::backup` of a 1 KiB fake dump
//! (`pgb_testkit::FakeDumper`), so the repository holds what `pgb backup` writes: a data
//! object, its sidecar and a manifest per backup.

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use pgb_core::{BackupOptions, NoProgress, Repository, Storage};
use pgb_storage_s3::{S3Config, S3Credentials};
use pgb_testkit::{FakeDumper, FakeOutcome};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, bucket, prefix, count, rest @ ..] = args.as_slice() else {
        return Err("usage: fill_repository ENDPOINT BUCKET PREFIX COUNT [CONCURRENCY]".into());
    };
    let count: usize = count.parse()?;
    let concurrency: usize = rest.first().map_or(Ok(32), |c| c.parse())?;
    let key_id = std::env::var("AWS_ACCESS_KEY_ID")?;
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY")?;
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned());
    let storage: Arc<dyn Storage> = Arc::new(
        S3Config::new(bucket.clone())
            .with_prefix(prefix.clone())
            .with_endpoint(endpoint.clone())
            .with_region(region)
            .with_credentials(S3Credentials::static_keys(key_id, secret))
            .build()?,
    );
    let repo = Repository::new(storage);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let done = runtime.block_on(async {
        let dumper = FakeDumper::new(1024, FakeOutcome::Succeed);
        let options = BackupOptions::default();
        let mut backups = futures_util::stream::iter(0..count)
            .map(|_| repo.backup(&dumper, &options, &NoProgress))
            .buffer_unordered(concurrency);
        let mut done = 0usize;
        while let Some(r) = backups.next().await {
            r?;
            done += 1;
        }
        Ok::<_, pgb_core::Error>(done)
    })?;
    println!(
        "{done} backups written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
