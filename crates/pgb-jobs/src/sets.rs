//! Which backups a job's are: the retention set its manifests name, known before a run when
//! its database URL names the server, and the object-store limits its repository is opened
//! with.

use pgb::postgres::ConnConfig;
use pgb::{EnvLookup, StorageOptions};
use pgb_config::{ResolvedJob, StorageNetwork};

use crate::plan::PlanError;

fn var(env: &dyn EnvLookup, name: &str) -> Option<String> {
    env.get(name).filter(|v| !v.is_empty())
}

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
    job.database
        .clone()
        .or_else(|| var(env, "DATABASE_URL"))
        .unwrap_or_else(|| "postgres://".to_owned())
}

/// The set a backup of `job` gets (`host:port/database`, `host:port/*` for a whole server),
/// known before it runs when the database URL names its host; `None` for a physical backup
/// (its set is the server's system identifier, known once connected).
pub fn job_intended_set(job: &ResolvedJob, env: &dyn EnvLookup) -> Option<String> {
    if job.format == "physical" {
        return None;
    }
    let conn = ConnConfig::parse(&database_url(job, env)).ok()?;
    if !conn.has_host() {
        return None;
    }
    let db = match &job.whole_server {
        Some(_) => pgb::CLUSTER_DATABASE.to_owned(),
        None => conn.dbname()?.to_owned(),
    };
    Some(format!("{}/{db}", conn.server()))
}

/// The retention set the job's backups belong to, as their manifests name it
/// ([`pgb::Manifest::retention_set`]): the server of its database URL, its database (`*` for a
/// whole server) and its selection.
///
/// # Errors
/// [`PlanError::Invalid`] when the URL names no host (the set's server is then what the server
/// reports, known only once connected, and guessing could prune another job's backups), no
/// database, or pg_dump options pgb sets itself.
pub fn job_retention_set(job: &ResolvedJob, env: &dyn EnvLookup) -> Result<String, PlanError> {
    let invalid = |key: &str, message: &str| PlanError::Invalid {
        job: job.name.clone(),
        key: key.to_owned(),
        message: message.to_owned(),
    };
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
            pgb::CLUSTER_DATABASE.to_owned(),
            w.include.clone(),
            w.exclude.clone(),
        ),
        None => {
            let db = crate::job_database(job, env)
                .ok_or_else(|| invalid("database", "the URL names no database; name it"))?;
            (db, Vec::new(), Vec::new())
        }
    };
    Ok(pgb::retention_set(
        &format!("{}/{database}", conn.server()),
        &include,
        &exclude,
        options.args(),
    ))
}
