//! Selection at backup time against real PostgreSQL: `--schema`, `--exclude-table-data`,
//! `--pg-dump-option` reach pg_dump, are recorded in the manifest and shown by `list`; options
//! pgb sets itself are refused before anything runs.

use crate::common;

use common::{RowText, list_json, one_line_error, pgb, stderr, stdout};

#[test]
fn backup_selection_is_applied_recorded_and_listed() {
    let Some(pg) = common::pg() else { return };
    let src = pg.sample_db("wsel", 100, RowText::Plain);
    pg.psql(
        &src.name,
        "create schema audit; create table audit.log (id int primary key, what text);
         insert into audit.log select g, 'x' from generate_series(1, 30) g;
         create table public.cache (id int primary key);
         insert into public.cache select generate_series(1, 20);",
    );
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path().to_str().unwrap();
    for bad in ["--pg-dump-option=-Fp", "--pg-dump-option=--jobs=4"] {
        let o = pgb(&["backup", "--repo", r, "--db", &pg.url(&src.name), bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
        assert!(
            one_line_error(&o).contains("set by pgb itself"),
            "{}",
            stderr(&o)
        );
    }
    assert!(list_json(repo.path()).is_empty());

    let o = pgb(&[
        "backup",
        "--repo",
        r,
        "--db",
        &pg.url(&src.name),
        "--exclude-schema",
        "audit",
        "--exclude-table-data",
        "public.cache",
        "--pg-dump-option=--no-comments",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list = list_json(repo.path());
    assert_eq!(
        list[0]["dump_options"],
        serde_json::json!([
            "--exclude-schema=audit",
            "--exclude-table-data=public.cache",
            "--no-comments"
        ])
    );
    let text = stdout(&pgb(&["list", "--repo", r]));
    assert!(text.contains("--exclude-table-data=public.cache"), "{text}");

    let target = common::unique("wsel_restored");
    let o = pgb(&["restore", "latest", "--repo", r, "--db", &pg.url(&target)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(pg.fingerprint(&target), pg.fingerprint(&src.name));
    assert_eq!(pg.psql(&target, "select count(*) from public.cache"), "0");
    assert_eq!(
        pg.psql(
            &target,
            "select count(*) from pg_namespace where nspname = 'audit'"
        ),
        "0"
    );
    common::drop_db_quietly(&pg, &target);
}
