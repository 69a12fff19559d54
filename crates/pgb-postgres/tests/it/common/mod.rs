//! Test support shared by pgb-postgres's integration tests: the PostgreSQL servers from the
//! environment, uniquely named databases and roles that are dropped at the end of a test, and
//! psql.
//!
//! Servers come from the environment (`scripts/pg.sh` writes it):
//! `PGB_TEST_PG_URL` / `PGB_TEST_PG_BIN` (PostgreSQL 15) and `PGB_TEST_PG17_URL` /
//! `PGB_TEST_PG17_BIN` (PostgreSQL 17). A missing server skips loudly, or fails under
//! `PGB_TEST_REQUIRE=1`.
//!
//! Each test file declares `pub mod common;`: items of a public module are exported, which keeps
//! the ones a file does not use from tripping the `dead_code` lint.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use pgb_postgres::{ConnConfig, ToolLocator};
use tokio::io::AsyncWriteExt;

// ---------------------------------------------------------------------------------------------
// Servers, databases, roles
// ---------------------------------------------------------------------------------------------

/// One PostgreSQL server and the client tools of its major version.
#[derive(Debug, Clone)]
pub struct Pg {
    /// The server's URL (user postgres, database postgres).
    pub url: String,
    /// The directory of its client tools.
    pub bin: PathBuf,
}

fn server(url_var: &str, bin_var: &str, what: &str) -> Option<Pg> {
    match (std::env::var(url_var), std::env::var(bin_var)) {
        (Ok(url), Ok(bin)) if !url.is_empty() && !bin.is_empty() => Some(Pg {
            url,
            bin: PathBuf::from(bin),
        }),
        _ => pgb_testkit::require_or_skip(
            what,
            &format!(
                "{url_var} / {bin_var} are not set (run scripts/pg.sh start and source its env file)"
            ),
        ),
    }
}

/// The PostgreSQL 15 server, or `None` after a loud skip.
pub fn pg15() -> Option<Pg> {
    server("PGB_TEST_PG_URL", "PGB_TEST_PG_BIN", "PostgreSQL 15")
}

/// The PostgreSQL 17 server, or `None` after a loud skip.
pub fn pg17() -> Option<Pg> {
    server("PGB_TEST_PG17_URL", "PGB_TEST_PG17_BIN", "PostgreSQL 17")
}

/// A random suffix, so that parallel and repeated runs never collide.
pub fn unique(prefix: &str) -> String {
    let mut rnd = [0u8; 5];
    getrandom::fill(&mut rnd).expect("random bytes");
    let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    format!("pgbt_{prefix}_{hex}")
}

impl Pg {
    /// A connection to database `db` on this server.
    pub fn conn(&self, db: &str) -> ConnConfig {
        ConnConfig::parse(&self.url)
            .expect("test URL parses")
            .with_dbname(db)
    }

    /// The libpq URL of database `db` on this server (no password: postgres is trusted).
    pub fn url_of(&self, db: &str) -> String {
        self.conn(db).redacted()
    }

    /// The same server as `user` (pgb_pw or a test role: scram over TCP).
    pub fn conn_as(&self, user: &str, db: &str) -> ConnConfig {
        let url = self.url.replacen("://postgres@", &format!("://{user}@"), 1);
        assert_ne!(
            url, self.url,
            "test URL {} does not name user postgres",
            self.url
        );
        ConnConfig::parse(&url).expect("URL parses").with_dbname(db)
    }

    /// Only this server's major version of pg_dump, pg_restore and psql.
    pub fn locator(&self) -> ToolLocator {
        ToolLocator::new()
            .with_system_dirs(false)
            .with_bin_dir(&self.bin)
    }

    /// Runs `sql` in `db`; its output or psql's error.
    pub async fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        run_psql(&self.bin, &self.url_of(db), sql).await
    }

    /// Runs `sql` in `db`, panicking on failure; its unaligned, trimmed output.
    pub async fn psql(&self, db: &str, sql: &str) -> String {
        match self.try_psql(db, sql).await {
            Ok(out) => out,
            Err(e) => panic!("psql on {db} failed: {e}\nSQL:\n{sql}"),
        }
    }

    /// Whether database `name` exists.
    pub async fn db_exists(&self, name: &str) -> bool {
        self.psql(
            "postgres",
            &format!("select count(*) from pg_database where datname = '{name}';"),
        )
        .await
            == "1"
    }

    /// Creates an empty database, dropped when the guard goes out of scope.
    pub async fn create_db(&self, prefix: &str) -> TempDb {
        let db = self.adopt_db(&unique(prefix));
        self.psql("postgres", &format!("create database \"{}\";", db.name))
            .await;
        db
    }

    /// A guard that drops `name` (if it exists) at the end of the test: for databases a
    /// restore is expected to create.
    pub fn adopt_db(&self, name: &str) -> TempDb {
        TempDb {
            name: name.to_owned(),
            pg: self.clone(),
        }
    }
}

/// Runs SQL (on stdin) through psql; `-A -t -q`, stops at the first error.
pub async fn run_psql(bin: &Path, url: &str, sql: &str) -> Result<String, String> {
    let mut child = tokio::process::Command::new(bin.join("psql"))
        .args(["-X", "-A", "-t", "-q", "-w", "-v", "ON_ERROR_STOP=1"])
        .arg(format!("--dbname={url}"))
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let sql = sql.to_owned();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(sql.as_bytes()).await;
    });
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("psql: {e}"))?;
    let _ = writer.await;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Drops its database (with force) when dropped, also when the test panicked.
#[derive(Debug)]
pub struct TempDb {
    /// The database's name.
    pub name: String,
    /// Its server.
    pub pg: Pg,
}

impl Drop for TempDb {
    fn drop(&mut self) {
        drop_sync(
            &self.pg,
            &format!("drop database if exists \"{}\" with (force);", self.name),
        );
    }
}

/// A login role with a password, dropped when the guard goes out of scope (declare it before
/// the databases it owns, so that they are dropped first).
#[derive(Debug)]
pub struct TempRole {
    /// The role's name.
    pub name: String,
    /// Its server.
    pub pg: Pg,
}

impl TempRole {
    /// Creates a login role `<prefix>_<random>` with `password`.
    pub async fn create(pg: &Pg, prefix: &str, password: &str) -> Self {
        let role = Self {
            name: unique(prefix),
            pg: pg.clone(),
        };
        pg.psql(
            "postgres",
            &format!("create role \"{}\" login password '{password}';", role.name),
        )
        .await;
        role
    }
}

impl Drop for TempRole {
    fn drop(&mut self) {
        drop_sync(&self.pg, &format!("drop role if exists \"{}\";", self.name));
    }
}

/// Runs clean-up `sql` on the server synchronously (from `Drop`), reporting failures.
pub fn drop_sync(pg: &Pg, sql: &str) {
    let res = std::process::Command::new(pg.bin.join("psql"))
        .args(["-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .arg(format!("--dbname={}", pg.url_of("postgres")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output();
    match res {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!(
            "cleanup `{sql}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("cleanup `{sql}` failed: {e}"),
    }
}
