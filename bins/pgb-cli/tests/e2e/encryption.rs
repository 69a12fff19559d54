//! End-to-end tests of client-side encryption (age) and manifest authentication, driving the
//! real `pgb` binary against a real PostgreSQL (PGB_TEST_PG_URL) and local repositories:
//! round trips in both modes, interoperability with the `age` CLI in both directions, failing
//! closed before pg_dump starts, the verify/restore failure matrix and downgrade refusal
//! (docs/RELIABILITY.md tests 12, 16-18, 28 and 30; docs/security.md).

use crate::common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// age's payload: a 16-byte nonce, then chunks of 64 KiB plaintext plus a 16-byte tag.
const AGE_NONCE: usize = 16;
const AGE_CHUNK: usize = 64 * 1024 + 16;

/// A fresh sample database of `rows` rows of random (poorly compressible) text plus one row
/// (id 0) holding `canary`; dropped by the guard.
fn sample_db<'a>(pg: &'a Pg, rows: u32, canary: &str) -> DbGuard<'a> {
    let db = pg.sample_db("pgbenc", rows, RowText::Random);
    pg.psql(
        &db.name,
        &format!("insert into items values (0, '{canary}', '{{}}')"),
    );
    db
}

/// `pgb key generate`: an identity file (and optionally an auth key file); returns the
/// recipient.
fn keygen(dir: &Path, name: &str, auth_key: Option<&str>) -> (PathBuf, String) {
    let id = dir.join(format!("{name}.txt"));
    let mut args = vec!["key", "generate", "--output", id.to_str().unwrap()];
    let auth = auth_key.map(|a| dir.join(a));
    if let Some(a) = &auth {
        args.extend(["--auth-key-file", a.to_str().unwrap()]);
    }
    let out = pgb(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let recipient = stdout(&out).trim().to_owned();
    assert!(recipient.starts_with("age1"), "{recipient}");
    (id, recipient)
}

fn manifest_path(repo: &Path, id: &str) -> PathBuf {
    repo.join("backups").join(id).join("manifest.json")
}

fn read_manifest(repo: &Path, id: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(manifest_path(repo, id)).unwrap()).unwrap()
}

fn edit_manifest(repo: &Path, id: &str, f: impl FnOnce(&mut serde_json::Value)) {
    let mut m = read_manifest(repo, id);
    f(&mut m);
    std::fs::write(
        manifest_path(repo, id),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
}

fn data_path(repo: &Path, id: &str) -> PathBuf {
    repo.join(
        read_manifest(repo, id)["artifacts"][0]["key"]
            .as_str()
            .unwrap(),
    )
}

fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    stdout(&out).split_whitespace().next().unwrap().to_owned()
}

