//! The config file as an operator meets it: the example validates, layering and provenance,
//! and every kind of bad input names the file, line, job and key.

use std::collections::HashMap;
use std::path::Path;

use pgb_config::{
    ConfigError, EXAMPLE, Environment, JobSettings, Keep, LoadedConfig, Origin, Source,
};

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn resolve(
    text: &str,
    job: &str,
    env: &[(&str, &str)],
) -> Result<pgb_config::ResolvedJob, ConfigError> {
    let cfg = LoadedConfig::parse(text, Path::new("pgb.toml"))?;
    let map = vars(env);
    let var = move |k: &str| map.get(k).cloned();
    let exe = |p: &Path| p == Path::new("/usr/bin/npx") || p == Path::new("/bin/sh");
    cfg.resolve(
        job,
        &Environment {
            var: &var,
            is_executable: &exe,
        },
        &JobSettings::default(),
    )
}

fn parse_err(text: &str) -> ConfigError {
    LoadedConfig::parse(text, Path::new("pgb.toml")).expect_err("must be refused")
}

fn line(e: &ConfigError) -> Option<usize> {
    match &e.origin {
        Origin::File { line, .. } => *line,
        _ => None,
    }
}

#[test]
fn the_example_validates_and_covers_three_environments() {
    let cfg = LoadedConfig::parse(EXAMPLE, Path::new("pgb.example.toml")).unwrap();
    let names: Vec<&str> = cfg.job_names().collect();
    assert_eq!(names, ["dev", "production", "production-pitr", "staging"]);
    let none = |_: &str| None;
    let env = Environment {
        var: &none,
        is_executable: &|_| false,
    };
    let jobs = cfg.resolve_all(&env, &JobSettings::default()).unwrap();
    let dev = &jobs[0];
    assert_eq!(dev.settings.keep_last, Some(pgb_config::Keep::N(3)));
    assert!(dev.schedule.is_none());
    let prod = &jobs[1];
    assert_eq!(prod.timezone, pgb_config::Tz::Europe__Berlin);
    assert_eq!(prod.settings.keep_daily, Some(Keep::N(30)));
    assert!(prod.retention.is_some());
    assert_eq!(prod.jitter.as_secs(), 600);
    assert_eq!(
        prod.drill.as_ref().unwrap().max_rto.unwrap().as_secs(),
        4 * 3600
    );
    assert_eq!(prod.check.as_ref().unwrap().min_size, Some(10 << 20));
    assert_eq!(
        prod.notify.as_ref().unwrap().webhook_url_env.as_deref(),
        Some("PGB_WEBHOOK_URL")
    );
    // Point-in-time recovery beside the nightly dumps: hourly base backups into the same
    // repository, WAL from the archive, a 7-day window, WAL notifications.
    let pitr = &jobs[2];
    assert_eq!(pitr.format, "physical");
    assert_eq!(pitr.wal, "archive");
    assert_eq!(pitr.repository, prod.repository);
    assert_eq!(pitr.schedule_expr.as_deref(), Some("5 * * * *"));
    assert!(pitr.retention.is_some());
    let events = pitr.notify.as_ref().unwrap().events.clone();
    assert!(
        events.iter().any(|e| e == "wal_push_failed") && events.iter().any(|e| e == "wal_gap"),
        "{events:?}"
    );
    let staging = &jobs[3];
    assert_eq!(staging.schedule_expr.as_deref(), Some("30 2 * * *"));
    assert!(staging.catch_up);
    // The zone comes from [defaults], and says so.
    assert_eq!(
        staging.provenance["timezone"],
        Source::File {
            path: "pgb.example.toml".into(),
            line: 15
        }
    );
}

const BASE: &str = r#"
[defaults]
repository = "s3://bucket/pgb"
keep_daily = 7
timezone = "Europe/Berlin"

[jobs.shop]
database = "postgres://backup@db/shop"
keep_daily = 14

[jobs.shop.drill]
max_rto = "2h"
"#;

