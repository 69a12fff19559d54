//! The retention policy of `keep_*` values: one builder ([`pgb_config::retention_policy`]) for
//! a job's keys and a command's `--keep-*` flags.

use pgb_config::{JobSettings, Keep, retention_policy};
use pgb_retention::{Backup, RetentionPolicy};

fn settings(f: impl FnOnce(&mut JobSettings)) -> JobSettings {
    let mut s = JobSettings::default();
    f(&mut s);
    s
}

#[test]
fn every_count_accepts_unlimited_keep_last_included() {
    let unlimited: Keep = "unlimited".parse().unwrap();
    assert_eq!(unlimited, Keep::Unlimited);
    assert_eq!("7".parse::<Keep>().unwrap(), Keep::N(7));
    let p = retention_policy(&settings(|s| s.keep_last = Some(unlimited)))
        .unwrap()
        .expect("a policy");
    let t = time::macros::datetime!(2026-01-01 0:00 UTC);
    let backups: Vec<Backup> = (0..4)
        .map(|i| Backup::new(format!("b{i}"), t + time::Duration::hours(i)))
        .collect();
    assert!(p.plan(&backups, t).unwrap().remove.is_empty());
    for k in [Keep::N(2), Keep::Unlimited] {
        let s = settings(|s| {
            s.keep_daily = Some(k);
            s.keep_yearly = Some(k);
        });
        assert!(retention_policy(&s).unwrap().is_some());
    }
    // restic's -1 for "unlimited" reads like a typo: refused with the word to use.
    let e = "-1".parse::<Keep>().unwrap_err();
    assert!(e.to_string().contains("unlimited"), "{e}");
    // And in TOML, as every other count.
    let cfg = pgb_config::LoadedConfig::parse(
        "[jobs.a]\nrepository = \"/r\"\nkeep_last = \"unlimited\"\n",
        std::path::Path::new("pgb.toml"),
    )
    .unwrap();
    let env = pgb_config::Environment {
        var: &|_| None,
        is_executable: &|_| false,
    };
    let job = cfg.resolve("a", &env, &JobSettings::default()).unwrap();
    assert!(job.retention.is_some());
}

#[test]
fn no_rule_is_no_policy_and_a_policy_that_keeps_nothing_is_refused() {
    assert!(retention_policy(&JobSettings::default()).unwrap().is_none());
    // A zone alone is no rule.
    let zone_only = settings(|s| s.timezone = Some("Europe/Berlin".into()));
    assert!(retention_policy(&zone_only).unwrap().is_none());
    let zero = settings(|s| s.keep_daily = Some(Keep::N(0)));
    let e = retention_policy(&zero).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("keep_last"));
    let bad_span = settings(|s| s.keep_within = Some("soon".into()));
    assert_eq!(
        retention_policy(&bad_span).unwrap_err().key.as_deref(),
        Some("keep_within")
    );
    let bad_zone = settings(|s| {
        s.keep_daily = Some(Keep::N(7));
        s.timezone = Some("Mars/Olympus".into());
    });
    let e = retention_policy(&bad_zone).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("timezone"));
    // The message is the retention engine's own, with no file or job around it.
    assert!(!e.to_string().contains("job"), "{e}");
}
