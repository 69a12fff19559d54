//! # pgb-postgres
//!
//! PostgreSQL drivers for pgb, on the real client tools:
//!
//! - [`PgDump`] implements [`pgb_core::Dumper`]: `pg_dump -Fc -Z0` (or `-Fp`), with a tool
//!   chosen by [`ToolLocator`] whose major version is at least the server's. Preparing returns
//!   a [`pgb_core::PreparedDump`] that owns the chosen tool, the source description and each
//!   table's estimated row count.
//! - [`PgDumpAll`] implements [`pgb_core::Dumper`] for the server's globals
//!   (`pg_dumpall --globals-only`: roles, memberships, tablespaces; role passwords only when
//!   asked).
//! - [`PgCluster`] implements [`pgb_core::ClusterDumper`] (every connectable non-template
//!   database, selected by globs, plus the globals) and [`pgb_core::ClusterRestorer`]
//!   (globals applied statement by statement, idempotently; each database restored under its
//!   own name).
//! - [`PgDumpDirectory`]: `pg_dump -Fd -j N -Z0` into a private spool directory, checked to
//!   hold every data file of its table of contents ([`DirectoryDump`]).
//! - [`PgRestore`] implements [`pgb_core::Restorer`]: pg_restore or psql into a target that is
//!   created if missing (and dropped again if the restore fails, is aborted or dropped) and
//!   refused if it has tables (unless `clean`), single-transaction.
//! - [`DataOffsets`]: follows a custom-format archive that pg_dump wrote to a pipe and sets
//!   the data offsets pg_dump could not write, so `pg_restore -j` seeks to each table (the
//!   parallel restore's spool gets them).
//! - [`PgBaseBackup`] implements [`pgb_core::physical::PhysicalDumper`]: `pg_basebackup -D -
//!   -Ft` (the tar on stdout, `backup_manifest` inside), after a preflight of `wal_level`,
//!   `max_wal_senders`, the role's `REPLICATION`, `archive_mode` and tablespaces, and
//!   `IDENTIFY_SYSTEM` for the system identifier.
//! - [`PgArchiveCheck`] implements [`pgb_core::ArchiveChecker`]: `pg_restore --list` on the
//!   archive, no database needed.
//! - [`Toc`]: `pg_restore --list` output parsed into typed entries, the one parser of the
//!   check, a restore's table selection and a drill's table list.
//! - [`sql`]: small SQL helpers over psql (queries, scratch databases, quoting), for callers
//!   such as restore drills; [`SqlClient`] carries psql with them as methods.
//! - [`MigrationProbe`]: which migration heads (Prisma, Alembic, Rails, golang-migrate, Django,
//!   Flyway, Liquibase, Knex, Sequelize, TypeORM, a custom query) a dump's preflight reads and
//!   records ([`pgb_core::DumpSource::migrations`]); [`SqlClient::migration_heads`] reads them
//!   from any database (a restored one, before and after its `post_restore` hook).
//! - [`ConnConfig`]: a `postgres://` URL whose password reaches children only through their
//!   environment, never argv, `Debug` or error text.
//!
//! Every tool runs through one module (spawn, stderr drained into a bounded tail, kill on
//! drop, exit turned into a typed [`pgb_core::DumpError`] naming the program and its
//! [`pgb_core::ToolExit`]). Error messages state the cause; they name no CLI flag.
//!
//! The library never reads the environment itself: the caller passes `PATH`, passwords and
//! the variables its tools may inherit ([`InheritedEnv`], handed to
//! [`ToolLocator::with_inherited_env`], e.g. built from `std::env::vars_os()`). Of those only
//! libpq's own variables (PGHOST, PGPASSFILE, PGSSLMODE, ...; PGPASSWORD only for a tool that
//! connects), the locale, `PATH`, `HOME` and `TMPDIR` are kept, so they apply as they would
//! to pg_dump run by hand, while anything else (notification URLs, passphrases, cloud
//! credentials, `DATABASE_URL`) never reaches a child.

mod archiver;
mod basebackup;
mod check;
mod cluster;
mod conn;
mod database_state;
mod directory;
mod dump;
mod dumpall;
mod incremental;
mod migrations;
mod offsets;
mod options;
mod process;
mod receivewal;
mod restore;
mod selection;
mod server;
pub mod sql;
mod sql_client;
mod toc;
mod tools;

pub use archiver::ArchiverStatus;
pub use basebackup::PgBaseBackup;
pub use check::{PgArchiveCheck, TocCapture};
pub use cluster::PgCluster;
pub use conn::{ConnConfig, InvalidUrl};
pub use directory::{DirectoryDump, PgDumpDirectory, PreparedDirectoryDump, SpoolFile};
pub use dump::PgDump;
pub use dumpall::PgDumpAll;
pub use incremental::PgCombineBackup;
pub use migrations::{MigrationProbe, MigrationScan};
pub use offsets::{DataOffsets, OffsetPatches};
pub use options::DumpOptions;
pub use pgb_core::cleanup::{pending_cleanups, settle_cleanups, spawn_cleanup};
pub use process::InheritedEnv;
pub use receivewal::{StreamError, StreamOptions, StreamPreflight, StreamReport, WalStreamSource};
pub use restore::PgRestore;
pub use server::{ScratchServer, ScratchServerOptions};
pub use sql_client::{SqlClient, check_database_name};
pub use toc::{Toc, TocEntry};
pub use tools::{Tool, ToolLocator};
