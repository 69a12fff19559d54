//! The contracts of a backup of a whole server: enumerate and prepare every database plus the
//! globals ([`ClusterDumper`]), and apply globals and restore databases on a target server
//! ([`GlobalsRestorer`], [`ClusterRestorer`]). `pgb-postgres` implements them with psql,
//! pg_dump, pg_dumpall and pg_restore.

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;

use crate::dump::{DumpError, PreparedDump, RestoreReport, Restorer};

/// A server whose databases and globals are backed up together.
///
/// # Contract
///
/// [`ClusterDumper::prepare`] enumerates the databases at call time (new databases are picked
/// up with no configuration change), applies the selection, and prepares the globals dump and
/// every database dump (each passing its own preflight) before anything is written. A
/// selection that matches no database is a `NoMatch` error.
#[async_trait]
pub trait ClusterDumper: fmt::Debug + Send + Sync + 'static {
    /// Enumerates and prepares.
    ///
    /// # Errors
    /// `NoMatch`, and the errors of [`Dumper::prepare`](crate::Dumper::prepare).
    async fn prepare(&self) -> Result<PreparedCluster, DumpError>;
}

/// The dumps of a cluster backup, each past its preflight.
#[derive(Debug)]
#[non_exhaustive]
pub struct PreparedCluster {
    /// `pg_dumpall --globals-only`.
    pub globals: Box<dyn PreparedDump>,
    /// One dump per selected database, sorted by name: (database, dump).
    pub databases: Vec<(String, Box<dyn PreparedDump>)>,
    /// Every connectable non-template database on the server, selected or not.
    pub server_databases: Vec<String>,
    /// The include globs applied.
    pub include: Vec<String>,
    /// The exclude globs applied.
    pub exclude: Vec<String>,
    /// Whether the globals will hold role passwords.
    pub role_passwords: bool,
    /// Each selected database's owner.
    pub owners: std::collections::BTreeMap<String, String>,
}

impl PreparedCluster {
    /// Describes a prepared cluster backup.
    pub fn new(
        globals: Box<dyn PreparedDump>,
        databases: Vec<(String, Box<dyn PreparedDump>)>,
        server_databases: Vec<String>,
    ) -> Self {
        Self {
            globals,
            databases,
            server_databases,
            include: Vec::new(),
            exclude: Vec::new(),
            role_passwords: false,
            owners: std::collections::BTreeMap::new(),
        }
    }

    /// Records the databases' owners.
    pub fn with_owners(mut self, owners: std::collections::BTreeMap<String, String>) -> Self {
        self.owners = owners;
        self
    }

    /// Records the selection globs.
    pub fn with_selection(mut self, include: Vec<String>, exclude: Vec<String>) -> Self {
        self.include = include;
        self.exclude = exclude;
        self
    }

    /// Records whether the globals hold role passwords.
    pub fn with_role_passwords(mut self, yes: bool) -> Self {
        self.role_passwords = yes;
        self
    }
}

/// Whether `name` matches the glob `pattern` (`*` any run of characters, `?` one character,
/// everything else literal).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The databases a selection keeps: those matching any `include` glob (every one when there
/// is none) and no `exclude` glob (exclusion wins). Each glob must match at least one of
/// `databases`, else it is returned as the error (a typo would otherwise silently drop a
/// database from every backup).
///
/// # Errors
/// The first glob that matches no database.
pub fn select_databases(
    databases: &[String],
    include: &[String],
    exclude: &[String],
) -> Result<Vec<String>, String> {
    for g in include.iter().chain(exclude) {
        if !databases.iter().any(|d| glob_match(g, d)) {
            return Err(g.clone());
        }
    }
    Ok(databases
        .iter()
        .filter(|d| include.is_empty() || include.iter().any(|g| glob_match(g, d)))
        .filter(|d| !exclude.iter().any(|g| glob_match(g, d)))
        .cloned()
        .collect())
}

