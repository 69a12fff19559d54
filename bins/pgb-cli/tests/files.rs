//! Files beside the database (`backup --files DIR`, `restore --files-to DIR`) against real
//! PostgreSQL: the tree comes back as it was (symlinks as symlinks, never followed), only
//! after its checksum matched, never over a non-empty directory without `--clean`.

pub mod common;

use std::fs;
use std::path::Path;

use common::{RowText, list_json, one_line_error, pgb, stderr};

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
    assert!(list_json(&repo).is_empty());

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
