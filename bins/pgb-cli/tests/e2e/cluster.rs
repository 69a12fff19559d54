//! Whole-server backups against real PostgreSQL 15 and 17: `pgb backup --all-databases` of
//! three databases and two roles (one owning objects, one with a password), everything dropped,
//! the server rebuilt with `pgb restore --all`, and every database's content and the roles
//! compared; the selection, refusals and warnings around it.
//!
//! PostgreSQL 15 comes from `PGB_TEST_PG_URL` / `PGB_TEST_PG_BIN`, 17 from `PGB_TEST_PG17_URL` /
//! `PGB_TEST_PG17_BIN` (`scripts/pg.sh start DIR 17`). A missing server skips loudly, or fails
//! under `PGB_TEST_REQUIRE=1`.

use crate::common;

use std::path::Path;

use common::{Pg, drop_db_quietly, env, list_json, one_line_error, pgb_env, stderr, stdout};

/// An age identity and its recipient (X25519: cheap, unlike a passphrase's scrypt per object).
struct Keys {
    _dir: tempfile::TempDir,
    identity: String,
    recipient: String,
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("id.txt").to_str().unwrap().to_owned();
    let o = pgb_env(&["key", "generate", "--output", &identity], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let recipient = stdout(&o).trim().to_owned();
    assert!(recipient.starts_with("age1"), "{recipient}");
    Keys {
        _dir: dir,
        identity,
        recipient,
    }
}

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

/// Three databases and two roles named `<prefix>_...`, dropped (quietly) with the guard.
struct Fixture<'a> {
    pg: &'a Pg,
    prefix: String,
    /// Held until the fixture's roles are dropped: a whole-server backup dumps every role of
    /// the server, so two fixtures alive at once would see each other's roles come and go.
    _serial: std::sync::MutexGuard<'static, ()>,
}

/// One fixture at a time (see [`Fixture::_serial`]).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Fixture<'_> {
    fn db(&self, n: &str) -> String {
        format!("{}_{n}", self.prefix)
    }
    fn owner(&self) -> String {
        format!("{}_owner", self.prefix)
    }
    fn pw(&self) -> String {
        format!("{}_pw", self.prefix)
    }
    fn databases(&self) -> [String; 3] {
        [self.db("a"), self.db("b"), self.db("c")]
    }

    fn drop_all(&self) {
        for d in self.databases() {
            drop_db_quietly(self.pg, &d);
        }
        for r in [self.pw(), self.owner()] {
            let _ = std::process::Command::new(self.pg.bin.join("psql"))
                .args(["-X", "-q", "-d", &self.pg.url("postgres"), "-c"])
                .arg(format!("drop role if exists {r}"))
                .output();
        }
    }

    /// Everything a rebuilt server must reproduce, as text.
    fn snapshot(&self) -> String {
        let pg = self.pg;
        let roles = pg.psql(
            "postgres",
            &format!(
                "select string_agg(rolname || ':' || rolcanlogin || ':' || coalesce(rolpassword, '-'), ',' order by rolname) \
                 from pg_authid where rolname like '{}\\_%'",
                self.prefix
            ),
        );
        let member = pg.psql(
            "postgres",
            &format!(
                "select pg_has_role('{}', '{}', 'member')",
                self.pw(),
                self.owner()
            ),
        );
        let a = pg.psql(
            &self.db("a"),
            &format!(
                "select (select tableowner from pg_tables where tablename = 'orders') || ':' || \
                 has_table_privilege('{}', 'orders', 'select') || ':' || \
                 has_table_privilege('{}', 'orders', 'insert') || ':' || \
                 (select count(*) || md5(string_agg(o::text, '|' order by id)) from orders o)",
                self.pw(),
                self.pw()
            ),
        );
        let b = pg.table_fingerprint(&self.db("b"), "items");
        let c = pg.psql(
            &self.db("c"),
            "select (select string_agg(v::text, ',') from totals v) || ':' || (select last_value from counter)",
        );
        let db_owner = pg.psql(
            "postgres",
            &format!(
                "select pg_get_userbyid(datdba) from pg_database where datname = '{}'",
                self.db("a")
            ),
        );
        format!("roles={roles} member={member} db_owner={db_owner} a={a} b={b} c={c}")
    }
}

