//! The flag layer's glue: every flag that is a job key reaches that key, and the reverse.

use std::collections::HashMap;
use std::path::Path;

use clap::CommandFactory;

use super::*;

fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
    vars.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// What `resolve::job::layer` does, from a config text: the flags of `a` layered over job
/// `shop`, the resolved job handed to `a`.
fn resolve<A: FromJob>(toml: &str, env: &HashMap<String, String>, a: &mut A) -> ResolvedJob {
    let cfg = pgb_config::LoadedConfig::parse(toml, Path::new("pgb.toml")).unwrap();
    let job = pgb_jobs::resolve_job(&cfg, "shop", env, &a.flags().unwrap()).unwrap();
    a.apply(&job, env).unwrap();
    job
}

const SHOP: &str = r#"
[jobs.shop]
database = "postgres://app@db.internal:5432/shop"
repository = "s3://backups/shop"
schedule = "30 2 * * *"
passphrase_env = "SHOP_PASSPHRASE"
keep_daily = 7
[jobs.shop.drill]
target = "postgres://drill@scratch:5432/postgres"
max_rpo = "26h"
[jobs.shop.check]
min_size = "1MiB"
"#;

#[test]
fn flags_win_over_the_job_and_the_job_fills_the_rest() {
    let e = env(&[("SHOP_PASSPHRASE", "s3cret")]);
    let mut a = RestoreArgs {
        id: "latest".to_owned(),
        ..RestoreArgs::default()
    };
    a.repo.repo = Some("/from/flag".to_owned());
    let j = resolve(SHOP, &e, &mut a);
    assert_eq!(a.repo.repo.as_deref(), Some("/from/flag"));
    assert_eq!(j.provenance["repository"].to_string(), "flag");
    assert_eq!(a.from_database.as_deref(), Some("shop"));

    let mut d = DrillArgs {
        max_rpo: Some("1h".to_owned()),
        ..DrillArgs::default()
    };
    let j = resolve(SHOP, &e, &mut d);
    assert_eq!(d.repo.repo.as_deref(), Some("s3://backups/shop"));
    assert_eq!(
        d.target.as_deref(),
        Some("postgres://drill@scratch:5432/postgres")
    );
    let limits = d.from_job.expect("the job's [drill], typed");
    assert_eq!(limits.max_rpo, Some(Duration::from_secs(3600)), "the flag");
    assert_eq!(j.provenance["drill.max_rpo"].to_string(), "flag");
    assert_eq!(j.provenance["drill.target"].to_string(), "pgb.toml:9");
}

#[test]
fn storage_flags_become_typed_options() {
    let a = RepoArgs {
        retries: Some(7),
        retry_budget: Some("10m".to_owned()),
        io_timeout: Some("90s".to_owned()),
        ..RepoArgs::default()
    };
    let o = a.storage().unwrap();
    assert_eq!(o.retries, Some(7));
    assert_eq!(o.retry_budget, Some(Duration::from_secs(600)));
    assert_eq!(o.request_timeout, None, "PGB_STORAGE_* or the default");
    assert_eq!(o.io_timeout, Some(Duration::from_secs(90)));
    for bad in ["0s", "soon"] {
        let a = RepoArgs {
            request_timeout: Some(bad.to_owned()),
            ..RepoArgs::default()
        };
        let e = a.storage().unwrap_err();
        assert!(
            e.code == 2 && e.message.contains("--request-timeout"),
            "{}",
            e.message
        );
    }
}

#[test]
fn the_jobs_storage_settings_fill_what_the_flags_left() {
    let toml = "[jobs.shop]\nrepository = \"s3://b/p\"\nstorage_retries = 9\n\
                storage_retry_budget_secs = 600\n";
    let e = env(&[("PGB_STORAGE_TIMEOUT_SECS", "30")]);
    let mut a = GcArgs::default();
    a.repo.retries = Some(1);
    resolve(toml, &e, &mut a);
    let o = a.repo.storage().unwrap();
    assert_eq!(o.retries, Some(1), "the flag wins");
    assert_eq!(o.retry_budget, Some(Duration::from_secs(600)), "the file");
    assert_eq!(
        o.request_timeout,
        Some(Duration::from_secs(30)),
        "the environment"
    );
    assert_eq!(o.io_timeout, None, "the storage's default");
    // A storage flag's duration in the one grammar, held as the key's seconds.
    let mut a = GcArgs::default();
    a.repo.retry_budget = Some("2m".to_owned());
    let j = resolve(toml, &e, &mut a);
    assert_eq!(j.storage.retry_budget, Some(Duration::from_secs(120)));
}

