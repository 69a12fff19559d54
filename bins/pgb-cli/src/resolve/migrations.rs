//! Migration flags → the library's probe and expectation ([`pgb_jobs::probe_migrations`],
//! [`pgb_jobs::migration_expectation`]); their errors are named by flag in `exit.rs`.

use pgb::MigrationTarget;
use pgb_config::ResolvedJob;
use pgb_ops::MigrationExpectation;

use super::Env;
use crate::args::{MigrationExpectArgs, MigrationListArgs};
use crate::exit::Failure;

/// `[FRAMEWORK:]HEAD` of `flag`.
fn target(flag: &str, text: Option<&str>) -> Result<Option<MigrationTarget>, Failure> {
    text.map(|m| {
        m.parse()
            .map_err(|e| Failure::usage(format!("{flag}: {e}")))
    })
    .transpose()
}

/// `--migration NAME` of `list`.
pub(crate) fn list_target(a: &MigrationListArgs) -> Result<Option<MigrationTarget>, Failure> {
    target("--migration", a.migration.as_deref())
}

/// What a restore or drill expects: `--expect-migration`, else the job's.
pub(crate) async fn expectation(
    a: &MigrationExpectArgs,
    job: Option<&ResolvedJob>,
    env: Env<'_>,
) -> Result<MigrationExpectation, Failure> {
    let given = target("--expect-migration", a.expect_migration.as_deref())?;
    let hook_env = super::config::hook_env(env);
    Ok(pgb_jobs::migration_expectation(given, a.allow_migration_mismatch, job, &hook_env).await?)
}
