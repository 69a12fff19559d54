//! pgb-postgres against real PostgreSQL servers, driven through `pgb_core::Repository`.
//!
//! Servers come from the environment (`scripts/pg.sh` writes it):
//! `PGB_TEST_PG_URL` / `PGB_TEST_PG_BIN` (PostgreSQL 15) and `PGB_TEST_PG17_URL` /
//! `PGB_TEST_PG17_BIN` (PostgreSQL 17). A missing server skips loudly, or fails under
//! `PGB_TEST_REQUIRE=1`.
//!
//! Every test creates its own uniquely named databases (and roles) and drops them at the end,
//! even when it fails, so the file can run in parallel and repeatedly against shared servers.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pgb_core::{
    ArchiveFormat, ArchiveInfo, BackupOptions, ByteStream, Compression, DumpError, DumpErrorKind,
    DumpSource, DumpStream, Dumper, Error, ErrorClass, Manifest, MemoryStorage, NoProgress,
    ObjectKey, ObjectMeta, ObjectWriter, PreparedDump, Repository, RestoreOptions, Restorer,
    Storage, StorageError, StorageExt, StorageInfo, WriteOptions,
};
use pgb_postgres::{ConnConfig, DataOffsets, PgArchiveCheck, PgDump, PgRestore, ToolLocator};
use pgb_storage_local::FsStorage;

use crate::common;
use common::*;

// ---------------------------------------------------------------------------------------------
// Fixtures and fingerprints
// ---------------------------------------------------------------------------------------------

/// A database with several schemas, sequences with advanced values, views, a materialized
/// view, functions, triggers, domains, enums, large objects, unicode text, jsonb, bytea,
/// arrays and a partitioned table. Works on PostgreSQL 15 and 17.
const RICH_FIXTURE: &str = r#"
create schema app;
create schema audit;
create schema "Ünï schéma ☃";
create type app.mood as enum ('sad', 'ok', 'happy', 'ünï ☃');
create domain app.posint as integer check (value > 0);
create sequence app.ticket start 1000 increment 7;
select setval('app.ticket', 987654321, true);
create sequence app.never_used;
create table app.items (
  id bigserial primary key,
  name text not null,
  mood app.mood,
  qty app.posint,
  tags text[],
  grid int[][],
  doc jsonb,
  payload bytea,
  price numeric(12, 3),
  at timestamptz not null default '2024-01-02 03:04:05+00'
);
comment on table app.items is 'items ☃, with a comment';
create table audit.log (
  id bigserial primary key,
  item_id bigint,
  action text not null,
  at timestamptz not null default '2020-01-01 00:00:00+00'
);
create function audit.log_item() returns trigger language plpgsql as $$
begin
  insert into audit.log (item_id, action) values (new.id, tg_op);
  return new;
end
$$;
create trigger items_audit after insert or update on app.items
  for each row execute function audit.log_item();
insert into app.items (name, mood, qty, tags, grid, doc, payload, price)
select 'item ' || g || ' héllo wörld 日本語 🎉 ' || repeat('ß', g % 7),
       (enum_range(null::app.mood))[1 + g % 4],
       case when g % 10 = 0 then null else g end,
       array['t' || g, 'ü' || (g % 3), null],
       array[array[g, g + 1], array[g * 2, g * 3]],
       jsonb_build_object('n', g, 'name', 'ключ ' || g, 'nested',
                          jsonb_build_object('a', array[1, 2, g]), 'flag', g % 2 = 0),
       decode(md5(g::text) || '00ff00', 'hex'),
       g * 1.125
from generate_series(1, 300) g;
update app.items set qty = qty + 1 where id % 7 = 0;
select setval('app.items_id_seq', 5000);
create view app.happy_items as select id, name from app.items where mood = 'happy';
create materialized view app.mood_counts as
  select mood, count(*) as n, sum(price) as total from app.items group by mood;
create function app.with_tax(p numeric, rate numeric default 0.2) returns numeric
  language sql immutable as $$ select round(p * (1 + rate), 2) $$;
create table "Ünï schéma ☃"."Tâble ☃" (k text primary key, v text, n app.posint);
insert into "Ünï schéma ☃"."Tâble ☃" values
  ('ключ', 'значение', 1), ('鍵', '値 🎌', 2), (E'e\u0301', E'tab\tnew\nline \\ back ''quote''', 3);
create table app.docs (id int primary key, lo oid not null, note text);
insert into app.docs
  select g, lo_from_bytea(0, convert_to(repeat('large object ' || g || ' ☃ ', 200 * g), 'UTF8')), 'doc ' || g
  from generate_series(1, 3) g;
insert into app.docs values (4, lo_from_bytea(0, decode(repeat('00ff10fe', 5000), 'hex')), 'binary');
create table app.events (id int not null, day date not null, what text) partition by range (day);
create table app.events_2024 partition of app.events for values from ('2024-01-01') to ('2025-01-01');
create table app.events_2025 partition of app.events for values from ('2025-01-01') to ('2026-01-01');
insert into app.events select g, date '2024-06-01' + g * 3, 'e' || g from generate_series(1, 100) g;
create table app.empty_table (id int);
"#;

/// PostgreSQL 15 only (the PyPI build of 17 may lack contrib): an extension and a table using it.
const EXTENSION_FIXTURE: &str = r"
create extension if not exists hstore;
create table app.ext_use (id int primary key, attrs hstore);
insert into app.ext_use values (1, 'a => 1, b => ☃'), (2, null);
";

/// A rich database on PostgreSQL 15 (with an extension).
async fn rich_db(pg: &Pg, prefix: &str) -> TempDb {
    let db = pg.create_db(prefix).await;
    pg.psql(&db.name, RICH_FIXTURE).await;
    pg.psql(&db.name, EXTENSION_FIXTURE).await;
    db
}

