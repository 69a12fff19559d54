//! `pgb restore --table` on a Pagila-like schema made here, against real PostgreSQL: a table
//! comes back with what it needs to exist (its serial sequence and its value, the enum and
//! domain its columns use, its index, constraints, trigger and the trigger's function), from
//! custom and directory-format backups; a foreign key to a table that is not selected is left
//! out and named; a table that needs an unselected table is refused naming it; pg_restore's
//! own `ERROR:` line is in the message of a restore that fails. PostgreSQL 15, and 17 for a
//! custom-format backup (`PGB_TEST_PG17_URL`, `PGB_TEST_PG17_BIN`).

use crate::common;

use common::{Pg, drop_db_quietly, one_line_error, pgb, stderr};

const SCHEMA: &str = "
create type mpaa_rating as enum ('G', 'PG', 'PG-13', 'R', 'NC-17');
create domain year as integer check (value >= 1901 and value <= 2155);
create function last_updated() returns trigger language plpgsql as $$
begin new.last_update := timestamp '2001-02-03 04:05:06'; return new; end $$;
create table language (language_id serial primary key, name text not null);
create table actor (
    actor_id serial primary key, first_name text not null, last_name text not null,
    last_update timestamp not null default now());
create index idx_actor_last_name on actor (last_name);
create trigger last_updated before update on actor for each row execute function last_updated();
create table film (
    film_id serial primary key, title text not null, release_year year,
    rating mpaa_rating default 'G', language_id int not null references language,
    last_update timestamp not null default now());
create index idx_title on film (title);
create trigger last_updated before update on film for each row execute function last_updated();
comment on table film is 'the films';
insert into language (name) values ('English'), ('Italian'), ('Japanese');
insert into actor (first_name, last_name) select 'first ' || g, 'last ' || g from generate_series(1, 200) g;
insert into film (title, release_year, rating, language_id)
    select 'film ' || g, 1990 + g % 30, (array['G','PG','R'])[1 + g % 3]::mpaa_rating, 1 + g % 3
    from generate_series(1, 100) g;
create function film_count() returns bigint language sql begin atomic select count(*) from film; end;
create table stats (id int primary key, films bigint default film_count());
";

/// Rows and a digest of a table's content.
fn fingerprint(pg: &Pg, db: &str, table: &str) -> String {
    pg.psql(
        db,
        &format!("select count(*) || ':' || md5(string_agg(t::text, '|' order by t::text)) from {table} t"),
    )
}