impl Drop for Fixture<'_> {
    fn drop(&mut self) {
        self.drop_all();
    }
}

fn fixture(pg: &Pg) -> Fixture<'_> {
    let f = Fixture {
        pg,
        prefix: common::unique("wcl"),
        _serial: SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    };
    let (owner, pw) = (f.owner(), f.pw());
    pg.psql("postgres", &format!("create role {owner} nologin"));
    pg.psql(
        "postgres",
        &format!("create role {pw} login password 'role secret 1'"),
    );
    pg.psql("postgres", &format!("grant {owner} to {pw}"));
    for d in f.databases() {
        pg.psql("postgres", &format!("create database {d}"));
    }
    pg.psql(
        "postgres",
        &format!("alter database {} owner to {owner}", f.db("a")),
    );
    pg.psql(
        &f.db("a"),
        &format!(
            "create table orders (id int primary key, item text);
             insert into orders select g, 'order ' || g from generate_series(1, 500) g;
             alter table orders owner to {owner};
             grant select on orders to {pw};"
        ),
    );
    pg.psql(
        &f.db("b"),
        "create table items (id int primary key, name text);
         insert into items select g, md5(g::text) from generate_series(1, 2000) g;",
    );
    pg.psql(
        &f.db("c"),
        "create table t (id int, n int); insert into t values (1, 10), (2, 32);
         create view totals as select sum(n) as total from t;
         create sequence counter; select setval('counter', 42);",
    );
    f
}

fn run(pg: &Pg, args: &[&str]) -> std::process::Output {
    let mut all: Vec<&str> = args.to_vec();
    let bin = pg.bin.to_str().unwrap();
    all.extend(["--pg-bin-dir", bin]);
    pgb_env(&all, &[])
}

fn rebuild_round_trip(pg: &Pg) {
    let f = fixture(pg);
    let before = f.snapshot();
    assert!(
        before.contains(&format!("db_owner={} ", f.owner())),
        "{before}"
    );
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path().to_str().unwrap();
    let include = format!("{}_*", f.prefix);
    let server = pg.url("postgres");
    let k = keys();
    let id: &str = &k.identity;
    let uploads = repo.path().with_extension("uploads");
    std::fs::create_dir_all(uploads.join("orders")).unwrap();
    std::fs::write(uploads.join("orders/1.pdf"), b"%PDF order 1").unwrap();
    std::os::unix::fs::symlink("orders/1.pdf", uploads.join("latest.pdf")).unwrap();

    let o = run(
        pg,
        &[
            "backup",
            "--repo",
            r,
            "--db",
            &server,
            "--all-databases",
            "--include",
            &include,
            "--files",
            uploads.to_str().unwrap(),
            "--with-role-passwords",
            "--recipient",
            &k.recipient,
            "--json",
        ],
    );
    assert!(o.status.success(), "backup: {}", stderr(&o));
    let list = list_json(repo.path());
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["database"], "*");
    assert_eq!(
        list[0]["cluster"]["databases"],
        serde_json::json!(f.databases()),
        "the backup records its databases"
    );
    let kinds: Vec<&str> = list[0]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["globals", "dump", "dump", "dump", "files"]);
    let o = run(
        pg,
        &["verify", "--repo", r, "latest", "--identity-file", id],
    );
    assert!(o.status.success(), "verify: {}", stderr(&o));

    f.drop_all();
    assert!(!pg.db_exists(&f.db("a")));

    let o = run(
        pg,
        &[
            "restore",
            "latest",
            "--repo",
            r,
            "--all",
            "--server",
            &server,
            "--keep-owner",
            "--keep-privileges",
            "--identity-file",
            id,
        ],
    );
    assert!(o.status.success(), "restore --all: {}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("globals: 2 created,"), "{out}");
    assert!(out.contains("0 failed"), "{out}");
    assert_eq!(f.snapshot(), before, "the rebuilt server matches");
    // The uploads of the same moment come back beside it.
    let restored = repo.path().with_extension("restored-uploads");
    let o = run(
        pg,
        &[
            "restore",
            "latest",
            "--repo",
            r,
            "--files-to",
            restored.to_str().unwrap(),
            "--identity-file",
            id,
        ],
    );
    assert!(o.status.success(), "restore --files-to: {}", stderr(&o));
    assert_eq!(
        std::fs::read(restored.join("orders/1.pdf")).unwrap(),
        b"%PDF order 1"
    );
    assert_eq!(
        std::fs::read_link(restored.join("latest.pdf")).unwrap(),
        Path::new("orders/1.pdf")
    );
    let _ = std::fs::remove_dir_all(&restored);
    let _ = std::fs::remove_dir_all(&uploads);

    // A second rebuild is refused before anything is written: the targets have tables.
    let o = run(
        pg,
        &[
            "restore",
            "latest",
            "--repo",
            r,
            "--all",
            "--server",
            &server,
            "--identity-file",
            id,
        ],
    );
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(one_line_error(&o).contains("--clean"), "{}", stderr(&o));
    // The globals apply again idempotently: every role exists, nothing fails.
    let o = run(
        pg,
        &[
            "restore",
            "latest",
            "--repo",
            r,
            "--globals",
            "--db",
            &server,
            "--identity-file",
            id,
        ],
    );
    assert!(o.status.success(), "restore --globals: {}", stderr(&o));
    assert!(stdout(&o).contains("0 created"), "{}", stdout(&o));
    assert!(stdout(&o).contains(", 0 failed"), "{}", stdout(&o));
    // `ALTER ROLE postgres ...` of the backup is not applied to the connected role.
    assert!(stdout(&o).contains("skipped"), "{}", stdout(&o));
    assert_eq!(f.snapshot(), before);
    // One database of the backup into a new database.
    let copy = format!("{}_copy", f.prefix);
    let o = run(
        pg,
        &[
            "restore",
            "latest",
            "--repo",
            r,
            "--database",
            &f.db("b"),
            "--db",
            &pg.url(&copy),
            "--identity-file",
            id,
        ],
    );
    assert!(o.status.success(), "restore --database: {}", stderr(&o));
    assert_eq!(
        pg.table_fingerprint(&copy, "items"),
        pg.table_fingerprint(&f.db("b"), "items")
    );
    drop_db_quietly(pg, &copy);
}

