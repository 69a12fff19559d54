//! Network faults on the wire (RELIABILITY.md tests 7 and 8, issue 13): the `pgb` binary talks
//! to each emulator (moto, fake-gcs-server, Azurite) through `pgb-faultproxy`, which answers
//! 503/500/429 with the store's own bodies, resets connections, cuts downloads short, stalls,
//! loses the answer of an applied write, and makes multipart completions "succeed" without
//! completing. The repository is then read straight from the emulator (no proxy) to check what
//! was committed. Each backend skips loudly when its emulator's `PGB_TEST_*` variables are
//! missing.

use crate::common;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pgb::{ObjectKey, Storage};
use pgb_faultproxy::{Fault, FaultProxy, Match, RandomFaults, Rule, Store};
use sha2::Digest;

/// A backend behind a fault proxy: the environment that points `pgb` at the proxy, and a
/// storage that reads the same prefix straight from the emulator.
struct Target {
    kind: Kind,
    proxy: FaultProxy,
    repo: String,
    envs: Vec<(String, String)>,
    direct: Arc<dyn Storage>,
    rt: tokio::runtime::Runtime,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    S3,
    Gcs,
    Azure,
}

/// Environment common to every backend: short limits, so that a stalled request is retried
/// quickly.
const NET_ENV: [(&str, &str); 2] = [
    ("PGB_STORAGE_TIMEOUT_SECS", "3"),
    ("PGB_STORAGE_IO_TIMEOUT_SECS", "15"),
];