/// What a restore must reproduce, compared as content, never as dump bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    /// `schema.table|rows|md5 of the ordered rows as text`, tables and materialized views.
    tables: Vec<String>,
    /// `schema.sequence|last_value|is_called`.
    sequences: Vec<String>,
    /// `oid|md5 of the contents`.
    large_objects: Vec<String>,
    /// `pg_dump --schema-only`, without comment and `\restrict` lines.
    schema: Vec<String>,
}

const TABLE_FINGERPRINTS: &str = r"
select format($f$select %L || '|' || count(*) || '|' || md5(coalesce(string_agg(t::text, E'\n' order by t::text), '')) from %I.%I t$f$,
              n.nspname || '.' || c.relname, n.nspname, c.relname)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'm')
  and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'
order by n.nspname, c.relname
\gexec
";

const SEQUENCE_FINGERPRINTS: &str = r"
select format($f$select %L || '|' || last_value || '|' || is_called from %I.%I$f$,
              n.nspname || '.' || c.relname, n.nspname, c.relname)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'S'
order by n.nspname, c.relname
\gexec
";

const LARGE_OBJECT_FINGERPRINTS: &str =
    "select oid || '|' || md5(lo_get(oid)) from pg_largeobject_metadata order by oid;";

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

async fn fingerprint(pg: &Pg, db: &str) -> Fingerprint {
    Fingerprint {
        tables: lines(&pg.psql(db, TABLE_FINGERPRINTS).await),
        sequences: lines(&pg.psql(db, SEQUENCE_FINGERPRINTS).await),
        large_objects: lines(&pg.psql(db, LARGE_OBJECT_FINGERPRINTS).await),
        schema: schema_only(pg, db).await,
    }
}

async fn schema_only(pg: &Pg, db: &str) -> Vec<String> {
    let out = tokio::process::Command::new(pg.bin.join("pg_dump"))
        .args(["--schema-only", "-w"])
        .arg(format!("--dbname={}", pg.url_of(db)))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run pg_dump --schema-only");
    assert!(
        out.status.success(),
        "pg_dump --schema-only {db}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !l.starts_with("--"))
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .map(str::to_owned)
        .collect()
}

/// `Ok` when equal, else which parts differ and their first differing lines.
fn compare(expected: &Fingerprint, actual: &Fingerprint) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut part = |name: &str, a: &[String], b: &[String]| {
        if a != b {
            let missing: Vec<&String> = a.iter().filter(|l| !b.contains(l)).take(5).collect();
            let extra: Vec<&String> = b.iter().filter(|l| !a.contains(l)).take(5).collect();
            problems.push(format!(
                "{name} differ ({} vs {} lines); missing from the restore: {missing:?}; only in the restore: {extra:?}",
                a.len(),
                b.len()
            ));
        }
    };
    part("tables", &expected.tables, &actual.tables);
    part("sequences", &expected.sequences, &actual.sequences);
    part(
        "large objects",
        &expected.large_objects,
        &actual.large_objects,
    );
    part("schemas", &expected.schema, &actual.schema);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

// ---------------------------------------------------------------------------------------------
// Storage that counts writes (and can slow them down), processes, misc
// ---------------------------------------------------------------------------------------------

/// A `MemoryStorage` that counts opened writers and can delay every chunk written (so that a
/// dump stays mid-stream long enough to be interrupted).
#[derive(Debug, Default)]
struct CountingStorage {
    inner: MemoryStorage,
    writers: AtomicU64,
    write_delay: Duration,
}

impl CountingStorage {
    fn slow(write_delay: Duration) -> Self {
        Self {
            write_delay,
            ..Self::default()
        }
    }

    fn writers_opened(&self) -> u64 {
        self.writers.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Storage for CountingStorage {
    fn info(&self) -> StorageInfo {
        self.inner.info()
    }

    async fn writer(
        &self,
        key: &ObjectKey,
        opts: WriteOptions,
    ) -> Result<Box<dyn ObjectWriter>, StorageError> {
        self.writers.fetch_add(1, Ordering::SeqCst);
        let inner = self.inner.writer(key, opts).await?;
        Ok(Box::new(DelayedWriter {
            inner,
            delay: self.write_delay,
        }))
    }

    async fn reader(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        self.inner.reader(key, range).await
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StorageError> {
        self.inner.head(key).await
    }

    async fn list(&self, prefix: Option<&ObjectKey>) -> Result<Vec<ObjectMeta>, StorageError> {
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }
}

#[derive(Debug)]
struct DelayedWriter {
    inner: Box<dyn ObjectWriter>,
    delay: Duration,
}

#[async_trait]
impl ObjectWriter for DelayedWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.write(chunk).await
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta, StorageError> {
        self.inner.finish().await
    }

    async fn abort(self: Box<Self>) -> Result<(), StorageError> {
        self.inner.abort().await
    }
}

/// A repository on a fresh counting storage.
fn counting_repo(delay: Duration) -> (Arc<CountingStorage>, Repository) {
    let storage = Arc::new(CountingStorage::slow(delay));
    let repo = Repository::new(Arc::clone(&storage) as Arc<dyn Storage>);
    (storage, repo)
}

/// Nothing at all in the storage, and nothing the repository would call a backup, an invalid
/// backup or a leftover.
async fn assert_storage_empty(repo: &Repository, context: &str) {
    let objects = repo.storage().list(None).await.expect("list storage");
    assert!(
        objects.is_empty(),
        "{context}: storage holds objects: {objects:?}"
    );
    let listing = repo.list().await.expect("list repository");
    assert!(
        listing.backups.is_empty() && listing.invalid.is_empty() && listing.leftovers.is_empty(),
        "{context}: repository is not empty: {listing:?}"
    );
}

/// Every other process's command line, NULs shown as spaces.
fn cmdlines() -> Vec<(u32, String)> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            if pid == me {
                return None;
            }
            let raw = std::fs::read(e.path().join("cmdline")).ok()?;
            Some((pid, String::from_utf8_lossy(&raw).replace('\0', " ")))
        })
        .collect()
}