#[test]
fn a_whole_server_is_rebuilt_from_one_backup_pg15() {
    let Some(pg) = common::pg() else { return };
    rebuild_round_trip(&pg);
}

#[test]
fn a_whole_server_is_rebuilt_from_one_backup_pg17() {
    let Some(pg) = pg17() else { return };
    rebuild_round_trip(&pg);
}

fn backups(repo: &Path) -> usize {
    list_json(repo).len()
}

#[test]
fn selection_mistakes_and_unsafe_requests_write_nothing() {
    let Some(pg) = common::pg() else { return };
    let f = fixture(&pg);
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path().to_str().unwrap();
    let server = pg.url("postgres");
    let typo = format!("{}_typo*", f.prefix);
    let o = run(
        &pg,
        &[
            "backup",
            "--repo",
            r,
            "--db",
            &server,
            "--all-databases",
            "--include",
            &typo,
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        one_line_error(&o).contains(&typo),
        "names the glob: {}",
        stderr(&o)
    );
    assert_eq!(backups(repo.path()), 0);
    assert!(
        !repo.path().join("backups").exists()
            || std::fs::read_dir(repo.path().join("backups"))
                .unwrap()
                .next()
                .is_none(),
        "nothing written"
    );
    // Role passwords in an unencrypted backup.
    let o = pgb_env(
        &[
            "backup",
            "--repo",
            r,
            "--db",
            &server,
            "--all-databases",
            "--with-role-passwords",
            "--pg-bin-dir",
            pg.bin.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(one_line_error(&o).contains("encrypted"), "{}", stderr(&o));
    assert_eq!(backups(repo.path()), 0);

    // Exclusion wins; a database gone since the previous backup is warned about.
    let include = format!("{}_*", f.prefix);
    let exclude = f.db("c");
    let o = run(
        &pg,
        &[
            "backup",
            "--repo",
            r,
            "--db",
            &server,
            "--all-databases",
            "--include",
            &include,
            "--exclude",
            &exclude,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        list_json(repo.path())[0]["cluster"]["databases"],
        serde_json::json!([f.db("a"), f.db("b")])
    );
    drop_db_quietly(&pg, &f.db("b"));
    let o = run(
        &pg,
        &[
            "backup",
            "--repo",
            r,
            "--db",
            &server,
            "--all-databases",
            "--include",
            &include,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "warning: database {} was in the previous backup",
            f.db("b")
        )),
        "{err}"
    );
    assert!(
        !err.contains(&format!("database {} was", f.db("c"))),
        "excluded is not gone: {err}"
    );

    // Restoring a whole-server backup needs a choice.
    let o = run(
        &pg,
        &["restore", "latest", "--repo", r, "--db", &pg.url("x")],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        one_line_error(&o).contains("--all --server"),
        "{}",
        stderr(&o)
    );
    let o = run(
        &pg,
        &[
            "restore",
            "latest",
            "--repo",
            r,
            "--database",
            "nope",
            "--db",
            &pg.url("x"),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!pg.db_exists("x"));
}

/// Each fixture database's own state, one line each: ACL (`pg_database.datacl`, its items
/// sorted: granting them again may store them in another order), owner,
/// comment (`shobj_description`), and the settings of the database and of roles in it
/// (`pg_db_role_setting`).
fn database_state(f: &Fixture<'_>) -> String {
    f.pg.psql(
        "postgres",
        &format!(
            "select string_agg(d.datname || ' acl=' || coalesce((select string_agg(x::text, ',' order by x::text) from unnest(d.datacl) x), '-') \
               || ' owner=' || pg_get_userbyid(d.datdba) \
               || ' encoding=' || pg_encoding_to_char(d.encoding) || ' collate=' || d.datcollate \
               || ' ctype=' || d.datctype \
               || ' comment=' || coalesce(shobj_description(d.oid, 'pg_database'), '-') \
               || ' settings=' || coalesce((select string_agg(coalesce(r.rolname, '*') || ':' \
                    || array_to_string(s.setconfig, ';'), ',' order by r.rolname nulls first) \
                  from pg_db_role_setting s left join pg_roles r on r.oid = s.setrole \
                  where s.setdatabase = d.oid), '-'), E'\\n' order by d.datname) \
             from pg_database d where d.datname like '{}\\_%'",
            f.prefix
        ),
    )
}

/// Whether role `role` may connect to database `db` (psql's exit, and its error).
fn connects(pg: &Pg, role: &str, db: &str) -> Result<(), String> {
    let url = pg
        .url(db)
        .replacen("://postgres@", &format!("://{role}@"), 1);
    let o = std::process::Command::new(pg.bin.join("psql"))
        .args(["-X", "-q", "-At", "-w", "-d", &url, "-c", "select 1"])
        .env("PGPASSWORD", "role secret 1")
        .output()
        .unwrap();
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).trim().to_owned())
    }
}

/// `restore --all --keep-owner --keep-privileges` brings back what `pg_restore --create`
/// would: database ACLs, `ALTER DATABASE ... SET`, `ALTER ROLE ... IN DATABASE ... SET`,
/// comments, owners, and encoding and locale (a LATIN1/C database on a UTF8 server); a role
/// refused CONNECT on the source is refused on the rebuilt
/// server. Without `--keep-privileges` the settings and comments still come back, the ACLs
/// do not (PUBLIC may connect again), as the README says.
fn database_level_state_round_trip(pg: &Pg) {
    let f = fixture(pg);
    let (a, b, pw) = (f.db("a"), f.db("b"), f.pw());
    // c in another encoding and locale than the server's defaults (UTF8, C.UTF-8).
    let c = f.db("c");
    drop_db_quietly(pg, &c);
    pg.psql(
        "postgres",
        &format!("create database {c} template template0 encoding 'LATIN1' locale 'C'"),
    );
    pg.psql(
        &c,
        "create table t (id int primary key, s text); insert into t values (1, 'caf\u{e9}')",
    );
    pg.psql(
        "postgres",
        &format!("revoke connect on database {a} from public"),
    );
    pg.psql(
        "postgres",
        &format!("grant connect on database {a} to {pw}"),
    );
    pg.psql(
        "postgres",
        &format!("revoke connect, temporary on database {b} from public"),
    );
    pg.psql(
        "postgres",
        &format!("alter database {a} set work_mem = '7MB'"),
    );
    pg.psql(
        "postgres",
        &format!("alter database {b} set statement_timeout = '42s'"),
    );
    pg.psql(
        "postgres",
        &format!("alter role {pw} in database {a} set search_path = 'shop, public'"),
    );
    pg.psql(
        "postgres",
        &format!("comment on database {a} is 'orders; the shop''s \"main\" database'"),
    );
    let before = database_state(&f);
    assert!(
        before.contains(&format!(
            "{c} acl=- owner=postgres encoding=LATIN1 collate=C ctype=C "
        )),
        "{before}"
    );
    assert!(before.contains(&format!("{pw}=c/")), "{before}");
    assert!(connects(pg, &pw, &a).is_ok(), "the role may connect to {a}");
    let refused = connects(pg, &pw, &b).unwrap_err();
    assert!(
        refused.contains("permission denied for database"),
        "{refused}"
    );

    let repo = tempfile::tempdir().unwrap();
    let r = repo.path().to_str().unwrap();
    let include = format!("{}_*", f.prefix);
    let server = pg.url("postgres");
    let o = run(
        pg,
        &[
            "backup",
            "--repo",
            r,
            "--db",
            &server,
            "--all-databases",
            "--include",
            &include,
        ],
    );
    assert!(o.status.success(), "backup: {}", stderr(&o));

    let restore = |extra: &[&str]| {
        // The databases go; the roles stay (with their passwords, which this backup does
        // not hold).
        for d in f.databases() {
            drop_db_quietly(pg, &d);
        }
        let mut args = vec![
            "restore", "latest", "--repo", r, "--all", "--server", &server,
        ];
        args.extend(extra);
        let o = run(pg, &args);
        assert!(
            o.status.success(),
            "restore --all {extra:?}: {}",
            stderr(&o)
        );
    };
    restore(&["--keep-owner", "--keep-privileges"]);
    assert_eq!(
        database_state(&f),
        before,
        "the rebuilt databases' own state matches"
    );
    assert!(
        connects(pg, &pw, &a).is_ok(),
        "the role may connect to {a} again"
    );
    let refused = connects(pg, &pw, &b).unwrap_err();
    assert!(
        refused.contains("permission denied for database"),
        "{refused}"
    );

    // Without the flags: settings and comments, but no ACL (and the restoring role owns).
    // (In parallel: the archive spooled, pg_restore -j.)
    restore(&["--jobs", "2"]);
    let plain = database_state(&f);
    assert!(
        plain.contains("work_mem=7MB") && plain.contains("statement_timeout=42s"),
        "{plain}"
    );
    assert!(plain.contains("search_path=\"shop, public\""), "{plain}");
    assert!(plain.contains("the shop's \"main\" database"), "{plain}");
    assert!(
        !plain.contains(&format!("{pw}=c/")),
        "no ACL without --keep-privileges: {plain}"
    );
    assert!(
        connects(pg, &pw, &b).is_ok(),
        "PUBLIC may connect without the ACL"
    );
}

#[test]
fn database_acls_settings_and_comments_come_back_pg15() {
    let Some(pg) = common::pg() else { return };
    database_level_state_round_trip(&pg);
}

#[test]
fn database_acls_settings_and_comments_come_back_pg17() {
    let Some(pg) = pg17() else { return };
    database_level_state_round_trip(&pg);
}

/// The fixture's scratch databases left on the server (none, after any drill).
fn leftover_scratch(f: &Fixture<'_>) -> String {
    f.pg.psql(
        "postgres",
        &format!(
            "select coalesce(string_agg(datname, ','), '') from pg_database \
             where datname like 'pgb\\_drill\\_%' and (datname like '%{}%' or datname like 'pgb\\_drill\\_\\_\\_%')",
            f.prefix
        ),
    )
}

/// `pgb drill` of a whole-server backup drills every database in its own scratch database
/// (or the one of `--database`), skips the globals with a note, records one drill with
/// per-database phases, leaves no scratch database behind, and `pgb check` judges the server
/// by it.
#[test]
fn a_whole_server_backup_is_drilled_database_by_database() {
    let Some(pg) = common::pg() else { return };
    let f = fixture(&pg);
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path().to_str().unwrap();
    let include = format!("{}_*", f.prefix);
    let server = pg.url("postgres");
    let o = run(
        &pg,
        &[
            "backup",
            "--repo",
            r,
            "--db",
            &server,
            "--all-databases",
            "--include",
            &include,
        ],
    );
    assert!(o.status.success(), "backup: {}", stderr(&o));

    let o = run(&pg, &["drill", "--repo", r, "--target", &server, "--json"]);
    assert_eq!(o.status.code(), Some(0), "drill: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["outcome"], "passed", "{report:#}");
    assert_eq!(report["database"], "*");
    let phases: Vec<&str> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let mut expected = vec!["fetch_verify".to_owned()];
    for d in f.databases() {
        for p in ["restore", "hooks", "analyze", "checks"] {
            expected.push(format!("{d}: {p}"));
        }
    }
    assert_eq!(phases, expected, "per-database phases");
    let checks = report["checks"].as_array().unwrap();
    let check = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
    };
    assert_eq!(check("globals")["skipped"], true);
    assert!(
        check("globals")["detail"]
            .as_str()
            .unwrap()
            .contains("not applied"),
        "{report:#}"
    );
    for d in f.databases() {
        assert_eq!(check(&format!("{d}: restore"))["passed"], true);
        assert_eq!(check(&format!("{d}: tables"))["passed"], true, "{report:#}");
    }
    assert!(
        check(&format!("{}: tables", f.db("b")))["detail"]
            .as_str()
            .unwrap()
            .contains("all 1 tables"),
        "{report:#}"
    );
    assert_eq!(report["toc_tables"], 3, "orders, items and t");
    assert_eq!(report["dropped"], true);
    let scratch = report["scratch_database"].as_str().unwrap();
    assert_eq!(scratch.split(", ").count(), 3, "{scratch}");
    assert!(report["recorded_as"].as_str().is_some(), "{report:#}");
    assert_eq!(leftover_scratch(&f), "", "no scratch database is left");

    // One database of it.
    let a = f.db("a");
    let o = run(
        &pg,
        &[
            "drill",
            "--repo",
            r,
            "--target",
            &server,
            "--database",
            &a,
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "drill --database: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let phases: Vec<&str> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "fetch_verify".to_owned(),
            format!("{a}: restore"),
            format!("{a}: hooks"),
            format!("{a}: analyze"),
            format!("{a}: checks")
        ]
    );
    assert_eq!(leftover_scratch(&f), "");
    // A database the backup does not hold: the drill cannot run (exit 2), nothing recorded.
    let o = run(
        &pg,
        &[
            "drill",
            "--repo",
            r,
            "--target",
            &server,
            "--database",
            "nope",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        one_line_error(&o).contains("holds no database nope"),
        "{}",
        stderr(&o)
    );

    let o = run(&pg, &["drill", "--repo", r, "--history", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let history: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        history.as_array().unwrap().len(),
        2,
        "one record per drill: {history:#}"
    );
    let o = pgb_env(
        &[
            "check",
            "--repo",
            r,
            "--max-age",
            "1h",
            "--max-drill-age",
            "1h",
        ],
        &[],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "check: {}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(stdout(&o).starts_with("OK"), "{}", stdout(&o));

    // A failing drill of the server (a smoke statement false in every database) is recorded
    // and makes the check of the server CRITICAL.
    let smoke = repo.path().with_extension("smoke.sql");
    std::fs::write(&smoke, "select false").unwrap();
    let o = run(
        &pg,
        &[
            "drill",
            "--repo",
            r,
            "--target",
            &server,
            "--smoke",
            smoke.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(10), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(leftover_scratch(&f), "", "dropped after a failed check too");
    let o = pgb_env(&["check", "--repo", r, "--max-age", "1h"], &[]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "check: {}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(stdout(&o).contains("last drill"), "{}", stdout(&o));
    let _ = std::fs::remove_file(&smoke);
}
