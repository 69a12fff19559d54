//! Prune and gc never delete what they must keep: a job prunes only its own backups and keeps
//! the newest verified one, forged data-less manifests are never counted (and `check` warns),
//! gc touches nothing pgb did not write and never follows a symlink out of the repository.

use crate::common;

use std::path::Path;

use common::{pgb, pgb_env, stderr, stdout};

/// Writes `text` as `pgb.toml` in `dir`; returns its path.
fn config(dir: &Path, text: &str) -> String {
    let path = dir.join("pgb.toml");
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

fn run_job(pg: &common::Pg, job: &str, path: &str) {
    let o = pgb_env(
        &["run", job, "--config", path],
        &[("PGB_PG_BIN_DIR", pg.bin.to_str().unwrap())],
    );
    assert!(o.status.success(), "pgb run {job}: {o:?}");
}

/// The ids of `repo`'s backups of database `db`.
fn ids_of(repo: &Path, db: &str) -> Vec<String> {
    common::list_json(repo)
        .iter()
        .filter(|e| e["database"] == db)
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn two_jobs_sharing_a_repository_each_prune_only_their_own_backups() {
    let Some(pg) = common::pg() else { return };
    let nw = pg.sample_db("safety_nw", 50, common::RowText::Plain);
    let chinook = pg.sample_db("safety_chinook", 50, common::RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let path = config(
        dir.path(),
        &format!(
            "[defaults]\nrepository = \"{}\"\n\n[jobs.nw]\ndatabase = \"{}\"\nkeep_last = 5\n\n[jobs.chinook]\ndatabase = \"{}\"\nkeep_last = 1\n",
            repo.display(),
            pg.url(&nw.name),
            pg.url(&chinook.name)
        ),
    );
    for _ in 0..3 {
        run_job(&pg, "nw", &path);
    }
    run_job(&pg, "chinook", &path);
    run_job(&pg, "chinook", &path);
    assert_eq!(
        ids_of(&repo, &nw.name).len(),
        3,
        "chinook's prune kept nw's"
    );
    assert_eq!(ids_of(&repo, &chinook.name).len(), 1, "chinook keeps 1");

    // pgb prune --job plans only the job's own set.
    let o = pgb(&[
        "prune",
        "--job",
        "chinook",
        "--config",
        &path,
        "--dry-run",
        "--json",
    ]);
    assert!(o.status.success(), "{o:?}");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sets = report["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 1, "{report}");
    assert!(
        sets[0]["set"].as_str().unwrap().ends_with(&chinook.name),
        "{report}"
    );
    let o = pgb(&["prune", "--job", "chinook", "--config", &path]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(ids_of(&repo, &nw.name).len(), 3);
}

#[test]
fn a_job_run_never_prunes_the_newest_verified_backup() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("safety_verified", 50, common::RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let path = config(
        dir.path(),
        &format!(
            "[jobs.nightly]\ndatabase = \"{}\"\nrepository = \"{}\"\nkeep_last = 1\n",
            pg.url(&db.name),
            repo.display()
        ),
    );
    run_job(&pg, "nightly", &path);
    let proven = common::ids(&repo);
    assert_eq!(proven.len(), 1);
    let o = pgb(&["verify", "--repo", repo.to_str().unwrap(), &proven[0]]);
    assert!(o.status.success(), "{o:?}");
    run_job(&pg, "nightly", &path);
    run_job(&pg, "nightly", &path);
    let ids = common::ids(&repo);
    assert_eq!(ids.len(), 2, "the newest and the newest verified: {ids:?}");
    assert_eq!(ids[0], proven[0], "the only verified backup is kept");
}

/// Copies backup `id`'s manifest under a newer id, naming the new folder, without data and
/// without a MAC: what someone who may add objects to the bucket but not delete them can do.
fn forge(repo: &Path, id: &str, n: u32) -> String {
    let text = std::fs::read_to_string(repo.join(format!("backups/{id}/manifest.json"))).unwrap();
    let year: u32 = id[..4].parse().unwrap();
    let forged = format!("{}{}-f0f0f{n}", year + 1, &id[4..16]);
    let mut v: serde_json::Value = serde_json::from_str(&text.replace(id, &forged)).unwrap();
    for field in ["started_at", "finished_at"] {
        let t = v[field].as_str().unwrap().to_owned();
        v[field] = format!("{}{}", year + 1, &t[4..]).into();
    }
    v.as_object_mut().unwrap().remove("mac");
    let folder = repo.join(format!("backups/{forged}"));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("manifest.json"),
        serde_json::to_vec(&v).unwrap(),
    )
    .unwrap();
    forged
}

#[test]
fn forged_data_less_manifests_are_never_counted_and_check_warns() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("safety_forged", 50, common::RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    for _ in 0..3 {
        let o = common::backup(&pg, &repo, &db.name, &[]);
        assert!(o.status.success(), "{o:?}");
    }
    let genuine = common::ids(&repo);
    for n in 0..3 {
        forge(&repo, &genuine[2], n);
    }
    let r = repo.to_str().unwrap();
    let o = pgb(&["prune", "--repo", r, "--keep-last", "3"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        common::ids(&repo),
        genuine,
        "the three genuine backups are kept"
    );
    assert!(
        stderr(&o).contains("is missing"),
        "prune names the unusable manifests: {}",
        stderr(&o)
    );
    let o = pgb(&[
        "check",
        "--repo",
        r,
        "--max-age",
        "1h",
        "--format",
        "nagios",
    ]);
    assert_eq!(o.status.code(), Some(1), "WARNING: {o:?}");
    assert!(stdout(&o).starts_with("PGB WARNING"), "{}", stdout(&o));

    // Data deleted from under the genuine backups: none usable is CRITICAL, and restore
    // latest finds nothing to restore rather than a forgery.
    for id in &genuine {
        for f in std::fs::read_dir(repo.join(format!("backups/{id}"))).unwrap() {
            let p = f.unwrap().path();
            if p.file_name().unwrap() != "manifest.json" {
                std::fs::remove_file(p).unwrap();
            }
        }
    }
    let o = pgb(&[
        "check",
        "--repo",
        r,
        "--max-age",
        "1h",
        "--format",
        "nagios",
    ]);
    assert_eq!(o.status.code(), Some(2), "CRITICAL: {o:?}");
}

#[test]
fn gc_deletes_nothing_it_did_not_write() {
    let Some(pg) = common::pg() else { return };
    let db = pg.sample_db("safety_gc", 20, common::RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let o = common::backup(&pg, &repo, &db.name, &[]);
    assert!(o.status.success(), "{o:?}");
    let foreign = repo.join("backups/mysql/dump.sql");
    std::fs::create_dir_all(foreign.parent().unwrap()).unwrap();
    std::fs::write(&foreign, "a dump someone else keeps here").unwrap();
    let stray = repo.join("locks/README");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, "not a lease").unwrap();
    let r = repo.to_str().unwrap();

    let o = pgb(&["gc", "--repo", r, "--older-than", "0s", "--dry-run"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("left backups/mysql"), "{}", stdout(&o));
    let o = pgb(&["gc", "--repo", r, "--older-than", "0s"]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        foreign.exists() && stray.exists(),
        "gc deleted what pgb never wrote"
    );
    assert_eq!(common::ids(&repo).len(), 1);
}

#[test]
fn gc_refuses_a_symlinked_backups_or_locks_folder_and_deletes_nothing_outside() {
    for linked in ["backups", "locks"] {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let outside = dir.path().join("elsewhere");
        // What a leftover or an expired lease would look like, outside the repository.
        let victim = if linked == "backups" {
            outside.join("20260101T000000Z-abcdef/data.dump.zst")
        } else {
            outside.join("20260101T000000Z-abcdef.json")
        };
        std::fs::create_dir_all(victim.parent().unwrap()).unwrap();
        std::fs::write(
            &victim,
            r#"{"id":"20260101T000000Z-abcdef","expires_at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        std::fs::create_dir_all(&repo).unwrap();
        std::os::unix::fs::symlink(&outside, repo.join(linked)).unwrap();
        let o = pgb(&["gc", "--repo", repo.to_str().unwrap(), "--older-than", "0s"]);
        assert_eq!(o.status.code(), Some(3), "{linked}: {o:?}");
        assert!(
            stderr(&o).contains("symbolic link"),
            "{linked}: {}",
            stderr(&o)
        );
        assert!(victim.exists(), "{linked}: gc followed the link");
    }
}
