//! Directory-format backups (`pg_dump -Fd -j N`) against real PostgreSQL 15 and 17: each file
//! stored as its own artifact, verified, restored with `pg_restore -j N`; a corrupt file is
//! caught before any database is touched, and no plaintext spool is left behind.

use crate::common;

use common::{Pg, RowText, env, list_json, pgb, stderr};

fn pg17() -> Option<Pg> {
    match (env("PGB_TEST_PG17_URL"), env("PGB_TEST_PG17_BIN")) {
        (Some(url), Some(bin)) => Some(Pg {
            base: url.trim_end_matches("/postgres").to_owned(),
            bin: bin.into(),
        }),
        _ => pgb_testkit::require_or_skip(
            "PostgreSQL 17 (PGB_TEST_PG17_URL, PGB_TEST_PG17_BIN)",
            "run scripts/pg.sh start DIR 17",
        ),
    }
}

fn entries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

fn round_trip(pg: &Pg) {
    let src = pg.sample_db("wdir", 3000, RowText::Md5);
    pg.psql(
        &src.name,
        "create table empty_t (id int); create table more (id int primary key, v text);
         insert into more select g, repeat('x', g % 50) from generate_series(1, 500) g;",
    );
    let repo = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let r = repo.path().to_str().unwrap();
    let bin = pg.bin.to_str().unwrap();
    let o = pgb(&[
        "backup",
        "--repo",
        r,
        "--db",
        &pg.url(&src.name),
        "--format",
        "directory",
        "--jobs",
        "2",
        "--spool-dir",
        spool.path().to_str().unwrap(),
        "--pg-bin-dir",
        bin,
    ]);
    assert!(o.status.success(), "backup: {}", stderr(&o));
    assert_eq!(entries(spool.path()), 0, "the plaintext spool is removed");
    let list = list_json(repo.path());
    assert_eq!(list[0]["format"], "directory");
    let names: Vec<&str> = list[0]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["kind"], "directory_file");
            a["name"].as_str().unwrap()
        })
        .collect();
    assert!(names.contains(&"toc.dat"), "{names:?}");
    assert!(names.len() >= 4, "toc plus one file per table: {names:?}");
    let o = pgb(&["verify", "--repo", r, "latest", "--pg-bin-dir", bin]);
    assert!(o.status.success(), "verify: {}", stderr(&o));

    for jobs in ["2", "1"] {
        let target = common::unique("wdir_restored");
        let o = pgb(&[
            "restore",
            "latest",
            "--repo",
            r,
            "--db",
            &pg.url(&target),
            "--jobs",
            jobs,
            "--spool-dir",
            spool.path().to_str().unwrap(),
            "--pg-bin-dir",
            bin,
        ]);
        assert!(o.status.success(), "restore -j {jobs}: {}", stderr(&o));
        assert_eq!(pg.fingerprint(&target), pg.fingerprint(&src.name));
        assert_eq!(
            pg.table_fingerprint(&target, "more"),
            pg.table_fingerprint(&src.name, "more")
        );
        assert_eq!(pg.psql(&target, "select count(*) from empty_t"), "0");
        assert_eq!(entries(spool.path()), 0, "the restore spool is removed");
        common::drop_db_quietly(pg, &target);
    }

    // One table: only the table of contents and that table's data file are downloaded.
    let target = common::unique("wdir_table");
    let o = pgb(&[
        "restore",
        "latest",
        "--repo",
        r,
        "--db",
        &pg.url(&target),
        "--table",
        "public.more",
        "--jobs",
        "2",
        "--spool-dir",
        spool.path().to_str().unwrap(),
        "--pg-bin-dir",
        bin,
        "--json",
    ]);
    assert!(o.status.success(), "restore --table: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        report["objects_read"], 2,
        "toc.dat and one data file: {report}"
    );
    assert!(names.len() > 2);
    assert_eq!(
        pg.table_fingerprint(&target, "more"),
        pg.table_fingerprint(&src.name, "more")
    );
    assert_eq!(
        pg.psql(
            &target,
            "select count(*) from pg_tables where schemaname = 'public'"
        ),
        "1",
        "only the selected table"
    );
    common::drop_db_quietly(pg, &target);
    // A table the backup does not hold: exit 2, and no database is left behind.
    let target = common::unique("wdir_nope");
    let o = pgb(&[
        "restore",
        "latest",
        "--repo",
        r,
        "--db",
        &pg.url(&target),
        "--table",
        "public.nope",
        "--pg-bin-dir",
        bin,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        common::one_line_error(&o).contains("holds no table public.nope"),
        "{}",
        stderr(&o)
    );
    assert!(!pg.db_exists(&target));
    assert_eq!(entries(spool.path()), 0);

    // One corrupt file: verify fails (5), and so does a restore, leaving no database behind.
    let id = list[0]["id"].as_str().unwrap();
    let key = list[0]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] != "toc.dat")
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = repo.path().join(&key);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let o = pgb(&["verify", "--repo", r, id, "--pg-bin-dir", bin]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let target = common::unique("wdir_corrupt");
    let o = pgb(&[
        "restore",
        "latest",
        "--repo",
        r,
        "--db",
        &pg.url(&target),
        "--jobs",
        "2",
        "--spool-dir",
        spool.path().to_str().unwrap(),
        "--pg-bin-dir",
        bin,
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(!pg.db_exists(&target), "the target it created was dropped");
    assert_eq!(entries(spool.path()), 0);
}

#[test]
fn a_directory_format_backup_round_trips_in_parallel_pg15() {
    let Some(pg) = common::pg() else { return };
    round_trip(&pg);
}

#[test]
fn a_directory_format_backup_round_trips_in_parallel_pg17() {
    let Some(pg) = pg17() else { return };
    round_trip(&pg);
}

#[test]
fn a_failing_directory_dump_writes_nothing() {
    let Some(pg) = common::pg() else { return };
    let repo = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let o = pgb(&[
        "backup",
        "--repo",
        repo.path().to_str().unwrap(),
        "--db",
        &pg.url("wdir_no_such_database"),
        "--format",
        "directory",
        "--spool-dir",
        spool.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(list_json(repo.path()).is_empty());
    assert_eq!(entries(spool.path()), 0);
}

#[test]
fn one_table_restores_from_a_custom_format_backup() {
    let Some(pg) = common::pg() else { return };
    let src = pg.sample_db("wtab", 200, RowText::Md5);
    pg.psql(
        &src.name,
        "create schema sales; create table sales.items (id int primary key, v int);
         insert into sales.items select g, g * 2 from generate_series(1, 50) g;",
    );
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path().to_str().unwrap();
    let o = pgb(&["backup", "--repo", r, "--db", &pg.url(&src.name)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let target = common::unique("wtab_restored");
    let o = pgb(&[
        "restore",
        "latest",
        "--repo",
        r,
        "--db",
        &pg.url(&target),
        "--table",
        "sales.items",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        pg.table_fingerprint(&target, "sales.items"),
        pg.table_fingerprint(&src.name, "sales.items")
    );
    assert_eq!(
        pg.psql(
            &target,
            "select count(*) from pg_tables where tablename = 'items'"
        ),
        "1",
        "public.items was not restored"
    );
    common::drop_db_quietly(&pg, &target);
    let o = pgb(&[
        "restore",
        "latest",
        "--repo",
        r,
        "--db",
        &pg.url(&target),
        "--schema",
        "nope",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!pg.db_exists(&target));
}

#[test]
fn a_spool_without_room_for_the_previous_dump_is_refused_before_pg_dump_runs() {
    let Some(pg) = common::pg() else { return };
    let src = pg.sample_db("wspace", 50, RowText::Plain);
    let repo = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let r = repo.path().to_str().unwrap();
    let args = [
        "backup",
        "--repo",
        r,
        "--db",
        &pg.url(&src.name),
        "--format",
        "directory",
        "--spool-dir",
        spool.path().to_str().unwrap(),
    ];
    let o = pgb(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    // Pretend the previous dump was an exabyte (unauthenticated manifests are plain JSON).
    let id = list_json(repo.path())[0]["id"].as_str().unwrap().to_owned();
    let path = repo.path().join("backups").join(&id).join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m["artifacts"][0]["plain_size"] = serde_json::json!(1u64 << 60);
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();

    let o = pgb(&args);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = common::one_line_error(&o);
    assert!(err.contains("MiB free"), "{err}");
    assert_eq!(list_json(repo.path()).len(), 1, "nothing committed");
    assert_eq!(entries(spool.path()), 0, "pg_dump never ran");
}

#[test]
fn verify_reads_the_table_of_contents_of_a_directory_backup() {
    let Some(pg) = common::pg() else { return };
    let src = pg.sample_db("wtoc", 50, RowText::Plain);
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path().to_str().unwrap();
    let o = pgb(&[
        "backup",
        "--repo",
        r,
        "--db",
        &pg.url(&src.name),
        "--format",
        "directory",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = pgb(&["verify", "--repo", r, "latest"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        common::stdout(&o).contains("archive entries")
            && !common::stdout(&o).contains(" - archive"),
        "the table of contents was read: {}",
        common::stdout(&o)
    );
    // A manifest that lost a data file (and the file with it): the table of contents still
    // names it, so verify fails (5) although every remaining digest matches.
    let list = list_json(repo.path());
    let id = list[0]["id"].as_str().unwrap();
    let path = repo.path().join("backups").join(id).join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let arts = m["artifacts"].as_array_mut().unwrap();
    let i = arts.iter().position(|a| a["name"] != "toc.dat").unwrap();
    let gone = arts.remove(i);
    std::fs::remove_file(repo.path().join(gone["key"].as_str().unwrap())).unwrap();
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    let o = pgb(&["verify", "--repo", r, id]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("lacks the data file"), "{}", stderr(&o));
}
