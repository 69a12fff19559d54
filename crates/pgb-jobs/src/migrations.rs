//! A job's migration keys as the library's types: which heads its backups record
//! ([`migration_probe`]), the head its restores and drills must reach ([`expected_migration`],
//! running `expected_migration_command` when that is how the job names it), and the heads in
//! notifications ([`notify_heads`], [`notify_drill_heads`]).

use std::collections::BTreeMap;

use crate::hooks::{HookEvent, HookRun, Stream, run_hook};
use pgb_config::ResolvedJob;
use pgb_core::{Manifest, MigrationHead, MigrationTarget};
use pgb_notify::Notification;
use pgb_postgres::MigrationProbe;

/// The heads the job's backups record: its `migrations` frameworks (every one when unset)
/// and its `migrations_query`.
pub fn migration_probe(job: &ResolvedJob) -> MigrationProbe {
    let m = &job.migrations;
    let mut probe = MigrationProbe::new();
    if let Some(names) = &m.frameworks {
        // The config validated every name.
        probe = probe.with_frameworks(names.iter().filter_map(|n| n.parse().ok()).collect());
    }
    if let Some(q) = &m.query {
        probe = probe.with_query(q.clone());
    }
    probe
}

/// Why the expected head could not be known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExpectedError {
    /// The value names no head.
    #[error("{source_name}: {message}")]
    Invalid {
        /// Where it came from (`expected_migration`, `--expect-migration`, the command).
        source_name: String,
        /// Why.
        message: String,
    },
    /// `expected_migration_command` failed or printed nothing.
    #[error("expected_migration_command: {0}")]
    Command(String),
}

/// The head the job's restores and drills must reach: `expected_migration`, else the first
/// line `expected_migration_command` prints (run now, with the hook environment `hook_env`,
/// killed after the job's hook timeout). `Ok(None)`: the job names none.
///
/// # Errors
/// [`ExpectedError`]: the value names no head, the command failed or printed nothing.
pub async fn expected_migration(
    job: &ResolvedJob,
    hook_env: &BTreeMap<String, String>,
) -> Result<Option<MigrationTarget>, ExpectedError> {
    let m = &job.migrations;
    if let Some(e) = &m.expected {
        return parse_target("expected_migration", e).map(Some);
    }
    let Some(cmd) = &m.expected_command else {
        return Ok(None);
    };
    let r = run_hook(&HookRun {
        program: cmd.program.clone(),
        argv: cmd.argv.clone(),
        env: hook_env.clone(),
        job: job.name.clone(),
        event: HookEvent::ExpectedMigration,
        backup_id: None,
        status: None,
        database_url: None,
        password: None,
        timeout: job.hooks.timeout,
        cwd: None,
    })
    .await;
    crate::log_hook(&job.name, &r);
    let last_err = r
        .output
        .iter()
        .rev()
        .find(|l| l.stream == Stream::Stderr && !l.line.trim().is_empty())
        .map(|l| format!(": {}", l.line.trim()))
        .unwrap_or_default();
    if !r.ok() {
        return Err(ExpectedError::Command(format!("{}{last_err}", r.summary())));
    }
    let printed = r
        .output
        .iter()
        .find(|l| l.stream == Stream::Stdout && !l.line.trim().is_empty())
        .map(|l| l.line.trim().to_owned())
        .ok_or_else(|| {
            ExpectedError::Command(format!("{:?} printed no migration head", cmd.argv))
        })?;
    parse_target("expected_migration_command", &printed).map(Some)
}

/// `[framework:]head` from `source_name`.
///
/// # Errors
/// [`ExpectedError::Invalid`].
pub fn parse_target(source_name: &str, text: &str) -> Result<MigrationTarget, ExpectedError> {
    text.parse().map_err(
        |e: pgb_core::migration::EmptyTarget| ExpectedError::Invalid {
            source_name: source_name.to_owned(),
            message: format!("{text:?}: {e}"),
        },
    )
}

/// Heads as one value: `prisma:20240501_init, flyway:3`.
pub fn labels(heads: &[MigrationHead]) -> String {
    heads
        .iter()
        .map(MigrationHead::label)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds each database's heads that backup `m` recorded to `n` (by database name).
pub fn notify_heads(n: Notification, m: &Manifest) -> Notification {
    m.migrations.iter().fold(n, |n, (db, heads)| {
        n.with_migration(db.clone(), labels(heads))
    })
}

/// Adds a drill's heads (`expected`, `before` and `after` its `post_restore` hook) to `n`.
pub fn notify_drill_heads(n: Notification, r: &pgb_ops::MigrationReport) -> Notification {
    let mut n = n;
    if let Some(e) = &r.expected {
        n = n.with_migration("expected", e.clone());
    }
    if !r.before.is_empty() {
        n = n.with_migration("before", labels(&r.before));
    }
    if let Some(after) = r.after.as_deref().filter(|a| !a.is_empty()) {
        n = n.with_migration("after", labels(after));
    }
    n
}

/// The framework names the config accepts are the library's.
#[cfg(test)]
mod tests {
    #[test]
    fn the_config_knows_every_framework_the_library_detects() {
        let lib: Vec<&str> = pgb_core::MigrationFramework::DETECTED
            .iter()
            .map(|f| f.as_str())
            .collect();
        assert_eq!(lib, pgb_config::MIGRATION_FRAMEWORKS);
        for name in pgb_config::MIGRATION_FRAMEWORKS {
            assert!(
                name.parse::<pgb_core::MigrationFramework>().is_ok(),
                "{name}"
            );
        }
    }
}
