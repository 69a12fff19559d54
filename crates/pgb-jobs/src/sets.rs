//! Which backups a job's are: the retention set its manifests name, known before a run when
//! its database URL names the server, and the object-store limits its repository is opened
//! with.

use pgb_config::{ResolvedJob, StorageNetwork};
use pgb_open::{EnvLookup, StorageOptions};
use pgb_postgres::ConnConfig;

use crate::plan::PlanError;

/// The object-store retries and time limits a job sets, typed (unset: the storage's own
/// defaults, or `PGB_STORAGE_*` already layered into the job).
pub fn storage_options(s: &StorageNetwork) -> StorageOptions {
    let mut o = StorageOptions::new();
    if let Some(n) = s.retries {
        o = o.with_retries(n);
    }
    if let Some(d) = s.retry_budget {
        o = o.with_retry_budget(d);
    }
    if let Some(d) = s.request_timeout {
        o = o.with_request_timeout(d);
    }
    if let Some(d) = s.io_timeout {
        o = o.with_io_timeout(d);
    }
    o
}

/// The job's database URL: its `database`, else `DATABASE_URL`, else libpq's `PG*` variables.
fn database_url(job: &ResolvedJob, env: &dyn EnvLookup) -> String {
    crate::database_url(job.database.as_deref(), env)
}

/// The set a backup of `job` gets ([`intended_set`] of its database URL); `None` for a
/// physical backup (its set is the server's system identifier, known once connected).
pub fn job_intended_set(job: &ResolvedJob, env: &dyn EnvLookup) -> Option<String> {
    if job.format == "physical" {
        return None;
    }
    intended_set(job.database.as_deref(), job.whole_server.is_some(), env)
}

/// The set a logical backup of `database` ([`crate::database_url`]'s rule: else
/// `DATABASE_URL`, else libpq's `PG*` variables) gets: `host:port/database`, `host:port/*`
/// for a `whole_server`; known before it runs only when the URL names its host.
pub fn intended_set(
    database: Option<&str>,
    whole_server: bool,
    env: &dyn EnvLookup,
) -> Option<String> {
    let conn = ConnConfig::parse(&crate::database_url(database, env)).ok()?;
    if !conn.has_host() {
        return None;
    }
    let db = match whole_server {
        true => pgb_core::CLUSTER_DATABASE,
        false => conn.dbname()?,
    };
    Some(format!("{}/{db}", conn.server()))
}

/// The retention set the job's backups belong to, as their manifests name it
/// ([`pgb_core::Manifest::retention_set`]): the server of its database URL, its database (`*` for a
/// whole server) and its selection.
///
/// # Errors
/// [`PlanError::Invalid`] when the URL names no host (the set's server is then what the server
/// reports, known only once connected, and guessing could prune another job's backups), no
/// database, or pg_dump options pgb sets itself; and for a physical job, whose set is its
/// cluster's system identifier (known once connected, or from `pgb list`): a set guessed from
/// its URL would match none of its backups, so a prune of it would silently keep everything.
pub fn job_retention_set(job: &ResolvedJob, env: &dyn EnvLookup) -> Result<String, PlanError> {
    let invalid = |key: &str, message: &str| PlanError::Invalid {
        job: job.name.clone(),
        key: key.to_owned(),
        message: message.to_owned(),
    };
    if job.format == "physical" {
        return Err(invalid(
            "format",
            "a physical job's backups form one set per cluster, named by its system identifier, not by its URL",
        ));
    }
    let conn = ConnConfig::parse(&database_url(job, env))
        .map_err(|e| invalid("database", &e.to_string()))?;
    if !conn.has_host() {
        return Err(invalid(
            "database",
            "the URL names no host, so the job's backup set is only known once connected; name the host in the URL",
        ));
    }
    let options = crate::dump_options(job).map_err(|m| invalid("pg_dump_options", &m))?;
    let (database, include, exclude) = match &job.whole_server {
        Some(w) => (
            pgb_core::CLUSTER_DATABASE.to_owned(),
            w.include.clone(),
            w.exclude.clone(),
        ),
        None => {
            let db = crate::job_database(job, env)
                .ok_or_else(|| invalid("database", "the URL names no database; name it"))?;
            (db, Vec::new(), Vec::new())
        }
    };
    Ok(pgb_core::retention_set(
        &format!("{}/{database}", conn.server()),
        &include,
        &exclude,
        options.args(),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    fn job(keys: &str) -> ResolvedJob {
        let text = format!("[jobs.shop]\nrepository = \"/r\"\n{keys}");
        let cfg = pgb_config::LoadedConfig::parse(&text, Path::new("pgb.toml")).unwrap();
        let none: HashMap<String, String> = HashMap::new();
        crate::resolve_job(&cfg, "shop", &none, &pgb_config::JobSettings::default()).unwrap()
    }

    #[test]
    fn a_jobs_sets_come_from_its_database_url() {
        let env: HashMap<String, String> = HashMap::new();
        let one = job("database = \"postgres://app@db:5433/shop\"\n");
        assert_eq!(
            job_intended_set(&one, &env).as_deref(),
            Some("db:5433/shop")
        );
        assert!(
            job_retention_set(&one, &env)
                .unwrap()
                .starts_with("db:5433/shop"),
            "the set of its manifests"
        );
        assert_eq!(
            intended_set(Some("postgres://app@db:5433/shop"), true, &env).as_deref(),
            Some("db:5433/*")
        );
        let from_env: HashMap<String, String> =
            [("DATABASE_URL".into(), "postgres://db/x".into())].into();
        assert_eq!(
            intended_set(None, false, &from_env).as_deref(),
            Some("db/x")
        );
        assert_eq!(
            intended_set(Some("postgres:///x"), false, &env),
            None,
            "no host"
        );
        let server = job("database = \"postgres://app@db/postgres\"\nall_databases = true\n");
        assert_eq!(job_intended_set(&server, &env).as_deref(), Some("db/*"));
        let physical = job("database = \"postgres://app@db/postgres\"\nformat = \"physical\"\n");
        assert_eq!(job_intended_set(&physical, &env), None, "its system id");
        // Never a set guessed from the URL, which none of its backups carries.
        let e = job_retention_set(&physical, &env).unwrap_err().to_string();
        assert!(e.contains("system identifier"), "{e}");
        // No host: the set is only known once connected, so no set is guessed.
        let local = job("database = \"postgres:///shop\"\n");
        assert_eq!(job_intended_set(&local, &env), None);
        let e = job_retention_set(&local, &env).unwrap_err().to_string();
        assert!(e.contains("names no host"), "{e}");
    }

    #[test]
    fn a_jobs_storage_limits_become_storage_options() {
        let j = job("storage_retries = 2\nstorage_timeout_secs = 30\n");
        let o = storage_options(&j.storage);
        assert_eq!(o.retries, Some(2));
        assert_eq!(o.request_timeout, Some(std::time::Duration::from_secs(30)));
        assert_eq!(o.retry_budget, None, "the storage's default");
    }
}