#[test]
fn layers_defaults_file_job_env_flags_with_provenance() {
    let cfg = LoadedConfig::parse(BASE, Path::new("pgb.toml")).unwrap();
    let map = vars(&[("PGB_DRILL_MAX_RTO", "3h"), ("PGB_COMPRESSION", "gzip:6")]);
    let var = move |k: &str| map.get(k).cloned();
    let env = Environment {
        var: &var,
        is_executable: &|_| false,
    };
    let flags = JobSettings {
        compression: Some("none".into()),
        ..JobSettings::default()
    };
    let job = cfg.resolve("shop", &env, &flags).unwrap();
    let p = &job.provenance;
    // built-in default
    assert_eq!(job.format, "custom");
    assert_eq!(p["format"], Source::Default);
    // [defaults]
    assert_eq!(job.repository, "s3://bucket/pgb");
    assert_eq!(p["repository"].to_string(), "pgb.toml:3");
    // [jobs.shop] over [defaults]
    assert_eq!(job.settings.keep_daily, Some(Keep::N(14)));
    assert_eq!(p["keep_daily"].to_string(), "pgb.toml:9");
    // env over the file, in a nested table
    assert_eq!(
        job.drill.as_ref().unwrap().max_rto.unwrap().as_secs(),
        3 * 3600
    );
    assert_eq!(p["drill.max_rto"].to_string(), "env PGB_DRILL_MAX_RTO");
    // flags over env
    assert_eq!(job.compression, "none");
    assert_eq!(p["compression"], Source::Flag);

    let report = serde_json::to_value(job.report()).unwrap();
    assert_eq!(report["settings"]["keep_daily"]["value"], 14);
    assert_eq!(report["settings"]["keep_daily"]["source"]["kind"], "file");
    assert_eq!(report["settings"]["keep_daily"]["source"]["line"], 9);
    assert_eq!(report["settings"]["timezone"]["value"], "Europe/Berlin");
}

#[test]
fn env_values_are_typed_and_lists_split() {
    let job = resolve(
        BASE,
        "shop",
        &[
            ("PGB_KEEP_WEEKLY", "unlimited"),
            ("PGB_LABELS", "a, b"),
            ("PGB_CATCH_UP", "true"),
            ("PGB_REPO", "/srv/backups"),
        ],
    )
    .unwrap();
    assert_eq!(job.settings.keep_weekly, Some(Keep::Unlimited));
    assert_eq!(job.labels, ["a", "b"]);
    assert!(job.catch_up);
    assert_eq!(job.repository, "/srv/backups");
    assert_eq!(job.provenance["repository"].to_string(), "env PGB_REPO");

    let e = resolve(BASE, "shop", &[("PGB_KEEP_DAILY", "many")]).unwrap_err();
    assert_eq!(e.origin, Origin::Env("PGB_KEEP_DAILY".into()));
    assert_eq!(e.key.as_deref(), Some("keep_daily"));
}

#[test]
fn unknown_keys_and_wrong_types_name_file_line_job_and_key() {
    let e = parse_err("[jobs.shop]\nrepository = \"/x\"\nkeep_dialy = 7\n");
    assert_eq!(line(&e), Some(3));
    assert_eq!(e.job.as_deref(), Some("shop"));
    assert_eq!(e.key.as_deref(), Some("keep_dialy"));
    let msg = e.to_string();
    assert_eq!(
        msg,
        "pgb.toml:3: job \"shop\", key \"keep_dialy\": unknown key `keep_dialy`; did you mean `keep_daily`?",
        "one line with the nearest key, not the list of every key"
    );

    let e = parse_err("[defaults]\nrepository = \"/x\"\n\n[jobs.a]\ncatch_up = \"yes\"\n");
    assert_eq!(line(&e), Some(5));
    assert_eq!(e.job.as_deref(), Some("a"));
    assert_eq!(e.key.as_deref(), Some("catch_up"));

    let e = parse_err("[jobs.a.drill]\nmax_rto = 5\n");
    assert_eq!(e.key.as_deref(), Some("drill.max_rto"));
    assert_eq!(line(&e), Some(2));

    let e = parse_err("[job.shop]\nrepository = \"/x\"\n");
    assert!(
        e.to_string()
            .contains("unknown key `job`; did you mean `jobs`?"),
        "{e}"
    );
    let e = parse_err("[jobs.shop]\nrepository = \"/x\"\nfrobnicate = 1\n");
    assert!(
        e.to_string()
            .ends_with("unknown key `frobnicate` (`pgb config example` lists every key)"),
        "{e}"
    );

    let e = parse_err("[jobs.shop]\nrepository = \n");
    assert_eq!(line(&e), Some(2));

    let e = parse_err("[jobs.\"bad name\"]\nrepository = \"/x\"\n");
    assert!(e.to_string().contains("job name"), "{e}");
}

