//! A job's migration keys as the library's types: which heads its backups record
//! ([`migration_probe`], or [`probe`] from framework names and a query as a caller gives
//! them), the head its restores and drills must reach ([`expected_migration`], running
//! `expected_migration_command` when that is how the job names it; [`expectation`] with the
//! caller's own head over the job's), and the heads in notifications ([`notify_heads`],
//! [`notify_drill_heads`]).

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

/// Why framework names and a query make no probe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// A name that is no framework.
    #[error("{0} (or none)")]
    Framework(pgb_core::migration::UnknownFramework),
    /// An empty query.
    #[error("an empty query; it returns one row of one column, the head")]
    EmptyQuery,
}

/// The heads a backup records: every framework unless `frameworks` names some (`none` alone:
/// none; blank names are skipped), plus the head `query` returns.
///
/// # Errors
/// [`ProbeError`]: an unknown framework, an empty query.
pub fn probe<S: AsRef<str>>(
    frameworks: &[S],
    query: Option<&str>,
) -> Result<MigrationProbe, ProbeError> {
    let mut probe = MigrationProbe::new();
    let names: Vec<&str> = frameworks
        .iter()
        .map(|n| n.as_ref().trim())
        .filter(|n| !n.is_empty())
        .collect();
    if !names.is_empty() {
        let chosen = if names == ["none"] {
            Vec::new()
        } else {
            names
                .iter()
                .map(|n| n.parse())
                .collect::<Result<Vec<_>, _>>()
                .map_err(ProbeError::Framework)?
        };
        probe = probe.with_frameworks(chosen);
    }
    if let Some(q) = query {
        if q.trim().is_empty() {
            return Err(ProbeError::EmptyQuery);
        }
        probe = probe.with_query(q.to_owned());
    }
    Ok(probe)
}

/// Why a restore's or drill's migration expectation cannot be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExpectationError {
    /// The job's expected head cannot be known (its command failed, its value is no head).
    #[error("job {job}: {source}")]
    Job {
        /// The job.
        job: String,
        /// Why.
        source: ExpectedError,
    },
    /// A mismatch is allowed, but no head is expected.
    #[error("a migration mismatch can only be allowed against an expected head")]
    NothingExpected,
}

/// What a restore or drill expects: `given` (the caller's head), else the job's
/// ([`expected_migration`], its command run now with `hook_env`); heads are read as the job's
/// backups record them ([`migration_probe`]).
///
/// # Errors
/// [`ExpectationError`].
pub async fn expectation(
    given: Option<MigrationTarget>,
    allow_mismatch: bool,
    job: Option<&ResolvedJob>,
    hook_env: &BTreeMap<String, String>,
) -> Result<pgb_ops::MigrationExpectation, ExpectationError> {
    let target = match (given, job) {
        (Some(t), _) => Some(t),
        (None, Some(j)) => {
            expected_migration(j, hook_env)
                .await
                .map_err(|source| ExpectationError::Job {
                    job: j.name.clone(),
                    source,
                })?
        }
        (None, None) => None,
    };
    if allow_mismatch && target.is_none() {
        return Err(ExpectationError::NothingExpected);
    }
    Ok(pgb_ops::MigrationExpectation::new()
        .with_target(target)
        .with_allow_mismatch(allow_mismatch)
        .with_probe(job.map_or_else(MigrationProbe::new, migration_probe)))
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
    use super::*;
    use pgb_core::MigrationFramework;

    #[test]
    fn framework_names_and_a_query_become_a_probe() {
        let none: [&str; 0] = [];
        let all = probe(&none, None).unwrap();
        assert_eq!(all.frameworks().len(), MigrationFramework::DETECTED.len());
        let two = probe(&["prisma", " Flyway"], Some("select 1")).unwrap();
        assert_eq!(
            two.frameworks(),
            [MigrationFramework::Prisma, MigrationFramework::Flyway]
        );
        assert_eq!(two.query(), Some("select 1"));
        assert!(probe(&["none"], None).unwrap().frameworks().is_empty());
        let e = probe(&["prisma", "flyaway"], None).unwrap_err();
        assert!(
            e.to_string().contains("flyaway") && e.to_string().ends_with("(or none)"),
            "{e}"
        );
        assert_eq!(probe(&none, Some(" ")).unwrap_err(), ProbeError::EmptyQuery);
    }

    #[tokio::test]
    async fn the_callers_head_wins_and_a_mismatch_needs_one() {
        let env = BTreeMap::new();
        let t: MigrationTarget = "prisma:20240501_init".parse().unwrap();
        let e = expectation(Some(t.clone()), true, None, &env)
            .await
            .unwrap();
        assert_eq!(e.target, Some(t));
        assert_eq!(
            expectation(None, true, None, &env).await.unwrap_err(),
            ExpectationError::NothingExpected
        );
        assert!(
            expectation(None, false, None, &env)
                .await
                .unwrap()
                .target
                .is_none()
        );
    }

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
