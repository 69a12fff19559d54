//! An embedding service running one job of a pgb config file through the library, exactly as
//! `pgb run JOB` does: lock, hooks, backup, verify, prune of the job's own backups,
//! notifications. The environment is the caller's (object-store credentials, the job's key
//! variables, `PGB_PG_BIN_DIR`); the library reads none of it on its own.
//!
//! ```sh
//! cargo run -p pgb-jobs --example run_configured_job -- pgb.toml nightly
//! ```
//!
//! `cargo test -p pgb-jobs --example run_configured_job` (and the workspace test run) runs it
//! against the test server of `scripts/test.sh` (`PGB_TEST_PG_URL`, `PGB_TEST_PG_BIN`).

use std::error::Error;
use std::path::{Path, PathBuf};

/// The whole embedding: plan the configured job, run it.
async fn run_configured(
    text: &str,
    path: &Path,
    job: &str,
    env: &dyn pgb_open::EnvLookup,
) -> Result<pgb_jobs::RunReport, Box<dyn Error>> {
    let plan = pgb_jobs::JobPlan::from_config(text, path, job, env)?;
    Ok(plan
        .run(&pgb_core::NoProgress, std::future::pending())
        .await?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(job)) = (args.next().map(PathBuf::from), args.next()) else {
        eprintln!("usage: run_configured_job CONFIG_FILE JOB");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(&path)?;
    let env = |name: &str| std::env::var(name).ok();
    let report = run_configured(&text, &path, &job, &env).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three runs of a job keeping 2, verifying each backup: the library plans the job from the
    /// file (database, repository, retention) and the third run prunes the first backup.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_configured_job_runs_through_the_library() {
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
        let repo = dir.path().join("repo");
        let path = dir.path().join("pgb.toml");
        let text = format!(
            "[jobs.nightly]\ndatabase = \"{url}\"\nrepository = \"{}\"\nkeep_last = 2\nverify_after_backup = true\n",
            repo.display()
        );
        let env = move |name: &str| (name == "PGB_PG_BIN_DIR").then(|| bin.clone());
        let mut ids = Vec::new();
        for _ in 0..3 {
            let report = run_configured(&text, &path, "nightly", &env)
                .await
                .expect("run");
            assert!(report.verify.is_some(), "verified: {report:?}");
            ids.push(report.backup.expect("a backup").id);
            let prune = report.prune.expect("pruned");
            assert_eq!(prune.sets.len(), 1, "only the job's own set");
        }
        let repository =
            pgb_open::open_repository(repo.to_str().unwrap(), &|_: &str| None).unwrap();
        let left: Vec<_> = repository
            .list()
            .await
            .unwrap()
            .backups
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(left, ids[1..], "keep_last = 2 from the config file");
    }
}
