//! The webhook payload of `pgb backup` against a real PostgreSQL (PGB_TEST_PG_URL): what a
//! receiver needs to tell runs apart and size them: the host, the set (also when the backup
//! failed), the backup id, stored and plain sizes, and the duration.

use crate::common;

use common::*;
use std::time::Duration;

/// The JSON body of the next request `got` receives.
fn payload(got: &std::sync::mpsc::Receiver<String>) -> serde_json::Value {
    let request = got
        .recv_timeout(Duration::from_secs(10))
        .expect("a webhook");
    let body = request
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {request}"))
}

#[test]
fn backup_webhooks_carry_host_set_sizes_and_duration() {
    let Some(pg) = pg() else { return };
    let db = pg.sample_db("pgbhook", 200, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let host = format!("pgb-host-{}", random_u32());

    let (url, got) = receiver();
    let envs = [
        ("PGB_NOTIFY_URL", url.as_str()),
        ("HOSTNAME", host.as_str()),
    ];
    let out = backup_env(&pg, &repo, &db.name, &[], &envs);
    assert!(out.status.success(), "{}", stderr(&out));
    let p = payload(&got);
    let listed = list_json(&repo);
    let m = &listed[0];
    assert_eq!(p["event"], "backup_succeeded", "{p}");
    assert_eq!(p["host"], host.as_str(), "{p}");
    assert_eq!(p["backup_id"], m["id"], "{p}");
    assert_eq!(p["set"], m["set"], "{p}");
    assert_eq!(p["set"], format!("{}/{}", pg.hostport(), db.name), "{p}");
    assert_eq!(p["sizes"]["stored"], m["stored_size"], "{p}");
    assert_eq!(p["sizes"]["plain"], m["plain_size"], "{p}");
    assert!(p["sizes"]["plain"].as_u64().unwrap() > 0, "{p}");
    assert!(p["durations_ms"]["total"].is_u64(), "{p}");

    // A database that does not exist: the set it would have had, and how long it took.
    let missing = unique("pgbhook_missing");
    let (url, got) = receiver();
    let envs = [
        ("PGB_NOTIFY_URL", url.as_str()),
        ("HOSTNAME", host.as_str()),
    ];
    let out = backup_env(&pg, &repo, &missing, &[], &envs);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let p = payload(&got);
    assert_eq!(p["event"], "backup_failed", "{p}");
    assert_eq!(p["host"], host.as_str(), "{p}");
    assert_eq!(p["set"], format!("{}/{missing}", pg.hostport()), "{p}");
    assert!(p["backup_id"].is_null(), "{p}");
    assert!(p["durations_ms"]["total"].is_u64(), "{p}");
    assert!(p["cause"].as_str().is_some_and(|c| !c.is_empty()), "{p}");
}