fn target(kind: Kind) -> Option<Target> {
    let prefix = unique("net");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = match kind {
        Kind::S3 => {
            let (Some(endpoint), Some(bucket)) =
                (env("PGB_TEST_S3_ENDPOINT"), env("PGB_TEST_S3_BUCKET"))
            else {
                return pgb_testkit::require_or_skip(
                    "the S3 emulator (PGB_TEST_S3_*)",
                    "scripts/services/s3.sh start DIR",
                );
            };
            let key = env("PGB_TEST_S3_ACCESS_KEY_ID").unwrap_or_else(|| "test".into());
            let secret = env("PGB_TEST_S3_SECRET_ACCESS_KEY").unwrap_or_else(|| "test".into());
            let region = env("PGB_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into());
            let proxy = FaultProxy::start(&endpoint, Store::S3).unwrap();
            let direct = pgb::s3::S3Config::new(&bucket)
                .with_prefix(&prefix)
                .with_endpoint(&endpoint)
                .with_addressing(pgb::s3::AddressingStyle::Path)
                .with_region(&region)
                .with_credentials(pgb::s3::S3Credentials::static_keys(&key, &secret))
                .build()
                .unwrap();
            let envs = vec![
                ("AWS_ENDPOINT_URL".into(), proxy.url()),
                ("AWS_ACCESS_KEY_ID".into(), key),
                ("AWS_SECRET_ACCESS_KEY".into(), secret),
                ("AWS_REGION".into(), region),
                ("PGB_S3_FORCE_PATH_STYLE".into(), "true".into()),
                // 5 MiB parts: the test databases make multipart uploads of several parts.
                ("PGB_S3_PART_SIZE_MIB".into(), "5".into()),
            ];
            Target {
                kind: Kind::S3,
                repo: format!("s3://{bucket}/{prefix}"),
                proxy,
                envs,
                direct: Arc::new(direct),
                rt,
            }
        }
        Kind::Gcs => {
            let (Some(endpoint), Some(bucket)) =
                (env("PGB_TEST_GCS_ENDPOINT"), env("PGB_TEST_GCS_BUCKET"))
            else {
                return pgb_testkit::require_or_skip(
                    "the GCS emulator (PGB_TEST_GCS_*)",
                    "scripts/services/gcs.sh start DIR",
                );
            };
            let proxy = FaultProxy::start(&endpoint, Store::Gcs).unwrap();
            let direct = pgb::gcs::GcsConfig::new(&bucket)
                .with_prefix(&prefix)
                .with_endpoint(&endpoint)
                .with_credentials(pgb::gcs::GcsCredentials::Anonymous)
                .with_create_new_enforced(false)
                .build()
                .unwrap();
            Target {
                kind: Kind::Gcs,
                repo: format!("gs://{bucket}/{prefix}"),
                envs: vec![("STORAGE_EMULATOR_HOST".into(), proxy.url())],
                proxy,
                direct: Arc::new(direct),
                rt,
            }
        }
        Kind::Azure => {
            let (Some(endpoint), Some(account), Some(key), Some(container)) = (
                env("PGB_TEST_AZURE_ENDPOINT"),
                env("PGB_TEST_AZURE_ACCOUNT"),
                env("PGB_TEST_AZURE_KEY"),
                env("PGB_TEST_AZURE_CONTAINER"),
            ) else {
                return pgb_testkit::require_or_skip(
                    "the Azure emulator (PGB_TEST_AZURE_*)",
                    "scripts/services/azure.sh start DIR",
                );
            };
            let proxy = FaultProxy::start(&endpoint, Store::Azure).unwrap();
            let direct = pgb::azure::AzureConfig::new(&account, &container)
                .with_prefix(&prefix)
                .with_endpoint(&endpoint)
                .with_credentials(pgb::azure::AzureCredentials::AccountKey(key.clone()))
                .build()
                .unwrap();
            Target {
                kind: Kind::Azure,
                repo: format!("az://{container}/{prefix}"),
                envs: vec![
                    ("PGB_AZURE_ENDPOINT".into(), proxy.url()),
                    ("AZURE_STORAGE_ACCOUNT".into(), account),
                    ("AZURE_STORAGE_KEY".into(), key),
                ],
                proxy,
                direct: Arc::new(direct),
                rt,
            }
        }
    };
    Some(t)
}

impl Target {
    /// Runs `pgb` through the proxy with `args` and `extra` environment.
    fn pgb(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let mut envs: Vec<(&str, &str)> = self
            .envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        envs.extend(NET_ENV);
        envs.extend(extra.iter().copied());
        pgb_env(args, &envs)
    }

    fn backup(&self, pg: &Pg, db: &str, extra: &[(&str, &str)]) -> Output {
        self.backup_with(pg, db, &[], extra)
    }

    /// A backup with extra flags and environment.
    fn backup_with(&self, pg: &Pg, db: &str, flags: &[&str], extra: &[(&str, &str)]) -> Output {
        let url = pg.url(db);
        let mut args = vec!["backup", "-v", "--repo", &self.repo, "--db", &url];
        args.extend_from_slice(flags);
        self.pgb(&args, extra)
    }

    /// Objects under `backups/` straight from the emulator: (manifests, other objects).
    fn objects(&self) -> (Vec<ObjectKey>, Vec<ObjectKey>) {
        let prefix = ObjectKey::parse("backups").unwrap();
        let all = self
            .rt
            .block_on(self.direct.list(Some(&prefix)))
            .expect("list the emulator directly");
        all.into_iter()
            .map(|m| m.key)
            .partition(|k| k.as_str().ends_with("/manifest.json"))
    }

    /// Leases left under `locks/`, straight from the emulator.
    fn locks(&self) -> Vec<ObjectKey> {
        let prefix = ObjectKey::parse("locks").unwrap();
        self.rt
            .block_on(self.direct.list(Some(&prefix)))
            .expect("list the emulator directly")
            .into_iter()
            .map(|m| m.key)
            .collect()
    }

    fn read(&self, key: &str) -> Vec<u8> {
        let key = ObjectKey::parse(key).unwrap();
        self.rt.block_on(async {
            use futures_util::TryStreamExt;
            let chunks: Vec<bytes::Bytes> = self
                .direct
                .reader(&key, None)
                .await
                .expect("open")
                .try_collect()
                .await
                .expect("read");
            chunks.concat()
        })
    }

    /// Asserts that the manifest of backup `id` names a data object whose stored bytes (read
    /// straight from the emulator) have the manifest's size and sha256.
    fn assert_stored_matches_manifest(&self, id: &str) {
        let manifest: serde_json::Value =
            serde_json::from_slice(&self.read(&format!("backups/{id}/manifest.json")))
                .expect("manifest is JSON");
        let artifact = &manifest["artifacts"][0];
        let data = self.read(artifact["key"].as_str().expect("artifact key"));
        assert_eq!(data.len() as u64, artifact["stored_size"].as_u64().unwrap());
        assert_eq!(
            hex(&sha2::Sha256::digest(&data)),
            artifact["stored_sha256"].as_str().unwrap(),
            "stored sha256 equals the manifest's"
        );
    }

    fn listed(&self) -> Vec<serde_json::Value> {
        let out = self.pgb(&["list", "--repo", &self.repo, "--json"], &[]);
        serde_json::from_str(&ok(&out, "list")).expect("list --json")
    }

    fn log_text(&self) -> String {
        self.proxy.log().iter().map(|e| format!("{e}\n")).collect()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        // Leave the bucket as we found it.
        let all = self.rt.block_on(self.direct.list(None)).unwrap_or_default();
        for m in all {
            let _ = self.rt.block_on(self.direct.delete(&m.key));
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

/// `pg_restore` that counts its database restores (runs other than `--version` and `--list`)
/// in `dir/pg_restore.count`, then runs the real one.
fn counting_pg_restore(pg: &Pg, dir: &Path) -> String {
    let bin = dir.join("bin");
    write_script(
        &bin.join("pg_restore"),
        &format!(
            "#!/bin/bash\ncase \" $* \" in *' --version '*|*' --list '*|*' -l '*) ;; *) echo run >> '{}' ;; esac\nexec '{}/pg_restore' \"$@\"\n",
            dir.join("pg_restore.count").display(),
            pg.bin.display()
        ),
    );
    format!("{}:{}", bin.display(), pg.bin.display())
}

fn restore_runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("pg_restore.count"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// The first byte a `Range` header asks for.
fn range_start(range: &str) -> Option<u64> {
    range
        .trim_start_matches("bytes=")
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// One request of each kind fails once (a 503 on the first upload request, a reset on the
/// first list, a 500 on the first download, a stalled first metadata request), and on top of
/// that one request in ten meets a random transient fault (503, 500, 429, a reset, a body cut
/// at half). Backup, verify and restore all succeed, the stored sha256 equals the manifest, and
/// a restore whose download is cut at 50% resumes with a range request and runs pg_restore
/// once.
fn transient_faults(kind: Kind) {
    let Some(pg) = pg() else { return };
    let Some(t) = target(kind) else { return };
    // About 7 MB stored (several 5 MiB S3 parts); on GCS about 15 MB, two 8 MiB chunks of one
    // resumable upload.
    let rows = match t.kind {
        Kind::Gcs => 600_000,
        _ => 250_000,
    };
    let db = pg.sample_db("pgbnet", rows, RowText::Random);
    let p = &t.proxy;
    // GCS: the request that finishes a resumable upload (its Content-Range names the total;
    // also the status query `bytes */N` a retry sends) is left alone on the emulator.
    // fake-gcs-server departs from GCS's resumable protocol there: it finalizes the object
    // with what it holds when asked for the upload's status (real GCS answers 308 with the
    // persisted range, and OpenDAL then re-sends the last chunk). Every other request of a
    // session, the chunk PUTs included, is faulted like S3 parts and Azure blocks.
    let gcs_final = Match::method("PUT")
        .target_contains("upload_id=")
        .header_lacks("content-range", "/*");
    let eligible = match t.kind {
        Kind::Gcs => Match::any().except(gcs_final),
        _ => Match::any(),
    };
    let first_put = match t.kind {
        // A chunk of the data object that is not the last one.
        Kind::Gcs => Match::method("PUT")
            .target_contains("data.")
            .header_contains("content-range", "/*"),
        _ => Match::method("PUT"),
    };
    p.add_rule(Rule::new(first_put, Fault::Status(503)).first(1));
    p.add_rule(Rule::new(Match::method("POST"), Fault::Status(500)).first(1));
    p.add_rule(Rule::new(Match::method("HEAD"), Fault::Stall(Duration::from_secs(5))).first(1));
    p.add_rule(Rule::new(Match::method("GET"), Fault::ResetBeforeForward).first(1));
    p.add_rule(Rule::new(Match::method("DELETE"), Fault::Status(503)).first(1));
    p.set_random(Some(RandomFaults::transient(10, 0x5eed).only(eligible)));

    let out = t.backup_with(&pg, &db.name, &["--json"], &[]);
    let report: serde_json::Value =
        serde_json::from_str(&ok(&out, "backup under faults")).expect("backup --json");
    let retries = stderr(&out).matches("retrying storage request").count();
    assert!(retries >= 2, "retries are logged at -v: {}", stderr(&out));
    // The report counts exactly the retries the log shows.
    assert_eq!(
        report["storage"]["retries"].as_u64(),
        Some(retries as u64),
        "{report}"
    );
    let listed = t.listed();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(report["id"].as_str(), Some(id.as_str()), "{report}");

    // The verify's report counts the retries of the verify itself (reading the manifest to
    // resolve the id comes before it).
    let out = t.pgb(&["verify", "-v", "--json", "--repo", &t.repo, &id], &[]);
    let outcome: serde_json::Value =
        serde_json::from_str(&ok(&out, "verify under faults")).expect("verify --json");
    let logged = stderr(&out).matches("retrying storage request").count() as u64;
    let counted = outcome["storage"]["retries"]
        .as_u64()
        .expect("storage in the report");
    assert!(counted <= logged, "{outcome}");

    // The restore's download is cut at half its length: it resumes, pg_restore runs once.
    let dir = tempfile::tempdir().unwrap();
    let bins = counting_pg_restore(&pg, dir.path());
    let before = p.log().len();
    p.add_rule(
        Rule::new(
            // The download itself (ranged), not a metadata GET (GCS's JSON API).
            Match::method("GET").target_contains("data.").ranged(true),
            Fault::TruncateBodyPercent(50),
        )
        .first(1),
    );
    let target_db = unique("pgbnet_restored");
    let out = t.pgb(
        &[
            "restore",
            &id,
            "--repo",
            &t.repo,
            "--db",
            &pg.url(&target_db),
        ],
        &[("PGB_PG_BIN_DIR", &bins)],
    );
    let text = ok(&out, "restore under faults");
    // In text, what the network needed shows after the summary (the cut download was
    // continued by a retried range read, or by a resume).
    assert!(text.contains("\nstorage: "), "{text}");
    assert_eq!(pg.fingerprint(&target_db), pg.fingerprint(&db.name));
    assert_eq!(restore_runs(dir.path()), 1, "one database restore");
    let log = p.log();
    let data_gets: Vec<_> = log[before..]
        .iter()
        .filter(|e| e.method == "GET" && e.target.contains("data."))
        .collect();
    let cut = data_gets
        .iter()
        .position(|e| e.fault == Some(Fault::TruncateBodyPercent(50)))
        .unwrap_or_else(|| panic!("the download was cut:\n{}", t.log_text()));
    assert!(
        data_gets[cut + 1..].iter().any(|e| e
            .range
            .as_deref()
            .and_then(range_start)
            .is_some_and(|s| s > 0)),
        "a range request resumed the download:\n{}",
        t.log_text()
    );
    drop_db_quietly(&pg, &target_db);

    // Every request kind met a fault, and the store kept exactly one complete backup.
    let faulted = p.faulted();
    // GCS reads metadata with GET (JSON API), not HEAD.
    let kinds: &[&str] = match t.kind {
        Kind::Gcs => &["PUT", "POST", "GET"],
        Kind::S3 => &["PUT", "POST", "GET", "HEAD"],
        Kind::Azure => &["PUT", "GET", "HEAD"],
    };
    for m in kinds {
        assert!(
            faulted.iter().any(|e| e.method == *m),
            "{m} faulted:\n{}",
            t.log_text()
        );
    }
    p.clear_faults();
    t.assert_stored_matches_manifest(&id);
    let (manifests, _) = t.objects();
    assert_eq!(manifests.len(), 1);
    assert!(t.locks().is_empty(), "leases released: {:?}", t.locks());
}

/// A fault that retrying cannot cure: the backup fails with one line naming the cause, the
/// documented exit code, and nothing committed (no manifest, no data object left visible).
fn permanent_fault(
    kind: Kind,
    rule: Rule,
    flags: &[&str],
    env: &[(&str, &str)],
    code: i32,
    says: &str,
) {
    let Some(pg) = pg() else { return };
    let Some(t) = target(kind) else { return };
    let db = pg.sample_db("pgbnet", 2_000, RowText::Plain);
    t.proxy.add_rule(rule);
    let out = t.backup_with(&pg, &db.name, flags, env);
    assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    let line = one_line_error(&out);
    assert!(line.contains(says), "{line}");
    t.proxy.clear_faults();
    let (manifests, others) = t.objects();
    assert!(manifests.is_empty(), "no manifest: {manifests:?}");
    assert!(
        others.iter().all(|k| !k.as_str().contains("/data.")),
        "no data object: {others:?}"
    );
    assert!(t.listed().is_empty());
    assert!(t.locks().is_empty(), "lease released: {:?}", t.locks());
}

fn forbidden(kind: Kind) {
    permanent_fault(
        kind,
        Rule::new(Match::method("PUT"), Fault::Status(403)),
        &[],
        &[],
        3,
        "access denied",
    );
}

fn missing_bucket(kind: Kind) {
    let says = match kind {
        Kind::Azure => "container does not exist",
        _ => "bucket does not exist",
    };
    permanent_fault(
        kind,
        Rule::new(Match::any(), Fault::Status(404)),
        &[],
        &[],
        3,
        says,
    );
}

/// A store that keeps answering 503: many retries allowed, but the budget ends it. The
/// settings come from the flags, which beat `PGB_STORAGE_RETRY_BUDGET_SECS`.
fn budget_exhausted(kind: Kind) {
    permanent_fault(
        kind,
        Rule::new(Match::method("PUT"), Fault::Status(503)),
        &["--retries", "1000", "--retry-budget", "3s"],
        &[("PGB_STORAGE_RETRY_BUDGET_SECS", "120")],
        3,
        "retry budget of 3 s exhausted",
    );
}

/// The store applies the create-only manifest PUT but the answer is lost: the retry finds the
/// manifest there, byte for byte what pgb wrote, and the backup succeeds.
fn unacknowledged_manifest(kind: Kind) {
    let Some(pg) = pg() else { return };
    let Some(t) = target(kind) else { return };
    let db = pg.sample_db("pgbnet", 2_000, RowText::Plain);
    t.proxy.add_rule(
        Rule::new(
            Match::method("PUT").target_contains("manifest.json"),
            Fault::ForwardThenReset,
        )
        .first(1),
    );
    let out = t.backup(&pg, &db.name, &[]);
    ok(&out, "backup whose manifest answer was lost");
    assert!(
        t.proxy
            .faulted()
            .iter()
            .any(|e| e.fault == Some(Fault::ForwardThenReset) && e.forwarded),
        "{}",
        t.log_text()
    );
    t.proxy.clear_faults();
    let listed = t.listed();
    assert_eq!(listed.len(), 1);
    let id = listed[0]["id"].as_str().unwrap();
    ok(&t.pgb(&["verify", "--repo", &t.repo, id], &[]), "verify");
    t.assert_stored_matches_manifest(id);
}

/// The manifest PUT lands, but what the store holds is not what pgb wrote (another writer's
/// object): the backup fails cleanly and the existing object is left as it is.
fn conflicting_manifest(kind: Kind) {
    let Some(pg) = pg() else { return };
    let Some(t) = target(kind) else { return };
    let db = pg.sample_db("pgbnet", 2_000, RowText::Plain);
    t.proxy.add_rule(
        Rule::new(
            Match::method("PUT").target_contains("manifest.json"),
            Fault::ForwardTamperedThenReset,
        )
        .first(1),
    );
    let out = t.backup(&pg, &db.name, &[]);
    assert!(!out.status.success(), "a conflict fails the backup");
    one_line_error(&out);
    t.proxy.clear_faults();
    let (manifests, _) = t.objects();
    assert_eq!(manifests.len(), 1, "the other writer's object stays");
    let mut held = t.read(manifests[0].as_str());
    held.reverse();
    let m: serde_json::Value =
        serde_json::from_slice(&held).expect("the store still holds exactly the tampered bytes");
    assert!(manifests[0].as_str().contains(m["id"].as_str().unwrap()));
}

/// A multipart completion answered 200 with an `<Error>` document or an empty body, on every
/// attempt: the backup fails, no manifest is written (RELIABILITY test 8).
fn completion_lies(fault: Fault) {
    let Some(pg) = pg() else { return };
    let Some(t) = target(Kind::S3) else { return };
    // About 10 MB of dump: a multipart upload of two or three 5 MiB parts.
    let db = pg.sample_db("pgbnet", 400_000, RowText::Random);
    t.proxy.add_rule(Rule::new(
        Match::method("POST").target_contains("uploadId="),
        fault,
    ));
    let out = t.backup(&pg, &db.name, &[]);
    assert!(!out.status.success(), "{}", stderr(&out));
    one_line_error(&out);
    assert!(
        t.proxy.faulted().iter().any(|e| e.method == "POST"),
        "the completion was faulted:\n{}",
        t.log_text()
    );
    t.proxy.clear_faults();
    let (manifests, others) = t.objects();
    assert!(manifests.is_empty(), "{manifests:?}");
    assert!(
        others.iter().all(|k| !k.as_str().contains("/data.")),
        "{others:?}"
    );
}

macro_rules! per_backend {
    ($($name:ident => $f:ident),* $(,)?) => {
        mod s3 {
            $(#[test] fn $name() { super::$f(super::Kind::S3) })*
        }
        mod gcs {
            $(#[test] fn $name() { super::$f(super::Kind::Gcs) })*
        }
        mod azure {
            $(#[test] fn $name() { super::$f(super::Kind::Azure) })*
        }
    };
}

per_backend! {
    one_in_ten_transient_faults_backup_verify_restore => transient_faults,
    forbidden_fails_with_nothing_committed => forbidden,
    missing_bucket_fails_with_nothing_committed => missing_bucket,
    exhausted_retry_budget_fails_with_nothing_committed => budget_exhausted,
}

/// OpenDAL sends GCS's create-only writes as resumable uploads whose final request does not
/// name the object, and fake-gcs-server does not enforce `ifGenerationMatch`: the lost-answer
/// cases run on S3 and Azure.
mod lost_answers {
    #[test]
    fn s3_unacknowledged_manifest_put_ends_in_success() {
        super::unacknowledged_manifest(super::Kind::S3);
    }

    #[test]
    fn azure_unacknowledged_manifest_put_ends_in_success() {
        super::unacknowledged_manifest(super::Kind::Azure);
    }

    #[test]
    fn s3_conflicting_manifest_fails_without_touching_it() {
        super::conflicting_manifest(super::Kind::S3);
    }

    #[test]
    fn azure_conflicting_manifest_fails_without_touching_it() {
        super::conflicting_manifest(super::Kind::Azure);
    }
}

#[test]
fn s3_completion_answered_200_with_an_error_document_fails_cleanly() {
    completion_lies(Fault::OkWithErrorDocument);
}

#[test]
fn s3_completion_answered_200_with_an_empty_body_fails_cleanly() {
    completion_lies(Fault::OkEmpty);
}

/// The retry settings of a job in the config file reach the storage: `pgb backup --job`
/// against a store that keeps answering 503 ends at the job's budget (1000 retries would
/// otherwise take hours). The environment would beat the file, the flags both.
#[test]
fn s3_retry_budget_from_the_config_file() {
    let Some(pg) = pg() else { return };
    let Some(t) = target(Kind::S3) else { return };
    let db = pg.sample_db("pgbnet", 2_000, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pgb.toml");
    std::fs::write(
        &file,
        format!(
            "[jobs.shop]\nrepository = \"{}\"\ndatabase = \"{}\"\nstorage_retries = 1000\n\
             storage_retry_budget_secs = 3\n",
            t.repo,
            pg.url(&db.name)
        ),
    )
    .unwrap();
    t.proxy
        .add_rule(Rule::new(Match::method("PUT"), Fault::Status(503)));
    let out = t.pgb(
        &[
            "backup",
            "--job",
            "shop",
            "--config",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let line = one_line_error(&out);
    assert!(line.contains("retry budget of 3 s exhausted"), "{line}");
    t.proxy.clear_faults();
    assert!(t.listed().is_empty());
}