fn processes_with(needles: &[&str]) -> Vec<(u32, String)> {
    cmdlines()
        .into_iter()
        .filter(|(_, c)| needles.iter().all(|n| c.contains(n)))
        .collect()
}

/// The error as everything an operator could see: Display, Debug and the stderr tail.
fn everything_shown(e: &Error) -> String {
    format!("{e}\n{e:?}\n{}", e.stderr_tail().unwrap_or(""))
}

fn dump_kind(e: &Error) -> Option<DumpErrorKind> {
    match e {
        Error::Dump(d) => Some(d.kind()),
        _ => None,
    }
}

async fn backup(
    repo: &Repository,
    dumper: &PgDump,
    compression: Compression,
) -> Result<Manifest, Error> {
    Box::pin(repo.backup(
        dumper,
        &BackupOptions::default().with_compression(compression),
        &NoProgress,
    ))
    .await
}

async fn restore(
    repo: &Repository,
    m: &Manifest,
    restorer: &PgRestore,
    opts: &RestoreOptions,
) -> Result<pgb_core::RestoreReport, Error> {
    Box::pin(repo.restore(m, restorer, opts, &NoProgress)).await
}

const COMPRESSIONS: [Compression; 3] = [
    Compression::None,
    Compression::Gzip { level: 6 },
    Compression::Zstd { level: 3 },
];

// ---------------------------------------------------------------------------------------------
// 1. Round trip: formats × compressions (RELIABILITY 21)
// ---------------------------------------------------------------------------------------------

