//! Hooks run real programs: the environment they see, output capture, failure, timeout with
//! the whole process group killed, and the password never reported.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use pgb_jobs::hooks::{HookCause, HookEvent, HookRun, Password, Stream, run_hook};

fn sh(script: &str) -> HookRun {
    HookRun {
        program: PathBuf::from("/bin/sh"),
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]),
        job: "shop".into(),
        event: HookEvent::PostBackup,
        backup_id: Some("20260610T120000Z-abcd".into()),
        status: Some("success".into()),
        database_url: None,
        password: None,
        timeout: Duration::from_secs(30),
        cwd: None,
    }
}

#[tokio::test]
async fn a_hook_sees_the_job_environment_and_pgb_variables() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env.txt");
    let mut run = sh(&format!(
        "echo \"$PGB_JOB $PGB_EVENT $PGB_BACKUP_ID $PGB_STATUS ${{HOME:-nohome}} $APP\" > {}",
        out.display()
    ));
    run.env.insert("APP".into(), "shop-api".into());
    let report = run_hook(&run).await;
    assert!(report.ok(), "{}", report.summary());
    assert_eq!(report.failure(), None);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().trim(),
        // HOME is not passed: the child gets the job's environment only.
        "shop post_backup 20260610T120000Z-abcd success nohome shop-api"
    );
}

#[tokio::test]
async fn post_restore_gets_database_url_and_pgpassword_which_is_never_reported() {
    let mut run = sh("echo \"url=$DATABASE_URL\"; echo \"pw=$PGPASSWORD\" >&2; exit 3");
    run.event = HookEvent::PostRestore;
    run.database_url = Some("postgres://app@db:5432/shop_restored".into());
    run.password = Some(Password::new("hunter2"));
    let report = run_hook(&run).await;
    assert!(!report.ok());
    assert_eq!(report.exit_code, Some(3));
    assert!(
        report.summary().contains("post_restore hook"),
        "{}",
        report.summary()
    );
    assert!(report.summary().contains("exited with 3"));
    let failure = report.failure().expect("a failed hook has a typed failure");
    assert_eq!(failure.event, HookEvent::PostRestore);
    assert_eq!(failure.cause, HookCause::Exited(3));
    let lines: Vec<(Stream, &str)> = report
        .output
        .iter()
        .map(|l| (l.stream, l.line.as_str()))
        .collect();
    assert!(
        lines.contains(&(Stream::Stdout, "url=postgres://app@db:5432/shop_restored")),
        "{lines:?}"
    );
    // The hook got the password (it printed it), but the report masks it.
    assert!(lines.contains(&(Stream::Stderr, "pw=***")), "{lines:?}");
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains("hunter2"), "{json}");
    assert!(!format!("{run:?}").contains("hunter2"));
}

#[tokio::test]
async fn arguments_are_not_interpreted_by_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("injected");
    let run = pgb_jobs::hooks::HookRun {
        program: PathBuf::from("/bin/echo"),
        argv: vec![
            "echo".into(),
            format!("$(touch {})", marker.display()),
            ";".into(),
            "rm".into(),
        ],
        ..sh("")
    };
    let report = run_hook(&run).await;
    assert!(report.ok());
    assert!(!marker.exists());
    assert_eq!(
        report.output[0].line,
        format!("$(touch {}) ; rm", marker.display())
    );
}

#[tokio::test]
async fn a_hook_past_its_timeout_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let late = dir.path().join("late");
    // The shell forks a child that would write the file after 3 s.
    let mut run = sh(&format!(
        "(sleep 3; touch {}) & echo started; wait",
        late.display()
    ));
    run.timeout = Duration::from_millis(500);
    let report = run_hook(&run).await;
    assert!(report.timed_out);
    assert!(!report.ok());
    assert!(report.summary().contains("timed out"));
    assert!(matches!(
        report.failure().map(|f| f.cause),
        Some(HookCause::TimedOut { .. })
    ));
    assert_eq!(report.output[0].line, "started");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!late.exists(), "the forked child survived the timeout");
}

#[tokio::test]
async fn a_program_that_cannot_start_is_reported() {
    let run = HookRun {
        program: PathBuf::from("/nonexistent/hook"),
        argv: vec!["/nonexistent/hook".into()],
        ..sh("")
    };
    let report = run_hook(&run).await;
    assert!(!report.ok());
    assert!(report.spawn_error.is_some());
    assert!(matches!(
        report.failure().map(|f| f.cause),
        Some(HookCause::CouldNotStart(_))
    ));
    assert!(
        report.summary().contains("could not start"),
        "{}",
        report.summary()
    );
}
