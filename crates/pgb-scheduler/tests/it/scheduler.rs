//! The job loop on tokio's paused clock: jobs run at their slots, catch up once, never
//! overlap themselves, stop when cancelled; `run_once` runs only what is due; health follows.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use pgb_scheduler::{CancellationToken, Clock, JobRunner, ScheduledJob, Scheduler, Trigger};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn job(name: &str, expr: &str) -> ScheduledJob {
    ScheduledJob {
        name: name.into(),
        schedule: Cron::from_str(expr).unwrap(),
        zone: Tz::UTC,
        jitter: Duration::ZERO,
        catch_up: false,
        max_age: None,
        last_success: None,
    }
}

/// (job, trigger, start, end)
type Run = (String, Trigger, DateTime<Utc>, DateTime<Utc>);

#[derive(Default)]
struct Recorder {
    clock: Mutex<Option<Clock>>,
    runs: Mutex<Vec<Run>>,
    running: Mutex<Vec<String>>,
    overlap: Mutex<bool>,
    busy: Duration,
    fail: bool,
    cancelled_runs: Mutex<u32>,
}

#[async_trait]
impl JobRunner for Recorder {
    async fn run(
        &self,
        job: &str,
        trigger: Trigger,
        cancel: CancellationToken,
    ) -> Result<(), String> {
        let clock = self.clock.lock().unwrap().unwrap();
        let start = clock.now();
        {
            let mut r = self.running.lock().unwrap();
            if r.iter().any(|j| j == job) {
                *self.overlap.lock().unwrap() = true;
            }
            r.push(job.to_owned());
        }
        tokio::select! {
            () = tokio::time::sleep(self.busy) => {}
            () = cancel.cancelled() => { *self.cancelled_runs.lock().unwrap() += 1; }
        }
        self.running.lock().unwrap().retain(|j| j != job);
        self.runs
            .lock()
            .unwrap()
            .push((job.to_owned(), trigger, start, clock.now()));
        if self.fail {
            Err("pg_dump failed".into())
        } else {
            Ok(())
        }
    }
}

fn starts(rec: &Recorder, name: &str) -> Vec<String> {
    rec.runs
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.0 == name)
        .map(|r| r.2.format("%H:%M:%S").to_string())
        .collect()
}

async fn run_for(
    jobs: Vec<ScheduledJob>,
    rec: Arc<Recorder>,
    start: &str,
    virtual_time: Duration,
) -> pgb_scheduler::HealthHandle {
    let clock = Clock::starting_at(utc(start));
    *rec.clock.lock().unwrap() = Some(clock);
    let sched = Scheduler::new(jobs, rec).with_clock(clock);
    let health = sched.health();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(sched.run(cancel.clone()));
    tokio::time::sleep(virtual_time).await;
    cancel.cancel();
    task.await.unwrap();
    health
}

#[tokio::test(start_paused = true)]
async fn jobs_run_at_their_slots_and_catch_up_once() {
    let rec = Arc::new(Recorder::default());
    let mut b = job("b", "*/5 * * * *");
    b.catch_up = true;
    b.last_success = Some(utc("2026-06-10T11:50:00Z")); // missed 11:55 and 12:00
    let mut c = job("c", "*/5 * * * *");
    c.catch_up = true;
    c.last_success = Some(utc("2026-06-10T12:00:10Z")); // nothing missed
    let health = run_for(
        vec![job("a", "* * * * *"), b, c],
        Arc::clone(&rec),
        "2026-06-10T12:00:30Z",
        Duration::from_secs(6 * 60),
    )
    .await;
    assert_eq!(
        starts(&rec, "a"),
        [
            "12:01:00", "12:02:00", "12:03:00", "12:04:00", "12:05:00", "12:06:00"
        ]
    );
    assert_eq!(starts(&rec, "b"), ["12:00:30", "12:05:00"]);
    assert_eq!(starts(&rec, "c"), ["12:05:00"]);
    let runs = rec.runs.lock().unwrap();
    let b_runs: Vec<_> = runs.iter().filter(|r| r.0 == "b").collect();
    assert_eq!(
        b_runs[0].1,
        Trigger::CatchUp {
            slot: utc("2026-06-10T12:00:00Z")
        }
    );
    assert_eq!(
        b_runs[1].1,
        Trigger::Scheduled {
            slot: utc("2026-06-10T12:05:00Z")
        }
    );
    drop(runs);

    let h = health.snapshot(utc("2026-06-10T12:06:30Z"));
    let a = &h.jobs["a"];
    assert_eq!(a.last_success, Some(utc("2026-06-10T12:06:00Z")));
    assert_eq!(a.next_run, Some(utc("2026-06-10T12:07:00Z")));
    assert!(a.last_run.as_ref().unwrap().ok);
    assert_eq!(a.max_age_seconds, Some(120));
    assert!(h.alive && h.healthy, "{h:?}");
    // Ten minutes later nothing ran: the scheduler counts as dead and jobs as stale.
    let h = health.snapshot(utc("2026-06-10T12:16:30Z"));
    assert!(!h.alive && !h.healthy && !h.jobs["a"].fresh);
}