/// One backup → verify → restore into a new database → content comparison.
async fn round_trip_once(
    pg: &Pg,
    source: &str,
    expected: &Fingerprint,
    format: ArchiveFormat,
    compression: Compression,
) -> Result<(), String> {
    let repo = Repository::new(Arc::new(MemoryStorage::new()));
    let dumper = PgDump::new(pg.conn(source), pg.locator()).with_format(format);
    let m = backup(&repo, &dumper, compression)
        .await
        .map_err(|e| format!("backup: {e}"))?;
    if m.format != format
        || m.compression != compression
        || m.pg_dump_major != 15
        || m.database != source
    {
        return Err(format!("manifest records the wrong source: {m:?}"));
    }
    let target = pg.adopt_db(&unique("rt_target"));
    let spool = tempfile::tempdir().map_err(|e| e.to_string())?;
    let restorer = PgRestore::new(pg.conn(&target.name), pg.locator(), spool.path());
    let checker = PgArchiveCheck::new(pg.locator());
    let verified = Box::pin(repo.verify(&m, Some(&checker), &NoProgress))
        .await
        .map_err(|e| format!("verify: {e}"))?;
    if format == ArchiveFormat::Custom && verified.toc_entries.unwrap_or(0) < 20 {
        return Err(format!(
            "pg_restore --list saw too few entries: {verified:?}"
        ));
    }
    if pg.db_exists(&target.name).await {
        return Err("verify touched the restore target".to_owned());
    }
    let report = restore(&repo, &m, &restorer, &RestoreOptions::new())
        .await
        .map_err(|e| format!("restore: {e} / {}", e.stderr_tail().unwrap_or("")))?;
    if !report.created || report.database != target.name {
        return Err(format!("restore report: {report:?}"));
    }
    compare(expected, &fingerprint(pg, &target.name).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_every_format_and_compression_preserves_content() {
    let Some(pg) = pg15() else { return };
    let source = rich_db(&pg, "rt_src").await;
    let expected = fingerprint(&pg, &source.name).await;
    // The fixture really holds what the comparison relies on.
    assert!(expected.tables.len() >= 9, "{:?}", expected.tables);
    assert!(
        expected
            .sequences
            .iter()
            .any(|s| s == "app.ticket|987654321|true"),
        "{:?}",
        expected.sequences
    );
    assert!(
        expected
            .sequences
            .iter()
            .any(|s| s == "app.items_id_seq|5000|true"),
        "{:?}",
        expected.sequences
    );
    assert_eq!(
        expected.large_objects.len(),
        4,
        "{:?}",
        expected.large_objects
    );

    let mut failures = Vec::new();
    let mut passed = Vec::new();
    for format in [ArchiveFormat::Custom, ArchiveFormat::Plain] {
        for compression in COMPRESSIONS {
            let label = format!("format {format}, compression {compression:?}");
            match round_trip_once(&pg, &source.name, &expected, format, compression).await {
                Ok(()) => passed.push(label),
                Err(e) => failures.push(format!("{label}: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 6 combinations failed:\n{}\n(passed: {passed:?})",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Parallel restore
// ---------------------------------------------------------------------------------------------

fn dir_entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("read spool dir")
        .flatten()
        .map(|e| e.path())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_restore_round_trips_and_leaves_no_spool_file() {
    let Some(pg) = pg15() else { return };
    let source = rich_db(&pg, "par_src").await;
    let expected = fingerprint(&pg, &source.name).await;
    let repo = Repository::new(Arc::new(MemoryStorage::new()));
    let m = backup(
        &repo,
        &PgDump::new(pg.conn(&source.name), pg.locator()),
        Compression::Zstd { level: 3 },
    )
    .await
    .expect("backup");

    let spool = tempfile::tempdir().expect("spool dir");
    let target = pg.adopt_db(&unique("par_target"));
    let restorer = PgRestore::new(pg.conn(&target.name), pg.locator(), spool.path());
    let opts = RestoreOptions::new().with_jobs(2);
    let report = restore(&repo, &m, &restorer, &opts)
        .await
        .unwrap_or_else(|e| panic!("parallel restore: {e} / {}", e.stderr_tail().unwrap_or("")));
    assert!(report.created);
    assert_eq!(
        dir_entries(spool.path()),
        Vec::<PathBuf>::new(),
        "spool file left behind"
    );
    if let Err(e) = compare(&expected, &fingerprint(&pg, &target.name).await) {
        panic!("parallel restore differs from the source:\n{e}");
    }

    // Negative control: the fingerprint notices a changed row, sequence, large object and schema.
    pg.psql(
        &target.name,
        "update app.items set name = name || '.' where id = 1; select setval('app.ticket', 5); \
         select lo_put(lo, 0, '\\x00'::bytea) from app.docs where id = 1; \
         alter table app.empty_table add column extra int;",
    )
    .await;
    let problems = compare(&expected, &fingerprint(&pg, &target.name).await)
        .expect_err("changes must be noticed");
    for part in [
        "tables differ",
        "sequences differ",
        "large objects differ",
        "schemas differ",
    ] {
        assert!(problems.contains(part), "{part} not noticed:\n{problems}");
    }
}

/// pg_dump writes data offsets only into a seekable file; from a pipe (as pgb reads it) every
/// TOC entry says "not set" and each `pg_restore -j` worker scans for its table. Following the
/// piped archive with `DataOffsets` and applying the patches gives exactly the bytes pg_dump
/// writes to a file (apart from the header's creation time), on every server version here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_offsets_of_a_piped_dump_match_the_ones_pg_dump_writes_to_a_file() {
    let Some(pg15) = pg15() else { return };
    for (major, pg) in std::iter::once(("15", pg15)).chain(pg17().map(|p| ("17", p))) {
        let source = rich_db(&pg, "offsets").await;
        let dir = tempfile::tempdir().expect("temp dir");
        let (seekable, piped) = (dir.path().join("file.dump"), dir.path().join("pipe.dump"));
        let pg_dump = pg.bin.join("pg_dump");
        let url = pg.url_of(&source.name);
        let st = std::process::Command::new(&pg_dump)
            .args(["-Fc", "-Z0", "-f"])
            .arg(&seekable)
            .arg(&url)
            .status()
            .expect("pg_dump to a file");
        assert!(st.success());
        let out = std::process::Command::new(&pg_dump)
            .args(["-Fc", "-Z0"])
            .arg(&url)
            .output()
            .expect("pg_dump to a pipe");
        assert!(out.status.success());
        std::fs::write(&piped, &out.stdout).expect("write piped dump");
        let expected = std::fs::read(&seekable).expect("read file dump");
        assert_eq!(out.stdout.len(), expected.len());
        // Bytes that differ from the seekable dump past its header (the offsets).
        let differing = |a: &[u8]| {
            a.iter()
                .zip(&expected)
                .skip(64)
                .filter(|(x, y)| x != y)
                .count()
        };
        assert!(differing(&out.stdout) > 0, "a piped dump lacks the offsets");

        let mut offsets = DataOffsets::new();
        for chunk in out.stdout.chunks(8191) {
            offsets.feed(chunk);
        }
        let patches = offsets.finish();
        assert!(
            patches.len() >= 4,
            "tables and large objects: {}",
            patches.len()
        );
        patches.apply(&piped).expect("apply");
        let patched = std::fs::read(&piped).expect("read patched");
        assert_eq!(
            differing(&patched),
            0,
            "PostgreSQL {major}: patched TOC differs from pg_dump's"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. pg_dump failing mid-stream (RELIABILITY 1)
// ---------------------------------------------------------------------------------------------

/// Writes an executable script and waits until it runs (a concurrent fork may briefly hold it
/// open for writing: ETXTBSY).
async fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, body).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for _ in 0..100 {
        let ok = tokio::process::Command::new(path)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} never became runnable", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_pg_dump_failing_after_one_mib_commits_nothing() {
    let Some(pg) = pg15() else { return };
    let source = pg.create_db("fake_src").await;
    let bin = tempfile::tempdir().expect("bin dir");
    let fake = bin.path().join("pg_dump");
    write_script(
        &fake,
        "#!/bin/sh\n\
         if [ \"$1\" = \"--version\" ]; then echo 'pg_dump (PostgreSQL) 15.18'; exit 0; fi\n\
         head -c 1048576 /dev/urandom\n\
         echo 'pg_dump: error: injected failure after 1 MiB' >&2\n\
         exit 1\n",
    )
    .await;
    let fake_path = fake.to_str().expect("utf-8 path").to_owned();
    let locator = ToolLocator::new()
        .with_system_dirs(false)
        .with_bin_dir(bin.path())
        .with_bin_dir(&pg.bin);
    let (_storage, repo) = counting_repo(Duration::ZERO);

    let err = backup(
        &repo,
        &PgDump::new(pg.conn(&source.name), locator),
        Compression::Zstd { level: 3 },
    )
    .await
    .expect_err("a pg_dump exiting 1 must fail the backup");
    assert_eq!(err.class(), ErrorClass::Runtime, "{err:?}");
    assert_eq!(dump_kind(&err), Some(DumpErrorKind::Failed), "{err:?}");
    let shown = everything_shown(&err);
    assert!(err.to_string().contains("exited with status 1"), "{shown}");
    assert!(shown.contains("injected failure after 1 MiB"), "{shown}");
    assert_storage_empty(&repo, "after a failed pg_dump").await;
    let left = processes_with(&[&fake_path]);
    assert!(
        left.is_empty(),
        "fake pg_dump processes left behind: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_pg_dump_session_commits_nothing() {
    let Some(pg) = pg15() else { return };
    let source = pg.create_db("term_src").await;
    // About 55 MB of wide text.
    pg.psql(
        &source.name,
        "create table big as select g as id, repeat(md5(g::text), 8) as wide from generate_series(1, 200000) g;",
    )
    .await;
    // Slow storage: the dump stays inside COPY for seconds, waiting on the pipe.
    let (_storage, repo) = counting_repo(Duration::from_millis(20));
    let dumper = PgDump::new(pg.conn(&source.name), pg.locator());

    let killer = async {
        let sql = format!(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity \
             where datname = '{}' and application_name = 'pg_dump' and query ilike 'copy %big%';",
            source.name
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if pg.psql("postgres", &sql).await != "0" {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    };
    let (res, killed) = tokio::join!(backup(&repo, &dumper, Compression::None), killer);
    assert!(
        killed,
        "never saw pg_dump's COPY of the big table to terminate it"
    );
    let err = res.expect_err("a terminated pg_dump session must fail the backup");
    eprintln!("terminated pg_dump: {}", everything_shown(&err));
    assert_eq!(err.class(), ErrorClass::Runtime, "{err:?}");
    assert_eq!(dump_kind(&err), Some(DumpErrorKind::Failed), "{err:?}");
    let shown = everything_shown(&err);
    assert!(
        err.to_string().contains("pg_dump exited with status 1"),
        "{shown}"
    );
    let tail = err.stderr_tail().unwrap_or("");
    assert!(
        tail.contains("terminating connection due to administrator command")
            && tail.contains("\"big\""),
        "the stderr tail does not name the cause: {shown}"
    );
    assert_storage_empty(&repo, "after a terminated pg_dump").await;
    let left = processes_with(&["pg_dump", &source.name]);
    assert!(left.is_empty(), "pg_dump processes left behind: {left:?}");
}

// ---------------------------------------------------------------------------------------------
// 4. Preflight errors (RELIABILITY 4, 20)
// ---------------------------------------------------------------------------------------------

/// Runs a backup expected to fail in preflight; checks kind, class and zero storage writes.
async fn expect_preflight_failure(dumper: &PgDump, kind: DumpErrorKind) -> Error {
    let (storage, repo) = counting_repo(Duration::ZERO);
    let started = Instant::now();
    let err = backup(&repo, dumper, Compression::default())
        .await
        .expect_err("the backup must fail in preflight");
    assert_eq!(dump_kind(&err), Some(kind), "{}", everything_shown(&err));
    assert_eq!(err.class(), ErrorClass::Database, "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "preflight took {:?}",
        started.elapsed()
    );
    assert_eq!(
        storage.writers_opened(),
        0,
        "a failed preflight opened storage writers"
    );
    assert_storage_empty(&repo, "after a failed preflight").await;
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_missing_database_is_database_not_found() {
    let Some(pg) = pg15() else { return };
    let missing = unique("missing");
    let err = expect_preflight_failure(
        &PgDump::new(pg.conn(&missing), pg.locator()),
        DumpErrorKind::DatabaseNotFound,
    )
    .await;
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(
        everything_shown(&err).contains(&missing),
        "the error should name the database: {err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_wrong_password_is_auth_failed() {
    let Some(pg) = pg15() else { return };
    let wrong = format!("wrong-{}", unique("pw"));
    let conn = pg
        .conn_as("pgb_pw", "postgres")
        .with_password(wrong.as_str());
    let err = expect_preflight_failure(
        &PgDump::new(conn.clone(), pg.locator()),
        DumpErrorKind::AuthFailed,
    )
    .await;
    let shown = everything_shown(&err);
    assert!(err.to_string().contains("authentication failed"), "{shown}");
    assert!(
        shown.contains("pgb_pw"),
        "the error should name the user: {shown}"
    );
    assert!(
        !shown.contains(&wrong),
        "the password leaked into the error: {shown}"
    );
    // The same connection with the right password passes preflight: only the password was wrong.
    let prepared = PgDump::new(conn.with_password("pgb-test-secret"), pg.locator())
        .prepare()
        .await
        .expect("the right password works");
    assert_eq!(prepared.source().tool_major, 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_unreachable_host_is_unreachable() {
    let Some(pg) = pg15() else { return };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let conn =
        ConnConfig::parse(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).expect("URL");
    let err =
        expect_preflight_failure(&PgDump::new(conn, pg.locator()), DumpErrorKind::Unreachable)
            .await;
    let shown = everything_shown(&err);
    assert!(err.to_string().contains("unreachable"), "{shown}");
    assert!(
        shown.contains(&port.to_string()),
        "the error should name the server: {shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_pg_dump_older_than_server_is_version_mismatch() {
    let (Some(pg15), Some(pg17)) = (pg15(), pg17()) else {
        return;
    };
    // The 17 server, with nothing but PostgreSQL 15's tools.
    let err = expect_preflight_failure(
        &PgDump::new(pg17.conn("postgres"), pg15.locator()),
        DumpErrorKind::VersionMismatch,
    )
    .await;
    let msg = err.to_string();
    assert!(
        msg.contains("17") && msg.contains("15"),
        "must name both versions: {msg}"
    );
    assert!(msg.contains("pg_dump"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg17_backup_records_major_17_and_pg15_restore_is_refused_before_touching_target() {
    let (Some(pg15), Some(pg17)) = (pg15(), pg17()) else {
        return;
    };
    let source = pg17.create_db("pg17_src").await;
    pg17.psql(&source.name, RICH_FIXTURE).await;
    let expected = fingerprint(&pg17, &source.name).await;

    let repo = Repository::new(Arc::new(MemoryStorage::new()));
    let m = backup(
        &repo,
        &PgDump::new(pg17.conn(&source.name), pg17.locator()),
        Compression::Zstd { level: 3 },
    )
    .await
    .expect("backup of the 17 server with 17's pg_dump");
    assert_eq!(m.pg_dump_major, 17, "{m:?}");
    assert!(m.pg_dump_version.contains("17."), "{m:?}");
    assert!(m.server_version.starts_with("17."), "{m:?}");

    // Only 15's pg_restore: refused before the target is created.
    let target = pg17.adopt_db(&unique("pg17_target"));
    let spool = tempfile::tempdir().expect("spool");
    let old = PgRestore::new(pg17.conn(&target.name), pg15.locator(), spool.path());
    let err = restore(&repo, &m, &old, &RestoreOptions::new())
        .await
        .expect_err("pg_restore 15 cannot read a pg_dump 17 archive");
    assert_eq!(
        dump_kind(&err),
        Some(DumpErrorKind::VersionMismatch),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("17") && msg.contains("15"),
        "must name both versions: {msg}"
    );
    assert!(
        !pg17.db_exists(&target.name).await,
        "the refused restore created the target"
    );

    // With 17's tools it restores, identical in content.
    let new = PgRestore::new(pg17.conn(&target.name), pg17.locator(), spool.path());
    restore(&repo, &m, &new, &RestoreOptions::new())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "restore with 17's tools: {e} / {}",
                e.stderr_tail().unwrap_or("")
            )
        });
    if let Err(e) = compare(&expected, &fingerprint(&pg17, &target.name).await) {
        panic!("PostgreSQL 17 round trip differs:\n{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Restore safety (RELIABILITY 19, 16)
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_into_target_with_tables_needs_clean_and_clean_replaces() {
    let Some(pg) = pg15() else { return };
    let source = rich_db(&pg, "safe_src").await;
    let expected = fingerprint(&pg, &source.name).await;
    let repo = Repository::new(Arc::new(MemoryStorage::new()));
    let m = backup(
        &repo,
        &PgDump::new(pg.conn(&source.name), pg.locator()),
        Compression::Gzip { level: 6 },
    )
    .await
    .expect("backup");

    // A target holding a table of the same name, with other content.
    let target = pg.create_db("safe_target").await;
    pg.psql(
        &target.name,
        "create schema app; create table app.items (id int primary key, note text); \
         insert into app.items values (1, 'precious'), (2, 'data');",
    )
    .await;
    let before = fingerprint(&pg, &target.name).await;
    let spool = tempfile::tempdir().expect("spool");
    let restorer = PgRestore::new(pg.conn(&target.name), pg.locator(), spool.path());

    let err = restore(&repo, &m, &restorer, &RestoreOptions::new())
        .await
        .expect_err("a target with tables must be refused without clean");
    assert_eq!(
        dump_kind(&err),
        Some(DumpErrorKind::TargetNotEmpty),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Refused);
    assert!(
        err.to_string().contains(&target.name),
        "the message should name the target: {err}"
    );
    assert_eq!(
        fingerprint(&pg, &target.name).await,
        before,
        "the refused restore changed the target"
    );

    let report = restore(
        &repo,
        &m,
        &restorer,
        &RestoreOptions::new().with_clean(true),
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "restore with clean: {e} / {}",
            e.stderr_tail().unwrap_or("")
        )
    });
    assert!(!report.created, "{report:?}");
    if let Err(e) = compare(&expected, &fingerprint(&pg, &target.name).await) {
        panic!("the target was not replaced by the backup:\n{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_object_fails_restore_and_leaves_targets_untouched() {
    let Some(pg) = pg15() else { return };
    let source = rich_db(&pg, "flip_src").await;
    // A few MB more, so the archive spans many chunks and pg_restore receives data before the
    // checksum verdict.
    pg.psql(
        &source.name,
        "create table app.filler as select g as id, repeat(md5(g::text), 4) as t from generate_series(1, 40000) g;",
    )
    .await;

    let existing = pg.create_db("flip_existing").await;
    pg.psql(
        &existing.name,
        "create schema app; create table app.items (id int primary key, note text); \
         insert into app.items values (1, 'precious'), (2, 'data');",
    )
    .await;
    let before = fingerprint(&pg, &existing.name).await;

    for compression in [Compression::None, Compression::Zstd { level: 3 }] {
        let label = format!("{compression:?}");
        let dir = tempfile::tempdir().expect("repo dir");
        let fs = FsStorage::open(dir.path()).expect("open FsStorage");
        let repo = Repository::new(Arc::new(fs));
        let m = backup(
            &repo,
            &PgDump::new(pg.conn(&source.name), pg.locator()),
            compression,
        )
        .await
        .expect("backup");
        // Flip one byte in the middle of the data file, on disk.
        let path = dir.path().join(&m.dump().expect("dump").key);
        let mut bytes = std::fs::read(&path).expect("read data file");
        assert!(
            bytes.len() > 100_000,
            "{label}: archive too small to be interesting: {}",
            bytes.len()
        );
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x20;
        std::fs::write(&path, &bytes).expect("write data file");

        let spool = tempfile::tempdir().expect("spool");
        // Into the existing target, with clean: refused, and not a row changed.
        let restorer = PgRestore::new(pg.conn(&existing.name), pg.locator(), spool.path());
        let opts = RestoreOptions::new().with_clean(true);
        let err = restore(&repo, &m, &restorer, &opts)
            .await
            .expect_err("a corrupted object must not restore");
        assert_eq!(err.class(), ErrorClass::Integrity, "{label}: {err:?}");
        assert_eq!(
            fingerprint(&pg, &existing.name).await,
            before,
            "{label}: the failed restore changed the existing target"
        );

        // Into new databases, single job and parallel: they do not exist afterwards.
        for jobs in [1, 2] {
            let target = pg.adopt_db(&unique("flip_new"));
            let restorer = PgRestore::new(pg.conn(&target.name), pg.locator(), spool.path());
            let opts = RestoreOptions::new().with_jobs(jobs);
            let err = restore(&repo, &m, &restorer, &opts)
                .await
                .expect_err("a corrupted object must not restore");
            assert_eq!(
                err.class(),
                ErrorClass::Integrity,
                "{label}, jobs {jobs}: {err:?}"
            );
            assert!(
                !pg.db_exists(&target.name).await,
                "{label}, jobs {jobs}: the database created for the failed restore was not dropped"
            );
            assert_eq!(
                dir_entries(spool.path()),
                Vec::<PathBuf>::new(),
                "{label}, jobs {jobs}: spool left"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 6. CREATE DATABASE in a plain dump
// ---------------------------------------------------------------------------------------------

/// A dumper whose "dump" is fixed text, for crafting plain archives.
#[derive(Debug)]
struct TextDumper(&'static str);

#[derive(Debug)]
struct TextStream(Option<Bytes>);

#[async_trait]
impl Dumper for TextDumper {
    async fn prepare(&self) -> Result<Box<dyn PreparedDump>, DumpError> {
        Ok(Box::new(PreparedText(
            DumpSource::new(
                "crafted",
                "nowhere",
                "15.18",
                "pg_dump (PostgreSQL) 15.18",
                15,
                ArchiveFormat::Plain,
            ),
            self.0,
        )))
    }
}

#[derive(Debug)]
struct PreparedText(DumpSource, &'static str);

#[async_trait]
impl PreparedDump for PreparedText {
    fn source(&self) -> &DumpSource {
        &self.0
    }

    async fn start(self: Box<Self>) -> Result<Box<dyn DumpStream>, DumpError> {
        Ok(Box::new(TextStream(Some(Bytes::from_static(
            self.1.as_bytes(),
        )))))
    }
}

#[async_trait]
impl DumpStream for TextStream {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, DumpError> {
        Ok(self.0.take())
    }

    async fn abort(self: Box<Self>) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_dump_with_create_database_is_refused_unless_allowed() {
    let Some(pg) = pg15() else { return };
    let spool = tempfile::tempdir().expect("spool");
    let opts = RestoreOptions::new();
    let plain = ArchiveInfo::new(ArchiveFormat::Plain, 15);

    // Directly through the sink, in one chunk and split across two chunks.
    let splits: [&[&str]; 3] = [
        &["SELECT 1;\n", "\nCREATE DATABASE x;\n"],
        &["SELECT 1;\n\nCREATE DATA", "BASE x;\n"],
        &["CREATE DATABASE x;\n"],
    ];
    for chunks in splits {
        let target = pg.adopt_db(&unique("guard"));
        let restorer = PgRestore::new(pg.conn(&target.name), pg.locator(), spool.path());
        let mut sink = restorer.begin(&plain, &opts).await.expect("begin");
        let mut refused = None;
        for chunk in chunks {
            if let Err(e) = sink.write(Bytes::from_static(chunk.as_bytes())).await {
                refused = Some(e);
                break;
            }
        }
        let e = refused.unwrap_or_else(|| panic!("{chunks:?}: CREATE DATABASE was not refused"));
        assert_eq!(
            e.kind(),
            DumpErrorKind::CreatesDatabase,
            "{chunks:?}: {e:?}"
        );
        assert!(e.to_string().contains("CREATE DATABASE"), "{e}");
        sink.abort().await;
        assert!(
            !pg.db_exists(&target.name).await,
            "{chunks:?}: aborted restore left its database"
        );
    }

    // With allow_create the guard is off (the chunk is accepted; the sink is then aborted).
    let target = pg.adopt_db(&unique("guard_allowed"));
    let restorer = PgRestore::new(pg.conn(&target.name), pg.locator(), spool.path());
    let mut sink = restorer
        .begin(&plain, &opts.clone().with_allow_create(true))
        .await
        .expect("begin");
    sink.write(Bytes::from_static(b"SELECT 1;\n\nCREATE DATABASE x;\n"))
        .await
        .expect("allow_create accepts CREATE DATABASE");
    sink.abort().await;
    assert!(!pg.db_exists(&target.name).await);

    // End to end through a repository: refused, class Refused, no database left.
    let repo = Repository::new(Arc::new(MemoryStorage::new()));
    let m = Box::pin(repo.backup(
        &TextDumper("--\n-- crafted\n--\n\nCREATE DATABASE crafted_elsewhere;\n\\connect crafted_elsewhere\nSELECT 1;\n"),
        &BackupOptions::default(),
        &NoProgress,
    ))
    .await
    .expect("store the crafted archive");
    let target = pg.adopt_db(&unique("guard_repo"));
    let restorer = PgRestore::new(pg.conn(&target.name), pg.locator(), spool.path());
    let err = restore(&repo, &m, &restorer, &RestoreOptions::new())
        .await
        .expect_err("refused");
    assert_eq!(
        dump_kind(&err),
        Some(DumpErrorKind::CreatesDatabase),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Refused);
    assert!(!pg.db_exists(&target.name).await);
    assert!(!pg.db_exists("crafted_elsewhere").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_database_split_over_small_chunks_is_refused() {
    let Some(pg) = pg15() else { return };
    let spool = tempfile::tempdir().expect("spool");
    let target = pg.adopt_db(&unique("guard_small"));
    let restorer = PgRestore::new(pg.conn(&target.name), pg.locator(), spool.path());
    let mut sink = restorer
        .begin(
            &ArchiveInfo::new(ArchiveFormat::Plain, 15),
            &RestoreOptions::new(),
        )
        .await
        .expect("begin");
    let mut refused = false;
    for chunk in ["SELECT 1;\n", "\nCRE", "ATE DA", "TABASE x;\n"] {
        if sink
            .write(Bytes::from_static(chunk.as_bytes()))
            .await
            .is_err()
        {
            refused = true;
            break;
        }
    }
    sink.abort().await;
    assert!(
        refused,
        "CREATE DATABASE split over several small chunks was not refused"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Passwords never in argv, Debug or errors (RELIABILITY 27)
// ---------------------------------------------------------------------------------------------

/// Scans every process's argv (and, for our pg_dump, its environment) every few ms until stopped.
#[derive(Debug, Default)]
struct ArgvWatch {
    stop: AtomicBool,
    leaks: Mutex<BTreeSet<String>>,
    pg_dump_seen: AtomicBool,
    password_in_env: AtomicBool,
    scans: AtomicU64,
}

impl ArgvWatch {
    fn run(&self, canary: &str, db: &str) {
        let env_needle = format!("PGPASSWORD={canary}");
        while !self.stop.load(Ordering::SeqCst) {
            for (pid, cmd) in cmdlines() {
                if cmd.contains(canary) {
                    self.leaks
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(cmd.clone());
                }
                if cmd.contains("pg_dump") && cmd.contains(db) {
                    self.pg_dump_seen.store(true, Ordering::SeqCst);
                    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                    if String::from_utf8_lossy(&env)
                        .split('\0')
                        .any(|v| v == env_needle)
                    {
                        self.password_in_env.store(true, Ordering::SeqCst);
                    }
                }
            }
            self.scans.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_never_in_argv_debug_or_errors() {
    let Some(pg) = pg15() else { return };
    let canary = "canary-secret-xyz";
    // A role of our own whose password is the canary (scram over TCP), owning a small database.
    let role = TempRole::create(&pg, "canary", canary).await;
    let db = pg.create_db("canary_db").await;
    pg.psql(
        &db.name,
        &format!(
            "create table t (id int primary key, v text); insert into t select g, 'v' || g from generate_series(1, 1000) g; \
             alter table t owner to \"{0}\"; grant connect on database \"{1}\" to \"{0}\";",
            role.name, db.name
        ),
    )
    .await;
    let conn = pg.conn_as(&role.name, &db.name).with_password(canary);
    assert!(!format!("{conn:?}").contains(canary), "{conn:?}");
    assert!(!conn.redacted().contains(canary));
    let in_url = ConnConfig::parse(&format!("postgres://u:{canary}@127.0.0.1:1/d")).expect("URL");
    assert!(!format!("{in_url:?}").contains(canary) && !in_url.redacted().contains(canary));

    let watch = Arc::new(ArgvWatch::default());
    let scanner = {
        let watch = Arc::clone(&watch);
        let db_name = db.name.clone();
        std::thread::spawn(move || watch.run(canary, &db_name))
    };

    // A successful backup authenticated with the canary, and a restore of it.
    let (storage, repo) = counting_repo(Duration::ZERO);
    let dumper = PgDump::new(conn.clone(), pg.locator());
    assert!(!format!("{dumper:?}").contains(canary));
    let m = backup(&repo, &dumper, Compression::None)
        .await
        .unwrap_or_else(|e| panic!("backup as the canary role: {e}"));
    let target = pg.adopt_db(&unique("canary_target"));
    let spool = tempfile::tempdir().expect("spool");
    // The role cannot create databases: restore as postgres but hand the canary as password
    // anyway (trust ignores it; it must still stay out of argv).
    let restorer = PgRestore::new(
        pg.conn(&target.name).with_password(canary),
        pg.locator(),
        spool.path(),
    );
    assert!(!format!("{restorer:?}").contains(canary));
    restore(&repo, &m, &restorer, &RestoreOptions::new())
        .await
        .unwrap_or_else(|e| panic!("restore: {e}"));

    // Errors carrying the canary as password: wrong user/password, missing database,
    // unreachable server, non-empty restore target.
    let mut errors = Vec::new();
    let wrong = PgDump::new(
        pg.conn_as("pgb_pw", "postgres").with_password(canary),
        pg.locator(),
    );
    errors.push(
        backup(&repo, &wrong, Compression::None)
            .await
            .expect_err("wrong password"),
    );
    let missing = PgDump::new(
        pg.conn_as(&role.name, &unique("missing"))
            .with_password(canary),
        pg.locator(),
    );
    errors.push(
        backup(&repo, &missing, Compression::None)
            .await
            .expect_err("missing db"),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let closed =
        ConnConfig::parse(&format!("postgres://x:{canary}@127.0.0.1:{port}/d")).expect("URL");
    errors.push(
        backup(&repo, &PgDump::new(closed, pg.locator()), Compression::None)
            .await
            .expect_err("closed port"),
    );
    errors.push(
        restore(&repo, &m, &restorer, &RestoreOptions::new())
            .await
            .expect_err("target now has tables"),
    );

    watch.stop.store(true, Ordering::SeqCst);
    scanner.join().expect("scanner thread");

    let kinds: Vec<Option<DumpErrorKind>> = errors.iter().map(dump_kind).collect();
    assert_eq!(
        kinds,
        [
            Some(DumpErrorKind::AuthFailed),
            Some(DumpErrorKind::DatabaseNotFound),
            Some(DumpErrorKind::Unreachable),
            Some(DumpErrorKind::TargetNotEmpty)
        ]
    );
    for e in &errors {
        let shown = everything_shown(e);
        assert!(
            !shown.contains(canary),
            "the password leaked into an error: {shown}"
        );
    }
    let leaks = watch
        .leaks
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert!(leaks.is_empty(), "the password appeared in argv: {leaks:?}");
    assert!(
        watch.scans.load(Ordering::SeqCst) > 10,
        "the argv scanner barely ran"
    );
    assert!(
        watch.pg_dump_seen.load(Ordering::SeqCst),
        "the scanner never saw pg_dump running"
    );
    assert!(
        watch.password_in_env.load(Ordering::SeqCst),
        "pg_dump's environment did not hold PGPASSWORD (positive control)"
    );
    // Nothing stored (archive or manifest) holds it either.
    for meta in storage.list(None).await.expect("list") {
        let body = storage.get_bytes(&meta.key).await.expect("read");
        assert!(
            !body.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "{} contains the password",
            meta.key
        );
    }
    drop(target);
    drop(db);
    drop(role);
}
