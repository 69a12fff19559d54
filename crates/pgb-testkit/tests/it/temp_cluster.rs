//! `TempCluster` against real PostgreSQL 15 and 17: a server of its own that archives WAL,
//! and a restored base backup adopted, recovering from that archive to a restore point (or
//! failing to, and stopping).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pgb_testkit::{TempCluster, make_shared_dir, require_or_skip};

const WAIT: Duration = Duration::from_secs(120);

fn bin(major: &str) -> Option<PathBuf> {
    let var = format!("PGB_TEST_PG{major}_BIN");
    match std::env::var_os(&var) {
        Some(v) => Some(PathBuf::from(v)),
        None => require_or_skip(&format!("PostgreSQL {major}"), &format!("{var} is not set")),
    }
}

fn archiving(archive: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("archive_mode", "on".to_owned()),
        ("archive_command", format!("cp %p {}/%f", archive.display())),
    ]
}

fn settings<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn archives_wal_and_keeps_data_across_restart(major: &str) {
    let Some(bin) = bin(major) else { return };
    let archive = make_shared_dir().expect("archive dir");
    let conf = archiving(archive.path());
    let mut pg = TempCluster::init(&bin, &settings(&conf)).expect("init");
    assert!(
        pg.url()
            .starts_with(&format!("postgres://postgres@127.0.0.1:{}/", pg.port()))
    );
    let version = pg.psql("show server_version_num").expect("version");
    assert!(version.starts_with(major), "{version}");
    assert_eq!(pg.psql("show wal_level").unwrap(), "replica");
    assert_eq!(pg.psql("show archive_mode").unwrap(), "on");
    pg.psql("create table t(i int, s text); insert into t values (1, 'one'), (2, 'two')")
        .expect("create and insert");
    assert_eq!(
        pg.psql("select string_agg(s, ',' order by i) from t")
            .unwrap(),
        "one,two"
    );
    let sysid = pg.system_identifier().expect("system identifier");
    assert_ne!(sysid, 0);

    let segment = pg.switch_wal_and_wait_archived(WAIT).expect("archived");
    assert_eq!(segment.len(), 24, "{segment}");
    let archived = archive.path().join(&segment);
    let meta = std::fs::metadata(&archived).expect("the switched segment is in the archive");
    assert_eq!(meta.len(), 16 * 1024 * 1024);
    let lsn = pg.switch_wal().expect("switch");
    assert!(lsn.contains('/'), "{lsn}");

    pg.stop().expect("stop");
    assert!(!pg.is_running().unwrap());
    assert!(pg.psql("select 1").is_err(), "stopped server answered");
    pg.start().expect("start again");
    assert_eq!(pg.psql("select count(*) from t").unwrap(), "2");
    assert_eq!(pg.system_identifier().unwrap(), sysid);
    assert!(
        pg.log()
            .contains("database system is ready to accept connections")
    );

    let data = pg.data_dir().to_path_buf();
    drop(pg);
    assert!(!data.exists(), "drop removes the data directory it created");
}

#[test]
fn pg15_archives_wal_and_keeps_data_across_restart() {
    archives_wal_and_keeps_data_across_restart("15");
}

#[test]
fn pg17_archives_wal_and_keeps_data_across_restart() {
    archives_wal_and_keeps_data_across_restart("17");
}

/// A base backup of `pg` (`pg_basebackup -X none`: its WAL comes from the archive) in a new
/// temporary directory; returns (the temporary directory, the data directory in it).
fn base_backup(pg: &TempCluster) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let out = Command::new(pg.bin_dir().join("pg_basebackup"))
        .args(["-X", "none", "-c", "fast", "-d"])
        .arg(pg.url())
        .arg("-D")
        .arg(&data)
        .output()
        .expect("pg_basebackup");
    assert!(
        out.status.success(),
        "pg_basebackup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, data)
}

/// Server A archives; a base backup, then rows 2 (before the restore point) and 3 (after).
fn source_with_restore_point(
    bin: &Path,
    archive: &Path,
) -> (TempCluster, tempfile::TempDir, PathBuf) {
    let conf = archiving(archive);
    let pg = TempCluster::init(bin, &settings(&conf)).expect("init");
    pg.psql("create table t(i int); insert into t values (1)")
        .unwrap();
    let (dir, data) = base_backup(&pg);
    pg.psql("insert into t values (2)").unwrap();
    pg.psql("select pg_create_restore_point('before_three')")
        .unwrap();
    pg.psql("insert into t values (3)").unwrap();
    pg.switch_wal_and_wait_archived(WAIT).expect("archived");
    (pg, dir, data)
}

fn recovery(archive: &Path, target: &str) -> Vec<(&'static str, String)> {
    vec![
        ("restore_command", format!("cp {}/%f %p", archive.display())),
        ("recovery_target_name", target.to_owned()),
        ("recovery_target_action", "promote".to_owned()),
        ("archive_mode", "off".to_owned()),
        ("hot_standby", "off".to_owned()),
    ]
}

fn adopted_backup_recovers_to_a_restore_point(major: &str) {
    let Some(bin) = bin(major) else { return };
    let archive = make_shared_dir().expect("archive dir");
    let (source, _dir, data) = source_with_restore_point(&bin, archive.path());
    std::fs::write(data.join("recovery.signal"), "").unwrap();
    let conf = recovery(archive.path(), "before_three");
    let restored = TempCluster::adopt(&bin, &data, &settings(&conf)).expect("adopt");
    assert_ne!(restored.port(), source.port());
    restored.wait_until_promoted(WAIT).expect("promoted");
    assert_eq!(
        restored
            .psql("select string_agg(i::text, ',' order by i) from t")
            .unwrap(),
        "1,2"
    );
    assert_eq!(
        restored.system_identifier().unwrap(),
        source.system_identifier().unwrap()
    );
    assert!(
        data.join("pg_wal/00000002.history").exists(),
        "promotion starts timeline 2"
    );
    drop(restored);
    assert!(
        data.exists(),
        "an adopted data directory stays the caller's"
    );
}

#[test]
fn pg15_adopted_backup_recovers_to_a_restore_point() {
    adopted_backup_recovers_to_a_restore_point("15");
}

#[test]
fn pg17_adopted_backup_recovers_to_a_restore_point() {
    adopted_backup_recovers_to_a_restore_point("17");
}

fn recovery_to_a_missing_target_stops_with_fatal(major: &str) {
    let Some(bin) = bin(major) else { return };
    let archive = make_shared_dir().expect("archive dir");
    let (_source, _dir, data) = source_with_restore_point(&bin, archive.path());
    std::fs::write(data.join("recovery.signal"), "").unwrap();
    let conf = recovery(archive.path(), "no_such_point");
    let mut restored = TempCluster::adopt(&bin, &data, &settings(&conf)).expect("adopt");
    assert!(
        restored.wait_until_stopped(WAIT).expect("status"),
        "recovery past the end of the archive stops the server; log:\n{}",
        restored.log()
    );
    let log = restored.log();
    assert!(
        log.contains("FATAL:  recovery ended before configured recovery target was reached"),
        "{log}"
    );
    assert!(
        restored
            .wait_until_promoted(Duration::from_secs(1))
            .is_err()
    );
}

#[test]
fn pg15_recovery_to_a_missing_target_stops_with_fatal() {
    recovery_to_a_missing_target_stops_with_fatal("15");
}

#[test]
fn pg17_recovery_to_a_missing_target_stops_with_fatal() {
    recovery_to_a_missing_target_stops_with_fatal("17");
}
