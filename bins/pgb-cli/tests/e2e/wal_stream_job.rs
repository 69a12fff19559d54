//! Two `wal = "stream"` jobs streaming one server (PostgreSQL 15, `pgb_testkit::TempCluster`)
//! each use their own slot (`wal_stream_slot`): `pgb wal stream --job NAME --preflight` reports
//! the job's slot, the environment (`PGB_WAL_STREAM_SLOT`) overrides the file and `--slot`
//! overrides both; `pgb config check` refuses a slot name PostgreSQL would refuse, naming the
//! key, and a zero `wal_stream_partial_interval`.

use crate::common;

use std::path::{Path, PathBuf};

use common::{one_line_error, pgb, pgb_env, stderr};
use pgb_testkit::TempCluster;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn bin_dir() -> Option<PathBuf> {
    match common::env("PGB_TEST_PG15_BIN") {
        Some(b) => Some(PathBuf::from(b)),
        None => pgb_testkit::require_or_skip(
            "PostgreSQL 15",
            "PGB_TEST_PG15_BIN is not set (scripts/pg.sh start)",
        ),
    }
}

/// The slot `pgb wal stream --job JOB --preflight --json` reports, with `extra` flags and
/// `envs`.
fn preflight_slot(
    pg: &TempCluster,
    config: &Path,
    job: &str,
    spool: &Path,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> String {
    let (config, spool, bins) = (s(config), s(spool), s(pg.bin_dir()));
    let args = [
        &[
            "wal",
            "stream",
            "--job",
            job,
            "--config",
            &config,
            "--preflight",
            "--json",
            "--create-slot",
        ][..],
        &["--spool", &spool, "--pg-bin-dir", &bins],
        extra,
    ]
    .concat();
    let o = pgb_env(&args, envs);
    assert!(o.status.success(), "{job}: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["slot"]
        .as_str()
        .expect("slot in the preflight")
        .to_owned()
}

#[test]
fn two_streaming_jobs_of_one_server_use_their_own_slots() {
    let Some(bin) = bin_dir() else { return };
    let pg = TempCluster::init(&bin, &[]).expect("start PostgreSQL");
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("spool");
    let config = work.path().join("pgb.toml");
    let job = |name: &str, extra: &str| {
        format!(
            "[jobs.{name}]\ndatabase = \"{}\"\nrepository = \"{}\"\nformat = \"physical\"\n\
             wal = \"stream\"\n{extra}\n",
            pg.url(),
            s(&work.path().join(format!("repo-{name}")))
        )
    };
    std::fs::write(
        &config,
        job(
            "a",
            "wal_stream_slot = \"db1_a\"\nwal_stream_partial_interval = \"2s\"",
        ) + &job("b", "wal_stream_slot = \"db1_b\"")
            + &job("c", ""),
    )
    .unwrap();
    let o = pgb(&["config", "check", "--config", &s(&config)]);
    assert!(o.status.success(), "{}", stderr(&o));

    assert_eq!(preflight_slot(&pg, &config, "a", &spool, &[], &[]), "db1_a");
    assert_eq!(preflight_slot(&pg, &config, "b", &spool, &[], &[]), "db1_b");
    // No key: the slot stays `pgb`, as before the key existed.
    assert_eq!(preflight_slot(&pg, &config, "c", &spool, &[], &[]), "pgb");
    // defaults < file < environment < flags.
    let env = [("PGB_WAL_STREAM_SLOT", "from_env")];
    assert_eq!(
        preflight_slot(&pg, &config, "a", &spool, &[], &env),
        "from_env"
    );
    let flag = ["--slot", "from_flag"];
    assert_eq!(
        preflight_slot(&pg, &config, "a", &spool, &flag, &env),
        "from_flag"
    );
    // A preflight creates nothing.
    assert_eq!(
        pg.psql("select count(*) from pg_replication_slots")
            .unwrap(),
        "0"
    );

    // A slot name PostgreSQL would refuse is refused before any server is asked.
    let bad = work.path().join("bad.toml");
    std::fs::write(&bad, job("a", "wal_stream_slot = \"DB1-a\"")).unwrap();
    let o = pgb(&["config", "check", "--config", &s(&bad)]);
    assert!(!o.status.success(), "{}", stderr(&o));
    let line = one_line_error(&o);
    assert!(
        line.contains("wal_stream_slot") && line.contains("lowercase letters"),
        "{line}"
    );
    std::fs::write(&bad, job("a", "wal_stream_partial_interval = \"0s\"")).unwrap();
    let o = pgb(&["config", "check", "--config", &s(&bad)]);
    assert!(!o.status.success(), "{}", stderr(&o));
    assert!(
        one_line_error(&o).contains("wal_stream_partial_interval"),
        "{}",
        stderr(&o)
    );
}
