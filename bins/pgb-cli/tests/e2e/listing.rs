//! What an operator reads on day two, against a real PostgreSQL (PGB_TEST_PG_URL): `pgb list`
//! shows whether each backup is verified (and when), encrypted, and how many files archives it
//! holds; a restore from a whole-server backup names the server and database; restoring a
//! backup that is not encrypted while keys are given warns, and `--require-encrypted` refuses
//! it (exit 9) before any database is touched.

use crate::common;

use common::*;
use std::path::Path;

/// `pgb key generate` into `dir`: the identity file and its recipient.
fn keygen(dir: &Path) -> (String, String) {
    let identity = dir.join("id.txt").to_str().unwrap().to_owned();
    let o = pgb(&["key", "generate", "--output", &identity]);
    assert!(o.status.success(), "{}", stderr(&o));
    (identity, stdout(&o).trim().to_owned())
}

#[test]
fn list_shows_verified_encrypted_and_files() {
    let Some(pg) = pg() else { return };
    let db = pg.sample_db("pgblst", 50, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let (identity, recipient) = keygen(dir.path());
    let repo = dir.path().join("repo");
    let r = repo.to_str().unwrap();
    let uploads = dir.path().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(uploads.join("a.txt"), b"attachment").unwrap();

    // A plaintext backup, never verified.
    let o = backup(&pg, &repo, &db.name, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // An encrypted backup with a files archive, then verified.
    let o = backup(
        &pg,
        &repo,
        &db.name,
        &[
            "--recipient",
            &recipient,
            "--files",
            uploads.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let ids = ids(&repo);
    let (plain, enc) = (&ids[0], &ids[1]);
    let o = pgb(&["verify", enc, "--repo", r, "--identity-file", &identity]);
    assert!(o.status.success(), "{}", stderr(&o));

    let listed = list_json(&repo);
    let entry = |id: &str| {
        listed
            .iter()
            .find(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("{id} listed: {listed:?}"))
            .clone()
    };
    let (p, e) = (entry(plain), entry(enc));
    assert_eq!(p["encrypted"], false, "{p}");
    assert_eq!(p["files"], 0, "{p}");
    assert!(p["verified_at"].is_null(), "{p}");
    assert_eq!(e["encrypted"], true, "{e}");
    assert_eq!(e["files"], 1, "{e}");
    let verified_at = e["verified_at"].as_str().expect("verified_at").to_owned();
    // The verify ran after the backup finished.
    let parse = |s: &str| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    };
    let finished = parse(e["finished_at"].as_str().unwrap())
        .replace_nanosecond(0)
        .unwrap();
    assert!(parse(&verified_at) >= finished, "{e}");
    // The existing fields stay.
    assert!(
        e["stored_size"].as_u64().unwrap() > 0 && e["set"].is_string(),
        "{e}"
    );

    let text = pgb(&["list", "--repo", r]);
    assert!(text.status.success(), "{}", stderr(&text));
    let text = stdout(&text);
    // Under the server's heading (its system identifier), the table's header.
    assert!(text.starts_with("server "), "{text}");
    let header = text.lines().find(|l| l.starts_with("ID ")).unwrap();
    for col in ["VERIFIED", "ENC", "FILES"] {
        assert!(header.contains(col), "{header}");
    }
    let row = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} in {text}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (p, e) = (row(plain), row(enc));
    // ... LAST DRILL, VERIFIED, ENC, FILES (the labels column is empty).
    let n = p.len();
    assert_eq!(p[n - 4..], ["-", "-", "no", "0"], "{text}");
    let n = e.len();
    assert_eq!(
        e[n - 4..],
        [
            "-".to_owned(),
            verified_at[..10].to_owned(),
            "yes".into(),
            "1".into()
        ],
        "{text}"
    );
}

#[test]
fn a_plaintext_backup_restored_with_keys_warns_and_can_be_refused() {
    let Some(pg) = pg() else { return };
    let db = pg.sample_db("pgbrk", 20, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let (identity, recipient) = keygen(dir.path());
    let repo = dir.path().join("repo");
    let r = repo.to_str().unwrap();
    let o = backup(&pg, &repo, &db.name, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = ids(&repo).pop().unwrap();

    // Refused with --require-encrypted: exit 9, and the target database is never created.
    let refused = unique("pgbrk_refused");
    let o = pgb(&[
        "restore",
        &id,
        "--repo",
        r,
        "--db",
        &pg.url(&refused),
        "--identity-file",
        &identity,
        "--require-encrypted",
    ]);
    assert_eq!(o.status.code(), Some(9), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&id) && stderr(&o).contains("not encrypted"),
        "{}",
        stderr(&o)
    );
    assert!(!pg.db_exists(&refused));

    // With keys but without the flag: restored, with one warning line naming the backup.
    let target = unique("pgbrk_warned");
    let o = pgb(&[
        "restore",
        &id,
        "--repo",
        r,
        "--db",
        &pg.url(&target),
        "--identity-file",
        &identity,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let warnings: Vec<String> = stderr(&o)
        .lines()
        .filter(|l| l.contains("warning") && l.contains("not encrypted"))
        .map(str::to_owned)
        .collect();
    assert_eq!(warnings.len(), 1, "{}", stderr(&o));
    assert!(warnings[0].contains(&id), "{warnings:?}");
    assert_eq!(pg.fingerprint(&target), pg.fingerprint(&db.name));
    drop_db_quietly(&pg, &target);

    // Without keys there is nothing to warn about.
    let quiet = unique("pgbrk_quiet");
    let o = pgb(&["restore", &id, "--repo", r, "--db", &pg.url(&quiet)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("not encrypted"), "{}", stderr(&o));
    drop_db_quietly(&pg, &quiet);

    // An encrypted backup passes --require-encrypted.
    let o = backup(&pg, &repo, &db.name, &["--recipient", &recipient]);
    assert!(o.status.success(), "{}", stderr(&o));
    let enc = ids(&repo).pop().unwrap();
    let target = unique("pgbrk_enc");
    let o = pgb(&[
        "restore",
        &enc,
        "--repo",
        r,
        "--db",
        &pg.url(&target),
        "--identity-file",
        &identity,
        "--require-encrypted",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("not encrypted"), "{}", stderr(&o));
    assert_eq!(pg.fingerprint(&target), pg.fingerprint(&db.name));
    drop_db_quietly(&pg, &target);
}

#[test]
fn a_database_restored_from_a_whole_server_backup_is_named() {
    let Some(pg) = pg() else { return };
    let db = pg.sample_db("pgbws", 20, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let r = repo.to_str().unwrap();
    let server = pg.url("postgres");
    let bin = pg.bin.to_str().unwrap();
    let o = pgb(&[
        "backup",
        "--repo",
        r,
        "--db",
        &server,
        "--all-databases",
        "--include",
        &db.name,
        "--pg-bin-dir",
        bin,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = ids(&repo).pop().unwrap();

    let target = unique("pgbws_copy");
    let o = pgb(&[
        "restore",
        &id,
        "--repo",
        r,
        "--database",
        &db.name,
        "--db",
        &pg.url(&target),
        "--pg-bin-dir",
        bin,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.contains("(*"), "{out}");
    assert!(
        out.contains(&format!(
            "restored database {} of backup {id} (whole server {}",
            db.name,
            pg.hostport()
        )),
        "{out}"
    );
    assert!(out.contains(&format!("into {target}")), "{out}");
    assert_eq!(pg.fingerprint(&target), pg.fingerprint(&db.name));
    drop_db_quietly(&pg, &target);
}
