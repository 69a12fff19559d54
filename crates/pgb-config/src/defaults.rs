//! The built-in defaults, the bottom layer of defaults < file < environment < flags, in one
//! place: [`crate::builtin_defaults`] takes the job keys' values from here, and a command run
//! from flags alone (no config file) falls back to the same constants.

/// The repository when no flag, job or `PGB_REPO` names one (a directory in the working
/// directory).
pub const REPO: &str = "pgb-backups";
/// The database when no flag, job or `DATABASE_URL` names one: libpq's `PG*` variables.
pub const DB: &str = "postgres://";
/// Compression of new backups (the key `compression`).
pub const COMPRESSION: &str = "zstd:3";
/// Parallel restore jobs.
pub const JOBS: u32 = 1;
/// The grace period of `gc`: leftovers younger than this are kept.
pub const GC_OLDER_THAN: &str = "24h";
/// How many runs a schedule's explanation lists.
pub const SCHEDULE_COUNT: usize = 10;
/// The temporary directory when `TMPDIR` is not set.
pub const TMPDIR: &str = "/tmp";
