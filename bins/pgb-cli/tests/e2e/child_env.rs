//! The PostgreSQL tools pgb runs get only the environment they need: libpq's variables, the
//! locale, `PATH` and `HOME`, and the password pgb hands them; never pgb's own secrets
//! (notification URLs, the passphrase, cloud credentials, `DATABASE_URL`).

use crate::common;

use common::{RowText, shim, stderr};

/// A pg_dump that writes its environment (`env -0`) to `dir/env` and then runs the real one.
fn recording_pg_dump(pg: &common::Pg, dir: &std::path::Path) -> (String, std::path::PathBuf) {
    let record = dir.join("env");
    let bin = shim(
        dir,
        "record-bin",
        &format!(
            "env -0 > '{}'\nexec '{}/pg_dump' \"$@\"",
            record.display(),
            pg.bin.display()
        ),
    );
    (format!("{}:{}", bin.display(), pg.bin.display()), record)
}

/// The `NAME=value` entries a recording pg_dump saw.
fn seen(record: &std::path::Path) -> Vec<String> {
    let raw = std::fs::read(record).expect("the recording pg_dump ran");
    String::from_utf8_lossy(&raw)
        .split('\0')
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn pg_dump_sees_libpq_variables_but_none_of_pgbs_secrets() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("childenv", 20, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let (bin_dir, record) = recording_pg_dump(&pg, dir.path());
    let canary = common::unique("SECRET");
    let (hook, _got) = common::receiver();
    let notify = format!("{hook}/{canary}");
    let auth_key = format!("{:08x}", common::random_u32()).repeat(8);
    let db_password = common::unique("dbpw");
    // The test server trusts postgres, so the password is carried but never checked.
    let database_url =
        pg.url(&db.name)
            .replacen("://postgres@", &format!("://postgres:{db_password}@"), 1);
    let repo_url = repo.to_str().unwrap();
    let o = common::pgb_env(
        &["backup", "--repo", repo_url],
        &[
            ("PGB_PG_BIN_DIR", bin_dir.as_str()),
            ("DATABASE_URL", database_url.as_str()),
            ("PGB_NOTIFY_URL", notify.as_str()),
            ("PGB_PASSPHRASE", canary.as_str()),
            ("PGB_AUTH_KEY", auth_key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", canary.as_str()),
            ("AWS_ACCESS_KEY_ID", canary.as_str()),
            ("SOME_APP_TOKEN", canary.as_str()),
            ("PGHOST", "127.0.0.1"),
            ("PGAPPNAME", "pgb-child-env"),
            ("PGSSLMODE", "disable"),
            ("LC_ALL", "C.UTF-8"),
            ("TZ", "UTC"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let env = seen(&record);
    let leaked: Vec<_> = env
        .iter()
        .filter(|v| {
            v.contains(&canary)
                || v.contains(&auth_key)
                || v.starts_with("PGB_")
                || v.starts_with("AWS_")
        })
        .collect();
    assert!(leaked.is_empty(), "pg_dump saw pgb's secrets: {leaked:#?}");
    assert!(
        !env.iter().any(|v| v.starts_with("DATABASE_URL=")),
        "pg_dump saw DATABASE_URL: {env:#?}"
    );
    for wanted in [
        "PGHOST=127.0.0.1",
        "PGAPPNAME=pgb-child-env",
        "PGSSLMODE=disable",
        "LC_ALL=C.UTF-8",
        "TZ=UTC",
        // The URL's password, handed over by pgb itself.
        &format!("PGPASSWORD={db_password}"),
    ] {
        assert!(
            env.iter().any(|v| v == wanted),
            "pg_dump did not see {wanted}: {env:#?}"
        );
    }
    for name in ["PATH=", "HOME="] {
        assert!(
            env.iter().any(|v| v.starts_with(name)),
            "pg_dump did not see {name}: {env:#?}"
        );
    }

    // A password in PGPASSWORD (the URL has none) still reaches pg_dump.
    let env_password = common::unique("envpw");
    let o = common::pgb_env(
        &["backup", "--repo", repo_url, "--db", &pg.url(&db.name)],
        &[
            ("PGB_PG_BIN_DIR", bin_dir.as_str()),
            ("PGPASSWORD", env_password.as_str()),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let env = seen(&record);
    assert!(
        env.contains(&format!("PGPASSWORD={env_password}")),
        "pg_dump did not get PGPASSWORD: {env:#?}"
    );
}