#[tokio::test(start_paused = true)]
async fn a_job_never_overlaps_itself_and_skips_slots_it_outlasted() {
    let rec = Arc::new(Recorder {
        busy: Duration::from_secs(150),
        ..Recorder::default()
    });
    run_for(
        vec![job("slow", "* * * * *")],
        Arc::clone(&rec),
        "2026-06-10T12:00:30Z",
        Duration::from_secs(9 * 60),
    )
    .await;
    assert!(!*rec.overlap.lock().unwrap());
    // 12:01 runs until 12:03:30; 12:02 and 12:03 are skipped; 12:04 until 12:06:30; 12:07.
    assert_eq!(starts(&rec, "slow"), ["12:01:00", "12:04:00", "12:07:00"]);
}

#[tokio::test(start_paused = true)]
async fn cancelling_stops_waiting_and_cancels_the_running_job() {
    let rec = Arc::new(Recorder {
        busy: Duration::from_secs(3600),
        ..Recorder::default()
    });
    // Cancelled 30 s into the run that started at 12:01.
    run_for(
        vec![job("a", "* * * * *")],
        Arc::clone(&rec),
        "2026-06-10T12:00:30Z",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(*rec.cancelled_runs.lock().unwrap(), 1);
    assert_eq!(starts(&rec, "a"), ["12:01:00"]);
}

#[tokio::test(start_paused = true)]
async fn run_once_runs_what_is_due_and_returns() {
    let rec = Arc::new(Recorder::default());
    let now = utc("2026-06-10T12:00:30Z");
    let clock = Clock::starting_at(now);
    *rec.clock.lock().unwrap() = Some(clock);
    let mut due = job("due", "0 3 * * *");
    due.last_success = Some(utc("2026-06-09T03:00:10Z")); // today's 03:00 not done
    let mut done = job("done", "0 3 * * *");
    done.last_success = Some(utc("2026-06-10T03:00:10Z"));
    let never = job("never", "0 3 * * *"); // no backup yet: due
    let sched = Scheduler::new(
        vec![due, done, never],
        Arc::clone(&rec) as Arc<dyn JobRunner>,
    )
    .with_clock(clock);
    let out = sched.run_once(&CancellationToken::new()).await;
    let ran: Vec<&str> = out.iter().map(|o| o.job.as_str()).collect();
    assert_eq!(ran, ["due", "never"]);
    assert_eq!(
        out[0].trigger,
        Trigger::Once {
            slot: utc("2026-06-10T03:00:00Z")
        }
    );
    assert!(out.iter().all(|o| o.record.ok));
    let json = serde_json::to_value(&out[0]).unwrap();
    assert_eq!(json["trigger"], "once");
    assert_eq!(json["job"], "due");
}

#[tokio::test(start_paused = true)]
async fn failures_show_in_health_and_make_it_unhealthy() {
    let rec = Arc::new(Recorder {
        fail: true,
        ..Recorder::default()
    });
    let mut a = job("a", "* * * * *");
    a.max_age = Some(Duration::from_secs(300));
    let health = run_for(
        vec![a],
        rec,
        "2026-06-10T12:00:30Z",
        Duration::from_secs(90),
    )
    .await;
    let h = health.snapshot(utc("2026-06-10T12:02:00Z"));
    let a = &h.jobs["a"];
    let last = a.last_run.as_ref().unwrap();
    assert!(!last.ok);
    assert_eq!(last.error.as_deref(), Some("pg_dump failed"));
    assert_eq!(a.last_success, None);
    assert!(h.alive && !h.healthy && !a.fresh);
}

#[tokio::test(start_paused = true)]
async fn slots_in_triggers_and_health_are_whole_seconds() {
    use chrono::Timelike as _;
    // `daemon --once` and the daemon start from the system clock, which has nanoseconds.
    let rec = Arc::new(Recorder::default());
    let clock = Clock::starting_at(utc("2026-06-10T12:00:30.722910627Z"));
    *rec.clock.lock().unwrap() = Some(clock);
    let sched = Scheduler::new(
        vec![job("a", "0 3 * * *")],
        Arc::clone(&rec) as Arc<dyn JobRunner>,
    )
    .with_clock(clock);
    let out = sched.run_once(&CancellationToken::new()).await;
    let json = serde_json::to_value(&out[0]).unwrap();
    assert_eq!(json["slot"], "2026-06-10T03:00:00Z");

    let mut a = job("a", "*/5 * * * *");
    a.jitter = Duration::from_secs(60);
    let health = run_for(
        vec![a],
        Arc::clone(&rec),
        "2026-06-10T12:00:30.722910627Z",
        Duration::from_secs(400),
    )
    .await;
    let next = health.snapshot(utc("2026-06-10T12:07:00Z")).jobs["a"]
        .next_run
        .unwrap();
    assert_eq!(next.nanosecond(), 0, "next_run {next}");
    let slots: Vec<_> = rec
        .runs
        .lock()
        .unwrap()
        .iter()
        .filter_map(|r| match r.1 {
            Trigger::Scheduled { slot } => Some(slot),
            _ => None,
        })
        .collect();
    assert_eq!(slots, [utc("2026-06-10T12:05:00Z")]);
}