#[test]
fn secrets_written_inline_are_refused_without_echoing_them() {
    let cases = [
        (
            "[jobs.shop]\npassphrase = \"hunter2\"\n",
            "shop",
            "passphrase",
            2,
        ),
        (
            "[defaults]\nrepository = \"/x\"\n[jobs.shop]\ndatabase = \"postgres://u:hunter2@db/shop\"\n",
            "shop",
            "database",
            4,
        ),
        (
            "[jobs.shop]\nrecipients = [\"AGE-SECRET-KEY-1HUNTER2\"]\n",
            "shop",
            "recipients",
            2,
        ),
        (
            "[jobs.shop.notify]\nwebhook_url = \"https://hooks.example/hunter2\"\n",
            "shop",
            "notify.webhook_url",
            2,
        ),
        (
            "[jobs.shop.notify]\nslack_url_env = \"https://hooks.slack.com/hunter2\"\n",
            "shop",
            "notify.slack_url_env",
            2,
        ),
    ];
    for (text, job, key, l) in cases {
        let e = parse_err(text);
        let msg = e.to_string();
        assert_eq!(e.job.as_deref(), Some(job), "{msg}");
        assert_eq!(e.key.as_deref(), Some(key), "{msg}");
        assert_eq!(line(&e), Some(l), "{msg}");
        assert!(
            !msg.contains("hunter2") && !msg.contains("HUNTER2"),
            "{msg}"
        );
        assert!(
            msg.contains("inline") || msg.contains("not the value"),
            "{msg}"
        );
    }
    // In [defaults] there is no job to name.
    let e = parse_err("[defaults]\nauth_key = \"k\"\n");
    assert_eq!(
        (e.job.as_deref(), e.key.as_deref()),
        (None, Some("auth_key"))
    );
    // From the environment, a password in the database URL is refused too.
    let e = resolve(
        BASE,
        "shop",
        &[("PGB_DATABASE", "postgres://u:hunter2@db/x")],
    )
    .unwrap_err();
    assert_eq!(e.origin, Origin::Env("PGB_DATABASE".into()));
    assert!(!e.to_string().contains("hunter2"));
}

