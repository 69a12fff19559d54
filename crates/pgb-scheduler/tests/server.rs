//! `/healthz` and `/metrics` through a real HTTP client.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use chrono_tz::Tz;
use croner::Cron;
use pgb_scheduler::{
    CancellationToken, Clock, Endpoints, JobRunner, ScheduledJob, Scheduler, Trigger,
};

struct Ok_;

#[async_trait]
impl JobRunner for Ok_ {
    async fn run(&self, _: &str, _: Trigger, _: CancellationToken) -> Result<(), String> {
        Ok(())
    }
}

#[tokio::test]
async fn healthz_is_200_when_fresh_503_when_stale_and_metrics_are_served() {
    let now = Utc::now();
    let fresh = ScheduledJob {
        name: "shop".into(),
        schedule: Cron::from_str("0 3 * * *").unwrap(),
        zone: Tz::UTC,
        jitter: Duration::ZERO,
        catch_up: false,
        max_age: Some(Duration::from_secs(3600)),
        last_success: Some(now - chrono::Duration::minutes(10)),
    };
    let sched = Scheduler::new(vec![fresh], Arc::new(Ok_));
    let health = sched.health();
    let cancel = CancellationToken::new();
    let loop_task = tokio::spawn(sched.run(cancel.clone()));

    let listener = pgb_scheduler::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let endpoints = Endpoints {
        health: health.clone(),
        metrics: Arc::new(|| {
            "# TYPE pgb_backup_last_success_timestamp_seconds gauge\npgb_backup_last_success_timestamp_seconds{job=\"shop\"} 1.78e9\n".to_owned()
        }),
        clock: Clock::system(),
    };
    let server = tokio::spawn(pgb_scheduler::serve(listener, endpoints, cancel.clone()));
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");

    // Wait for the scheduler's first tick.
    let mut status = 0;
    for _ in 0..50 {
        let r = client.get(format!("{base}/healthz")).send().await.unwrap();
        status = r.status().as_u16();
        if status == 200 {
            let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            assert_eq!(body["healthy"], true);
            assert_eq!(body["jobs"]["shop"]["fresh"], true);
            assert_eq!(body["jobs"]["shop"]["max_age_seconds"], 3600);
            assert!(body["jobs"]["shop"]["next_run"].is_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);

    let r = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("pgb_backup_last_success_timestamp_seconds{job=\"shop\"}")
    );

    let r = client.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // Make the job stale: its newest success is now older than its max age.
    // (As when the binary refreshes it from the repository.)
    health.set_last_success("shop", now - chrono::Duration::hours(2));
    let r = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["healthy"], false);
    assert_eq!(body["alive"], true);
    assert_eq!(body["jobs"]["shop"]["fresh"], false);

    cancel.cancel();
    loop_task.await.unwrap();
    server.await.unwrap();
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "server stopped"
    );
}
