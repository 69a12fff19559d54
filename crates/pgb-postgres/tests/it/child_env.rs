//! A PostgreSQL tool the library runs keeps only libpq's variables, the locale, `PATH` and
//! `HOME` of its caller's environment, plus the password the connection hands it, on both the
//! async path (`SqlClient::query`) and the blocking one (`sql::drop_database_blocking`, a
//! restore's clean-up when dropped).
//!
//! The caller's environment must hold the secrets, and tests may not change their own
//! environment (no unsafe code), so the test runs itself again in a child process whose
//! environment holds them.

use crate::common;

use std::path::Path;

/// Set in the re-run child: do the work there.
const INNER: &str = "PGB_TEST_CHILD_ENV_INNER";
/// Where the recording psql writes its environment (in the child).
const RECORD_DIR: &str = "PGB_TEST_CHILD_ENV_DIR";

/// A psql in `dir/bin` that appends its environment (`env -0`, then a `---` record) to
/// `dir/env` and runs the real one.
fn recording_psql(real_bin: &Path, dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let psql = bin.join("psql");
    std::fs::write(
        &psql,
        format!(
            "#!/bin/sh\nif [ \"$1\" != --version ]; then env -0 >> '{}'; printf -- '---\\0' >> '{}'; fi\nexec '{}/psql' \"$@\"\n",
            dir.join("env").display(),
            dir.join("env").display(),
            real_bin.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&psql, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[tokio::test(flavor = "multi_thread")]
async fn psql_keeps_libpq_variables_and_never_sees_the_callers_secrets() {
    let Some(pg) = common::pg15() else { return };
    if std::env::var_os(INNER).is_none() {
        let dir = tempfile::tempdir().unwrap();
        let canary = common::unique("SECRET");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "psql_keeps_libpq_variables_and_never_sees_the_callers_secrets",
                "--exact",
                "--nocapture",
            ])
            .env(INNER, "1")
            .env(RECORD_DIR, dir.path())
            .env("PGB_NOTIFY_URL", format!("https://hooks.example/{canary}"))
            .env("PGB_PASSPHRASE", &canary)
            .env("AWS_SECRET_ACCESS_KEY", &canary)
            .env(
                "DATABASE_URL",
                format!("postgres://u:{canary}@db.example/x"),
            )
            .env("PGAPPNAME", "pgb-child-env")
            .env("PGTZ", "UTC")
            .env("LC_ALL", "C.UTF-8")
            .env("PGPASSWORD", format!("caller-{canary}"))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "the child ran the test: {text}");

        let raw = std::fs::read(dir.path().join("env")).expect("the recording psql ran");
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let runs: Vec<Vec<&str>> = raw
            .split("---\0")
            .filter(|r| !r.is_empty())
            .map(|r| r.split('\0').filter(|v| !v.is_empty()).collect())
            .collect();
        assert_eq!(
            runs.len(),
            2,
            "psql ran twice (query, blocking drop): {raw}"
        );
        for env in &runs {
            let leaked: Vec<_> = env
                .iter()
                .filter(|v| {
                    v.starts_with("PGB_")
                        || v.starts_with("AWS_")
                        || v.starts_with("DATABASE_URL=")
                        || v.contains(&canary)
                })
                .collect();
            // The caller's PGPASSWORD is replaced by the connection's own.
            assert!(
                leaked.is_empty(),
                "psql saw the caller's secrets: {leaked:#?}"
            );
            for wanted in [
                "PGAPPNAME=pgb-child-env",
                "PGTZ=UTC",
                "LC_ALL=C.UTF-8",
                "PGPASSWORD=conn-password",
            ] {
                assert!(env.contains(&wanted), "psql did not see {wanted}: {env:#?}");
            }
            assert!(env.iter().any(|v| v.starts_with("PATH=")), "{env:#?}");
        }
        return;
    }

    // The child: psql through the async path and the blocking one.
    let dir = std::path::PathBuf::from(std::env::var_os(RECORD_DIR).unwrap());
    let locator = pgb_postgres::ToolLocator::new()
        .with_system_dirs(false)
        .with_bin_dir(recording_psql(&pg.bin, &dir));
    let sql = pgb_postgres::SqlClient::locate(&locator).await.unwrap();
    // postgres is trusted, so the password is carried but never checked.
    let conn = pg.conn("postgres").with_password("conn-password");
    assert_eq!(sql.query(&conn, "select 1", &[]).await.unwrap(), "1");
    let missing = common::unique("child_env_missing");
    let maint = conn.with_dbname("postgres");
    tokio::task::spawn_blocking(move || {
        pgb_postgres::sql::drop_database_blocking(sql.tool(), &maint, &missing)
    })
    .await
    .unwrap()
    .unwrap();
}