#[test]
fn validation_names_the_bad_value_and_where_it_came_from() {
    let with = |extra: &str| format!("[jobs.shop]\nrepository = \"/x\"\n{extra}\n");
    let bad = [
        ("schedule = \"61 2 * * *\"", "schedule", "cron"),
        ("schedule = \"0 0 2 * * *\"", "schedule", "5 fields"),
        ("timezone = \"Mars/Olympus\"", "timezone", "time zone"),
        ("jitter = \"5 minutes\"", "jitter", "duration"),
        ("compression = \"lz4\"", "compression", "compression"),
        ("format = \"tar\"", "format", "format"),
        (
            "pre_backup = [\"no-such-program\"]",
            "pre_backup",
            "executable",
        ),
        ("post_restore = []", "post_restore", "empty"),
        ("keep_within = \"forever\"", "keep_within", ""),
        ("recipients = [\"bob\"]", "recipients", "age recipient"),
        (
            "passphrase_env = \"not a name\"",
            "passphrase_env",
            "variable name",
        ),
        ("include = [\"shop_*\"]", "include", "all_databases"),
        ("jobs = 4", "jobs", "directory"),
        (
            "pg_dump_options = [\"no-comments\"]",
            "pg_dump_options",
            "not an option",
        ),
    ];
    for (extra, key, needle) in bad {
        let e = resolve(&with(extra), "shop", &[("PATH", "/usr/bin:/bin")]).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.key.as_deref(), Some(key), "{msg}");
        assert_eq!(e.job.as_deref(), Some("shop"), "{msg}");
        assert_eq!(line(&e), Some(3), "{msg}");
        assert!(msg.starts_with("pgb.toml:3: job \"shop\""), "{msg}");
        assert!(msg.contains(needle), "{msg}");
    }
    let whole_server_drill = "[jobs.shop]\nrepository = \"/x\"\nall_databases = true\n\
                              [jobs.shop.drill]\ntarget = \"postgres://d@h/postgres\"\n";
    // A whole-server job may have its drill: every database of the server is drilled.
    let j = resolve(whole_server_drill, "shop", &[]).unwrap();
    assert!(j.whole_server.is_some() && j.drill.is_some());
    let e = resolve("[jobs.shop]\nrepository = \"ftp://h/x\"\n", "shop", &[]).unwrap_err();
    assert!(e.to_string().contains("unknown repository scheme"), "{e}");
    let e = resolve("[jobs.shop]\nkeep_last = 3\n", "shop", &[]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("repository"));
    let e = resolve(BASE, "nope", &[]).unwrap_err();
    assert!(
        e.to_string().contains("no job named \"nope\" (jobs: shop)"),
        "{e}"
    );
}

#[test]
fn hooks_resolve_through_the_given_path() {
    let text = "[jobs.shop]\nrepository = \"/x\"\npost_restore = [\"npx\", \"prisma\", \"migrate\", \"deploy\"]\npre_backup = [\"/bin/sh\", \"-c\", \"true\"]\n";
    let job = resolve(text, "shop", &[("PATH", "/opt/none:/usr/bin")]).unwrap();
    let hook = job.hooks.post_restore.unwrap();
    assert_eq!(hook.program, Path::new("/usr/bin/npx"));
    assert_eq!(hook.argv, ["npx", "prisma", "migrate", "deploy"]);
    assert_eq!(job.hooks.pre_backup.unwrap().program, Path::new("/bin/sh"));
    assert_eq!(job.hooks.timeout.as_secs(), 600);
    // Not on this PATH: refused.
    let e = resolve(text, "shop", &[("PATH", "/opt/none")]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("post_restore"));
}

#[test]
fn the_report_redacts_url_passwords_from_flags() {
    let cfg = LoadedConfig::parse(BASE, Path::new("pgb.toml")).unwrap();
    let none = |_: &str| None;
    let env = Environment {
        var: &none,
        is_executable: &|_| false,
    };
    let flags = JobSettings {
        repository: Some("s3://bucket/pgb".into()),
        ..JobSettings::default()
    };
    let job = cfg.resolve("shop", &env, &flags).unwrap();
    let mut report = job.report();
    assert_eq!(report.settings["repository"].source, Source::Flag);
    // A value set by an embedder bypassing validation is still redacted in the report.
    let mut settings = job.settings.clone();
    settings.database = Some("postgres://u:hunter2@db/shop".into());
    let job = pgb_config::ResolvedJob { settings, ..job };
    report = job.report();
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains("hunter2"), "{json}");
    assert!(json.contains("postgres://u:***@db/shop"), "{json}");
}

