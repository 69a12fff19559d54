//! The WAL readers against WAL written by real PostgreSQL 15 and 17 servers: every commit a
//! workload made is found with its xid and the very commit time the server recorded
//! (`track_commit_timestamp`), prepared transactions by their prepared xid, the restore point
//! by its name, every archived segment checks against its name, a recycled tail is not read,
//! and the history file of a promotion parses to the timeline that holds each position.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pgb_testkit::{TempCluster, make_shared_dir, require_or_skip};
use pgb_wal::{
    InvalidWal, Lsn, ScanEnd, SegmentScan, TimelineHistory, WalFileKind, WalFileName, WalScanner,
    XactKind, check_segment, parse_pg_control, pg_major_of_magic, scan_segment,
    system_identifier_from_pg_control,
};

const WAIT: Duration = Duration::from_secs(120);
/// Microseconds since 2000-01-01 of a timestamptz expression, exactly (numeric epoch).
fn pg_micros(expr: &str) -> String {
    format!("((extract(epoch from {expr}) * 1000000)::bigint - 946684800000000)")
}

fn bin(major: &str) -> Option<PathBuf> {
    let var = format!("PGB_TEST_PG{major}_BIN");
    match std::env::var_os(&var) {
        Some(v) => Some(PathBuf::from(v)),
        None => require_or_skip(&format!("PostgreSQL {major}"), &format!("{var} is not set")),
    }
}

fn archive_settings(archive: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("archive_mode", "on".into()),
        ("archive_command", format!("cp %p {}/%f", archive.display())),
    ]
}

fn as_refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The archived segments, by name, in WAL order.
fn segments(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter_map(|e| {
            let name = e.file_name().into_string().unwrap();
            let parsed: WalFileName = name.parse().ok()?;
            (parsed.kind() == WalFileKind::Segment)
                .then(|| (name, std::fs::read(e.path()).unwrap()))
        })
        .collect()
}

fn lsn(s: &str) -> Lsn {
    s.trim().parse().unwrap()
}

/// What the workload recorded about one committed transaction, inside it.
#[derive(Debug)]
struct Recorded {
    xid: u32,
    /// `clock_timestamp()` inside the transaction, µs since 2000.
    clock: i64,
    /// `pg_current_wal_insert_lsn()` inside the transaction.
    lsn: Lsn,
}

struct Workload {
    committed: Vec<Recorded>,
    /// (xid, prepared-and-committed), (xid, prepared-and-rolled-back), plain abort xid.
    commit_prepared: u32,
    rollback_prepared: u32,
    aborted: u32,
    restore_point_end: Lsn,
    clock_before_rp: i64,
    clock_after_rp: i64,
}

fn run_workload(pg: &TempCluster) -> Workload {
    pg.psql(
        "create table t(i int, x text); \
         create table log(i int, xid bigint, clock bigint, lsn pg_lsn); \
         create table big(i int, x text)",
    )
    .unwrap();
    for i in 1..=20 {
        // Some rows several pages long (records cross pages), one transaction per call.
        let n = if i % 5 == 0 { 600 } else { 2 };
        pg.psql(&format!(
            "insert into t select {i}, (select string_agg(md5((g * {i})::text), '') \
               from generate_series(1, {n}) g); \
             insert into log select {i}, txid_current(), {}, pg_current_wal_insert_lsn()",
            pg_micros("clock_timestamp()")
        ))
        .unwrap();
        if i == 10 {
            // Enough WAL for records to cross segment boundaries.
            pg.psql(
                "insert into big select g, repeat(md5(g::text), 8) \
                 from generate_series(1, 150000) g",
            )
            .unwrap();
        }
    }
    pg.psql("begin; insert into t values (-1); prepare transaction 'p1'")
        .unwrap();
    let commit_prepared: u32 = pg
        .psql("select transaction from pg_prepared_xacts where gid = 'p1'")
        .unwrap()
        .parse()
        .unwrap();
    pg.psql("commit prepared 'p1'").unwrap();
    pg.psql("begin; insert into t values (-2); prepare transaction 'p2'")
        .unwrap();
    let rollback_prepared: u32 = pg
        .psql("select transaction from pg_prepared_xacts where gid = 'p2'")
        .unwrap()
        .parse()
        .unwrap();
    pg.psql("rollback prepared 'p2'").unwrap();
    let out = pg
        .psql("begin; insert into t values (-3); select txid_current(); rollback")
        .unwrap();
    let aborted: u32 = out
        .lines()
        .find_map(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("no xid in {out:?}"));
    let clock_before_rp: i64 = pg
        .psql(&format!("select {}", pg_micros("clock_timestamp()")))
        .unwrap()
        .parse()
        .unwrap();
    let restore_point_end = lsn(&pg
        .psql("select pg_create_restore_point('before_drop')")
        .unwrap());
    let clock_after_rp: i64 = pg
        .psql(&format!("select {}", pg_micros("clock_timestamp()")))
        .unwrap()
        .parse()
        .unwrap();
    pg.psql("drop table big").unwrap();
    let rows = pg
        .psql("select xid, clock, lsn from log order by i")
        .unwrap();
    let committed = rows
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            Recorded {
                xid: f[0].parse().unwrap(),
                clock: f[1].parse().unwrap(),
                lsn: lsn(f[2]),
            }
        })
        .collect();
    Workload {
        committed,
        commit_prepared,
        rollback_prepared,
        aborted,
        restore_point_end,
        clock_before_rp,
        clock_after_rp,
    }
}