fn restore(pg: &Pg, repo: &str, target: &str, tables: &[&str]) -> std::process::Output {
    let mut args = vec![
        "restore".to_owned(),
        "latest".into(),
        "--repo".into(),
        repo.into(),
        "--db".into(),
        pg.url(target),
        "--pg-bin-dir".into(),
        pg.bin.to_str().unwrap().into(),
    ];
    for t in tables {
        args.extend(["--table".to_owned(), (*t).to_owned()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    pgb(&args)
}

fn pg17() -> Option<Pg> {
    match (
        common::env("PGB_TEST_PG17_URL"),
        common::env("PGB_TEST_PG17_BIN"),
    ) {
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

/// `public.actor` and `public.film` restored alone, then `film` with `language`.
fn tables_come_back_with_what_they_need(pg: Option<Pg>, format: &str) {
    let Some(pg) = pg else { return };
    let src = common::unique("wtab");
    pg.psql("postgres", &format!("create database {src}"));
    pg.psql(&src, SCHEMA);
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path().to_str().unwrap();
    let o = common::backup(
        &pg,
        repo.path(),
        &src,
        &["--format", format, "--pg-bin-dir", pg.bin.to_str().unwrap()],
    );
    assert!(o.status.success(), "backup: {}", stderr(&o));

    // actor: its serial sequence with its value, its index and trigger with its function.
    let t = common::unique("wtab_actor");
    let o = restore(&pg, r, &t, &["public.actor"]);
    assert!(
        o.status.success(),
        "restore --table public.actor: {}",
        stderr(&o)
    );
    assert_eq!(
        fingerprint(&pg, &t, "actor"),
        fingerprint(&pg, &src, "actor")
    );
    assert_eq!(pg.psql(&t, "select nextval('actor_actor_id_seq')"), "201");
    assert_eq!(
        pg.psql(
            &t,
            "insert into actor (first_name, last_name) values ('a', 'b') returning actor_id"
        ),
        "202",
        "the column default uses the owned sequence"
    );
    assert_eq!(
        pg.psql(
            &t,
            "update actor set first_name = 'x' where actor_id = 1 returning last_update"
        ),
        "2001-02-03 04:05:06",
        "the trigger and its function came back"
    );
    assert_eq!(
        pg.psql(
            &t,
            "select count(*) from pg_indexes where indexname = 'idx_actor_last_name'"
        ),
        "1"
    );
    assert_eq!(
        pg.psql(
            &t,
            "select string_agg(tablename, ',') from pg_tables where schemaname = 'public'"
        ),
        "actor",
        "only the selected table"
    );
    drop_db_quietly(&pg, &t);

    // film: the enum and the domain; the foreign key to language is left out, and named.
    let t = common::unique("wtab_film");
    let o = restore(&pg, r, &t, &["public.film"]);
    assert!(
        o.status.success(),
        "restore --table public.film: {}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("film_language_id_fkey") && stderr(&o).contains("public.language"),
        "the skipped foreign key is named: {}",
        stderr(&o)
    );
    assert_eq!(fingerprint(&pg, &t, "film"), fingerprint(&pg, &src, "film"));
    assert_eq!(pg.psql(&t, "select nextval('film_film_id_seq')"), "101");
    assert_eq!(
        pg.psql(&t, "select pg_typeof(rating)::text || ',' || pg_typeof(release_year)::text from film limit 1"),
        "mpaa_rating,year"
    );
    let o2 = std::process::Command::new(pg.bin.join("psql"))
        .args([
            "-X",
            "-q",
            "-d",
            &pg.url(&t),
            "-c",
            "insert into film (title, release_year, language_id) values ('x', 1800, 1)",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o2.stderr).contains("violates check constraint \"year_check\""),
        "the domain keeps its check: {}",
        String::from_utf8_lossy(&o2.stderr)
    );
    assert_eq!(
        pg.psql(
            &t,
            "select count(*) from pg_constraint where conrelid = 'film'::regclass and contype = 'f'"
        ),
        "0"
    );
    assert_eq!(
        pg.psql(&t, "select obj_description('film'::regclass)"),
        "the films"
    );
    drop_db_quietly(&pg, &t);

    // film with language: the foreign key comes back too.
    let t = common::unique("wtab_both");
    let o = restore(&pg, r, &t, &["public.film", "public.language"]);
    assert!(
        o.status.success(),
        "restore film and language: {}",
        stderr(&o)
    );
    assert_eq!(
        pg.psql(
            &t,
            "select conname from pg_constraint where conrelid = 'film'::regclass and contype = 'f'"
        ),
        "film_language_id_fkey"
    );
    drop_db_quietly(&pg, &t);

    // stats needs film (its default calls a function that reads film): refused, naming it,
    // before any database is created.
    let t = common::unique("wtab_stats");
    let o = restore(&pg, r, &t, &["public.stats"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = one_line_error(&o);
    assert!(e.contains("needs TABLE public.film"), "{e}");
    assert!(!pg.db_exists(&t));

    // A restore that pg_restore fails: its ERROR: line is in the message.
    let t = common::unique("wtab_clash");
    pg.psql("postgres", &format!("create database {t}"));
    pg.psql(&t, "create type mpaa_rating as enum ('X')");
    let o = restore(&pg, r, &t, &["public.film"]);
    assert!(!o.status.success());
    let e = one_line_error(&o);
    assert!(
        e.contains("ERROR:") && e.contains("type \"mpaa_rating\" already exists"),
        "{e}"
    );
    drop_db_quietly(&pg, &t);
    drop_db_quietly(&pg, &src);
}

#[test]
fn a_table_restores_with_its_sequence_types_index_and_trigger_custom() {
    tables_come_back_with_what_they_need(common::pg(), "custom");
}

#[test]
fn a_table_restores_with_its_sequence_types_index_and_trigger_custom_pg17() {
    tables_come_back_with_what_they_need(pg17(), "custom");
}

#[test]
fn a_table_restores_with_its_sequence_types_index_and_trigger_directory() {
    tables_come_back_with_what_they_need(common::pg(), "directory");
}