/// The object-store retry budget and timeouts: file < `PGB_STORAGE_*` (the same variables the
/// storage reads) < flags, with provenance; bad values name the file and line.
#[test]
fn storage_retries_and_timeouts_layer_and_validate() {
    let text = "[defaults]\nrepository = \"s3://b/p\"\nstorage_retries = 8\n\n[jobs.shop]\n\
                storage_retry_budget_secs = 600\nstorage_timeout_secs = 20\n";
    let job = resolve(text, "shop", &[("PGB_STORAGE_TIMEOUT_SECS", "30")]).unwrap();
    let s = job.storage;
    assert_eq!(s.retries, Some(8));
    assert_eq!(s.retry_budget.map(|d| d.as_secs()), Some(600));
    assert_eq!(s.request_timeout.map(|d| d.as_secs()), Some(30));
    assert_eq!(s.io_timeout, None, "unset: the storage's default applies");
    let p = &job.provenance;
    assert_eq!(p["storage_retries"].to_string(), "pgb.toml:3");
    assert_eq!(p["storage_retry_budget_secs"].to_string(), "pgb.toml:6");
    assert_eq!(
        p["storage_timeout_secs"].to_string(),
        "env PGB_STORAGE_TIMEOUT_SECS"
    );

    let cfg = LoadedConfig::parse(text, Path::new("pgb.toml")).unwrap();
    let none = |_: &str| None;
    let env = Environment {
        var: &none,
        is_executable: &|_| false,
    };
    let flags = JobSettings {
        storage_retries: Some(0),
        ..JobSettings::default()
    };
    let job = cfg.resolve("shop", &env, &flags).unwrap();
    assert_eq!(job.storage.retries, Some(0));
    assert_eq!(job.provenance["storage_retries"], Source::Flag);

    let e = resolve(
        "[jobs.shop]\nrepository = \"/x\"\nstorage_io_timeout_secs = 0\n",
        "shop",
        &[],
    )
    .unwrap_err();
    assert_eq!(e.key.as_deref(), Some("storage_io_timeout_secs"));
    assert_eq!(line(&e), Some(3));
    assert!(e.to_string().contains("at least 1"), "{e}");
    let e = parse_err("[jobs.shop]\nrepository = \"/x\"\nstorage_retry_budget_secs = \"5m\"\n");
    assert_eq!(e.key.as_deref(), Some("storage_retry_budget_secs"));
    assert_eq!(line(&e), Some(3));
    let e = resolve(BASE, "shop", &[("PGB_STORAGE_RETRIES", "many")]).unwrap_err();
    assert_eq!(e.origin, Origin::Env("PGB_STORAGE_RETRIES".into()));
}

