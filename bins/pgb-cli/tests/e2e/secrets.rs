//! Secrets never reach a command line or a log (docs/RELIABILITY.md test 27): a database
//! password, an encryption passphrase and a manifest authentication key, given through the
//! environment, are watched for in every process's `/proc/<pid>/cmdline` while a backup runs,
//! and in pgb's output at trace level, in text and JSON, on success and on error paths.

use crate::common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A dedicated login role with a password (scram over TCP, per the test server's pg_hba), and a
/// database it owns; both dropped at the end. The shared role `pgb_pw` is left alone.
struct Secured<'a> {
    pg: &'a Pg,
    role: String,
    db: String,
}

impl<'a> Secured<'a> {
    fn new(pg: &'a Pg, password: &str, rows: u32) -> Self {
        let role = unique("pgb_secret");
        let db = unique("pgbsecret");
        // The password is set from a psql variable on stdin, so it never appears in this
        // test's own argv either (which the scanner would otherwise report).
        let out = Command::new(pg.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &pg.url("postgres"),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                c.stdin.take().unwrap().write_all(
                    format!("create role {role} login password '{password}';\n").as_bytes(),
                )?;
                c.wait_with_output()
            })
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.psql("postgres", &format!("create database {db} owner {role}"));
        pg.psql(
            &db,
            &format!(
                "create table items (id int primary key, name text);
                 insert into items select g, 'item ' || g || ' ' || md5(g::text) from generate_series(1, {rows}) g;
                 alter table items owner to {role};"
            ),
        );
        Self { pg, role, db }
    }

    /// The URL pgb gets: the role, no password.
    fn url(&self) -> String {
        format!(
            "postgres://{}@{}/{}",
            self.role,
            self.pg.hostport(),
            self.db
        )
    }
}

impl Drop for Secured<'_> {
    fn drop(&mut self) {
        let _ = Command::new(self.pg.bin.join("psql"))
            .args(["-X", "-q", "-d", &self.pg.url("postgres")])
            .args([
                "-c",
                &format!("drop database if exists {} with (force)", self.db),
                "-c",
                &format!("drop role if exists {}", self.role),
            ])
            .output();
    }
}