/// Applies a globals script (`pg_dumpall --globals-only`) to a server, idempotently.
///
/// # Contract
///
/// Statements are applied one by one: a `CREATE` of an object that already exists counts as
/// existed (the statements that follow it, such as its `ALTER ROLE`, still apply); the
/// connected role is never dropped or altered; any other error counts as failed, with its message, and
/// the remaining statements are still applied.
#[async_trait]
pub trait GlobalsRestorer: fmt::Debug + Send + Sync {
    /// Applies `sql`.
    ///
    /// # Errors
    /// Connection failures (nothing was applied); statement failures are in the report.
    async fn apply_globals(&self, sql: &str) -> Result<GlobalsReport, DumpError>;
}

/// What applying globals did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct GlobalsReport {
    /// Objects (roles, tablespaces) created.
    pub created: u64,
    /// Objects that already existed (their `CREATE` was skipped).
    pub existed: u64,
    /// Other statements applied (`ALTER ROLE`, `GRANT`, settings).
    pub applied: u64,
    /// Statements skipped on purpose (e.g. dropping the connected role).
    pub skipped: u64,
    /// Statements that failed, each with its error.
    pub failures: Vec<StatementFailure>,
}

impl GlobalsReport {
    /// How many statements failed.
    pub fn failed(&self) -> usize {
        self.failures.len()
    }
}

/// A globals statement that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StatementFailure {
    /// The statement's first line.
    pub statement: String,
    /// The server's error.
    pub error: String,
}

impl StatementFailure {
    /// Describes a failure.
    pub fn new(statement: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            statement: statement.into(),
            error: error.into(),
        }
    }
}

/// A server that a whole cluster backup is restored to.
#[async_trait]
pub trait ClusterRestorer: GlobalsRestorer {
    /// Checks every target database before anything is written: each must be missing or
    /// empty unless `clean`.
    ///
    /// # Errors
    /// `TargetNotEmpty`, connection failures.
    async fn check_targets(&self, databases: &[String], clean: bool) -> Result<(), DumpError>;

    /// The restorer into database `name` on this server.
    fn restorer(&self, name: &str) -> Box<dyn Restorer>;

    /// Makes `owner` the owner of the restored database `name`. The default does nothing.
    ///
    /// # Errors
    /// Connection failures, or the role is missing.
    async fn set_owner(&self, name: &str, owner: &str) -> Result<(), DumpError> {
        let _ = (name, owner);
        Ok(())
    }
}

/// What restoring a whole cluster backup did.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct ClusterRestoreReport {
    /// The globals.
    pub globals: GlobalsReport,
    /// Each database restored, in order.
    pub databases: Vec<RestoreReport>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_match("shop*", "shop"));
        assert!(glob_match("shop*", "shop_eu"));
        assert!(glob_match("*_eu", "shop_eu"));
        assert!(glob_match("s?op", "shop"));
        assert!(glob_match("*a*b*", "xaybz"));
        assert!(!glob_match("shop", "shop_eu"));
        assert!(!glob_match("s?op", "sop"));
        assert!(!glob_match("*_eu", "shop_us"));
    }

    #[test]
    fn exclusion_wins_and_a_glob_matching_nothing_is_an_error() {
        let all = names(&["app", "app_test", "postgres", "shop"]);
        assert_eq!(select_databases(&all, &[], &[]).unwrap(), all);
        assert_eq!(
            select_databases(&all, &names(&["app*"]), &names(&["*_test"])).unwrap(),
            names(&["app"])
        );
        assert_eq!(
            select_databases(&all, &[], &names(&["postgres"])).unwrap(),
            names(&["app", "app_test", "shop"])
        );
        assert_eq!(
            select_databases(&all, &names(&["app", "shpo"]), &[]).unwrap_err(),
            "shpo"
        );
        assert_eq!(
            select_databases(&all, &[], &names(&["nothing*"])).unwrap_err(),
            "nothing*"
        );
    }
}
