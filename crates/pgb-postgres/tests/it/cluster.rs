//! Groundwork for whole-server and big-database backups, against real PostgreSQL 15: listing
//! the databases a server backup covers, `pg_dumpall --globals-only`, and directory-format
//! dumps into a spool directory.

use crate::common;

use common::*;
use pgb_core::{ArchiveFormat, ArchiveInfo, DumpErrorKind, Dumper};
use pgb_postgres::{PgArchiveCheck, PgDumpAll, PgDumpDirectory, sql};

/// Runs a prepared streamed dump to the end and returns its text.
async fn dump_text(dumper: &dyn Dumper) -> Result<String, pgb_core::DumpError> {
    let mut stream = dumper.prepare().await?.start().await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next_chunk().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8(out).expect("SQL text"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_databases_names_connectable_non_template_databases() {
    let Some(pg) = pg15() else { return };
    let a = pg.create_db("list_a").await;
    let b = pg.create_db("list_b").await;
    let template = pg.create_db("list_template").await;
    let closed = pg.create_db("list_closed").await;
    pg.psql(
        "postgres",
        &format!(
            "alter database \"{}\" is_template true; alter database \"{}\" allow_connections false;",
            template.name, closed.name
        ),
    )
    .await;
    let psql = pg.locator().pick("psql", 0, "test").await.unwrap();
    let dbs = sql::list_databases(&psql, &pg.conn("postgres")).await;
    // A template cannot be dropped: make it an ordinary database again before asserting.
    pg.psql(
        "postgres",
        &format!("alter database \"{}\" is_template false;", template.name),
    )
    .await;
    let dbs = dbs.unwrap();
    assert!(dbs.contains(&a.name) && dbs.contains(&b.name), "{dbs:?}");
    assert!(dbs.contains(&"postgres".to_owned()), "{dbs:?}");
    for absent in [&template.name, &closed.name, "template0", "template1"] {
        assert!(!dbs.iter().any(|d| d == absent), "{absent} listed: {dbs:?}");
    }
    let mut sorted = dbs.clone();
    sorted.sort();
    assert_eq!(sorted, dbs, "sorted by name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn globals_dump_has_roles_and_memberships_and_passwords_only_when_asked() {
    let Some(pg) = pg15() else { return };
    let member = TempRole::create(&pg, "glob_member", "member-secret").await;
    let group = TempRole::create(&pg, "glob_group", "group-secret").await;
    pg.psql(
        "postgres",
        &format!("grant \"{}\" to \"{}\";", group.name, member.name),
    )
    .await;

    let text = dump_text(&PgDumpAll::new(pg.conn("postgres"), pg.locator()))
        .await
        .expect("globals dump");
    assert!(
        text.contains(&format!("CREATE ROLE {};", member.name)),
        "{text}"
    );
    assert!(
        text.contains(&format!("CREATE ROLE {};", group.name)),
        "{text}"
    );
    assert!(
        text.contains(&format!("GRANT {} TO {}", group.name, member.name)),
        "membership missing:\n{text}"
    );
    assert!(
        !text.contains("SCRAM-SHA-256$"),
        "passwords by default:\n{text}"
    );

    let with =
        dump_text(&PgDumpAll::new(pg.conn("postgres"), pg.locator()).with_role_passwords(true))
            .await
            .expect("globals dump with passwords");
    let line = with
        .lines()
        .find(|l| l.starts_with(&format!("ALTER ROLE {} ", member.name)))
        .unwrap_or_else(|| panic!("no ALTER ROLE for the member:\n{with}"));
    assert!(line.contains("PASSWORD 'SCRAM-SHA-256$"), "{line}");

    // A role that is no superuser can dump the globals without passwords, and is refused
    // before anything runs when it asks for them.
    let as_member = pg
        .conn_as(&member.name, "postgres")
        .with_password("member-secret");
    let text = dump_text(&PgDumpAll::new(as_member.clone(), pg.locator()))
        .await
        .expect("globals without passwords as an ordinary role");
    assert!(
        text.contains(&format!("CREATE ROLE {};", group.name)),
        "{text}"
    );
    let err = PgDumpAll::new(as_member, pg.locator())
        .with_role_passwords(true)
        .prepare()
        .await
        .expect_err("passwords need a superuser");
    assert_eq!(err.kind(), DumpErrorKind::Connection, "{err:?}");
    assert!(err.to_string().contains("superuser"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_dump_with_two_jobs_round_trips_and_leaves_nothing_behind() {
    let Some(pg) = pg15() else { return };
    let src = pg.create_db("dir_src").await;
    pg.psql(
        &src.name,
        "create table a (id int primary key, t text);
         insert into a select g, md5(g::text) from generate_series(1, 20000) g;
         create table b (id int primary key);
         insert into b select generate_series(1, 500);
         create table empty_c (id int);
         create table excluded_d (id int);",
    )
    .await;
    let spool = tempfile::tempdir().expect("spool");
    let prepared = PgDumpDirectory::new(pg.conn(&src.name), pg.locator())
        .with_jobs(2)
        .prepare()
        .await
        .expect("prepare");
    assert_eq!(prepared.source().format, ArchiveFormat::Directory);
    assert_eq!(prepared.source().table_estimates.len(), 4);
    let dump = prepared.run(spool.path()).await.expect("directory dump");
    let names: Vec<&str> = dump.files().iter().map(|f| f.name.as_str()).collect();
    assert!(names.contains(&"toc.dat"), "{names:?}");
    // One data file per table, empty ones included.
    assert_eq!(
        names
            .iter()
            .filter(|n| n.ends_with(".dat") && **n != "toc.dat")
            .count(),
        4,
        "{names:?}"
    );
    for f in dump.files() {
        let on_disk = std::fs::metadata(dump.path().join(&f.name)).unwrap().len();
        assert_eq!(f.size, on_disk, "{}", f.name);
    }
    assert!(dump.toc_entries() >= 8, "{}", dump.toc_entries());
    // The directory is private.
    use std::os::unix::fs::PermissionsExt;
    let parent = dump.path().parent().unwrap().to_owned();
    assert_eq!(
        std::fs::metadata(&parent).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // pg_restore -j 2 restores it.
    let target = pg.create_db("dir_target").await;
    let out = tokio::process::Command::new(pg.bin.join("pg_restore"))
        .args(["-j", "2", "--no-owner", "-d"])
        .arg(pg.url_of(&target.name))
        .arg(dump.path())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts = "select (select count(*) from a) || ',' || (select count(*) from b) || ',' || md5(string_agg(t, '' order by id)) from a;";
    assert_eq!(
        pg.psql(&target.name, counts).await,
        pg.psql(&src.name, counts).await
    );

    // A missing data file is caught by the check.
    let checker = PgArchiveCheck::new(pg.locator());
    let archive = ArchiveInfo::new(ArchiveFormat::Directory, 15);
    assert!(checker.check_directory(&archive, dump.path()).await.is_ok());
    let victim = dump
        .files()
        .iter()
        .find(|f| f.name != "toc.dat" && f.name.ends_with(".dat"))
        .unwrap()
        .name
        .clone();
    std::fs::remove_file(dump.path().join(&victim)).unwrap();
    let err = checker
        .check_directory(&archive, dump.path())
        .await
        .expect_err("a missing data file");
    assert_eq!(err.kind(), DumpErrorKind::BadArchive, "{err:?}");
    assert!(
        err.to_string().contains(victim.trim_end_matches(".dat")),
        "{err}"
    );

    // Dropping the dump removes the plaintext spool.
    drop(dump);
    assert!(!parent.exists(), "spool left behind");
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_directory_dump_is_typed_and_leaves_no_spool() {
    let Some(pg) = pg15() else { return };
    let src = pg.create_db("dir_fail").await;
    pg.psql(
        &src.name,
        "create table t (id int); insert into t values (1);",
    )
    .await;
    let spool = tempfile::tempdir().expect("spool");
    let prepared = PgDumpDirectory::new(pg.conn(&src.name), pg.locator())
        .prepare()
        .await
        .expect("prepare");
    // The database goes away between preflight and the dump.
    pg.psql(
        "postgres",
        &format!("drop database \"{}\" with (force);", src.name),
    )
    .await;
    let err = prepared
        .run(spool.path())
        .await
        .expect_err("pg_dump of a dropped database");
    assert_eq!(err.kind(), DumpErrorKind::Failed, "{err:?}");
    assert_eq!(err.program(), Some("pg_dump"));
    assert_eq!(err.exit(), Some(pgb_core::ToolExit::Code(1)), "{err:?}");
    assert!(
        err.stderr_tail()
            .is_some_and(|t| t.contains("does not exist")),
        "{err:?}"
    );
    assert_eq!(
        std::fs::read_dir(spool.path()).unwrap().count(),
        0,
        "a failed dump left its spool"
    );
}

#[tokio::test]
async fn a_directory_format_is_refused_as_a_stream_before_connecting() {
    let conn = pgb_postgres::ConnConfig::parse("postgres://nobody@127.0.0.1:1/db").unwrap();
    let err = pgb_postgres::PgDump::new(conn, pgb_postgres::ToolLocator::new())
        .with_format(ArchiveFormat::Directory)
        .prepare()
        .await
        .expect_err("a directory dump is no stream");
    assert_eq!(err.kind(), DumpErrorKind::Refused, "{err:?}");
}
