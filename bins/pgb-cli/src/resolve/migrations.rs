//! Migration heads: which ones a backup records (`--migrations`, `--migrations-query`, the
//! job's keys), and what a restore or drill expects (`--expect-migration`, else the job's
//! `expected_migration` or the output of its `expected_migration_command`).

use pgb::postgres::MigrationProbe;
use pgb::{MigrationFramework, MigrationTarget};
use pgb_config::ResolvedJob;
use pgb_ops::MigrationExpectation;

use super::Env;
use crate::args::{MigrationBackupArgs, MigrationExpectArgs, MigrationListArgs};
use crate::exit::{Failure, MIGRATION};

/// The heads a backup records: every framework unless `--migrations` names some (`none`:
/// none), plus `--migrations-query`.
pub(crate) fn probe(a: &MigrationBackupArgs) -> Result<MigrationProbe, Failure> {
    let mut probe = MigrationProbe::new();
    let names: Vec<&str> = a
        .migrations
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    if !names.is_empty() {
        let frameworks = if names == ["none"] {
            Vec::new()
        } else {
            names
                .iter()
                .map(|n| n.parse::<MigrationFramework>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Failure::usage(format!("--migrations: {e} (or none)")))?
        };
        probe = probe.with_frameworks(frameworks);
    }
    if let Some(q) = &a.migrations_query {
        if q.trim().is_empty() {
            return Err(Failure::usage(
                "--migrations-query: an empty query; it returns one row of one column, the head",
            ));
        }
        probe = probe.with_query(q.clone());
    }
    Ok(probe)
}

/// `--migration NAME` of `list`.
pub(crate) fn list_target(a: &MigrationListArgs) -> Result<Option<MigrationTarget>, Failure> {
    a.migration
        .as_deref()
        .map(|m| {
            m.parse()
                .map_err(|e| Failure::usage(format!("--migration: {e}")))
        })
        .transpose()
}

/// What a restore or drill expects: `--expect-migration`, else the job's `expected_migration`,
/// else the head its `expected_migration_command` prints (run now); heads are read as the
/// job's backups record them.
pub(crate) async fn expectation(
    a: &MigrationExpectArgs,
    job: Option<&ResolvedJob>,
    env: Env<'_>,
) -> Result<MigrationExpectation, Failure> {
    let target = match (&a.expect_migration, job) {
        (Some(e), _) => Some(
            e.parse::<MigrationTarget>()
                .map_err(|err| Failure::usage(format!("--expect-migration: {err}")))?,
        ),
        (None, Some(j)) => pgb_jobs::expected_migration(j, &super::config::hook_env(env))
            .await
            .map_err(|e| {
                Failure::new(
                    MIGRATION,
                    format!("job {}: {e}; nothing was restored", j.name),
                )
            })?,
        (None, None) => None,
    };
    if a.allow_migration_mismatch && target.is_none() {
        return Err(Failure::usage(
            "--allow-migration-mismatch goes with --expect-migration (or a job's expected_migration)",
        ));
    }
    Ok(MigrationExpectation::new()
        .with_target(target)
        .with_allow_mismatch(a.allow_migration_mismatch)
        .with_probe(job.map_or_else(MigrationProbe::new, pgb_jobs::migration_probe)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup_args(frameworks: &[&str], query: Option<&str>) -> MigrationBackupArgs {
        MigrationBackupArgs {
            migrations: frameworks.iter().map(|s| (*s).to_owned()).collect(),
            migrations_query: query.map(str::to_owned),
        }
    }

    #[test]
    fn the_backup_flags_become_a_probe() {
        let all = probe(&backup_args(&[], None)).unwrap();
        assert_eq!(all.frameworks().len(), MigrationFramework::DETECTED.len());
        let two = probe(&backup_args(&["prisma", "Flyway"], Some("select 1"))).unwrap();
        assert_eq!(
            two.frameworks(),
            [MigrationFramework::Prisma, MigrationFramework::Flyway]
        );
        assert_eq!(two.query(), Some("select 1"));
        assert!(
            probe(&backup_args(&["none"], None))
                .unwrap()
                .frameworks()
                .is_empty()
        );
        let e = probe(&backup_args(&["prisma", "flyaway"], None)).unwrap_err();
        assert_eq!(e.code, 2);
        assert!(
            e.message.contains("--migrations") && e.message.contains("flyaway"),
            "{}",
            e.message
        );
        assert_eq!(probe(&backup_args(&[], Some(" "))).unwrap_err().code, 2);
    }

    #[test]
    fn a_list_target_names_a_head() {
        let a = MigrationListArgs {
            migration: Some("prisma:20240501_init".to_owned()),
        };
        let t = list_target(&a).unwrap().unwrap();
        assert_eq!(t.framework, Some(MigrationFramework::Prisma));
        let bad = MigrationListArgs {
            migration: Some("flyway:".to_owned()),
        };
        assert_eq!(list_target(&bad).unwrap_err().code, 2);
    }
}