#[test]
fn a_schedule_that_never_runs_is_refused_naming_job_and_key() {
    let with = |extra: &str| format!("[jobs.shop]\nrepository = \"/x\"\n{extra}\n");
    for (extra, key) in [
        ("schedule = \"0 0 31 2 *\"", "schedule"),
        ("schedule = \"30 2 30 2 *\"", "schedule"),
        ("schedule = \"0 0 31 4,6,9,11 *\"", "schedule"),
        (
            "[jobs.shop.drill]\ntarget = \"postgres://d@h/postgres\"\nschedule = \"0 4 31 2 *\"",
            "drill.schedule",
        ),
    ] {
        let e = resolve(&with(extra), "shop", &[]).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.key.as_deref(), Some(key), "{msg}");
        assert_eq!(e.job.as_deref(), Some("shop"), "{msg}");
        assert!(msg.starts_with("pgb.toml:"), "{msg}");
        assert!(msg.contains("never runs"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }
    // From [defaults], it is refused, and blamed on [defaults] (not on the job resolved).
    let e = resolve(
        "[defaults]\nschedule = \"0 0 31 2 *\"\n[jobs.shop]\nrepository = \"/x\"\n",
        "shop",
        &[],
    )
    .unwrap_err();
    assert_eq!((e.job.as_deref(), line(&e)), (None, Some(2)), "{e}");
    assert!(
        e.to_string()
            .starts_with("pgb.toml:2: [defaults], key \"schedule\":"),
        "{e}"
    );
    // Overridden by the job, the job's own value is the one blamed.
    let e = resolve(
        "[defaults]\nschedule = \"0 3 * * *\"\n[jobs.shop]\nrepository = \"/x\"\nschedule = \"0 0 31 2 *\"\n",
        "shop",
        &[],
    )
    .unwrap_err();
    assert_eq!((e.job.as_deref(), line(&e)), (Some("shop"), Some(5)), "{e}");
    // Rare but real dates pass: February 29th, the 31st (of the months that have one).
    for ok in ["0 0 29 2 *", "0 0 31 * *", "0 3 * * 0", "@yearly"] {
        let job = resolve(&with(&format!("schedule = {ok:?}")), "shop", &[]);
        assert!(job.is_ok(), "{ok}: {:?}", job.err());
    }
}

#[test]
fn a_schedule_must_run_within_five_years() {
    use chrono::{DateTime, Utc};
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    // February 29th that is also a Monday ('+' ANDs day of month and day of week): 2044.
    let cron = pgb_config::parse_cron("0 0 29 2 +1").unwrap();
    let e =
        pgb_config::check_schedule_fires(&cron, pgb_config::Tz::UTC, at("2026-06-01T00:00:00Z"))
            .unwrap_err();
    assert!(e.contains("does not run in the next 5 years"), "{e}");
    assert!(e.contains("2044-02-29"), "{e}");
    assert!(
        pgb_config::check_schedule_fires(&cron, pgb_config::Tz::UTC, at("2040-06-01T00:00:00Z"))
            .is_ok()
    );
    // Plain February 29th always has a leap year within five years (until 2096).
    let leap = pgb_config::parse_cron("0 0 29 2 *").unwrap();
    assert!(
        pgb_config::check_schedule_fires(&leap, pgb_config::Tz::UTC, at("2029-03-01T00:00:00Z"))
            .is_ok()
    );
}

#[test]
fn a_zero_hook_timeout_is_refused_with_the_minimum() {
    for zero in ["0", "0s", "0m"] {
        let text = format!("[jobs.shop]\nrepository = \"/x\"\nhook_timeout = {zero:?}\n");
        let e = resolve(&text, "shop", &[]).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.key.as_deref(), Some("hook_timeout"), "{msg}");
        assert!(
            msg.starts_with("pgb.toml:3: job \"shop\", key \"hook_timeout\": must be at least 1s"),
            "{msg}"
        );
    }
    let ok = resolve(
        "[jobs.shop]\nrepository = \"/x\"\nhook_timeout = \"1s\"\n",
        "shop",
        &[],
    )
    .unwrap();
    assert_eq!(ok.hooks.timeout, std::time::Duration::from_secs(1));
}

/// The WAL limits `pgb check --max-rpo/--max-wal-age` apply are job keys too, so the daemon
/// and `check --job` judge a physical job's recovery point without flags; a bad value names
/// its key.
#[test]
fn the_recovery_point_limits_are_check_keys() {
    let text = "[jobs.pitr]\nrepository = \"/x\"\nformat = \"physical\"\n\
                [jobs.pitr.check]\nmax_rpo = \"5m\"\nmax_wal_age = \"1h30m\"\n";
    let job = resolve(text, "pitr", &[]).unwrap();
    let check = job.check.expect("[check]");
    assert_eq!(check.max_rpo, Some(std::time::Duration::from_secs(300)));
    assert_eq!(
        check.max_wal_age,
        Some(std::time::Duration::from_secs(5400))
    );

    let bad = "[jobs.pitr]\nrepository = \"/x\"\n[jobs.pitr.check]\nmax_rpo = \"soon\"\n";
    let e = resolve(bad, "pitr", &[]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("check.max_rpo"), "{e}");
    assert_eq!(line(&e), Some(4), "{e}");
}

