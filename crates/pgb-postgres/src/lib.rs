//! # pgb-postgres
//!
//! PostgreSQL drivers for pgb, on the real client tools:
//!
//! - [`PgDump`] implements [`pgb_core::Dumper`]: `pg_dump -Fc -Z0` (or `-Fp`), with a tool
//!   chosen by [`ToolLocator`] whose major version is at least the server's.
//! - [`PgRestore`] implements [`pgb_core::Restorer`]: pg_restore or psql into a target that is
//!   created if missing and refused if it has tables (unless `clean`), single-transaction, and
//!   `pg_restore --list` to check archives.
//! - [`SqlClient`]: run SQL, create and drop databases through psql (for restore drills).
//! - [`ConnConfig`]: a `postgres://` URL whose password reaches children only through their
//!   environment, never argv, `Debug` or error text.
//!
//! The library never reads the environment itself: the caller passes `PATH` and passwords.
//! Child processes inherit the caller's environment, so libpq's own `PG*` variables (PGHOST,
//! PGPASSFILE, PGSSLMODE, ...) apply as they would to pg_dump run by hand.

mod conn;
mod dump;
mod psql;
mod restore;
mod sql;
mod tools;

pub use conn::{ConnConfig, InvalidUrl};
pub use dump::PgDump;
pub use restore::PgRestore;
pub use sql::{SqlClient, check_database_name};
pub use tools::{Tool, ToolLocator};
