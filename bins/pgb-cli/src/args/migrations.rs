//! The migration-head options of `backup`, `list`, `restore` and `drill`.

use clap::Args;

/// `backup`: which migration heads the manifest records.
#[derive(Debug, Args, Default)]
pub(crate) struct MigrationBackupArgs {
    /// Record the migration heads of only these frameworks (comma-separated: prisma, alembic,
    /// rails, golang-migrate, django, flyway, liquibase, knex, sequelize, typeorm; `none`:
    /// record none) [default: every one whose table the database has].
    #[arg(long, value_name = "FRAMEWORKS", value_delimiter = ',')]
    pub(crate) migrations: Vec<String>,
    /// Also record the head this query returns (one row, one text column), as framework
    /// `custom`; a query that fails or returns anything else is a warning, never a failed
    /// backup.
    #[arg(long, value_name = "SQL")]
    pub(crate) migrations_query: Option<String>,
}

/// `list`: backups at or before a migration.
#[derive(Debug, Args, Default)]
pub(crate) struct MigrationListArgs {
    /// Only backups taken at or before this migration ([FRAMEWORK:]HEAD, e.g.
    /// prisma:20240501120000_orders): their head is it or an earlier one (by the framework's
    /// order; for Alembic and Liquibase, taken before the first backup that recorded it).
    #[arg(long, value_name = "[FRAMEWORK:]HEAD")]
    pub(crate) migration: Option<String>,
}

/// `restore` and `drill`: the head the restored database must reach.
#[derive(Debug, Args, Default)]
pub(crate) struct MigrationExpectArgs {
    /// After the post_restore hook the database must be at this migration head or past it,
    /// not dirty, without a failed migration row (exit 12 otherwise); a backup newer than it
    /// (or older, without a post_restore hook) is refused before anything is written
    /// [default: the job's expected_migration or expected_migration_command].
    #[arg(long, value_name = "[FRAMEWORK:]HEAD")]
    pub(crate) expect_migration: Option<String>,
    /// Restore a backup whose migration head does not fit --expect-migration anyway.
    #[arg(long)]
    pub(crate) allow_migration_mismatch: bool,
}
