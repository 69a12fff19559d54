//! A sample repository with a history, written the way pgb writes one (manifests, data
//! objects, drill and verification records sealed with their sha256, the WAL archive's layout):
//! two sets backed up daily for weeks, drills against RTO/RPO targets (two failed), passed
//! verifications, an unusable manifest, an altered drill record, archived WAL with a gap and
//! physical base backups on both sides of it.
//! Data objects are sparse files of the manifest's size, so a 1.3 GiB backup costs no disk.
//!
//! Dates are relative to now, so a report `--since 90d` covers all of it; what pgb reads back is
//! compared with what the report shows, never with this module's numbers.

use std::fs;
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The server of both sets (a job's `database` URL naming it gives the same set).
pub const SERVER: &str = "db.example:5432";
/// The sets written.
pub const SETS: [&str; 2] = ["db.example:5432/billing", "db.example:5432/shop"];
/// The WAL archive's cluster.
pub const SYSTEM_ID: &str = "7301234567890123456";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn compact(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// An evidence record as pgb seals it: the sha256 of the compact body.
fn record(kind: &str, body: &Value) -> Vec<u8> {
    let sealed = serde_json::to_vec(body).unwrap();
    let env = json!({
        "format_version": 1,
        "kind": kind,
        "body": body,
        "sha256": hex(&Sha256::digest(&sealed)),
    });
    serde_json::to_vec_pretty(&env).unwrap()
}

struct Set {
    database: &'static str,
    days: i64,
    base: u64,
    growth: u64,
    duration: u64,
}

/// Writes the sample repository into `root` (a local repository directory).
pub fn write_repository(root: &Path) {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let today = now.replace_time(time::macros::time!(2:30));
    let sets = [
        Set {
            database: "billing",
            days: 14,
            base: 180 << 20,
            growth: 2 << 20,
            duration: 42,
        },
        Set {
            database: "shop",
            days: 30,
            base: 1200 << 20,
            growth: 6 << 20,
            duration: 310,
        },
    ];
    for (si, s) in sets.iter().enumerate() {
        let set = format!("{SERVER}/{}", s.database);
        for d in 0..s.days {
            let started = today - time::Duration::days(s.days - d);
            let id = format!("{}-{:02x}{:04x}", compact(started), si, d);
            let noise = (d as u64 * 37 % 11) << 20;
            let stored = s.base + d as u64 * s.growth + noise;
            let plain = stored * 38 / 10;
            let secs = s.duration + (d as u64 * 13 % 70);
            let finished = started + time::Duration::seconds(secs as i64);
            let dir = root.join("backups").join(&id);
            fs::create_dir_all(&dir).unwrap();
            let data = dir.join("data.dump.zst");
            fs::File::create(&data).unwrap().set_len(stored).unwrap();
            let manifest = json!({
                "format_version": 3,
                "id": id,
                "pgb_version": "0.1.0",
                "set": set,
                "database": s.database,
                "server": SERVER,
                "server_version": "15.18",
                "pg_dump_version": "pg_dump (PostgreSQL) 15.18",
                "pg_dump_major": 15,
                "format": "custom",
                "compression": {"algorithm": "zstd", "level": 3},
                "started_at": rfc3339(started),
                "finished_at": rfc3339(finished),
                "labels": [],
                "artifacts": [{
                    "name": "data",
                    "kind": "dump",
                    "key": format!("backups/{id}/data.dump.zst"),
                    "compression": {"algorithm": "zstd", "level": 3},
                    "encrypted": false,
                    "stored_size": stored,
                    "stored_sha256": "0".repeat(64),
                    "plain_size": plain,
                    "plain_sha256": "0".repeat(64),
                }],
            });
            write(
                &dir.join("manifest.json"),
                &serde_json::to_vec_pretty(&manifest).unwrap(),
            );
            // Passed verifications of the last days.
            if d >= s.days - 10 {
                let at = finished + time::Duration::minutes(5);
                let body = json!({
                    "backup_id": id,
                    "set": set,
                    "by": "verify",
                    "verified_at": rfc3339(at),
                    "stored_size": stored,
                    "plain_size": plain,
                    "toc_entries": 212,
                    "pgb_version": "0.1.0",
                });
                write(
                    &dir.join("verified").join(format!("{}.json", compact(at))),
                    &record("verified", &body),
                );
            }
            // A drill every five days, restoring the backup three hours after it was taken.
            if d % 5 == 2 {
                let at = started + time::Duration::hours(3);
                let (rto_ms, outcome, cause): (u64, &str, Option<&str>) = match (s.database, d) {
                    ("shop", 22) => (
                        3_120_000,
                        "limit_exceeded",
                        Some("RTO 52m exceeds the limit 45m"),
                    ),
                    ("billing", 7) => (
                        260_000,
                        "check_failed",
                        Some("rows: public.invoices is empty but held rows at backup time"),
                    ),
                    _ => (s.duration * 4_000 + d as u64 * 20_000, "passed", None),
                };
                let mut body = json!({
                    "backup_id": id,
                    "set": set,
                    "database": s.database,
                    "job": s.database,
                    "backup_started_at": rfc3339(started),
                    "stored_size": stored,
                    "target_server": "drill.example:5432",
                    "scratch_database": format!("pgb_drill_{}_{}", s.database, compact(at).to_lowercase()),
                    "kept": false,
                    "dropped": true,
                    "started_at": rfc3339(at),
                    "finished_at": rfc3339(at + time::Duration::milliseconds(rto_ms as i64)),
                    "outcome": outcome,
                    "phases": [{"name": "restore", "millis": rto_ms}],
                    "rto_ms": rto_ms,
                    "rpo_s": 3 * 3600 + d as u64 * 60,
                    "max_rto_ms": 2_700_000,
                    "max_rpo_s": 93_600,
                    "toc_tables": 40,
                    "checks": [{"name": "restore", "passed": true, "detail": "pg_restore exited cleanly"}],
                    "pgb_version": "0.1.0",
                });
                if let Some(c) = cause {
                    body["cause"] = json!(c);
                }
                write(
                    &root
                        .join("drills")
                        .join(&id)
                        .join(format!("{}.json", compact(at))),
                    &record("drill", &body),
                );
            }
        }
    }
    // An unusable manifest: a backup folder whose manifest is not JSON.
    let bad = format!("{}-ffffff", compact(today - time::Duration::days(3)));
    write(
        &root.join("backups").join(&bad).join("manifest.json"),
        b"{\"format_version\": 3, \"id\": ",
    );
    write(&root.join("backups").join(&bad).join("data.dump.zst"), b"x");
    // An altered drill record: its body no longer matches its sha256.
    let shop_first = format!("{}-01{:04x}", compact(today - time::Duration::days(30)), 0);
    let sealed = record(
        "drill",
        &json!({"backup_id": shop_first, "outcome": "passed"}),
    );
    let text = String::from_utf8(sealed).unwrap();
    write(
        &root
            .join("drills")
            .join(&shop_first)
            .join("20000101T000000Z.json"),
        text.replace("\"passed\"", "\"forged\"").as_bytes(),
    );
    // Archived WAL of one timeline, segments 0x10..0x2f without 0x18..0x1a (named as pgb
    // archives them; their bodies hold no WAL records, so no commit time is read from them).
    let wal = root.join("wal").join(SYSTEM_ID).join("00000001");
    for seg in (0x10u32..0x30).filter(|s| !(0x18..0x1b).contains(s)) {
        let name = format!("00000001000000000000{seg:04X}");
        let body = [0u8; 64];
        let mut object = format!(
            "pgb-wal 1 {name} {} {} none none -\n",
            body.len(),
            hex(&Sha256::digest(body))
        )
        .into_bytes();
        object.extend_from_slice(&body);
        write(&wal.join(&name), &object);
    }
    // Physical base backups of that cluster: two before the gap (their restores stop at it)
    // and one after it.
    for (i, (seg, days_ago)) in [(0x10u64, 9i64), (0x14, 6), (0x20, 2)]
        .into_iter()
        .enumerate()
    {
        let started = today - time::Duration::days(days_ago) + time::Duration::hours(1);
        let stopped = started + time::Duration::minutes(12);
        let id = format!("{}-ba5e{i:02x}", compact(started));
        physical_backup(root, &id, seg, started, stopped);
    }
    write(
        &wal.join("000000010000000000000010.00000028.backup"),
        b"START WAL LOCATION: 0/10000028\n",
    );
}

/// A physical base backup `id` of [`SYSTEM_ID`] whose WAL starts and stops in segment `seg`.
fn physical_backup(
    root: &Path,
    id: &str,
    seg: u64,
    started: OffsetDateTime,
    stopped: OffsetDateTime,
) {
    const SEG: u64 = 16 << 20;
    let name = format!("00000001{:08X}{:08X}", seg / 256, seg % 256);
    let lsn = |off: u64| {
        let at = seg * SEG + off;
        format!("{:X}/{:X}", at >> 32, at & 0xFFFF_FFFF)
    };
    let dir = root.join("backups").join(id);
    let stored: u64 = 2100 << 20;
    fs::create_dir_all(&dir).unwrap();
    fs::File::create(dir.join("base.tar.zst"))
        .unwrap()
        .set_len(stored)
        .unwrap();
    let manifest = json!({
        "format_version": 3,
        "id": id,
        "pgb_version": "0.1.0",
        "set": SYSTEM_ID,
        "database": "*",
        "server": SERVER,
        "server_version": "15.18",
        "pg_dump_version": "pg_basebackup (PostgreSQL) 15.18",
        "pg_dump_major": 15,
        "format": "physical",
        "compression": {"algorithm": "zstd", "level": 3},
        "started_at": rfc3339(started),
        "finished_at": rfc3339(stopped),
        "labels": [],
        "artifacts": [{
            "name": "base",
            "kind": "base_tar",
            "key": format!("backups/{id}/base.tar.zst"),
            "compression": {"algorithm": "zstd", "level": 3},
            "encrypted": false,
            "stored_size": stored,
            "stored_sha256": "0".repeat(64),
            "plain_size": stored * 3,
            "plain_sha256": "0".repeat(64),
        }],
        "physical": {
            "system_identifier": SYSTEM_ID, "timeline": 1, "start_lsn": lsn(0x28),
            "stop_timeline": 1, "stop_lsn": lsn(0x100), "wal_segment_size": SEG,
            "wal": "archive", "start_wal_file": name, "stop_wal_file": name,
            "stop_time": rfc3339(stopped), "backup_manifest_sha256": "0".repeat(64),
            "files": 1000, "server_major": 15,
        },
    });
    write(
        &dir.join("manifest.json"),
        &serde_json::to_vec_pretty(&manifest).unwrap(),
    );
}
