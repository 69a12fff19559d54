//! Files beside the database (`backup --files DIR`, `restore --files-to DIR`) against real
//! PostgreSQL: the tree comes back as it was (symlinks as symlinks, never followed), only
//! after its checksum matched, never over a non-empty directory without `--clean`; any target
//! (`.`, `..`, `/`, one holding the repository or inside a staging folder) either works or is
//! refused before anything is touched; same-named directories restore side by side; unsafe
//! mode bits are dropped unless `--keep-modes`; escaping entries are named; a killed restore's
//! staging folder is removed by the next one.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Pg, RowText, list_json, one_line_error, pgb, pgb_cmd, stderr, stdout};

fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let t = e.file_type().unwrap();
            if t.is_symlink() {
                out.push(format!(
                    "{rel} -> {}",
                    fs::read_link(e.path()).unwrap().display()
                ));
            } else if t.is_dir() {
                out.push(format!("{rel}/"));
                stack.push(e.path());
            } else {
                out.push(format!("{rel} = {:?}", fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn files_round_trip_beside_the_database() {
    let Some(pg) = common::pg() else { return };
    let src = pg.sample_db("wfiles", 20, RowText::Plain);
    let work = tempfile::tempdir().unwrap();
    let up = work.path().join("uploads");
    fs::create_dir_all(up.join("orders/2026")).unwrap();
    fs::write(up.join("orders/2026/photo.jpg"), [0u8, 1, 2, 255, 254]).unwrap();
    fs::write(up.join("invoice.pdf"), b"%PDF-1.7 invoice").unwrap();
    fs::write(up.join("empty"), b"").unwrap();
    std::os::unix::fs::symlink("../../etc/passwd", up.join("outside")).unwrap();
    let repo = work.path().join("repo");
    let r = repo.to_str().unwrap();

    let missing = work.path().join("nope");
    let o = pgb(&[
        "backup",
        "--repo",
        r,
        "--db",
        &pg.url(&src.name),
        "--files",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(one_line_error(&o).contains("nope"), "{}", stderr(&o));
    assert!(
        !repo.exists() || list_json(&repo).is_empty(),
        "a refused backup writes nothing"
    );

    let o = pgb(&[
        "backup",
        "--repo",
        r,
        "--db",
        &pg.url(&src.name),
        "--files",
        up.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let kinds: Vec<String> = list_json(&repo)[0]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["dump", "files"]);
    let o = pgb(&["verify", "--repo", r, "latest"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let dest = work.path().join("restored/uploads");
    let o = pgb(&[
        "restore",
        "latest",
        "--repo",
        r,
        "--files-to",
        dest.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tree(&dest), tree(&up));
    assert!(
        fs::symlink_metadata(dest.join("outside"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "a symlink stays a symlink"
    );

    // Not over a non-empty directory without --clean; with it, replaced.
    fs::write(dest.join("stray"), b"x").unwrap();
    let o = pgb(&[
        "restore",
        "latest",
        "--repo",
        r,
        "--files-to",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(one_line_error(&o).contains("--clean"), "{}", stderr(&o));
    assert!(dest.join("stray").exists());
    let o = pgb(&[
        "restore",
        "latest",
        "--repo",
        r,
        "--files-to",
        dest.to_str().unwrap(),
        "--clean",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tree(&dest), tree(&up));

    // A corrupt archive: nothing is extracted, the target is untouched, no staging is left.
    let key = list_json(&repo)[0]["artifacts"][1]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = repo.join(key);
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(&path, bytes).unwrap();
    let fresh = work.path().join("fresh");
    let o = pgb(&[
        "restore",
        "latest",
        "--repo",
        r,
        "--files-to",
        fresh.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(!fresh.exists());
    let leftovers: Vec<_> = fs::read_dir(work.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".pgb-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A small uploads tree under `parent/name`: nested files, an empty file, a symlink.
fn uploads(parent: &Path, name: &str, marker: &str) -> PathBuf {
    let up = parent.join(name);
    fs::create_dir_all(up.join("orders/2026")).unwrap();
    fs::write(up.join("orders/2026/photo.jpg"), [0u8, 1, 2, 255, 254]).unwrap();
    fs::write(up.join("marker.txt"), marker).unwrap();
    fs::write(up.join("empty"), b"").unwrap();
    std::os::unix::fs::symlink("orders/2026/photo.jpg", up.join("latest.jpg")).unwrap();
    up
}

/// `pgb backup` of `db` into `repo` with `--files` for each of `dirs`, then `extra`.
fn backup_files(pg: &Pg, db: &str, repo: &Path, dirs: &[&Path], extra: &[&str]) {
    let mut args: Vec<&str> = Vec::new();
    for d in dirs {
        args.extend(["--files", d.to_str().unwrap()]);
    }
    args.extend(extra);
    let o = common::backup(pg, repo, db, &args);
    assert!(o.status.success(), "backup: {}", stderr(&o));
}

/// `pgb restore latest --files-to TO` from `repo`, with `extra`, run in `cwd`.
fn restore_files(repo: &Path, to: &str, extra: &[&str], cwd: &Path) -> Output {
    let mut args = vec![
        "restore",
        "latest",
        "--repo",
        repo.to_str().unwrap(),
        "--files-to",
        to,
    ];
    args.extend(extra);
    pgb_cmd(&args).current_dir(cwd).output().expect("run pgb")
}

/// Hidden `.NAME.pgb-*` folders directly in `dir`.
fn staging_folders(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.contains(".pgb-"))
        .collect();
    v.sort();
    v
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn files_restore_into_dot_with_clean_keeps_the_files() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("wfdot", 5, RowText::Plain);
    let work = tempfile::tempdir().unwrap();
    let up = uploads(work.path(), "uploads", "dot");
    let repo = work.path().join("repo");
    backup_files(&pg, &db.name, &repo, &[&up], &[]);

    let site = work.path().join("site");
    fs::create_dir(&site).unwrap();
    fs::write(site.join("stray"), b"replaced").unwrap();
    let o = restore_files(&repo, ".", &["--clean"], &site);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tree(&site), tree(&up), "the restored files are there");
    assert!(
        stderr(&o).contains("current directory"),
        "the user is told their shell's directory was replaced: {}",
        stderr(&o)
    );
    assert!(staging_folders(work.path()).is_empty());

    // Without --clean the non-empty current directory is refused, untouched.
    let o = restore_files(&repo, ".", &[], &site);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert_eq!(tree(&site), tree(&up));
}

#[test]
fn files_restore_into_a_dotdot_target_with_clean_keeps_the_files() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("wfdotdot", 5, RowText::Plain);
    let work = tempfile::tempdir().unwrap();
    let up = uploads(work.path(), "uploads", "dotdot");
    let repo = work.path().join("repo");
    backup_files(&pg, &db.name, &repo, &[&up], &[]);

    let site = work.path().join("site");
    fs::create_dir_all(site.join("sub")).unwrap();
    fs::write(site.join("sub/stray"), b"replaced").unwrap();
    let o = restore_files(&repo, "..", &["--clean"], &site.join("sub"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tree(&site), tree(&up));

    // `DIR/missing/..` is DIR.
    let to = site.join("missing/..");
    let o = restore_files(&repo, to.to_str().unwrap(), &["--clean"], work.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tree(&site), tree(&up));
    assert!(staging_folders(work.path()).is_empty());
}

#[test]
fn files_restore_into_root_is_refused_before_anything_is_touched() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("wfroot", 5, RowText::Plain);
    let work = tempfile::tempdir().unwrap();
    let up = uploads(work.path(), "uploads", "root");
    let repo = work.path().join("repo");
    backup_files(&pg, &db.name, &repo, &[&up], &[]);

    let root = || {
        let mut v: Vec<_> = fs::read_dir("/")
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    let root_before = root();
    let dotted = format!("{}/{}", work.path().display(), "../".repeat(40));
    for to in ["/", dotted.as_str()] {
        // Never with --clean here: were the refusal ever lost, a test run as root must not
        // replace `/`. Without it, `/` is refused (not empty) either way; the message tells
        // which refusal it was.
        let o = restore_files(&repo, to, &[], work.path());
        assert_eq!(o.status.code(), Some(6), "{to}: {}", stderr(&o));
        let line = one_line_error(&o);
        assert!(line.contains("root directory"), "{line}");
        assert!(line.contains("--files-to"), "says what to do: {line}");
    }
    assert_eq!(root(), root_before, "nothing was created in /");
}

#[test]
fn files_restore_refuses_a_target_that_holds_the_repository() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("wfrepo", 5, RowText::Plain);
    let work = tempfile::tempdir().unwrap();
    let up = uploads(work.path(), "uploads", "repo");
    let repo = work.path().join("repo");
    backup_files(&pg, &db.name, &repo, &[&up], &[]);
    let before = tree(work.path());

    // `--repo repo --files-to . --clean` in the folder that holds both.
    let o = pgb_cmd(&[
        "restore",
        "latest",
        "--repo",
        "repo",
        "--files-to",
        ".",
        "--clean",
    ])
    .current_dir(work.path())
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    let line = one_line_error(&o);
    assert!(line.contains("holds the repository"), "{line}");
    let o = restore_files(&repo, repo.to_str().unwrap(), &["--clean"], work.path());
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert_eq!(tree(work.path()), before, "nothing was touched");
    assert_eq!(list_json(&repo).len(), 1);
}

#[test]
fn files_restore_refuses_a_target_inside_a_staging_folder() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("wfstg", 5, RowText::Plain);
    let work = tempfile::tempdir().unwrap();
    let up = uploads(work.path(), "uploads", "staging");
    let repo = work.path().join("repo");
    backup_files(&pg, &db.name, &repo, &[&up], &[]);

    let staging = work.path().join(".site.pgb-0123456789ab");
    fs::create_dir(&staging).unwrap();
    std::os::unix::fs::symlink(&staging, work.path().join("alias")).unwrap();
    for to in [staging.join("x"), work.path().join("alias/x")] {
        let o = restore_files(&repo, to.to_str().unwrap(), &[], work.path());
        assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
        assert!(
            one_line_error(&o).contains("staging folder"),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(fs::read_dir(&staging).unwrap().count(), 0);
}

#[test]
fn files_with_the_same_directory_name_restore_side_by_side() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("wfsame", 5, RowText::Plain);
    let work = tempfile::tempdir().unwrap();
    let a = uploads(&work.path().join("a"), "uploads", "from a");
    let b = uploads(&work.path().join("b"), "uploads", "from b");
    let st = uploads(&work.path().join("c"), "static", "static");
    let repo = work.path().join("repo");
    backup_files(&pg, &db.name, &repo, &[&a, &b, &st], &[]);
    let names: Vec<String> = list_json(&repo)[0]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["kind"] == "files")
        .map(|x| x["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            a.display().to_string(),
            b.display().to_string(),
            st.display().to_string()
        ],
        "the manifest names each directory as given"
    );

    let out = work.path().join("out");
    let o = restore_files(&repo, out.to_str().unwrap(), &[], work.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tree(&out.join("uploads-1")), tree(&a));
    assert_eq!(tree(&out.join("uploads-2")), tree(&b));
    assert_eq!(
        tree(&out.join("static")),
        tree(&st),
        "a unique name is kept"
    );
    assert_eq!(fs::read_dir(&out).unwrap().count(), 3, "{:?}", tree(&out));
    let text = stdout(&o);
    assert!(
        text.contains(&format!(
            "({}) into {}",
            b.display(),
            out.join("uploads-2").display()
        )),
        "the summary says which directory went where: {text}"
    );
}

#[test]
fn files_restore_drops_setuid_and_world_writable_bits_unless_keep_modes() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("wfmodes", 5, RowText::Plain);
    let work = tempfile::tempdir().unwrap();
    let up = uploads(work.path(), "uploads", "modes");
    let set = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    fs::write(up.join("run.sh"), b"#!/bin/sh\n").unwrap();
    set(&up.join("run.sh"), 0o4755);
    fs::write(up.join("public.jpg"), b"jpg").unwrap();
    set(&up.join("public.jpg"), 0o666);
    set(&up.join("orders"), 0o1777);
    fs::write(up.join("private.txt"), b"p").unwrap();
    set(&up.join("private.txt"), 0o640);
    let repo = work.path().join("repo");
    backup_files(&pg, &db.name, &repo, &[&up], &[]);

    let out = work.path().join("out");
    let o = restore_files(&repo, out.to_str().unwrap(), &[], work.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(mode(&out.join("run.sh")), 0o755);
    assert_eq!(mode(&out.join("public.jpg")), 0o664);
    assert_eq!(mode(&out.join("orders")), 0o775);
    assert_eq!(mode(&out.join("private.txt")), 0o640);
    let err = stderr(&o);
    let warning = err
        .lines()
        .find(|l| l.starts_with("pgb: warning:") && l.contains("--keep-modes"))
        .unwrap_or_else(|| panic!("a warning naming the files: {err}"));
    for name in [
        "run.sh 4755 -> 0755",
        "public.jpg 0666 -> 0664",
        "orders 1777 -> 0775",
    ] {
        assert!(warning.contains(name), "{name} in {warning}");
    }
    assert!(!warning.contains("private.txt"), "{warning}");

    let o = restore_files(
        &repo,
        out.to_str().unwrap(),
        &["--clean", "--keep-modes"],
        work.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(mode(&out.join("run.sh")), 0o4755);
    assert_eq!(mode(&out.join("public.jpg")), 0o666);
    assert_eq!(mode(&out.join("orders")), 0o1777);
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));

    let o = pgb(&[
        "restore",
        "latest",
        "--repo",
        repo.to_str().unwrap(),
        "--keep-modes",
    ]);
    assert_eq!(o.status.code(), Some(2), "--keep-modes needs --files-to");
}

/// One ustar entry, written byte for byte (as a crafted archive would be).
fn tar_entry(out: &mut Vec<u8>, name: &str, kind: u8, mode: u32, data: &[u8]) {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let mut octal = |at: usize, len: usize, v: u64| {
        let s = format!("{v:0w$o}\0", w = len - 1);
        h[at..at + len].copy_from_slice(s.as_bytes());
    };
    octal(100, 8, u64::from(mode));
    octal(108, 8, 0);
    octal(116, 8, 0);
    octal(124, 12, data.len() as u64);
    octal(136, 12, 1_700_000_000);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn files_entries_escaping_the_target_are_named_in_a_warning() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("wfescape", 5, RowText::Plain);
    let work = tempfile::tempdir().unwrap();
    let up = uploads(work.path(), "uploads", "escape");
    let repo = work.path().join("repo");
    backup_files(&pg, &db.name, &repo, &[&up], &["--compression", "none"]);

    // Someone with write access to the repository swaps in a crafted archive, and reseals it.
    let mut tar = Vec::new();
    tar_entry(&mut tar, "./", b'5', 0o755, b"");
    tar_entry(&mut tar, "../escaped.txt", b'0', 0o644, b"x");
    tar_entry(&mut tar, "/tmp/pgb-escaped-absolute.txt", b'0', 0o644, b"x");
    tar_entry(&mut tar, "fine.txt", b'0', 0o644, b"fine");
    tar.extend_from_slice(&[0u8; 1024]);
    let entry = list_json(&repo)[0].clone();
    let id = entry["id"].as_str().unwrap().to_owned();
    let key = entry["artifacts"][1]["key"].as_str().unwrap().to_owned();
    let object = repo.join(&key);
    fs::write(&object, &tar).unwrap();
    let sha = sha256_hex(&tar);
    let name = object.file_name().unwrap().to_str().unwrap().to_owned();
    fs::write(
        object.with_file_name(format!("{name}.sha256")),
        format!("{sha}  {name}\n"),
    )
    .unwrap();
    let manifest = repo.join(format!("backups/{id}/manifest.json"));
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    let a = &mut m["artifacts"][1];
    assert_eq!(a["kind"], "files");
    a["stored_size"] = tar.len().into();
    a["plain_size"] = tar.len().into();
    a["stored_sha256"] = sha.clone().into();
    a["plain_sha256"] = sha.into();
    fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();

    let out = work.path().join("deep/out");
    let o = restore_files(&repo, out.to_str().unwrap(), &[], work.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read(out.join("fine.txt")).unwrap(), b"fine");
    assert!(!work.path().join("deep/escaped.txt").exists());
    assert!(!Path::new("/tmp/pgb-escaped-absolute.txt").exists());
    assert!(
        !out.join("tmp").exists(),
        "an absolute path is not made relative either"
    );
    let err = stderr(&o);
    let warning = err
        .lines()
        .find(|l| l.starts_with("pgb: warning: 2 archive entries not restored"))
        .unwrap_or_else(|| panic!("a warning naming the entries: {err}"));
    assert!(warning.contains("../escaped.txt"), "{warning}");
    assert!(
        warning.contains("/tmp/pgb-escaped-absolute.txt"),
        "{warning}"
    );
}

#[cfg(not(feature = "test-support"))]
#[test]
fn a_killed_files_restore_leaves_staging_that_the_next_restore_removes() {
    pgb_testkit::require_or_skip::<()>(
        "the PGB_TEST_FAILPOINT hook",
        "build the tests with --features pgb-cli/test-support, as scripts/test.sh does",
    );
}

#[cfg(feature = "test-support")]
#[test]
fn a_killed_files_restore_leaves_staging_that_the_next_restore_removes() {
    use std::time::{Duration, Instant};
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("wfkill", 5, RowText::Plain);
    let work = tempfile::tempdir().unwrap();
    let up = uploads(work.path(), "uploads", "kill");
    // 6 MiB that do not compress: the restore passes a progress event (every 4 MiB) midway.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..6 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(up.join("big.bin"), &noise).unwrap();
    let repo = work.path().join("repo");
    backup_files(&pg, &db.name, &repo, &[&up], &[]);

    let out = work.path().join("out");
    let log = work.path().join("killed.log");
    let mut child = pgb_cmd(&[
        "restore",
        "latest",
        "--repo",
        repo.to_str().unwrap(),
        "--files-to",
        out.to_str().unwrap(),
    ])
    .env("PGB_TEST_FAILPOINT", "progress")
    .stderr(fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fs::read_to_string(&log)
        .unwrap()
        .contains("FAILPOINT progress reached")
    {
        assert!(
            Instant::now() < deadline,
            "no failpoint: {}",
            fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    common::kill(child.id(), libc::SIGKILL);
    child.wait().unwrap();
    let left = staging_folders(work.path());
    assert_eq!(
        left.len(),
        1,
        "the killed restore left its staging folder: {left:?}"
    );
    assert!(left[0].starts_with(".out.pgb-"), "{left:?}");
    assert!(!out.exists());

    // Folders that are not pgb's own staging pattern stay.
    let decoys = [
        ".out.pgb-0123456789ab.keep",
        ".out.pgb-mine",
        ".other.pgb-0123456789ab",
    ];
    for d in decoys {
        fs::create_dir(work.path().join(d)).unwrap();
    }
    let o = restore_files(&repo, out.to_str().unwrap(), &[], work.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tree(&out), tree(&up));
    let err = stderr(&o);
    assert!(
        err.lines()
            .any(|l| l.starts_with("pgb: note: removed") && l.contains(&left[0])),
        "the removal is reported: {err}"
    );
    let mut expected: Vec<String> = decoys.iter().map(|d| (*d).to_owned()).collect();
    expected.sort();
    assert_eq!(staging_folders(work.path()), expected);
}