#[test]
fn check_takes_its_maximum_age_from_a_daily_schedule() {
    let mut c = CheckArgs::default();
    resolve(SHOP, &env(&[]), &mut c);
    let limits = c.from_job.expect("typed limits");
    assert_eq!(
        limits.max_age,
        Some(Duration::from_secs(93_600)),
        "26 h for a daily job"
    );
    assert_eq!(limits.min_size, Some(1 << 20));
}

/// One size grammar: `--min-size 500MB` beside `--job` is the key `check.min_size`, read
/// as the file reads it (SI: 500,000,000 bytes), with `flag` as its provenance; `MiB` is
/// binary in both.
#[test]
fn a_size_flag_and_the_same_toml_key_give_the_same_value() {
    let base = "[jobs.shop]\nrepository = \"/r\"\n";
    for (text, bytes) in [("500MB", 500_000_000), ("500MiB", 500 << 20)] {
        let mut from_flag = CheckArgs {
            min_size: Some(text.to_owned()),
            ..CheckArgs::default()
        };
        let j = resolve(base, &env(&[]), &mut from_flag);
        assert_eq!(j.provenance["check.min_size"].to_string(), "flag");
        let mut from_file = CheckArgs::default();
        let toml = format!("{base}[jobs.shop.check]\nmin_size = \"{text}\"\n");
        resolve(&toml, &env(&[]), &mut from_file);
        let flag = from_flag.from_job.unwrap().min_size;
        assert_eq!(flag, Some(bytes), "{text}");
        assert_eq!(flag, from_file.from_job.unwrap().min_size, "{text}");
        // Without --job the flag reads the same.
        let alone = CheckArgs {
            min_size: Some(text.to_owned()),
            ..CheckArgs::default()
        };
        let o = crate::resolve::check(&alone, &env(&[])).unwrap();
        assert_eq!(o.min_size, Some(bytes), "{text}");
    }
}

/// A flag value the config crate refuses is named by its flag.
#[test]
fn a_bad_flag_value_names_the_flag() {
    let cfg = pgb_config::LoadedConfig::parse(
        "[jobs.shop]\nrepository = \"/r\"\n",
        Path::new("pgb.toml"),
    )
    .unwrap();
    let a = CheckArgs {
        min_size: Some("10M".to_owned()),
        ..CheckArgs::default()
    };
    let e = pgb_jobs::resolve_job(&cfg, "shop", &env(&[]), &a.flags().unwrap()).unwrap_err();
    let f = crate::resolve::job::flag_error(e);
    assert_eq!(f.code, crate::exit::USAGE);
    assert!(
        f.message
            .starts_with("--min-size: job \"shop\", key \"check.min_size\": "),
        "{}",
        f.message
    );
    assert!(f.message.contains("10MiB"), "{}", f.message);
    assert_eq!(flag_of("storage_timeout_secs"), "request-timeout");
    assert_eq!(flag_of("drill.max_rto"), "max-rto");
}

/// `--retention-tz` beside `--job` is the job's `timezone`: its policy's calendar runs in
/// the flag's zone.
#[test]
fn the_retention_zone_flag_is_the_jobs_timezone() {
    let mut a = PruneArgs::default();
    a.policy.retention_tz = Some("Europe/Berlin".to_owned());
    let toml = "[jobs.shop]\ndatabase = \"postgres://app@db/shop\"\nrepository = \"/r\"\n\
                keep_daily = 7\n";
    let j = resolve(toml, &env(&[]), &mut a);
    assert_eq!(j.timezone, pgb_config::Tz::Europe__Berlin);
    assert_eq!(j.provenance["timezone"].to_string(), "flag");
    assert!(
        a.policy.from_job.is_some(),
        "the job's policy, in that zone"
    );
}

/// Every retention flag is a key of a job, and every `keep_*` key a flag of `prune` and
/// `backup` (`--retention-tz` is the job's `timezone`, which also runs its schedule).
#[test]
fn every_retention_flag_is_a_toml_key_and_the_reverse() {
    let cli = crate::args::Cli::command();
    let keys: Vec<&str> = pgb_config::KEYS
        .iter()
        .copied()
        .filter(|k| k.starts_with("keep_"))
        .collect();
    assert_eq!(keys.len(), 13, "{keys:?}");
    for command in ["prune", "backup", "report"] {
        let sub = cli.find_subcommand(command).expect(command);
        let flags: Vec<String> = sub
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|l| l.starts_with("keep-"))
            .map(|l| l.replace('-', "_"))
            .collect();
        let mut want: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        let mut got = flags.clone();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{command}: flags {flags:?}");
        assert!(
            sub.get_arguments()
                .any(|a| a.get_long() == Some("retention-tz")),
            "{command}"
        );
    }
    assert!(pgb_config::KEYS.contains(&"timezone"));
}