/// Points a backup's manifest (size, sha256) and `.sha256` sidecar at its current data object,
/// as an attacker with write access to the bucket can.
fn reseal_manifest(repo: &Path, id: &str) {
    let data = data_path(repo, id);
    let sha = sha256_hex(&data);
    let size = std::fs::metadata(&data).unwrap().len();
    edit_manifest(repo, id, |m| {
        m["artifacts"][0]["stored_size"] = size.into();
        m["artifacts"][0]["stored_sha256"] = sha.clone().into();
    });
    let name = data.file_name().unwrap().to_str().unwrap().to_owned();
    std::fs::write(
        data.with_file_name(format!("{name}.sha256")),
        format!("{sha}  {name}\n"),
    )
    .unwrap();
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Offset of the first payload byte of an age file (just after the `--- <mac>` line).
fn age_header_len(bytes: &[u8]) -> usize {
    let mac_line = bytes
        .windows(4)
        .position(|w| w == b"\n---")
        .expect("age header MAC line")
        + 1;
    mac_line
        + bytes[mac_line..]
            .iter()
            .position(|&b| b == b'\n')
            .expect("end of the header")
        + 1
}

fn sh(script: &str) -> Output {
    Command::new("bash")
        .args(["-c", &format!("set -euo pipefail; {script}")])
        .output()
        .expect("bash")
}

#[test]
fn x25519_two_recipients_round_trip_and_age_cli_interop() {
    let Some(pg) = pg() else { return };
    let canary = unique("CANARY_row_text");
    let src = sample_db(&pg, 3000, &canary);
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let (ops, ops_r) = keygen(&keys, "ops", Some("auth.key"));
    let (escrow, escrow_r) = keygen(&keys, "escrow", None);
    let auth = keys.join("auth.key");
    let repo = dir.path().join("repo");
    let out = backup(
        &pg,
        &repo,
        &src.name,
        &[
            "-vv",
            "--recipient",
            &ops_r,
            "--recipient",
            &escrow_r,
            "--auth-key-file",
            auth.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains(&canary) && !stdout(&out).contains(&canary),
        "no row text in the logs"
    );
    let id = ids(&repo).pop().expect("one backup");

    // No plaintext at rest: the object is an age file; nothing else holds the row text.
    let data = data_path(&repo, &id);
    let bytes = std::fs::read(&data).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"), "age header");
    assert!(!contains(&bytes, canary.as_bytes()), "no row text");
    assert!(!contains(&bytes, b"PGDMP"), "no pg_dump magic");
    for f in files(&repo) {
        let b = std::fs::read(repo.join(&f)).unwrap();
        assert!(!contains(&b, canary.as_bytes()), "{f} holds the row text");
        assert!(!f.starts_with(".pgb-staging/"), "no staging file left: {f}");
    }
    let m = read_manifest(&repo, &id);
    assert_eq!(m["format_version"], 3);
    assert_eq!(m["encryption"]["scheme"], "age-x25519");
    assert_eq!(m["encryption"]["authentication"], "auth-key");
    assert_eq!(
        m["encryption"]["recipients"],
        serde_json::json!([ops_r, escrow_r])
    );
    assert!(m["mac"].as_str().is_some_and(|s| s.len() == 64), "{m}");

    // The sidecar checks with standard tools.
    let out = sh(&format!(
        "cd '{}' && sha256sum -c data.dump.zst.age.sha256",
        data.parent().unwrap().display()
    ));
    assert!(out.status.success(), "{}", stderr(&out));

    // Either identity restores (ops and the offline escrow key).
    let r = repo.to_str().unwrap();
    for identity in [&ops, &escrow] {
        let target = unique("pgbenc_restored");
        let out = pgb(&[
            "restore",
            "latest",
            "--repo",
            r,
            "--db",
            &pg.url(&target),
            "--identity-file",
            identity.to_str().unwrap(),
            "--auth-key-file",
            auth.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(pg.fingerprint(&target), pg.fingerprint(&src.name));
        drop_db_quietly(&pg, &target);
    }
    let out = pgb(&[
        "verify",
        "--repo",
        r,
        "--identity-file",
        escrow.to_str().unwrap(),
        "--auth-key-file",
        auth.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    // pgb → age CLI: the escrow key alone and standard tools restore the backup.
    let target = unique("pgbenc_byhand");
    pg.psql("postgres", &format!("create database {target}"));
    let out = sh(&format!(
        "age -d -i '{}' '{}' | zstd -d -c | '{}/pg_restore' --no-owner --no-privileges --single-transaction -d '{}'",
        escrow.display(),
        data.display(),
        pg.bin.display(),
        pg.url(&target)
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(pg.fingerprint(&target), pg.fingerprint(&src.name));
    drop_db_quietly(&pg, &target);
}

#[test]
fn age_cli_reencrypted_object_is_read_by_pgb() {
    let Some(pg) = pg() else { return };
    let src = sample_db(&pg, 2000, &unique("CANARY"));
    let dir = tempfile::tempdir().unwrap();
    let (ops, ops_r) = keygen(dir.path(), "ops", None);
    let repo = dir.path().join("repo");
    // Recipients without an authentication key: the manifest is not authenticated, so the
    // object may legitimately be re-encrypted by other tools (and, equally, substituted:
    // docs/security.md).
    let out = backup(&pg, &repo, &src.name, &["--recipient", &ops_r]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = ids(&repo).pop().unwrap();
    assert_eq!(
        read_manifest(&repo, &id)["encryption"]["authentication"],
        "none"
    );
    let data = data_path(&repo, &id);
    let before = std::fs::read(&data).unwrap();

    // age CLI → pgb: decrypt with age, re-encrypt with age, put it back.
    let plain = dir.path().join("plain.zst");
    let reenc = dir.path().join("reenc.age");
    let out = sh(&format!(
        "age -d -i '{}' -o '{}' '{}' && age -r '{ops_r}' -o '{}' '{}'",
        ops.display(),
        plain.display(),
        data.display(),
        reenc.display(),
        plain.display()
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::copy(&reenc, &data).unwrap();
    assert_ne!(std::fs::read(&data).unwrap(), before, "a new age file");
    reseal_manifest(&repo, &id);

    let r = repo.to_str().unwrap();
    let out = pgb(&[
        "verify",
        "--repo",
        r,
        &id,
        "--identity-file",
        ops.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("ok "), "{}", stdout(&out));
    let target = unique("pgbenc_agecli");
    let out = pgb(&[
        "restore",
        &id,
        "--repo",
        r,
        "--db",
        &pg.url(&target),
        "--identity-file",
        ops.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(pg.fingerprint(&target), pg.fingerprint(&src.name));
    drop_db_quietly(&pg, &target);
}

#[test]
fn passphrase_round_trip_from_env_and_from_file() {
    let Some(pg) = pg() else { return };
    let canary = unique("CANARY_pw_row");
    let src = sample_db(&pg, 1000, &canary);
    let dir = tempfile::tempdir().unwrap();
    let pass_file = dir.path().join("pass.txt");
    std::fs::write(&pass_file, "correct horse battery staple 2\n").unwrap();
    let env_pw = [("PGB_PASSPHRASE", "correct horse battery staple 1")];
    let file_args = ["--passphrase-file", pass_file.to_str().unwrap()];

    for (name, backup_args, envs) in [
        ("env", &[][..], &env_pw[..]),
        ("file", &file_args[..], &[][..]),
    ] {
        let repo = dir.path().join(name);
        let out = backup_env(&pg, &repo, &src.name, backup_args, envs);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let id = ids(&repo).pop().unwrap();
        let m = read_manifest(&repo, &id);
        assert_eq!(m["encryption"]["scheme"], "age-scrypt", "{name}");
        assert_eq!(m["encryption"]["authentication"], "passphrase", "{name}");
        assert!(
            m["mac"].is_string(),
            "{name}: authenticated by the passphrase"
        );
        let bytes = std::fs::read(data_path(&repo, &id)).unwrap();
        assert!(
            bytes.starts_with(b"age-encryption.org/v1\n-> scrypt "),
            "{name}"
        );
        assert!(!contains(&bytes, canary.as_bytes()) && !contains(&bytes, b"PGDMP"));

        let r = repo.to_str().unwrap();
        let mut args = vec!["verify", "--repo", r];
        args.extend_from_slice(backup_args);
        let out = pgb_env(&args, envs);
        assert!(out.status.success(), "{name}: {}", stderr(&out));

        let target = unique("pgbenc_pw");
        let url = pg.url(&target);
        let mut args = vec!["restore", "latest", "--repo", r, "--db", &url];
        args.extend_from_slice(backup_args);
        let out = pgb_env(&args, envs);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(pg.fingerprint(&target), pg.fingerprint(&src.name), "{name}");
        drop_db_quietly(&pg, &target);
    }
    // The file's trailing newline is not part of the passphrase: the same passphrase from
    // the environment opens the file-encrypted backup.
    let out = pgb_env(
        &[
            "verify",
            "--repo",
            dir.path().join("file").to_str().unwrap(),
        ],
        &[("PGB_PASSPHRASE", "correct horse battery staple 2")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A pg_dump that answers `--version` like a real 15 and otherwise only records that it ran.
fn marker_pg_dump(dir: &Path) -> (PathBuf, PathBuf) {
    let marker = dir.join("pg_dump-ran");
    let bin = shim(
        dir,
        "shim-bin",
        &format!("touch '{}'\nexit 0", marker.display()),
    );
    (bin, marker)
}

/// A refused backup: what, its arguments, its environment, the exit code, the message.
type FailClosed<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, i32, &'a str);

#[test]
fn encryption_fails_closed_before_pg_dump_starts_with_nothing_written() {
    let Some(pg) = pg() else { return };
    let src = sample_db(&pg, 10, "x");
    let dir = tempfile::tempdir().unwrap();
    let (bin, marker) = marker_pg_dump(dir.path());
    let (_, good_r) = keygen(dir.path(), "ops", Some("auth.key"));
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let comments = dir.path().join("comments.txt");
    std::fs::write(&comments, "# ops key retired\n\n   \n").unwrap();
    let newline_only = dir.path().join("newline.txt");
    std::fs::write(&newline_only, "\n").unwrap();
    let missing = dir.path().join("no-such-file");
    let bad_key = dir.path().join("bad.key");
    std::fs::write(&bad_key, "zz not hex\n").unwrap();
    let pass_file = dir.path().join("pass.txt");
    std::fs::write(&pass_file, "pw\n").unwrap();
    let secret = unique("CANARY_cli_passphrase");

    let (m, e, n, k, p, a) = (
        missing.to_str().unwrap(),
        empty.to_str().unwrap(),
        newline_only.to_str().unwrap(),
        bad_key.to_str().unwrap(),
        pass_file.to_str().unwrap(),
        dir.path().join("auth.key"),
    );
    let a = a.to_str().unwrap();
    let cases: Vec<FailClosed<'_>> = vec![
        (
            "invalid recipient",
            vec!["--recipient", "age1notarealkey"],
            vec![],
            9,
            "recipient #1 is not a valid age recipient",
        ),
        (
            "empty recipient",
            vec!["--recipient", ""],
            vec![],
            9,
            "recipient #1 is not a valid age recipient",
        ),
        (
            "one bad recipient among good ones",
            vec!["--recipient", &good_r, "--recipient", "AGE-SECRET-KEY-1XYZ"],
            vec![],
            9,
            "recipient #2 is not a valid age recipient: it is a secret key",
        ),
        (
            "empty recipients file",
            vec!["--recipients-file", e],
            vec![],
            9,
            "lists no recipient",
        ),
        (
            "recipients file of comments",
            vec!["--recipients-file", comments.to_str().unwrap()],
            vec![],
            9,
            "lists no recipient",
        ),
        (
            "unreadable recipients file",
            vec!["--recipients-file", m],
            vec![],
            9,
            "cannot read the recipients file",
        ),
        (
            "empty PGB_PASSPHRASE",
            vec![],
            vec![("PGB_PASSPHRASE", "")],
            9,
            "passphrase is empty",
        ),
        (
            "blank PGB_PASSPHRASE",
            vec![],
            vec![("PGB_PASSPHRASE", "  \t ")],
            9,
            "passphrase is empty",
        ),
        (
            "unreadable passphrase file",
            vec!["--passphrase-file", m],
            vec![],
            9,
            "cannot read the passphrase file",
        ),
        (
            "empty passphrase file",
            vec!["--passphrase-file", n],
            vec![],
            9,
            "passphrase is empty",
        ),
        (
            "passphrase on the command line",
            vec!["--passphrase", &secret],
            vec![],
            2,
            "PGB_PASSPHRASE",
        ),
        (
            "recipients and a passphrase",
            vec!["--recipient", &good_r],
            vec![("PGB_PASSPHRASE", "pw")],
            2,
            "not both",
        ),
        (
            "recipients and a passphrase file",
            vec!["--recipient", &good_r, "--passphrase-file", p],
            vec![],
            2,
            "not both",
        ),
        (
            "auth key without encryption",
            vec!["--auth-key-file", a],
            vec![],
            2,
            "add --recipient or a passphrase",
        ),
        (
            "malformed auth key file",
            vec!["--recipient", &good_r, "--auth-key-file", k],
            vec![],
            9,
            "64 hex",
        ),
        (
            "malformed PGB_AUTH_KEY",
            vec!["--recipient", &good_r],
            vec![("PGB_AUTH_KEY", "abc")],
            9,
            "64 hex",
        ),
        (
            "unreadable auth key file",
            vec!["--recipient", &good_r, "--auth-key-file", m],
            vec![],
            9,
            "cannot read the authentication key file",
        ),
    ];
    for (i, (what, mut args, envs, code, fragment)) in cases.into_iter().enumerate() {
        let repo = dir.path().join(format!("repo{i}"));
        args.extend(["--pg-bin-dir", bin.to_str().unwrap()]);
        let out = backup_env(&pg, &repo, &src.name, &args, &envs);
        assert_eq!(out.status.code(), Some(code), "{what}: {}", stderr(&out));
        let line = one_line_error(&out);
        assert!(line.contains(fragment), "{what}: {line}");
        assert!(!stderr(&out).contains(&secret), "{what}: secret echoed");
        assert!(!marker.exists(), "{what}: pg_dump ran");
        assert!(
            files(&repo).is_empty(),
            "{what}: objects written: {:?}",
            files(&repo)
        );
    }

    // Control: with valid keys the same shim *is* run (and, writing nothing, fails the
    // backup), so its absence above proves pg_dump never started.
    let repo = dir.path().join("control");
    let out = backup(
        &pg,
        &repo,
        &src.name,
        &[
            "--recipient",
            &good_r,
            "--auth-key-file",
            a,
            "--pg-bin-dir",
            bin.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(one_line_error(&out).contains("wrote nothing"));
    assert!(marker.exists(), "the shim is the pg_dump pgb runs");
    assert!(list_json(&repo).is_empty());
}

/// Damages a copy of the repository, given the target backup's id and another backup's id.
type Damage = Box<dyn Fn(&Path, &str, &str)>;

/// One corruption of the pristine repository and what `verify` and `restore` must say.
struct Case {
    what: &'static str,
    /// Mutates a copy of the repository (given the target backup's id and another's).
    damage: Damage,
    /// Extra key arguments (replacing the default identity + auth key when `Some`).
    keys: Option<Vec<String>>,
    envs: Vec<(&'static str, String)>,
    code: i32,
    fragment: &'static str,
    /// Whether the failure is found before any database is created.
    before_db: bool,
}

fn run_case(
    pg: &Pg,
    pristine: &Path,
    scratch: &Path,
    a: &str,
    b: &str,
    default_keys: &[String],
    c: &Case,
) {
    let repo = scratch.join(unique("case"));
    let out = Command::new("cp")
        .args(["-a", pristine.to_str().unwrap(), repo.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    (c.damage)(&repo, a, b);
    let keys: Vec<&str> = c
        .keys
        .as_ref()
        .map_or(default_keys, |k| k.as_slice())
        .iter()
        .map(String::as_str)
        .collect();
    let envs: Vec<(&str, &str)> = c.envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = repo.to_str().unwrap();

    let mut args = vec!["verify", "--repo", r, a];
    args.extend(&keys);
    let out = pgb_env(&args, &envs);
    assert_eq!(
        out.status.code(),
        Some(c.code),
        "verify, {}: {}",
        c.what,
        stderr(&out)
    );
    let line = one_line_error(&out);
    assert!(line.contains(c.fragment), "verify, {}: {line}", c.what);

    let target = unique("pgbenc_never");
    let url = pg.url(&target);
    let mut args = vec!["-v", "restore", a, "--repo", r, "--db", &url];
    args.extend(&keys);
    let out = pgb_env(&args, &envs);
    assert_eq!(
        out.status.code(),
        Some(c.code),
        "restore, {}: {}",
        c.what,
        stderr(&out)
    );
    let line = one_line_error(&out);
    assert!(line.contains(c.fragment), "restore, {}: {line}", c.what);
    assert!(
        !pg.db_exists(&target),
        "restore, {}: target left behind",
        c.what
    );
    if c.before_db {
        assert!(
            !stderr(&out).contains("created restore target"),
            "restore, {}: found only after creating the target: {}",
            c.what,
            stderr(&out)
        );
    }
    drop_db_quietly(pg, &target);
}

#[test]
fn verify_and_restore_refuse_damaged_or_wrongly_keyed_encrypted_backups() {
    let Some(pg) = pg() else { return };
    // Large enough for several age chunks after compression.
    let src = sample_db(&pg, 12000, "x");
    let dir = tempfile::tempdir().unwrap();
    let (ops, ops_r) = keygen(dir.path(), "ops", Some("auth.key"));
    let (other, _) = keygen(dir.path(), "other", Some("other-auth.key"));
    let auth = dir.path().join("auth.key");
    let other_auth = dir.path().join("other-auth.key");
    let pristine = dir.path().join("pristine");
    for _ in 0..2 {
        let out = backup(
            &pg,
            &pristine,
            &src.name,
            &[
                "--recipient",
                &ops_r,
                "--auth-key-file",
                auth.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let all = ids(&pristine);
    let (a, b) = (all[0].clone(), all[1].clone());
    let len = std::fs::metadata(data_path(&pristine, &a)).unwrap().len() as usize;
    let header = age_header_len(&std::fs::read(data_path(&pristine, &a)).unwrap());
    let boundary = header + AGE_NONCE + AGE_CHUNK;
    assert!(
        len > boundary + 1024,
        "object of {len} bytes spans several age chunks"
    );

    let s = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let default_keys = vec![
        "--identity-file".to_owned(),
        s(&ops),
        "--auth-key-file".to_owned(),
        s(&auth),
    ];
    let cut = move |at: usize| {
        Box::new(move |repo: &Path, a: &str, _: &str| {
            let p = data_path(repo, a);
            let mut bytes = std::fs::read(&p).unwrap();
            bytes.truncate(at);
            std::fs::write(&p, bytes).unwrap();
        }) as Damage
    };
    let random_cut =
        header + AGE_NONCE + 1 + (random_u32() as usize) % (len - header - AGE_NONCE - 2);
    eprintln!("random truncation at byte {random_cut} of {len}");
    let cases = vec![
        Case {
            what: "bit flip mid-object",
            damage: Box::new(|repo, a, _| {
                let p = data_path(repo, a);
                let mut bytes = std::fs::read(&p).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x10;
                std::fs::write(&p, bytes).unwrap();
            }),
            keys: None,
            envs: vec![],
            code: 5,
            fragment: "checksum mismatch",
            before_db: false,
        },
        Case {
            what: "truncation at a random offset",
            damage: cut(random_cut),
            keys: None,
            envs: vec![],
            code: 5,
            fragment: "truncated",
            before_db: true,
        },
        Case {
            what: "truncation at a 64 KiB age chunk boundary",
            damage: cut(boundary),
            keys: None,
            envs: vec![],
            code: 5,
            fragment: "truncated",
            before_db: true,
        },
        Case {
            what: "one byte appended",
            damage: Box::new(|repo, a, _| {
                let p = data_path(repo, a);
                let mut bytes = std::fs::read(&p).unwrap();
                bytes.push(0);
                std::fs::write(&p, bytes).unwrap();
            }),
            keys: None,
            envs: vec![],
            code: 5,
            fragment: "appended",
            before_db: true,
        },
        Case {
            what: "another backup's object swapped in, manifest sha256/size updated",
            damage: Box::new(|repo, a, b| {
                std::fs::copy(data_path(repo, b), data_path(repo, a)).unwrap();
                reseal_manifest(repo, a);
            }),
            keys: None,
            envs: vec![],
            code: 5,
            fragment: "manifest authentication failed",
            before_db: true,
        },
        Case {
            what: "data object missing",
            damage: Box::new(|repo, a, _| std::fs::remove_file(data_path(repo, a)).unwrap()),
            keys: None,
            envs: vec![],
            code: 5,
            fragment: "missing",
            before_db: true,
        },
        Case {
            what: "manifest format_version 99",
            damage: Box::new(|repo, a, _| {
                edit_manifest(repo, a, |m| m["format_version"] = 99.into())
            }),
            keys: None,
            envs: vec![],
            code: 5,
            fragment: "unknown manifest format version 99",
            before_db: true,
        },
        Case {
            what: "wrong identity",
            damage: Box::new(|_, _, _| {}),
            keys: Some(vec![
                "--identity-file".into(),
                s(&other),
                "--auth-key-file".into(),
                s(&auth),
            ]),
            envs: vec![],
            code: 9,
            fragment: "no identity matched",
            before_db: true,
        },
        Case {
            what: "no identity",
            damage: Box::new(|_, _, _| {}),
            keys: Some(vec!["--auth-key-file".into(), s(&auth)]),
            envs: vec![],
            code: 9,
            fragment: "--identity-file",
            before_db: true,
        },
        Case {
            what: "a passphrase for a recipient-encrypted backup",
            damage: Box::new(|_, _, _| {}),
            keys: Some(vec!["--auth-key-file".into(), s(&auth)]),
            envs: vec![("PGB_PASSPHRASE", "not how this backup was encrypted".into())],
            code: 9,
            fragment: "no identity matched",
            before_db: true,
        },
        Case {
            what: "authentication key missing",
            damage: Box::new(|_, _, _| {}),
            keys: Some(vec!["--identity-file".into(), s(&ops)]),
            envs: vec![],
            code: 9,
            fragment: "--auth-key-file",
            before_db: true,
        },
        Case {
            what: "wrong authentication key",
            damage: Box::new(|_, _, _| {}),
            keys: Some(vec![
                "--identity-file".into(),
                s(&ops),
                "--auth-key-file".into(),
                s(&other_auth),
            ]),
            envs: vec![],
            code: 5,
            fragment: "manifest authentication failed",
            before_db: true,
        },
        Case {
            what: "manifest edited (database name)",
            damage: Box::new(|repo, a, _| {
                edit_manifest(repo, a, |m| m["database"] = "elsewhere".into())
            }),
            keys: None,
            envs: vec![],
            code: 5,
            fragment: "manifest authentication failed",
            before_db: true,
        },
    ];
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    for c in &cases {
        run_case(&pg, &pristine, &scratch, &a, &b, &default_keys, c);
    }

    // Replay: a genuine backup copied under another id. Moving the folder alone makes the
    // manifest disagree with its folder; rewriting the id (and data key) breaks the MAC.
    let replay = scratch.join("replay");
    assert!(
        Command::new("cp")
            .args(["-a", pristine.to_str().unwrap(), replay.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    let new_id = "20200101T000000Z-0a0b0c";
    std::fs::rename(
        replay.join("backups").join(&a),
        replay.join("backups").join(new_id),
    )
    .unwrap();
    let rr = replay.to_str().unwrap();
    let mut args = vec!["verify", "--repo", rr, new_id];
    args.extend(default_keys.iter().map(String::as_str));
    let out = pgb(&args);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        one_line_error(&out).contains("lives in"),
        "{}",
        stderr(&out)
    );
    // `list` reports the unusable manifest and still lists the other backup.
    let out = pgb(&["list", "--repo", rr, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("unusable"), "{}", stderr(&out));
    assert_eq!(ids(&replay), vec![b.clone()]);
    edit_manifest(&replay, new_id, |m| {
        m["id"] = new_id.into();
        m["artifacts"][0]["key"] = format!("backups/{new_id}/data.dump.zst.age").into();
    });
    let out = pgb(&args);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        one_line_error(&out).contains("manifest authentication failed"),
        "{}",
        stderr(&out)
    );

    // The pristine backups are untouched and still verify.
    let mut args = vec!["verify", "--all", "--repo", pristine.to_str().unwrap()];
    args.extend(default_keys.iter().map(String::as_str));
    let out = pgb(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).matches("ok ").count(), 2, "{}", stdout(&out));
}

#[test]
fn age_stream_cut_at_a_chunk_boundary_is_caught_even_without_authentication() {
    let Some(pg) = pg() else { return };
    let src = sample_db(&pg, 12000, "x");
    let dir = tempfile::tempdir().unwrap();
    let (ops, ops_r) = keygen(dir.path(), "ops", None);
    let repo = dir.path().join("repo");
    let out = backup(&pg, &repo, &src.name, &["--recipient", &ops_r]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = ids(&repo).pop().unwrap();
    // An attacker (or a storage bug) cuts the object right after the first full chunk and
    // fixes up the unauthenticated manifest: the sha256 now matches, but the age stream has
    // no final chunk, which the decryptor must notice.
    let p = data_path(&repo, &id);
    let mut bytes = std::fs::read(&p).unwrap();
    let boundary = age_header_len(&bytes) + AGE_NONCE + AGE_CHUNK;
    assert!(bytes.len() > boundary + 1024);
    bytes.truncate(boundary);
    std::fs::write(&p, bytes).unwrap();
    reseal_manifest(&repo, &id);
    let r = repo.to_str().unwrap();
    let out = pgb(&[
        "verify",
        "--repo",
        r,
        &id,
        "--identity-file",
        ops.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        one_line_error(&out).contains("decryption or decompression failed"),
        "{}",
        stderr(&out)
    );
    let target = unique("pgbenc_never");
    let out = pgb(&[
        "restore",
        &id,
        "--repo",
        r,
        "--db",
        &pg.url(&target),
        "--identity-file",
        ops.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    one_line_error(&out);
    assert!(!pg.db_exists(&target), "target dropped again");
}

#[test]
fn wrong_passphrase_is_a_key_error_before_any_database_is_touched() {
    let Some(pg) = pg() else { return };
    let src = sample_db(&pg, 500, "x");
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let out = backup_env(
        &pg,
        &repo,
        &src.name,
        &[],
        &[("PGB_PASSPHRASE", "the right one")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let r = repo.to_str().unwrap();
    let wrong = [("PGB_PASSPHRASE", "the wrong one")];
    let out = pgb_env(&["verify", "--repo", r], &wrong);
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    let line = one_line_error(&out);
    assert!(line.contains("passphrase"), "{line}");
    assert!(!stderr(&out).contains("the wrong one") && !stderr(&out).contains("the right one"));
    let target = unique("pgbenc_never");
    let out = pgb_env(
        &[
            "-v",
            "restore",
            "latest",
            "--repo",
            r,
            "--db",
            &pg.url(&target),
        ],
        &wrong,
    );
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    one_line_error(&out);
    assert!(!stderr(&out).contains("created restore target"));
    assert!(!pg.db_exists(&target));
    // No passphrase at all.
    let out = pgb(&["verify", "--repo", r]);
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    assert!(one_line_error(&out).contains("PGB_PASSPHRASE"));
}

#[test]
fn keys_at_restore_refuse_an_unauthenticated_backup_unless_allowed() {
    let Some(pg) = pg() else { return };
    let src = sample_db(&pg, 500, "x");
    let dir = tempfile::tempdir().unwrap();
    let (ops, ops_r) = keygen(dir.path(), "ops", Some("auth.key"));
    let auth_hex = std::fs::read_to_string(dir.path().join("auth.key")).unwrap();
    let auth_hex = auth_hex.trim();

    // An unencrypted backup (as an attacker with write access could plant in place of an
    // encrypted one), and a recipients backup without an authentication key.
    let plain = dir.path().join("plain");
    assert!(backup(&pg, &plain, &src.name, &[]).status.success());
    let unauth = dir.path().join("unauth");
    assert!(
        backup(&pg, &unauth, &src.name, &["--recipient", &ops_r])
            .status
            .success()
    );

    for (repo, extra, fragment) in [
        (&plain, vec![], "neither encrypted nor authenticated"),
        (
            &unauth,
            vec!["--identity-file", ops.to_str().unwrap()],
            "unauthenticated manifest",
        ),
    ] {
        let r = repo.to_str().unwrap();
        for env in [
            ("PGB_AUTH_KEY", auth_hex),
            ("PGB_PASSPHRASE", "a passphrase"),
        ] {
            if env.0 == "PGB_PASSPHRASE" && !extra.is_empty() {
                continue;
            }
            let mut args = vec!["verify", "--repo", r];
            args.extend(&extra);
            let out = pgb_env(&args, &[env]);
            assert_eq!(
                out.status.code(),
                Some(9),
                "{r} {}: {}",
                env.0,
                stderr(&out)
            );
            let line = one_line_error(&out);
            assert!(
                line.contains(fragment) && line.contains("--allow-unauthenticated"),
                "{line}"
            );

            let target = unique("pgbenc_never");
            let url = pg.url(&target);
            let mut args = vec!["-v", "restore", "latest", "--repo", r, "--db", &url];
            args.extend(&extra);
            let out = pgb_env(&args, &[env]);
            assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
            assert!(one_line_error(&out).contains(fragment));
            assert!(!stderr(&out).contains("created restore target"));
            assert!(!pg.db_exists(&target));
        }

        // Explicitly accepted.
        let target = unique("pgbenc_allowed");
        let url = pg.url(&target);
        let mut args = vec![
            "restore",
            "latest",
            "--allow-unauthenticated",
            "--repo",
            r,
            "--db",
            &url,
        ];
        args.extend(&extra);
        let out = pgb_env(&args, &[("PGB_AUTH_KEY", auth_hex)]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(pg.fingerprint(&target), pg.fingerprint(&src.name));
        drop_db_quietly(&pg, &target);
    }
    // Without any key, the unencrypted backup restores as before (no downgrade check).
    let out = pgb(&["verify", "--repo", plain.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}