/// `wal = "stream"` is a physical job's WAL mode (the daemon streams its WAL); it applies only
/// to physical jobs, and an unknown mode names the three.
#[test]
fn wal_stream_is_a_physical_jobs_wal_mode() {
    let text = "[jobs.pitr]\nrepository = \"/x\"\nformat = \"physical\"\nwal = \"stream\"\n";
    let job = resolve(text, "pitr", &[]).unwrap();
    assert_eq!(job.wal, "stream");

    let logical = "[jobs.shop]\nrepository = \"/x\"\nwal = \"stream\"\n";
    let e = resolve(logical, "shop", &[]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("wal"), "{e}");

    let bad = "[jobs.pitr]\nrepository = \"/x\"\nformat = \"physical\"\nwal = \"push\"\n";
    let e = resolve(bad, "pitr", &[]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("wal"), "{e}");
    assert!(e.to_string().contains("archive, included or stream"), "{e}");
}

/// A streaming job names its own slot and partial interval (two jobs streaming one server
/// need two slots); the defaults are slot `pgb` and 5s; the environment overrides the file;
/// a bad value is refused naming the key and its line.
#[test]
fn a_streaming_job_names_its_slot_and_partial_interval() {
    let base = "[jobs.pitr]\nrepository = \"/x\"\nformat = \"physical\"\nwal = \"stream\"\n";
    let job = resolve(base, "pitr", &[]).unwrap();
    assert_eq!(job.wal_stream_slot, "pgb");
    assert_eq!(
        job.wal_stream_partial_interval,
        std::time::Duration::from_secs(5)
    );

    let text =
        format!("{base}wal_stream_slot = \"pgb_db1_2\"\nwal_stream_partial_interval = \"1m30s\"\n");
    let job = resolve(&text, "pitr", &[]).unwrap();
    assert_eq!(job.wal_stream_slot, "pgb_db1_2");
    assert_eq!(
        job.wal_stream_partial_interval,
        std::time::Duration::from_secs(90)
    );
    assert_eq!(job.provenance["wal_stream_slot"].to_string(), "pgb.toml:5");

    let env = [
        ("PGB_WAL_STREAM_SLOT", "from_env"),
        ("PGB_WAL_STREAM_PARTIAL_INTERVAL", "2s"),
    ];
    let job = resolve(&text, "pitr", &env).unwrap();
    assert_eq!(job.wal_stream_slot, "from_env");
    assert_eq!(
        job.wal_stream_partial_interval,
        std::time::Duration::from_secs(2)
    );
    assert_eq!(
        job.provenance["wal_stream_slot"].to_string(),
        "env PGB_WAL_STREAM_SLOT"
    );

    let long = "a".repeat(64);
    for (slot, says) in [
        ("Pgb", "lowercase letters"),
        ("pgb-db1", "lowercase letters"),
        ("", "1 to 63 bytes"),
        (long.as_str(), "1 to 63 bytes"),
    ] {
        let bad = format!("{base}wal_stream_slot = \"{slot}\"\n");
        let e = resolve(&bad, "pitr", &[]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("wal_stream_slot"), "{slot}: {e}");
        assert_eq!(line(&e), Some(5), "{e}");
        assert!(e.to_string().contains(says), "{slot}: {e}");
        assert!(e.to_string().contains("wal_stream_slot"), "{e}");
    }
    assert!(
        resolve(
            &format!("{base}wal_stream_slot = \"{}\"\n", &long[1..]),
            "pitr",
            &[]
        )
        .is_ok()
    );

    for interval in ["0s", "soon", "-5s"] {
        let bad = format!("{base}wal_stream_partial_interval = \"{interval}\"\n");
        let e = resolve(&bad, "pitr", &[]).unwrap_err();
        assert_eq!(
            e.key.as_deref(),
            Some("wal_stream_partial_interval"),
            "{interval}: {e}"
        );
        assert!(e.to_string().contains("wal_stream_partial_interval"), "{e}");
    }

    // Only a streaming job streams.
    let archive = "[jobs.pitr]\nrepository = \"/x\"\nformat = \"physical\"\n\
                   wal_stream_slot = \"db1\"\n";
    let e = resolve(archive, "pitr", &[]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("wal_stream_slot"), "{e}");
    assert!(e.to_string().contains("wal = \"stream\""), "{e}");
}