fn all_output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Reads every process's command line every couple of milliseconds until stopped.
struct Scanner {
    stop: Arc<AtomicBool>,
    hits: Arc<Mutex<Vec<String>>>,
    seen_pg_dump: Arc<AtomicUsize>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Scanner {
    fn start(canaries: Vec<String>, pg_dump_needle: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(AtomicUsize::new(0));
        let (s, h, n) = (Arc::clone(&stop), Arc::clone(&hits), Arc::clone(&seen));
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for e in std::fs::read_dir("/proc").unwrap().flatten() {
                    let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
                        continue;
                    };
                    let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                    if cmd.contains("pg_dump") && cmd.contains(&pg_dump_needle) {
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                    if canaries.iter().any(|c| cmd.contains(c.as_str())) {
                        h.lock().unwrap().push(cmd);
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Self {
            stop,
            hits,
            seen_pg_dump: seen,
            handle: Some(handle),
        }
    }

    /// Stops and returns (command lines holding a canary, scans that saw pg_dump running).
    fn finish(mut self) -> (Vec<String>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        let hits = self.hits.lock().unwrap().clone();
        (hits, self.seen_pg_dump.load(Ordering::Relaxed))
    }
}

fn auth_key(dir: &Path) -> String {
    let id = dir.join("id.txt");
    let key = dir.join("auth.key");
    let out = pgb(&[
        "key",
        "generate",
        "--output",
        id.to_str().unwrap(),
        "--auth-key-file",
        key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::read_to_string(key).unwrap().trim().to_owned()
}

fn assert_clean(what: &str, o: &Output, canaries: &[&str]) {
    let text = all_output(o);
    for c in canaries {
        assert!(!text.contains(c), "{what}: a secret in the output:\n{text}");
    }
    assert!(!text.contains("panicked"), "{what}: {text}");
}

#[test]
fn secrets_never_appear_in_any_command_line_or_log() {
    let Some(pg) = pg() else { return };
    let db_password = unique("CANARYdbpw");
    let passphrase = unique("CANARYpassphrase");
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_key(dir.path());
    let secured = Secured::new(&pg, &db_password, 6000);
    let bin = slow_pg_dump(&pg, dir.path(), 0.04);
    let url = secured.url();
    let envs = [
        ("PGPASSWORD", db_password.as_str()),
        ("PGB_PASSPHRASE", passphrase.as_str()),
        ("PGB_AUTH_KEY", auth.as_str()),
    ];
    let canaries = [db_password.as_str(), passphrase.as_str(), auth.as_str()];

    // A control canary that *is* on a command line proves the scanner sees short-lived
    // processes.
    let control = unique("CANARYcontrol");
    let mut watched: Vec<String> = canaries.iter().map(|c| (*c).to_owned()).collect();
    watched.push(control.clone());
    let scanner = Scanner::start(watched, secured.db.clone());
    let status = Command::new("sh")
        .args(["-c", "sleep 0.3", &control])
        .status()
        .unwrap();
    assert!(status.success());
    let mut runs = Vec::new();
    for (name, log_args) in [
        ("default", &[][..]),
        ("trace", &["-vvv"][..]),
        ("json trace", &["--log-format", "json", "-vvv"][..]),
    ] {
        let repo = dir.path().join(name.replace(' ', "-"));
        let mut args: Vec<&str> = log_args.to_vec();
        args.extend([
            "backup",
            "--repo",
            repo.to_str().unwrap(),
            "--db",
            &url,
            "--pg-bin-dir",
            bin.to_str().unwrap(),
        ]);
        let started = std::time::Instant::now();
        let out = pgb_env(&args, &envs);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_clean(name, &out, &canaries);
        if name != "default" {
            assert!(
                stderr(&out).contains("dump tool chosen"),
                "{name}: trace logging was on: {}",
                stderr(&out)
            );
        }
        runs.push((repo, started.elapsed()));
    }
    let (hits, seen) = scanner.finish();
    let (control_hits, hits): (Vec<String>, Vec<String>) =
        hits.into_iter().partition(|h| h.contains(&control));
    assert!(!control_hits.is_empty(), "the scanner works");
    assert!(hits.is_empty(), "secrets in command lines: {hits:?}");
    assert!(
        seen > 10,
        "the scanner saw pg_dump running ({seen} sightings)"
    );
    assert!(
        runs.iter().all(|(_, t)| *t > Duration::from_millis(500)),
        "backups lasted long enough to be watched: {:?}",
        runs.iter().map(|(_, t)| t).collect::<Vec<_>>()
    );

    // Verify and restore at trace level, keys from the environment.
    let repo = &runs[0].0;
    let r = repo.to_str().unwrap();
    let out = pgb_env(&["-vvv", "verify", "--repo", r], &envs);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_clean("verify", &out, &canaries);
    let target = unique("pgbsecret_restored");
    let out = pgb_env(
        &[
            "-vvv",
            "--log-format",
            "json",
            "restore",
            "latest",
            "--repo",
            r,
            "--db",
            &pg.url(&target),
        ],
        &envs,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_clean("restore", &out, &canaries);
    assert_eq!(
        pg.table_fingerprint(&target, "items"),
        pg.table_fingerprint(&secured.db, "items")
    );
    pg.psql("postgres", &format!("drop database {target} with (force)"));

    // A password inside DATABASE_URL (accepted from the environment) is shown redacted.
    let mut with_pw = url.clone();
    with_pw.insert_str(
        "postgres://".len() + secured.role.len(),
        &format!(":{db_password}"),
    );
    let repo = dir.path().join("dsn");
    let out = pgb_env(
        &["-vvv", "backup", "--repo", repo.to_str().unwrap()],
        &[
            ("DATABASE_URL", with_pw.as_str()),
            ("PGB_PASSPHRASE", passphrase.as_str()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_clean("DATABASE_URL", &out, &canaries);
}

#[test]
fn error_paths_print_no_secrets() {
    let Some(pg) = pg() else { return };
    let db_password = unique("CANARYdbpw");
    let wrong_password = unique("CANARYwrongpw");
    let passphrase = unique("CANARYpassphrase");
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_key(dir.path());
    let secured = Secured::new(&pg, &db_password, 10);
    let url = secured.url();
    let repo = dir.path().join("repo");
    let r = repo.to_str().unwrap();
    let canaries = [
        db_password.as_str(),
        wrong_password.as_str(),
        passphrase.as_str(),
        auth.as_str(),
    ];

    for log_args in [&["-vvv"][..], &["--log-format", "json", "-vvv"][..]] {
        // Wrong database password: exit 4, nothing echoed.
        let mut args = log_args.to_vec();
        args.extend(["backup", "--repo", r, "--db", &url]);
        let out = pgb_env(
            &args,
            &[
                ("PGPASSWORD", wrong_password.as_str()),
                ("PGB_PASSPHRASE", passphrase.as_str()),
                ("PGB_AUTH_KEY", auth.as_str()),
            ],
        );
        assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
        assert!(stderr(&out).contains("pgb: error:"), "{}", stderr(&out));
        assert_clean("wrong password", &out, &canaries);
    }

    // A backup, then key errors on verify: wrong passphrase, wrong auth key.
    let out = pgb_env(
        &["backup", "--repo", r, "--db", &url],
        &[
            ("PGPASSWORD", db_password.as_str()),
            ("PGB_PASSPHRASE", passphrase.as_str()),
            ("PGB_AUTH_KEY", auth.as_str()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let other_auth = "00".repeat(32);
    for (what, envs, code) in [
        (
            "wrong passphrase",
            vec![
                ("PGB_PASSPHRASE", wrong_password.as_str()),
                ("PGB_AUTH_KEY", auth.as_str()),
            ],
            9,
        ),
        (
            "wrong auth key",
            vec![
                ("PGB_PASSPHRASE", passphrase.as_str()),
                ("PGB_AUTH_KEY", other_auth.as_str()),
            ],
            5,
        ),
        (
            "malformed auth key",
            vec![
                ("PGB_PASSPHRASE", passphrase.as_str()),
                ("PGB_AUTH_KEY", db_password.as_str()),
            ],
            9,
        ),
    ] {
        let out = pgb_env(&["-vvv", "verify", "--repo", r], &envs);
        assert_eq!(out.status.code(), Some(code), "{what}: {}", stderr(&out));
        assert_clean(what, &out, &canaries);
    }

    // Secrets on the command line are refused and not echoed.
    let flagged = format!(
        "postgres://{}:{db_password}@{}/{}",
        secured.role,
        pg.hostport(),
        secured.db
    );
    for args in [
        vec!["backup", "--repo", r, "--db", flagged.as_str()],
        vec![
            "backup",
            "--repo",
            r,
            "--db",
            &url,
            "--passphrase",
            passphrase.as_str(),
        ],
        vec!["verify", "--repo", r, "--passphrase", passphrase.as_str()],
        vec!["restore", "latest", "--repo", r, "--db", flagged.as_str()],
    ] {
        let out = pgb(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("process list"), "{}", stderr(&out));
        assert_clean("secret flag", &out, &canaries);
    }
}
