//! `pgb check --textfile DIR` with several checks sharing DIR (node_exporter's textfile
//! directory): each check writes its own file, so a later OK never overwrites an earlier
//! CRITICAL, and no series carries Prometheus's target labels `job` or `instance`.

use crate::common;

use std::path::Path;

use common::{RowText, stdout};

/// The `.prom` files in `dir` and, for each, its text; no other file is left there.
fn textfiles(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            (name, std::fs::read_to_string(e.path()).unwrap())
        })
        .collect();
    files.sort();
    for (name, text) in &files {
        assert!(
            name.ends_with(".prom"),
            "only .prom files, no temp file: {name}"
        );
        assert!(
            !text.contains("{job=") && !text.contains(",job=") && !text.contains("instance="),
            "no target label in {name}: {text}"
        );
    }
    files
}

#[test]
fn two_jobs_checked_into_one_directory_keep_their_own_status() {
    let Some(pg) = common::pg() else { return };
    let db_a = pg.sample_db("pgb_mon_a", 50, RowText::Plain);
    let db_b = pg.sample_db("pgb_mon_b", 50, RowText::Plain);
    let dir = tempfile::tempdir().unwrap();
    let repo_a = dir.path().join("repo-a");
    let repo_b = dir.path().join("repo-b");
    for (repo, db) in [(&repo_a, &db_a.name), (&repo_b, &db_b.name)] {
        let o = common::backup(&pg, repo, db, &[]);
        assert!(o.status.success(), "{o:?}");
    }
    // Job a's backup is older than its max_age by the time it is checked: CRITICAL; b: OK.
    let config = dir.path().join("pgb.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.a]\ndatabase = \"{}\"\nrepository = \"{}\"\n[jobs.a.check]\nmax_age = \"1s\"\n\n\
             [jobs.b]\ndatabase = \"{}\"\nrepository = \"{}\"\n[jobs.b.check]\nmax_age = \"1h\"\n",
            pg.url(&db_a.name),
            repo_a.display(),
            pg.url(&db_b.name),
            repo_b.display(),
        ),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let prom = dir.path().join("prom");
    std::fs::create_dir(&prom).unwrap();
    let check = |job: &str| {
        common::pgb(&[
            "check",
            "--job",
            job,
            "--config",
            config.to_str().unwrap(),
            "--textfile",
            prom.to_str().unwrap(),
        ])
    };
    let o = check("a");
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let o = check("b");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    let files = textfiles(&prom);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["pgb-a.prom", "pgb-b.prom"], "one file per job");
    let (a, b) = (&files[0].1, &files[1].1);
    assert!(a.contains("pgb_check_status{pgb_job=\"a\"} 2\n"), "{a}");
    assert!(b.contains("pgb_check_status{pgb_job=\"b\"} 0\n"), "{b}");
    assert!(
        a.contains(&format!("database=\"{}\",pgb_job=\"a\"}}", db_a.name)),
        "{a}"
    );
    assert!(!a.contains("pgb_job=\"b\"") && !b.contains("pgb_job=\"a\""));

    // Without --job: one file per repository, so the OK of one never hides the other's
    // CRITICAL either.
    let plain = dir.path().join("prom-plain");
    std::fs::create_dir(&plain).unwrap();
    let check_repo = |repo: &Path, extra: &[&str]| {
        let mut args = vec![
            "check",
            "--repo",
            repo.to_str().unwrap(),
            "--textfile",
            plain.to_str().unwrap(),
        ];
        args.extend(extra);
        common::pgb(&args)
    };
    let o = check_repo(&repo_a, &["--max-age", "1s"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let o = check_repo(&repo_b, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let files = textfiles(&plain);
    let file = |repo: &Path| {
        let name = pgb_ops::metrics::textfile_name(None, repo.to_str().unwrap(), None);
        files
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} in {files:?}"))
            .1
            .clone()
    };
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(file(&repo_a).contains("pgb_check_status{pgb_job=\"\"} 2\n"));
    assert!(file(&repo_b).contains("pgb_check_status{pgb_job=\"\"} 0\n"));
}
