//! A PostgreSQL tool the library runs gets only what its caller handed the locator
//! ([`InheritedEnv`]), narrowed to libpq's variables, the locale, `PATH` and `HOME`, plus the
//! password the connection hands it: on the `--version` probe, the async path
//! (`SqlClient::query`) and the blocking one (`sql::drop_database_blocking`, a restore's
//! clean-up when dropped). Nothing of the test process's own environment reaches it, and
//! `PGPASSWORD` reaches only a tool that talks to a server.

use crate::common;

use std::path::Path;

use pgb_postgres::{InheritedEnv, SqlClient, ToolLocator};

/// A psql in `dir/bin` that appends its first argument (`ARG1=...`), its environment
/// (`env -0`) and a `---` record to `dir/env`, then runs the real one.
fn recording_psql(real_bin: &Path, dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let psql = bin.join("psql");
    let record = dir.join("env");
    std::fs::write(
        &psql,
        format!(
            "#!/bin/sh\n{{ printf 'ARG1=%s\\0' \"$1\"; env -0; printf -- '---\\0'; }} >> '{}'\nexec '{}/psql' \"$@\"\n",
            record.display(),
            real_bin.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&psql, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// Variables the shell running the recording psql sets itself.
const SHELL_OWN: &[&str] = &["PWD", "OLDPWD", "SHLVL", "_"];

#[tokio::test(flavor = "multi_thread")]
async fn psql_gets_only_the_libpq_variables_it_was_handed() {
    let Some(pg) = common::pg15() else { return };
    let dir = tempfile::tempdir().unwrap();
    let canary = common::unique("SECRET");
    let handed: Vec<(&str, String)> = vec![
        ("PGB_NOTIFY_URL", format!("https://hooks.example/{canary}")),
        ("PGB_PASSPHRASE", canary.clone()),
        ("AWS_SECRET_ACCESS_KEY", canary.clone()),
        (
            "DATABASE_URL",
            format!("postgres://u:{canary}@db.example/x"),
        ),
        ("PGAPPNAME", "pgb-child-env".into()),
        ("PGTZ", "UTC".into()),
        ("LC_ALL", "C.UTF-8".into()),
        ("PATH", "/usr/bin:/bin".into()),
        ("PGPASSWORD", "caller-password".into()),
    ];
    let inherited = InheritedEnv::new(handed.iter().map(|(k, v)| (*k, v.as_str())));
    let debug = format!("{inherited:?}");
    assert!(debug.contains("PGPASSWORD"), "{debug}");
    assert!(
        !debug.contains("caller-password") && !debug.contains("UTC") && !debug.contains("PGB_"),
        "Debug shows names it keeps, never values: {debug}"
    );

    let locator = ToolLocator::new()
        .with_system_dirs(false)
        .with_bin_dir(recording_psql(&pg.bin, dir.path()))
        .with_inherited_env(inherited);
    let sql = SqlClient::locate(&locator).await.unwrap();
    // postgres is trusted, so a password is carried but never checked.
    let with_password = pg.conn("postgres").with_password("conn-password");
    assert_eq!(
        sql.query(&with_password, "select 1", &[]).await.unwrap(),
        "1"
    );
    let without_password = pg.conn("postgres");
    assert!(
        !without_password.has_password(),
        "the test URL has no password"
    );
    assert_eq!(
        sql.query(&without_password, "select 2", &[]).await.unwrap(),
        "2"
    );
    let missing = common::unique("child_env_missing");
    let maint = with_password.with_dbname("postgres");
    tokio::task::spawn_blocking(move || {
        pgb_postgres::sql::drop_database_blocking(sql.tool(), &maint, &missing)
    })
    .await
    .unwrap()
    .unwrap();

    let raw = std::fs::read(dir.path().join("env")).expect("the recording psql ran");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let runs: Vec<Vec<&str>> = raw
        .split("---\0")
        .filter(|r| !r.is_empty())
        .map(|r| r.split('\0').filter(|v| !v.is_empty()).collect())
        .collect();
    let first_args: Vec<&str> = runs.iter().map(|r| r[0]).collect();
    assert_eq!(
        first_args.len(),
        4,
        "psql ran four times (probe, two queries, blocking drop): {first_args:?}"
    );
    assert_eq!(first_args[0], "ARG1=--version", "{first_args:?}");

    // The test process's own variables that were not handed in (HOME, PGB_TEST_*, ...).
    let not_handed: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| {
            !handed.iter().any(|(h, _)| h == k)
                && !SHELL_OWN.contains(&k.as_str())
                && k != "PGCONNECT_TIMEOUT"
        })
        .collect();
    assert!(
        not_handed.iter().any(|k| k.starts_with("PGB_TEST_")),
        "the test's own environment holds the servers' variables: {not_handed:?}"
    );
    for env in &runs {
        let leaked: Vec<_> = env
            .iter()
            .filter(|v| {
                v.starts_with("PGB_")
                    || v.starts_with("AWS_")
                    || v.starts_with("DATABASE_URL=")
                    || v.contains(&canary)
                    || not_handed.iter().any(|k| v.starts_with(&format!("{k}=")))
            })
            .collect();
        assert!(
            leaked.is_empty(),
            "psql saw what it was not handed or must not see: {leaked:#?}"
        );
        for wanted in [
            "PGAPPNAME=pgb-child-env",
            "PGTZ=UTC",
            "LC_ALL=C.UTF-8",
            "PATH=/usr/bin:/bin",
        ] {
            assert!(env.contains(&wanted), "psql did not see {wanted}: {env:#?}");
        }
    }
    let password = |env: &Vec<&str>| -> Option<String> {
        env.iter()
            .find_map(|v| v.strip_prefix("PGPASSWORD="))
            .map(str::to_owned)
    };
    // The probe talks to no server: no password at all.
    assert_eq!(password(&runs[0]), None, "{:#?}", runs[0]);
    // The connection's own password replaces the caller's.
    assert_eq!(password(&runs[1]).as_deref(), Some("conn-password"));
    // A URL without one: the caller's PGPASSWORD, libpq's variable for exactly this.
    assert_eq!(password(&runs[2]).as_deref(), Some("caller-password"));
    assert_eq!(password(&runs[3]).as_deref(), Some("conn-password"));
}