/// Scans the archived segments one after another, from the first.
fn scan_all(segs: &BTreeMap<String, Vec<u8>>) -> SegmentScan {
    let mut scanner = WalScanner::new();
    for bytes in segs.values() {
        scanner.push(bytes).unwrap();
    }
    scanner.finish().unwrap()
}

fn base_backup(pg: &TempCluster) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(pg.bin_dir().join("pg_basebackup"))
        .args(["-X", "none", "-c", "fast", "-d"])
        .arg(pg.url())
        .arg("-D")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, data)
}

fn real_wal_reads_as_the_server_wrote_it(major: &str, magic: u16) {
    let Some(bin) = bin(major) else { return };
    let archive = make_shared_dir().unwrap();
    let mut conf = archive_settings(archive.path());
    conf.extend([
        ("track_commit_timestamp", "on".to_owned()),
        ("max_prepared_transactions", "2".to_owned()),
        // Compressed full-page images with holes, in the block headers the reader walks.
        ("wal_compression", "pglz".to_owned()),
    ]);
    let pg = TempCluster::init(&bin, &as_refs(&conf)).unwrap();
    let sysid = pg.system_identifier().unwrap();
    let (_backup_dir, backup) = base_backup(&pg);
    let w = run_workload(&pg);
    pg.switch_wal_and_wait_archived(WAIT).unwrap();

    // pg_control of the base backup names the same system.
    let control = std::fs::read(backup.join("global/pg_control")).unwrap();
    assert_eq!(system_identifier_from_pg_control(&control).unwrap(), sysid);
    let c = parse_pg_control(&control).unwrap();
    let layout = c.layout.expect("a layout pgb knows");
    assert_eq!(layout.wal_segment_size, 16 << 20);
    assert_eq!(layout.wal_block_size, 8192);
    assert_eq!(layout.checkpoint_timeline, 1);

    // Every archived segment checks against its name.
    let segs = segments(archive.path());
    assert!(segs.len() >= 4, "{:?}", segs.keys());
    let mut continuing = 0;
    for (name, bytes) in &segs {
        let h =
            check_segment(bytes, &name.parse().unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(h.magic, magic, "{name}");
        assert_eq!(pg_major_of_magic(h.magic), Some(major.parse().unwrap()));
        assert_eq!(h.system_identifier, sysid);
        assert_eq!(
            (h.segment_size, h.block_size, h.timeline),
            (16 << 20, 8192, 1)
        );
        // Each alone reads without error: it ends at a switch, or inside a record that
        // continues in the next segment.
        let s = scan_segment(bytes).unwrap();
        assert!(
            matches!(s.end, ScanEnd::EndOfInput | ScanEnd::Continues),
            "{name}: {:?}",
            s.end
        );
        continuing += usize::from(s.continues());
    }
    assert!(
        continuing >= 1,
        "a record crosses a segment boundary in {} segments",
        segs.len()
    );
    // Renamed, a segment no longer checks.
    let (first, bytes) = segs.iter().next().unwrap();
    let next = first
        .parse::<WalFileName>()
        .unwrap()
        .next_segment(16 << 20)
        .unwrap();
    assert!(check_segment(bytes, &next).is_err());

    let s = scan_all(&segs);
    assert!(
        !s.switches.is_empty() && s.end == ScanEnd::EndOfInput,
        "{:?} after {} records",
        s.end,
        s.records
    );
    let by_xid: BTreeMap<u32, _> = s.transactions.iter().map(|x| (x.xid, x)).collect();
    for (i, r) in w.committed.iter().enumerate() {
        let x = by_xid
            .get(&r.xid)
            .unwrap_or_else(|| panic!("xid {} not among the commits read", r.xid));
        assert_eq!(x.kind, XactKind::Commit);
        // The exact time the server recorded for the commit.
        let recorded: i64 = pg
            .psql(&format!(
                "select {}",
                pg_micros(&format!("pg_xact_commit_timestamp('{}'::xid)", r.xid))
            ))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(x.timestamp, recorded, "xid {}", r.xid);
        assert!(
            x.timestamp >= r.clock,
            "commit after its transaction's clock"
        );
        assert!(
            x.lsn > r.lsn,
            "commit record after the transaction's own WAL"
        );
        if let Some(next) = w.committed.get(i + 1) {
            assert!(x.timestamp <= next.clock && x.end <= next.lsn);
        }
    }
    let cp = by_xid[&w.commit_prepared];
    assert_eq!(cp.kind, XactKind::CommitPrepared);
    let rp = by_xid[&w.rollback_prepared];
    assert_eq!(rp.kind, XactKind::AbortPrepared);
    let ab = by_xid[&w.aborted];
    assert_eq!(ab.kind, XactKind::Abort);
    assert!(cp.lsn < rp.lsn && rp.lsn < ab.lsn);

    assert_eq!(s.restore_points.len(), 1, "{:?}", s.restore_points);
    let point = &s.restore_points[0];
    assert_eq!(point.name, "before_drop");
    assert_eq!(
        point.end, w.restore_point_end,
        "pg_create_restore_point returns its end"
    );
    assert!(w.clock_before_rp <= point.timestamp && point.timestamp <= w.clock_after_rp);
    assert!(point.lsn > ab.lsn);

    recycled_tail_is_not_read(&segs, &s);
    live_segment_ends_where_the_server_stopped_writing(&pg);
    promotion_history(&bin, &backup, archive.path(), point.lsn, point.end, sysid);
}

/// A segment whose first pages hold new WAL and whose later pages still hold an older
/// segment's (what recycling leaves): only the new records are read.
fn recycled_tail_is_not_read(segs: &BTreeMap<String, Vec<u8>>, all: &SegmentScan) {
    // Two segments full of WAL (the bulk insert's).
    let full: Vec<&Vec<u8>> = segs
        .values()
        .filter(|b| scan_segment(b).unwrap().continues())
        .collect();
    assert!(full.len() >= 2, "{} full segments", full.len());
    let (old, new) = (full[0], full[1]);
    let cut = 64 * 8192;
    let mut recycled = new[..cut].to_vec();
    recycled.extend_from_slice(&old[cut..]);
    let s = scan_segment(&recycled).unwrap();
    let start = s.start;
    match &s.end {
        ScanEnd::Invalid {
            at,
            reason: InvalidWal::PageAddress { found, expected },
        } => {
            assert_eq!(expected.0, start.0 + cut as u64);
            assert_ne!(found, expected);
            assert!(at.0 <= start.0 + cut as u64);
        }
        other => panic!("{other:?}"),
    }
    assert!(s.end_of_valid.0 <= start.0 + cut as u64);
    // The same transactions as the whole run up to the cut, none from the old pages.
    let expected: Vec<_> = all
        .transactions
        .iter()
        .filter(|x| x.lsn >= start && x.end <= s.end_of_valid)
        .collect();
    assert_eq!(s.transactions.iter().collect::<Vec<_>>(), expected);
}

/// The segment the server is writing: a commit made just now is read, and the scan ends
/// where the written WAL ends (zeros, or a page from before the segment was recycled).
fn live_segment_ends_where_the_server_stopped_writing(pg: &TempCluster) {
    // Checkpoints recycle the archived segments into future ones.
    pg.psql("checkpoint").unwrap();
    pg.switch_wal().unwrap();
    pg.psql("checkpoint").unwrap();
    let out = pg
        .psql("create table live(i int); insert into live values (1); select txid_current()")
        .unwrap();
    let xid: u32 = out.lines().last().unwrap().parse().unwrap();
    let name = pg
        .psql("select pg_walfile_name(pg_current_wal_insert_lsn())")
        .unwrap();
    let insert = lsn(&pg.psql("select pg_current_wal_insert_lsn()").unwrap());
    let bytes = std::fs::read(pg.data_dir().join("pg_wal").join(&name)).unwrap();
    check_segment(&bytes, &name.parse().unwrap()).unwrap();
    let s = scan_segment(&bytes).unwrap();
    assert!(s.commits().any(|x| x.xid == xid), "{:?}", s.transactions);
    assert!(
        matches!(
            &s.end,
            ScanEnd::Invalid {
                reason: InvalidWal::ZeroLength | InvalidWal::PageAddress { .. },
                ..
            }
        ),
        "{:?}",
        s.end
    );
    assert!(s.end_of_valid <= insert, "{} > {insert}", s.end_of_valid);
}

/// The base backup recovered to the restore point and promoted: timeline 2's history file
/// says timeline 1 holds the WAL before the restore point's end, and timeline 2's first
/// segment checks against its name although its first page may be timeline 1's.
fn promotion_history(
    bin: &Path,
    backup: &Path,
    archive: &Path,
    rp_lsn: Lsn,
    rp_end: Lsn,
    sysid: u64,
) {
    let archive2 = make_shared_dir().unwrap();
    std::fs::write(backup.join("recovery.signal"), "").unwrap();
    let mut conf = vec![
        ("restore_command", format!("cp {}/%f %p", archive.display())),
        ("recovery_target_name", "before_drop".to_owned()),
        ("recovery_target_action", "promote".to_owned()),
        ("max_prepared_transactions", "2".to_owned()),
    ];
    conf.extend(archive_settings(archive2.path()));
    let restored = TempCluster::adopt(bin, backup, &as_refs(&conf)).unwrap();
    restored.wait_until_promoted(WAIT).unwrap();
    restored
        .psql("create table after_promotion(i int)")
        .unwrap();
    restored.switch_wal_and_wait_archived(WAIT).unwrap();

    let text = std::fs::read_to_string(archive2.path().join("00000002.history")).unwrap();
    let h = TimelineHistory::parse(2, &text).unwrap();
    assert_eq!(h.entries.len(), 1, "{text}");
    assert_eq!(h.entries[0].parent, 1);
    assert_eq!(h.entries[0].switch_point, rp_end, "{text}");
    assert!(h.entries[0].reason.contains("before_drop"), "{text}");
    assert_eq!(h.timeline_at(rp_lsn), 1);
    assert_eq!(h.timeline_at(rp_end), 2);
    assert!(h.leads_to(1, rp_lsn) && !h.leads_to(1, rp_end));

    let segs = segments(archive2.path());
    let tl2: Vec<_> = segs
        .iter()
        .filter(|(n, _)| n.starts_with("00000002"))
        .collect();
    assert!(!tl2.is_empty(), "{:?}", segs.keys());
    for (name, bytes) in &tl2 {
        let hdr =
            check_segment(bytes, &name.parse().unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(hdr.timeline <= 2);
        assert_eq!(hdr.system_identifier, sysid);
    }
    let s = scan_segment(tl2[0].1).unwrap();
    assert!(s.end_of_valid > rp_end, "WAL written on timeline 2");
    assert!(!matches!(s.end, ScanEnd::Invalid { .. }), "{:?}", s.end);
}

#[test]
fn pg15_real_wal_reads_as_the_server_wrote_it() {
    real_wal_reads_as_the_server_wrote_it("15", 0xD110);
}

#[test]
fn pg17_real_wal_reads_as_the_server_wrote_it() {
    real_wal_reads_as_the_server_wrote_it("17", 0xD116);
}
