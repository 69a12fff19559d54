//! Prune over physical backups and their archived WAL, on `MemoryStorage`: exactly the WAL the
//! kept backups need stays (the continuous WAL from the backup the recovery window needs, the
//! start-to-stop WAL of older backups kept by other rules, every history file), the rest is
//! deleted after the manifests, a dry run reports the same and deletes nothing, objects that
//! are not WAL files and the WAL of clusters without physical backups are never touched.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use pgb_core::retention::{Policy, parse_span};
use pgb_core::wal::{WalPushOptions, WalRetention};
use pgb_core::{
    BackupOptions, MemoryStorage, NoProgress, ObjectKey, PruneAction, PruneOptions, PruneReport,
    Repository, Storage, StorageExt, WriteOptions,
};
use pgb_testkit::{FakeDumper, FakeOutcome};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const SEG: u64 = 1 << 20;
const SYSID: u64 = 7_300_000_000_000_000_099;
const DAY0: OffsetDateTime = datetime!(2026-01-01 02:00 UTC);

/// A segment of 1 MiB with a valid first page header.
fn segment(timeline: u32, segno: u64) -> (String, Bytes) {
    let name = pgb_wal::WalFileName::segment(timeline, segno, SEG).to_string();
    (name, header(timeline, segno))
}

fn header(timeline: u32, segno: u64) -> Bytes {
    let mut d = vec![0u8; SEG as usize];
    d[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
    d[2..4].copy_from_slice(&pgb_wal::XLP_LONG_HEADER.to_le_bytes());
    d[4..8].copy_from_slice(&timeline.to_le_bytes());
    d[8..16].copy_from_slice(&(segno * SEG).to_le_bytes());
    d[24..32].copy_from_slice(&SYSID.to_le_bytes());
    d[32..36].copy_from_slice(&(SEG as u32).to_le_bytes());
    d[36..40].copy_from_slice(&8192u32.to_le_bytes());
    Bytes::from(d)
}

struct Fixture {
    storage: Arc<dyn Storage>,
    repo: Repository,
    /// Backup ids, oldest first.
    ids: Vec<String>,
}

fn opts() -> WalPushOptions {
    WalPushOptions::default().with_system_identifier(Some(SYSID))
}

async fn push(repo: &Repository, name: &str, data: Bytes) {
    repo.wal().push(name, data, &opts()).await.expect(name);
}

/// A physical backup of the cluster, `day` days after DAY0, from segment `start` (offset 0x28)
/// to segment `stop` (offset 0x100), ended a minute after it started: a fake backup whose
/// manifest is rewritten into a physical one, and its `.backup` history file archived.
async fn physical(f: &mut Fixture, day: i64, start: u64, stop: u64, labels: &[&str]) {
    let opts = labels
        .iter()
        .fold(BackupOptions::default(), |o, l| o.with_label(*l));
    let m = f
        .repo
        .backup(
            &FakeDumper::new(1000, FakeOutcome::Succeed),
            &opts,
            &NoProgress,
        )
        .await
        .unwrap();
    let key = ObjectKey::parse(&format!("backups/{}/manifest.json", m.id)).unwrap();
    let mut v: serde_json::Value =
        serde_json::from_slice(&f.storage.get_bytes(&key).await.unwrap()).unwrap();
    let started = DAY0 + Duration::days(day);
    let fmt = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let lsn = |n: u64, off: u64| pgb_wal::Lsn(n * SEG + off).to_string();
    let name = |n: u64| pgb_wal::WalFileName::segment(1, n, SEG).to_string();
    v["set"] = SYSID.to_string().into();
    v["database"] = "*".into();
    v["format"] = "physical".into();
    v["started_at"] = fmt(started).into();
    v["finished_at"] = fmt(started + Duration::minutes(1)).into();
    v["physical"] = serde_json::json!({
        "system_identifier": SYSID.to_string(),
        "timeline": 1,
        "start_lsn": lsn(start, 0x28),
        "stop_timeline": 1,
        "stop_lsn": lsn(stop, 0x100),
        "wal_segment_size": SEG,
        "wal": "archive",
        "start_wal_file": name(start),
        "stop_wal_file": name(stop),
        "stop_time": fmt(started + Duration::minutes(1)),
        "backup_manifest_sha256": "0".repeat(64),
        "files": 1000,
        "server_major": 17,
    });
    f.storage.delete(&key).await.unwrap();
    f.storage
        .put(
            &key,
            serde_json::to_vec(&v).unwrap().into(),
            WriteOptions::create_new(),
        )
        .await
        .unwrap();
    let history = format!("{}.00000028.backup", name(start));
    push(
        &f.repo,
        &history,
        Bytes::from_static(b"START WAL LOCATION\n"),
    )
    .await;
    f.ids.push(m.id.to_string());
}

/// Five backups 10 days apart (day 0, 10, 20, 30, 40), starting at segments 2, 6, 10, 14, 18,
/// the first labelled `keep`; segments 1 to 22 archived on timeline 1; two objects that are
/// not WAL files in the cluster's folder.
async fn fixture() -> Fixture {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let mut f = Fixture {
        storage: Arc::clone(&storage),
        repo: Repository::new(storage),
        ids: Vec::new(),
    };
    for n in 1..=22 {
        let (name, data) = segment(1, n);
        push(&f.repo, &name, data).await;
    }
    for (i, (start, stop)) in [(2, 3), (6, 6), (10, 11), (14, 14), (18, 18)]
        .into_iter()
        .enumerate()
    {
        let labels: &[&str] = if i == 0 { &["keep"] } else { &[] };
        physical(&mut f, 10 * i as i64, start, stop, labels).await;
    }
    for foreign in [
        "wal/7300000000000000099/00000001/README",
        "wal/7300000000000000099/notes.txt",
    ] {
        f.storage
            .put(
                &ObjectKey::parse(foreign).unwrap(),
                Bytes::from_static(b"not WAL"),
                WriteOptions::default(),
            )
            .await
            .unwrap();
    }
    f
}

/// Every WAL file name of the cluster still stored.
async fn archived(storage: &Arc<dyn Storage>) -> BTreeSet<String> {
    let prefix = ObjectKey::parse(&format!("wal/{SYSID}")).unwrap();
    storage
        .list(Some(&prefix))
        .await
        .unwrap()
        .iter()
        .map(|o| o.key.as_str().rsplit('/').next().unwrap().to_owned())
        .collect()
}

fn seg(n: u64) -> String {
    pgb_wal::WalFileName::segment(1, n, SEG).to_string()
}

fn backup_file(n: u64) -> String {
    format!("{}.00000028.backup", seg(n))
}

/// `(first, last, files, reason)` of each run.
fn runs(ranges: &[pgb_core::wal::WalRange]) -> Vec<(String, String, u64, Option<String>)> {
    ranges
        .iter()
        .map(|r| (r.first.clone(), r.last.clone(), r.files, r.reason.clone()))
        .collect()
}

fn actions(report: &PruneReport) -> Vec<(String, PruneAction, bool)> {
    report.sets[0]
        .decisions
        .iter()
        .map(|d| (d.id.to_string(), d.action, d.window_guard))
        .collect()
}

fn wal(report: &PruneReport) -> &WalRetention {
    assert_eq!(report.wal.len(), 1, "one cluster");
    &report.wal[0]
}

/// keep_last 2 + keep_within 15d + the label: the window starts on day 25 (the newest backup,
/// day 40, minus 15 days), which the day-20 backup reaches: it is kept by the window guard,
/// and the WAL from its start (segment 10) on; the labelled day-0 backup keeps segments 2 and
/// 3 (its start to stop); the day-10 backup goes, with segments 1 and 4 to 9.
#[tokio::test]
async fn prune_keeps_exactly_the_window_and_the_consistency_wal_of_older_kept_backups() {
    let mut f = fixture().await;
    let policy = Policy::default()
        .with_keep_last(2)
        .with_keep_within(parse_span("15d").unwrap())
        .with_keep_label("keep");
    let now = DAY0 + Duration::days(41);
    let all = archived(&f.storage).await;

    let dry = f
        .repo
        .prune(
            &policy,
            &PruneOptions::default().with_dry_run(true).with_now(now),
        )
        .await
        .unwrap();
    assert_eq!(archived(&f.storage).await, all, "a dry run deletes nothing");
    let ids = std::mem::take(&mut f.ids);
    assert_eq!(
        actions(&dry),
        [
            (ids[4].clone(), PruneAction::Keep, false),
            (ids[3].clone(), PruneAction::Keep, false),
            (ids[2].clone(), PruneAction::Keep, true),
            (ids[1].clone(), PruneAction::Remove, false),
            (ids[0].clone(), PruneAction::Keep, false),
        ]
    );
    let w = wal(&dry);
    assert_eq!(w.window.as_deref(), Some("15d"));
    assert_eq!(w.window_wanted_from, Some(DAY0 + Duration::days(25)));
    assert_eq!(
        w.window_backup.as_ref().map(ToString::to_string),
        Some(ids[2].clone())
    );
    assert_eq!(w.keep_from, Some(pgb_wal::Lsn(10 * SEG)));
    let window = format!("recovery window from backup {}", ids[2]);
    let start_stop = format!("start to stop of backup {}", ids[0]);
    assert_eq!(
        runs(&w.keep),
        [
            (seg(2), seg(3), 3, Some(start_stop)),
            (seg(10), seg(22), 16, Some(window)),
        ],
        "segments 2-3 with day 0's .backup file; 10-22 with three .backup files"
    );
    assert_eq!(
        runs(&w.delete),
        [(seg(1), seg(1), 1, None), (seg(4), seg(9), 7, None),],
        "segment 1, and 4 to 9 with day 10's .backup file"
    );
    assert_eq!(w.to_delete(), 8);
    assert_eq!(w.deleted_files, 0);
    assert_eq!(w.left_alone.len(), 2, "{:?}", w.left_alone);
    // Before: one range from day 0's end to the end of the archive; after: day 0 alone (its
    // own WAL), then the window from day 20's end, a gap between them.
    assert_eq!(w.before.len(), 1);
    let before = &w.before[0];
    assert!(before.gaps.is_empty());
    assert_eq!(before.ranges.len(), 1);
    assert_eq!(before.ranges[0].from_backup.to_string(), ids[0]);
    assert!(before.ranges[0].reaches_end);
    let after = &w.after[0];
    assert_eq!(after.ranges.len(), 2);
    assert_eq!(after.ranges[0].from_backup.to_string(), ids[0]);
    assert_eq!(after.ranges[0].to_segment.as_deref(), Some(seg(3).as_str()));
    assert!(!after.ranges[0].reaches_end);
    let last = after.window().expect("a window to the end");
    assert_eq!(last.from_backup.to_string(), ids[2]);
    assert_eq!(
        last.from_time,
        DAY0 + Duration::days(20) + Duration::minutes(1)
    );
    assert_eq!(last.backups.len(), 3);
    assert_eq!(after.gaps.len(), 1);
    assert_eq!(after.gaps[0].gap.first_missing, seg(4));
    assert_eq!(after.gaps[0].gap.last_missing, seg(9));
    assert_eq!(
        after.gaps[0]
            .affects
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [ids[0].clone()]
    );
    assert!(after.unrecoverable.is_empty());

    let real = f
        .repo
        .prune(&policy, &PruneOptions::default().with_now(now))
        .await
        .unwrap();
    assert_eq!(actions(&real), actions(&dry));
    let w = wal(&real);
    assert_eq!(runs(&w.delete), runs(&wal(&dry).delete));
    assert_eq!(w.deleted_files, 8);
    let left = archived(&f.storage).await;
    let gone: BTreeSet<String> = [seg(1), backup_file(6)]
        .into_iter()
        .chain((4..=9).map(seg))
        .collect();
    assert_eq!(
        left,
        all.difference(&gone).cloned().collect(),
        "exactly those deleted"
    );
    assert!(left.contains("README") && left.contains("notes.txt"));
    // Pruning again changes nothing.
    let again = f
        .repo
        .prune(&policy, &PruneOptions::default().with_now(now))
        .await
        .unwrap();
    assert_eq!(wal(&again).to_delete(), 0);
    assert_eq!(archived(&f.storage).await, left);
}

/// Without a window rule the WAL from the oldest kept backup to the end is kept.
#[tokio::test]
async fn without_a_window_the_wal_from_the_oldest_kept_backup_stays() {
    let f = fixture().await;
    let report = f
        .repo
        .prune(
            &Policy::default().with_keep_last(2),
            &PruneOptions::default().with_now(DAY0 + Duration::days(41)),
        )
        .await
        .unwrap();
    let w = wal(&report);
    assert_eq!(w.window, None);
    assert_eq!(
        w.window_backup.as_ref().map(ToString::to_string),
        Some(f.ids[3].clone())
    );
    assert_eq!(w.keep_from, Some(pgb_wal::Lsn(14 * SEG)));
    let left = archived(&f.storage).await;
    let wal_left: Vec<&String> = left.iter().filter(|n| n.starts_with("0000")).collect();
    let mut expected: Vec<String> = (14..=22).map(seg).collect();
    expected.extend([backup_file(14), backup_file(18)]);
    expected.sort();
    assert_eq!(wal_left, expected.iter().collect::<Vec<_>>());
    let after = &w.after[0];
    assert!(after.gaps.is_empty());
    assert_eq!(after.window().unwrap().from_backup.to_string(), f.ids[3]);
}

/// A server promoted from an older point writes timeline 2, forked at segment 5, and no
/// backup is on it yet (one may be running): its WAL stays from the fork; timeline 1's before
/// the window goes; the history file stays. Another cluster's WAL, with no physical backup,
/// and a logical set's prune never touch WAL.
#[tokio::test]
async fn a_new_timeline_without_a_backup_and_clusters_without_physical_backups_keep_their_wal() {
    let f = fixture().await;
    for n in 5..=8 {
        push(
            &f.repo,
            &pgb_wal::WalFileName::segment(2, n, SEG).to_string(),
            header(2, n),
        )
        .await;
    }
    let history = format!("1\t{}\tbefore 2026-01-05\n", pgb_wal::Lsn(5 * SEG + 0x200));
    push(&f.repo, "00000002.history", Bytes::from(history)).await;
    // Another cluster: WAL only.
    let other = WalPushOptions::default().with_system_identifier(Some(42));
    let mut d = header(1, 3).to_vec();
    d[24..32].copy_from_slice(&42u64.to_le_bytes());
    f.repo
        .wal()
        .push(&seg(3), Bytes::from(d), &other)
        .await
        .unwrap();
    // A logical set only: no WAL step at all.
    f.repo
        .backup(
            &FakeDumper::new(10, FakeOutcome::Succeed),
            &BackupOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap();
    let logical_set = f
        .repo
        .list()
        .await
        .unwrap()
        .backups
        .iter()
        .find(|m| m.physical.is_none())
        .unwrap()
        .retention_set();
    let report = f
        .repo
        .prune(
            &Policy::default().with_keep_last(1),
            &PruneOptions::default().with_sets([logical_set]),
        )
        .await
        .unwrap();
    assert!(report.wal.is_empty());

    let report = f
        .repo
        .prune(
            &Policy::default().with_keep_last(1),
            &PruneOptions::default().with_now(DAY0 + Duration::days(41)),
        )
        .await
        .unwrap();
    let w = wal(&report);
    assert_eq!(w.keep_from, Some(pgb_wal::Lsn(18 * SEG)));
    let tl2: Vec<_> = w
        .keep
        .iter()
        .filter(|r| r.timeline == 2)
        .map(|r| (r.first.clone(), r.last.clone(), r.reason.clone()))
        .collect();
    assert_eq!(
        tl2,
        [
            (
                pgb_wal::WalFileName::segment(2, 5, SEG).to_string(),
                pgb_wal::WalFileName::segment(2, 8, SEG).to_string(),
                Some("timeline 2 from its fork (the newest timeline)".to_owned())
            ),
            (
                "00000002.history".to_owned(),
                "00000002.history".to_owned(),
                Some("timeline history".to_owned())
            ),
        ]
    );
    assert!(w.delete.iter().all(|r| r.timeline == 1));
    let other = f
        .storage
        .list(Some(&ObjectKey::parse("wal/42").unwrap()))
        .await
        .unwrap();
    assert_eq!(other.len(), 1, "the other cluster's WAL is untouched");
}

/// The window follows a timeline's history: timeline 2 forked from 1 inside segment 20 and
/// holds 20 to 24; restores from every backup (all before the fork) reach its end through
/// timeline 1's segments up to the fork. Timeline 2's segment 22 missing cuts all of them at
/// the gap; timeline 1 keeps its own window to its end.
#[tokio::test]
async fn the_window_follows_the_timeline_history_and_names_the_gaps_and_backups_they_cut() {
    let f = fixture().await;
    for n in 20..=24 {
        push(
            &f.repo,
            &pgb_wal::WalFileName::segment(2, n, SEG).to_string(),
            header(2, n),
        )
        .await;
    }
    let history = format!(
        "1\t{}\tno recovery target specified\n",
        pgb_wal::Lsn(20 * SEG + 0x200)
    );
    push(&f.repo, "00000002.history", Bytes::from(history)).await;
    let listing = f.repo.list().await.unwrap();
    let windows = f
        .repo
        .recoverable_windows(&listing, pgb_core::wal::CommitTimes::Newest)
        .await
        .unwrap();
    assert_eq!(windows.len(), 1);
    let w = &windows[0];
    assert_eq!(w.backups, 5);
    assert_eq!(w.foreign.len(), 2);
    // Fake segments hold no records: no commit to read, and it says so.
    assert!(w.newest_commit.is_none());
    assert!(
        w.commit_problem
            .as_deref()
            .unwrap()
            .contains("no commit in the newest 8")
    );
    let tl: Vec<(u32, usize, bool, usize)> = w
        .timelines
        .iter()
        .map(|t| {
            (
                t.timeline,
                t.ranges.len(),
                t.window().is_some(),
                t.gaps.len(),
            )
        })
        .collect();
    assert_eq!(tl, [(1, 1, true, 0), (2, 1, true, 0)]);
    let t2 = &w.timelines[1];
    assert_eq!(t2.forked_from.as_ref().unwrap().parent, 1);
    let r = t2.window().unwrap();
    assert_eq!(r.from_backup.to_string(), f.ids[0]);
    assert_eq!(r.backups.len(), 5);
    assert_eq!(r.to_segment.as_deref(), Some("000000020000000000000018"));
    assert_eq!(r.to_lsn, pgb_wal::Lsn(25 * SEG));

    f.storage
        .delete(
            &ObjectKey::parse(&format!("wal/{SYSID}/00000002/000000020000000000000016")).unwrap(),
        )
        .await
        .unwrap();
    let listing = f.repo.list().await.unwrap();
    let w = f
        .repo
        .recoverable_windows(&listing, pgb_core::wal::CommitTimes::Skip)
        .await
        .unwrap()
        .remove(0);
    let t2 = &w.timelines[1];
    assert!(t2.window().is_none(), "{t2:?}");
    assert_eq!(t2.gaps.len(), 1);
    assert_eq!(t2.gaps[0].gap.first_missing, "000000020000000000000016");
    assert_eq!(t2.gaps[0].gap.timeline, 2);
    assert_eq!(
        t2.gaps[0].affects.len(),
        5,
        "every backup's restore stops there"
    );
    assert_eq!(
        t2.ranges[0].to_segment.as_deref(),
        Some("000000020000000000000015")
    );
    assert!(
        w.timelines[0].window().is_some(),
        "timeline 1 is whole to its end"
    );
    assert!(w.timelines[0].unrecoverable.is_empty());
}

/// Encrypted WAL: without the identity the window is still computed from the listing, and the
/// newest commit is unknown with the reason (a check turns that into UNKNOWN); with it, the
/// segments are read.
#[tokio::test]
async fn encrypted_wal_is_read_for_commit_times_only_with_the_identity() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let repo = Repository::new(Arc::clone(&storage));
    let (identity, recipient) = pgb_core::generate_identity();
    let enc = pgb_core::Encryption::to_recipients([recipient]).unwrap();
    let opts = opts().with_encryption(Some(enc));
    for n in 1..=3 {
        let (name, data) = segment(1, n);
        repo.wal().push(&name, data, &opts).await.unwrap();
    }
    let listing = repo.list().await.unwrap();
    let times = pgb_core::wal::CommitTimes::Newest;
    let w = repo
        .recoverable_windows(&listing, times)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        w.timelines[0].last_segment.as_deref(),
        Some(seg(3).as_str())
    );
    let problem = w.commit_problem.unwrap();
    assert!(problem.starts_with("cannot read archived WAL"), "{problem}");
    let keys = pgb_core::Decryption::none()
        .with_identity_file_contents(&identity)
        .unwrap();
    let repo = Repository::new(storage).with_decryption(keys);
    let w = repo
        .recoverable_windows(&listing, times)
        .await
        .unwrap()
        .remove(0);
    let problem = w.commit_problem.unwrap();
    assert!(
        problem.starts_with("no commit in the newest 8"),
        "{problem}"
    );
}
