//! Cloud round trips through the `pgb` binary: backup → list → verify → restore of a database
//! of more than 50 MB on S3 (moto), GCS (fake-gcs-server) and Azure (Azurite), so that the
//! multipart, resumable and block-list upload paths run, with content compared after restore.
//! Each backend skips loudly when its emulator's `PGB_TEST_*` variables are missing.

use crate::common;

use common::*;
use std::process::Output;

/// A database of more than 50 MB of hard-to-compress rows (the compressed object is still tens
/// of MB, so uploads take several parts, chunks or blocks).
fn big_db(pg: &Pg) -> String {
    let name = unique("pgbcloud");
    pg.psql("postgres", &format!("create database {name}"));
    pg.psql(
        &name,
        "create table blobs (id int primary key, note text, payload bytea);
         insert into blobs
           select g, 'row ' || g || ' ✓',
                  decode(string_agg(md5(g::text || ':' || i), ''), 'hex')
           from generate_series(1, 60000) g, generate_series(1, 40) i group by g;",
    );
    let size: i64 = pg
        .psql(&name, "select pg_database_size(current_database())")
        .parse()
        .unwrap();
    assert!(size > 50_000_000, "test database is {size} bytes");
    name
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\n{}",
        out.status.code(),
        stderr(out)
    );
    stdout(out)
}

/// The full operator path on one backend.
fn round_trip(repo: &str, envs: &[(&str, String)]) {
    let Some(pg) = pg() else { return };
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let envs = envs.as_slice();
    let src = big_db(&pg);
    let target = unique("pgbcloud_restored");
    let url = pg.url(&src);
    ok(
        &pgb_env(&["backup", "--repo", repo, "--db", &url], envs),
        "backup",
    );
    let list: serde_json::Value = serde_json::from_str(&ok(
        &pgb_env(&["list", "--repo", repo, "--json"], envs),
        "list",
    ))
    .unwrap();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["database"] == src.as_str())
        .expect("the backup is listed");
    assert!(
        entry["stored_size"].as_u64().unwrap() > 8 << 20,
        "several parts: {entry}"
    );
    let id = entry["id"].as_str().unwrap();
    ok(&pgb_env(&["verify", "--repo", repo, id], envs), "verify");
    ok(
        &pgb_env(
            &["restore", id, "--repo", repo, "--db", &pg.url(&target)],
            envs,
        ),
        "restore",
    );
    assert_eq!(
        pg.table_fingerprint(&target, "blobs"),
        pg.table_fingerprint(&src, "blobs"),
        "restored content"
    );
    // Clean up the repository prefix this test used.
    ok(
        &pgb_env(&["prune", "--repo", repo, "--keep-last", "1"], envs),
        "prune",
    );
    drop_db_quietly(&pg, &target);
    drop_db_quietly(&pg, &src);
}

#[test]
fn s3_backup_list_verify_restore_of_a_50_mb_database() {
    let (Some(endpoint), Some(bucket), Some(key), Some(secret)) = (
        env("PGB_TEST_S3_ENDPOINT"),
        env("PGB_TEST_S3_BUCKET"),
        env("PGB_TEST_S3_ACCESS_KEY_ID"),
        env("PGB_TEST_S3_SECRET_ACCESS_KEY"),
    ) else {
        return pgb_testkit::require_or_skip(
            "the S3 emulator (PGB_TEST_S3_*)",
            "scripts/services/s3.sh start DIR",
        )
        .unwrap_or(());
    };
    let envs = [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", key),
        ("AWS_SECRET_ACCESS_KEY", secret),
        (
            "AWS_REGION",
            env("PGB_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
        ),
        ("PGB_S3_FORCE_PATH_STYLE", "true".into()),
        // Small parts so that the ~40 MB object is a real multipart upload.
        ("PGB_S3_PART_SIZE_MIB", "8".into()),
    ];
    round_trip(&format!("s3://{bucket}/{}", unique("e2e")), &envs);
}

#[test]
fn gcs_backup_list_verify_restore_of_a_50_mb_database() {
    let (Some(endpoint), Some(bucket)) = (env("PGB_TEST_GCS_ENDPOINT"), env("PGB_TEST_GCS_BUCKET"))
    else {
        return pgb_testkit::require_or_skip(
            "the GCS emulator (PGB_TEST_GCS_*)",
            "scripts/services/gcs.sh start DIR",
        )
        .unwrap_or(());
    };
    let envs = [("STORAGE_EMULATOR_HOST", endpoint)];
    round_trip(&format!("gs://{bucket}/{}", unique("e2e")), &envs);
}

#[test]
fn azure_backup_list_verify_restore_of_a_50_mb_database() {
    let (Some(endpoint), Some(account), Some(key), Some(container)) = (
        env("PGB_TEST_AZURE_ENDPOINT"),
        env("PGB_TEST_AZURE_ACCOUNT"),
        env("PGB_TEST_AZURE_KEY"),
        env("PGB_TEST_AZURE_CONTAINER"),
    ) else {
        return pgb_testkit::require_or_skip(
            "the Azure emulator (PGB_TEST_AZURE_*)",
            "scripts/services/azure.sh start DIR",
        )
        .unwrap_or(());
    };
    let envs = [
        ("PGB_AZURE_ENDPOINT", endpoint),
        ("AZURE_STORAGE_ACCOUNT", account),
        ("AZURE_STORAGE_KEY", key),
    ];
    round_trip(&format!("az://{container}/{}", unique("e2e")), &envs);
}
